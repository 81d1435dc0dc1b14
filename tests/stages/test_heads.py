"""Heads (models.heads, models.zero_shot): zero-shot CLIP heads equal open_clip's builder (trimmed
and untrimmed routes), timm classifier heads equal the model's own logits, labels map to outputs,
heads round-trip."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from pytest_robustaudit.models import zero_shot as zero_shot_module
from pytest_robustaudit.models.heads import (
    Head,
    HeadError,
    check_width,
    classifier_head,
    head_from_arrays,
    head_to_arrays,
    imagenet_class_names,
    imagenet_wnids,
    label_indices,
)
from pytest_robustaudit.models.zero_shot import (
    describe_tokenizer,
    head_cache_parts,
    resolve_templates,
    text_tower_fingerprint,
    zero_shot_head,
)

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
CLASSES = ("tench", "African bush elephant", "teapot")
TEMPLATES = ("a photo of a {}.", "itap of the {} in a video game.")


@pytest.fixture(scope="module")
def clip_models():
    """Random-init open_clip RN50 and ViT-B-32 (no network), built once for the module."""
    import open_clip

    models = {}
    for arch in ("RN50", "ViT-B-32"):
        torch.manual_seed(0)
        models[arch] = (open_clip.create_model(arch, pretrained=None).eval(), open_clip.get_tokenizer(arch))
    return models


@pytest.fixture(scope="module")
def references(clip_models):
    """open_clip.build_zero_shot_classifier's weights [C, D] for each model (the reference)."""
    import open_clip

    return {arch: open_clip.build_zero_shot_classifier(model, tok, CLASSES, TEMPLATES).T.double().numpy()
            for arch, (model, tok) in clip_models.items()}


@pytest.mark.parametrize("arch", ["RN50", "ViT-B-32"])
def test_zero_shot_head_equals_open_clips_builder(clip_models, references, arch):
    model, tok = clip_models[arch]
    calls = []
    head = zero_shot_head(model, tok, CLASSES, TEMPLATES, batch_size=4,
                          progress=lambda done, total: calls.append((done, total)))
    assert head.details["route"] == "trimmed", head.details["why"]
    assert head.kind == "zero-shot" and head.class_names == CLASSES and head.class_ids is None
    assert head.weight.shape == (len(CLASSES), model.text_projection.shape[1])
    assert np.allclose(np.linalg.norm(head.weight, axis=1), 1.0, atol=1e-12)
    assert np.abs(head.weight - references[arch]).max() < 1e-5
    assert head.logit_scale == pytest.approx(float(model.logit_scale.detach().exp()))
    assert head.bias is None
    assert calls == [(4, 6), (6, 6)]


def test_untrimmed_route_for_a_tower_that_is_not_causal(clip_models, references):
    """With full (bidirectional) attention the padding changes every value: trimming would be
    wrong, so the head must see the mask, take the untrimmed route and still equal the builder."""
    import open_clip

    model, tok = clip_models["RN50"]
    causal = model.attn_mask
    model.attn_mask = torch.zeros_like(causal)  # (monkeypatch cannot restore a module buffer)
    try:
        reference = open_clip.build_zero_shot_classifier(model, tok, CLASSES, TEMPLATES).T.double().numpy()
        head = zero_shot_head(model, tok, CLASSES, TEMPLATES, batch_size=5)
    finally:
        model.attn_mask = causal
    assert np.abs(reference - references["RN50"]).max() > 1e-3  # the mask matters
    assert head.details["route"] == "untrimmed" and "not causal" in head.details["why"]
    assert np.abs(head.weight - reference).max() < 1e-5


