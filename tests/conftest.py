"""Shared fixtures: tiny checkpoints built at test time (helpers live in support.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from support import CLIP_ARCHS, PLANTED_CHANNELS

pytest_plugins = ["pytester"]


@pytest.fixture(scope="session", autouse=True)
def shared_activation_store(tmp_path_factory):
    """One activation store for every audit the suite runs (pytester runs in process and in
    subprocesses read $ROBUSTAUDIT_CACHE_DIR), so the same images on the same model are extracted
    once per suite, not once per test; under pytest-xdist the workers share it (the store's locks
    make them extract each entry once).  Tests of the store's own behaviour pass --audit-cache-dir."""
    import os

    base = tmp_path_factory.getbasetemp()
    root = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "activation-store"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ROBUSTAUDIT_CACHE_DIR", str(root))
        yield root


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
