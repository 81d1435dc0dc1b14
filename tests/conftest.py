"""Shared fixtures: real data location, tiny checkpoints built at test time, spec writing."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

# In-process pytester runs restore sys.modules afterwards; a C extension first imported inside
# one run cannot be imported again in the next.  Import the heavy libraries up front.
import timm  # noqa: E402,F401
import torch  # noqa: E402,F401
import torchvision  # noqa: E402,F401

pytest_plugins = ["pytester"]

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
PHOTOS = REPO / "audits" / "photos"
#: features of vit_tiny's final LayerNorm that the "planted" checkpoint scales by 100
PLANTED_CHANNELS = (3, 77, 150)


def shared_data(name: str) -> Path:
    """A folder of ../shared/data, or skip the test with the reason."""
    path = SHARED_DATA / name
    if not path.is_dir():
        pytest.skip(f"real test data {path} is absent (it sits beside the repository in CI)")
    return path


@pytest.fixture(scope="session")
def tiny_checkpoints(tmp_path_factory) -> dict[str, Path]:
    """vit_tiny_patch16_224 (timm, random init, seed 0) saved twice: as is, and with planted outliers.

    Its representation is the class token after the final LayerNorm, so it is close to Gaussian
    across features.  The planted copy multiplies that LayerNorm's scale and shift by 100 for
    PLANTED_CHANNELS: exactly those features become 100x the others, a known answer.
    """
    import timm
    import torch
    from safetensors.torch import save_file

    folder = tmp_path_factory.mktemp("checkpoints")
    torch.manual_seed(0)
    model = timm.create_model("vit_tiny_patch16_224", pretrained=False)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, folder / "plain.safetensors")
    planted = {k: v.clone() for k, v in state.items()}
    for key in ("norm.weight", "norm.bias"):
        planted[key][list(PLANTED_CHANNELS)] *= 100.0
    save_file(planted, folder / "planted.safetensors")
    return {"plain": folder / "plain.safetensors", "planted": folder / "planted.safetensors"}


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


@pytest.fixture(scope="session")
def clip_checkpoints(tmp_path_factory) -> dict[str, dict]:
    """Random-init open_clip RN50 and ViT-B-32 (seed 1234), each saved in open_clip's own format
    (``torch.save({"state_dict": ...})``, ``clip.pt``) and as ``clip.safetensors``.

    Returns ``{arch: {"pt": path, "safetensors": path, "fingerprint": content fingerprint}}``.  The
    models themselves are dropped once saved (about 6 s and 0.4-0.6 GB each).
    """
    import open_clip
    import torch
    from safetensors.torch import save_file

    from pytest_robustaudit.models.checkpoints import fingerprint_state_dict

    found = {}
    for arch in CLIP_ARCHS:
        folder = tmp_path_factory.mktemp(f"clip-{arch}")
        torch.manual_seed(1234)
        state = open_clip.create_model(arch, pretrained=None).state_dict()
        torch.save({"state_dict": state}, folder / "clip.pt")
        save_file({k: v.contiguous() for k, v in state.items()}, str(folder / "clip.safetensors"))
        found[arch] = {"pt": folder / "clip.pt", "safetensors": folder / "clip.safetensors",
                       "fingerprint": fingerprint_state_dict(state)}
        del state
    return found