def test_trimmed_route_is_checked_against_encode_text(clip_models, references, monkeypatch):
    """If our mirror of encode_text ever disagrees with the installed open_clip, the head falls
    back to the model's own encode_text instead of returning wrong weights."""
    model, tok = clip_models["ViT-B-32"]
    real = zero_shot_module._encode_trimmed
    monkeypatch.setattr(zero_shot_module, "_encode_trimmed", lambda *a: real(*a) + 0.5)
    head = zero_shot_head(model, tok, CLASSES, TEMPLATES)
    assert head.details["route"] == "untrimmed" and "self-check differs" in head.details["why"]
    assert np.abs(head.weight - references["ViT-B-32"]).max() < 1e-5


@pytest.mark.parametrize("text_cfg, route, why", [
    ({}, "trimmed", "TextTransformer: causal, pools argmax"),
    ({"pool_type": "eos", "eos_id": 49407}, "trimmed", "TextTransformer: causal, pools eos"),
    ({"pool_type": "first"}, "trimmed", "TextTransformer: causal, pools first"),
    ({"pool_type": "last"}, "untrimmed", "pools 'last'"),
    ({"no_causal_mask": True}, "untrimmed", "not causal"),
    ({"embed_cls": True}, "untrimmed", "appends a class token"),
])
def test_custom_text_towers_take_the_right_route(text_cfg, route, why):
    """open_clip's separate TextTransformer (CustomTextCLIP), tiny: each pooling and mask."""
    import open_clip
    from open_clip.model import CustomTextCLIP

    torch.manual_seed(0)
    model = CustomTextCLIP(embed_dim=32, vision_cfg=dict(width=32, layers=1, patch_size=16, image_size=32,
                                                         head_width=16),
                           text_cfg=dict(width=32, heads=2, layers=2, **text_cfg)).eval()
    tok = open_clip.get_tokenizer("ViT-B-32")
    reference = open_clip.build_zero_shot_classifier(model, tok, CLASSES, TEMPLATES).T.double().numpy()
    head = zero_shot_head(model, tok, CLASSES, TEMPLATES, batch_size=4)
    assert head.details["route"] == route and why in head.details["why"]
    assert np.abs(head.weight - reference).max() < 1e-5


def test_trim_switch_and_default_imagenet_classes(clip_models):
    model, _ = clip_models["RN50"]
    tower, why = zero_shot_module._trim_plan(model)
    assert why == "CLIP: causal, pools argmax" and tower is not None
    names, wnids = imagenet_class_names(), imagenet_wnids()
    assert len(names) == len(wnids) == 1000 and list(wnids) == sorted(wnids)
    assert (names[0], wnids[0]) == ("tench", "n01440764")


def test_wnids_follow_the_probe_file_order():
    folder = SHARED_DATA / "imagenet-samples"
    if not folder.is_dir():
        pytest.skip(f"real test data {folder} is absent (it sits beside the repository in CI)")
    files = sorted(p.name for p in folder.iterdir() if p.name.startswith("n"))
    assert tuple(name[:9] for name in files) == imagenet_wnids()


def test_templates():
    openai, simple = resolve_templates("openai"), resolve_templates("simple")
    assert len(openai) == 80 and openai[0] == "a bad photo of a {}."
    assert len(simple) == 7 and simple[0] == "itap of a {}."
    assert resolve_templates(["a {}.", lambda c: f"the {c}!"]) == ("a {}.", "the {}!")
    with pytest.raises(HeadError, match="unknown template set 'opneai'"):
        resolve_templates("opneai")
    with pytest.raises(HeadError, match="#1 'no slot'"):
        resolve_templates(["a {}.", "no slot"])
    with pytest.raises(HeadError, match=r"\{0\}"):
        resolve_templates(["a {0} {}."])
    with pytest.raises(HeadError, match="empty list"):
        resolve_templates([])


def test_zero_shot_needs_a_clip_model():
    with pytest.raises(HeadError, match="no encode_text"):
        zero_shot_head(torch.nn.Linear(2, 2), lambda texts: None, ["a"], ["{}"], name="timm resnet10t")


