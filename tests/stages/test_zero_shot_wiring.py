"""Zero-shot heads through the spec path: random-init open_clip RN50 and ViT-B-32 (tests/conftest.py's
clip_checkpoints) build their head offline from the spec's classes and templates, with the right shape
and unit-norm rows; it is stored on the first run and read on the second without building the model
(the text tower) again."""

from __future__ import annotations

import shutil
import textwrap

import numpy as np
import pytest

from support import CLIP_ARCHS, PHOTOS

from pytest_robustaudit.measure import head_source
from pytest_robustaudit.measure.activations import StoreOptions
from pytest_robustaudit.registries import standalone
from pytest_robustaudit.audit.runner import run_audit
from pytest_robustaudit.spec import load_spec

WIDTH = {"RN50": 1024, "ViT-B-32": 512}
CLASSES = ["cat", "dog", "teapot"]
TEMPLATES = ["a photo of a {}.", "a blurry photo of a {}."]


@pytest.mark.parametrize("arch", CLIP_ARCHS)
def test_zero_shot_head_built_stored_and_reused(tmp_path, clip_checkpoints, arch, monkeypatch):
    from pytest_robustaudit import models

    for label, photo in (("cat", "chelsea.jpg"), ("dog", "coffee.jpg")):
        (tmp_path / "images" / label).mkdir(parents=True)
        shutil.copy(PHOTOS / photo, tmp_path / "images" / label / photo)
    text = textwrap.dedent(f"""\
        model: {{source: open_clip, name: {arch}, checkpoint: {clip_checkpoints[arch]['safetensors']}}}
        data: {{path: images, labels: folder, batch_size: 2}}
        device: cpu
        head:
          classes: {CLASSES}
          templates: {TEMPLATES}
        checks:
          top1_accuracy: {{min: 0, max: 1}}
        """)
    spec = load_spec(tmp_path / "spec.yaml", standalone(), text=text)
    built_models = []
    real = models.load_model
    monkeypatch.setattr(models, "load_model", lambda *a, **k: built_models.append(1) or real(*a, **k))
    before = head_source.HEADS_BUILT["zero-shot"]
    cold = run_audit(spec, standalone(), store=StoreOptions(tmp_path / "store"))
    assert head_source.HEADS_BUILT["zero-shot"] == before + 1 and len(built_models) == 1
    info = cold.provenance["head"]
    assert info["kind"] == "zero-shot" and info["from_store"] is False
    assert info["classes"] == 3 and info["width"] == WIDTH[arch] and info["route"] == "trimmed"
    stored = list((tmp_path / "store" / "heads").glob("*.npz"))
    assert len(stored) == 1
    with np.load(stored[0]) as found:
        weight = found["weight"]
    assert weight.shape == (3, WIDTH[arch]) and weight.dtype == np.float64
    np.testing.assert_allclose(np.linalg.norm(weight, axis=1), 1.0, rtol=0, atol=1e-12)
    top1 = cold.layers["representation"].metrics["top1_accuracy"]
    assert top1.details["labelled"] == 2 and 0 <= top1.value <= 1
    assert cold.check("top1_accuracy", "representation").passed

    warm = run_audit(spec, standalone(), store=StoreOptions(tmp_path / "store"))
    assert head_source.HEADS_BUILT["zero-shot"] == before + 1, "the stored head is read, not built again"
    assert len(built_models) == 1, "a warm run builds neither the image nor the text tower"
    assert warm.provenance["head"]["from_store"] is True
    assert warm.provenance["head"]["fingerprint"] == info["fingerprint"]
    assert warm.layers["representation"].metrics["top1_accuracy"] == top1