# --------------------------------------------------------------------------------------------
# classifier heads
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("arch", ["resnet10t", "efficientnet_lite0"])
def test_classifier_head_equals_the_models_own_logits(arch):
    import timm

    torch.manual_seed(0)
    model = timm.create_model(arch, num_classes=10).eval()
    with torch.no_grad():
        model.get_classifier().bias.normal_()  # a non-zero bias, so that the test sees it
        feats = model.forward_features(torch.randn(3, 3, 96, 96))
        h = model.forward_head(feats, pre_logits=True)
        own32 = model.forward_head(feats).double().numpy()
        # the same classifier applied in float64 to the same rows: equal to float64 rounding
        own64 = model.get_classifier().double()(h.double()).numpy()
    head = classifier_head(model, name=f"timm {arch}")
    assert head.kind == "classifier" and head.weight.shape == (10, h.shape[1]) and head.logit_scale == 1.0
    assert head.class_names == tuple(str(i) for i in range(10)) and head.class_ids is None
    logits = head.logits(h.numpy())
    assert np.abs(logits - own64).max() < 1e-10
    assert np.abs(logits - own32).max() < 1e-5 * max(1.0, np.abs(own32).max())


def test_imagenet_classifier_gets_imagenet_classes():
    import timm

    head = classifier_head(timm.create_model("resnet10t"))
    assert head.class_ids == imagenet_wnids() and head.class_names == imagenet_class_names()


def test_one_by_one_convolution_classifier():
    class ConvHead(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.head = torch.nn.Conv2d(8, 4, kernel_size=1)

        def get_classifier(self):
            return self.head

    model = ConvHead()
    h = torch.randn(5, 8)
    with torch.no_grad():
        own = model.head(h[:, :, None, None])[:, :, 0, 0].double().numpy()
    head = classifier_head(model, class_names=["a", "b", "c", "d"])
    assert head.class_names == ("a", "b", "c", "d")
    assert np.abs(head.logits(h.numpy()) - own).max() < 1e-6


def test_no_classifier_is_a_clear_error():
    import timm

    model = timm.create_model("resnet10t", num_classes=0)
    with pytest.raises(HeadError) as info:
        classifier_head(model, name="timm resnet10t (checkpoint trunk.pt)")
    text = str(info.value)
    assert "timm resnet10t (checkpoint trunk.pt)" in text and "num_classes=0" in text and "head: none" in text
    with pytest.raises(HeadError, match="no get_classifier"):
        classifier_head(torch.nn.Linear(3, 3), name="factory mymodel")
    with pytest.raises(HeadError, match="3 class names given for a classifier with 10 outputs"):
        classifier_head(timm.create_model("resnet10t", num_classes=10), class_names=["a", "b", "c"])


# --------------------------------------------------------------------------------------------
# labels, identity, storage
# --------------------------------------------------------------------------------------------


def small_head(**changes) -> Head:
    fields = dict(weight=np.arange(6.0).reshape(3, 2), bias=np.array([0.0, 1.0, 2.0]), logit_scale=1.0,
                  class_names=("tench", "goldfish", "shark"), class_ids=("n01440764", "n01443537", "n01484850"),
                  kind="classifier", description="toy head")
    fields.update(changes)
    return Head(**fields)


def test_labels_map_to_output_indices():
    head = small_head()
    out = label_indices(head, ["n01443537", None, "shark", "n01440764"])
    assert out.dtype == np.int64 and out.tolist() == [1, -1, 2, 0]
    with pytest.raises(HeadError) as info:
        label_indices(head, ["n01443537", "n09999999", "dog", "dog"], where="audits/x.yaml:4: data")
    text = str(info.value)
    assert text.startswith("audits/x.yaml:4: data: 2 probe label(s)") and "n09999999, dog" in text
    assert "toy head" in text and "classes" in text
    # a repeated class name matches its first class; the wnids tell the two apart
    names, wnids = imagenet_class_names(), imagenet_wnids()
    imagenet = small_head(weight=np.zeros((1000, 2)), bias=None, class_names=names, class_ids=wnids)
    first, second = [i for i, n in enumerate(names) if n == "sunglasses"]
    assert label_indices(imagenet, ["sunglasses", wnids[second]]).tolist() == [first, second]


def test_width_mismatch_names_both_sides():
    check_width(small_head(), 2, "representation")
    with pytest.raises(HeadError, match=r"audits/a.yaml:3: head: layer 'blocks.-1' has width 768 but toy head reads width 2"):
        check_width(small_head(), 768, "blocks.-1", where="audits/a.yaml:3: head")


def test_fingerprint_covers_content_only():
    base = small_head()
    assert base.fingerprint.startswith("sha256:") and small_head().fingerprint == base.fingerprint
    assert small_head(details={"seconds": 3}).fingerprint == base.fingerprint
    for change in ({"bias": None}, {"class_names": ("a", "b", "c")}, {"logit_scale": 2.0},
                   {"weight": np.arange(6.0).reshape(3, 2) + 1e-12}, {"class_ids": None}):
        assert small_head(**change).fingerprint != base.fingerprint, change
    assert not base.weight.flags.writeable
    with pytest.raises(HeadError, match="non-finite"):
        small_head(weight=np.array([[np.nan, 0.0]] * 3))
    with pytest.raises(HeadError, match="2 class names for a head with 3 outputs"):
        small_head(class_names=("a", "b"))


def test_round_trip_through_arrays_and_json(tmp_path):
    head = small_head(kind="zero-shot", logit_scale=100.0 / 7.0, details={"route": "trimmed"})
    arrays, meta = head_to_arrays(head)
    np.savez(tmp_path / "head.npz", **arrays)
    (tmp_path / "head.json").write_text(json.dumps(meta))
    with np.load(tmp_path / "head.npz") as stored:
        back = head_from_arrays(dict(stored), json.loads((tmp_path / "head.json").read_text()))
    assert back.fingerprint == head.fingerprint and back.logit_scale == head.logit_scale
    assert np.array_equal(back.weight, head.weight) and np.array_equal(back.bias, head.bias)
    assert (back.class_names, back.class_ids, back.kind) == (head.class_names, head.class_ids, head.kind)
    tampered = dict(arrays, weight=arrays["weight"] + 1.0)
    with pytest.raises(HeadError, match="does not match its content"):
        head_from_arrays(tampered, meta)


def test_cache_parts_follow_the_text_tower_classes_and_templates(clip_models):
    model, tok = clip_models["ViT-B-32"]
    described = describe_tokenizer(tok)
    assert "SimpleTokenizer" in described and "context_length=77" in described
    tower = text_tower_fingerprint(model)
    with torch.no_grad():
        model.visual.conv1.weight.add_(1.0)  # image tower changes: same text tower
        try:
            assert text_tower_fingerprint(model) == tower
        finally:
            model.visual.conv1.weight.sub_(1.0)
        model.ln_final.bias.add_(1.0)
        try:
            assert text_tower_fingerprint(model) != tower
        finally:
            model.ln_final.bias.sub_(1.0)
    parts = head_cache_parts(tower, CLASSES, TEMPLATES)
    assert parts == head_cache_parts(tower, list(CLASSES), list(TEMPLATES))
    json.dumps(parts)
    assert parts != head_cache_parts(tower, CLASSES[:-1], TEMPLATES)
    assert parts != head_cache_parts(tower, CLASSES, TEMPLATES[:1])
    assert parts != head_cache_parts("sha256:other", CLASSES, TEMPLATES)
    assert parts != head_cache_parts(tower, CLASSES, TEMPLATES, tokenizer=described)


def test_importing_heads_loads_no_heavy_library():
    import subprocess
    import sys

    code = ("import sys, pytest_robustaudit.models.heads, pytest_robustaudit.models.zero_shot; "
            "print(sorted(m for m in ('torch', 'timm', 'open_clip') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
