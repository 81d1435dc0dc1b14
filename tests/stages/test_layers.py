"""Layer adapters (models/layers.py) on tiny open_clip, timm and plain models built here."""

from __future__ import annotations

import open_clip
import pytest
import timm
import torch

from pytest_robustaudit.errors import LayerError
from pytest_robustaudit.models.layers import (
    GenericAdapter,
    OpenClipAdapter,
    TimmAdapter,
    adapter_for,
    pool,
)

TEXT = dict(context_length=8, vocab_size=100, width=32, heads=2, layers=1)


def clip_vit(**vision) -> torch.nn.Module:
    torch.manual_seed(0)
    cfg = dict(layers=3, width=64, head_width=32, patch_size=8, image_size=32, **vision)
    return open_clip.CLIP(embed_dim=24, vision_cfg=cfg, text_cfg=TEXT).eval()


def clip_resnet() -> torch.nn.Module:
    torch.manual_seed(0)
    cfg = dict(layers=(1, 1, 1, 1), width=8, head_width=16, image_size=64)
    return open_clip.CLIP(embed_dim=24, vision_cfg=cfg, text_cfg=TEXT).eval()


def images(size: int, n: int = 2) -> torch.Tensor:
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(1))


def no_hooks_left(model: torch.nn.Module) -> bool:
    return all(not m._forward_hooks for m in model.modules())


# -- pooling ------------------------------------------------------------------------------------
def test_pool_shapes():
    fmap = torch.randn(2, 5, 3, 4)
    assert torch.allclose(pool(fmap), fmap.mean(dim=(2, 3)))
    assert torch.allclose(pool(fmap.permute(0, 2, 3, 1), channels_last=True), fmap.mean(dim=(2, 3)))
    tokens = torch.randn(2, 7, 6)
    assert torch.equal(pool(tokens, class_token=True), tokens[:, 0])
    assert torch.allclose(pool(tokens, prefix_tokens=1), tokens[:, 1:].mean(dim=1))
    assert torch.allclose(pool(tokens), tokens.mean(dim=1))
    flat = torch.randn(2, 9)
    pooled = pool((flat, "extra"))
    assert torch.equal(pooled, flat) and pooled.data_ptr() != flat.data_ptr()  # a copy, safe from in-place ops


# -- open_clip ----------------------------------------------------------------------------------
@pytest.mark.parametrize("vision", [{}, {"pool_type": "avg"}, {"final_ln_after_pool": True}])
def test_open_clip_vit_layers(vision):
    model = clip_vit(**vision)
    adapter = adapter_for(model, "open_clip:tiny-vit")
    assert isinstance(adapter, OpenClipAdapter)
    assert adapter.available() == ["representation", "pre_projection", "blocks.0", "blocks.1", "blocks.2"]
    x = images(32)
    with torch.no_grad():
        out = adapter.forward(x, ["representation", "pre_projection", "blocks.0", "blocks.-1", "blocks.2"])
        expected = model.encode_image(x, normalize=False)
        inter = model.visual.forward_intermediates(x, output_fmt="NLC", output_extra_tokens=True,
                                                   intermediates_only=True)
    assert {k: tuple(v.shape) for k, v in out.items()} == {
        "representation": (2, 24), "pre_projection": (2, 64), "blocks.0": (2, 64), "blocks.-1": (2, 64),
        "blocks.2": (2, 64)}
    assert torch.allclose(out["representation"], expected, atol=1e-6)
    # the pre-projection feature is exactly what visual.proj multiplies
    assert torch.allclose(out["pre_projection"] @ model.visual.proj, expected, atol=1e-5)
    # blocks are open_clip's own intermediates, pooled to the class token
    prefix = inter["image_intermediates_prefix"]
    assert torch.allclose(out["blocks.0"], prefix[0][:, 0], atol=1e-6)
    assert torch.allclose(out["blocks.2"], prefix[2][:, 0], atol=1e-6)
    assert torch.equal(out["blocks.-1"], out["blocks.2"])
    assert no_hooks_left(model)


def test_open_clip_resnet_layers():
    model = clip_resnet()
    adapter = adapter_for(model, "open_clip:tiny-rn")
    assert adapter.available() == ["representation", "pre_projection"] + [f"blocks.{i}" for i in range(5)]
    x = images(64)
    with torch.no_grad():
        out = adapter.forward(x, ["representation", "pre_projection"] + [f"blocks.{i}" for i in range(5)])
        inter = model.visual.forward_intermediates(x, intermediates_only=True)["image_intermediates"]
        expected = model.encode_image(x)
    assert torch.allclose(out["representation"], expected, atol=1e-6)
    assert out["representation"].shape == (2, 24) and out["pre_projection"].shape == (2, 256)
    for i in range(5):  # stem, layer1..layer4 as open_clip enumerates them
        assert torch.allclose(out[f"blocks.{i}"], inter[i].mean(dim=(2, 3)), atol=1e-6)
    assert torch.allclose(out["pre_projection"], inter[4].mean(dim=(2, 3)), atol=1e-6)


def test_open_clip_text_module_does_not_run():
    model = clip_vit()
    adapter = adapter_for(model, "open_clip:tiny-vit")
    adapter.check(["module:transformer.resblocks.0"])  # exists (text tower) ...
    with pytest.raises(LayerError, match="did not run during the image forward pass"):
        adapter.forward(images(32), ["module:transformer.resblocks.0"])  # ... but the image pass skips it
    assert no_hooks_left(model)


def test_open_clip_module_hook_and_errors():
    model = clip_vit()
    adapter = adapter_for(model, "open_clip:tiny-vit")
    with torch.no_grad():
        out = adapter.forward(images(32), ["module:visual.transformer.resblocks.1.mlp", "module:visual.conv1"])
    assert out["module:visual.transformer.resblocks.1.mlp"].shape == (2, 64)
    assert out["module:visual.conv1"].shape == (2, 64)  # [B, C, 4, 4] feature map, spatial mean
    with pytest.raises(LayerError) as info:
        adapter.check(["blocks.3", "pre_projecton", "module:visual.transfomer"])
    text = str(info.value)
    assert "layer 'blocks.3' does not exist for open_clip:tiny-vit (3 blocks: blocks.0 … blocks.2" in text
    assert "Did you mean: pre_projection?" in text
    assert "no module named 'visual.transfomer'. Did you mean: visual.transformer?" in text
    assert "available: representation, pre_projection, blocks.0..blocks.2, module:<name>" in text.lower()


def test_open_clip_timm_tower_blocks_and_no_pre_projection():
    torch.manual_seed(0)
    vision = dict(timm_model_name="resnet10t", timm_model_pretrained=False, timm_pool="avg",
                  timm_proj="linear", image_size=32)
    model = open_clip.CLIP(embed_dim=24, vision_cfg=vision, text_cfg=TEXT).eval()
    adapter = adapter_for(model, "open_clip:tiny-timm")
    assert adapter.available() == ["representation"] + [f"blocks.{i}" for i in range(5)]
    with torch.no_grad():
        out = adapter.forward(images(32), ["representation", "blocks.-1"])
    assert out["representation"].shape == (2, 24) and out["blocks.-1"].shape == (2, 512)
    with pytest.raises(LayerError, match="VisionTransformer and ModifiedResNet.*TimmModel"):
        adapter.check(["pre_projection"])


# -- timm ---------------------------------------------------------------------------------------
def test_timm_vit_blocks_match_forward_intermediates():
    torch.manual_seed(0)
    model = timm.create_model("vit_tiny_patch16_224", img_size=32).eval()
    adapter = adapter_for(model, "timm:vit_tiny_patch16_224")
    assert isinstance(adapter, TimmAdapter)
    assert adapter.available() == ["representation"] + [f"blocks.{i}" for i in range(12)]
    x = images(32)
    with torch.no_grad():
        out = adapter.forward(x, ["representation", "blocks.0", "blocks.-1"])
        inter = model.forward_intermediates(x, indices=[0, 11], return_prefix_tokens=True, intermediates_only=True)
        expected = model.forward_head(model.forward_features(x), pre_logits=True)
    assert torch.allclose(out["representation"], expected, atol=1e-6)
    assert torch.allclose(out["blocks.0"], inter[0][1][:, 0], atol=1e-6)  # class token
    assert torch.allclose(out["blocks.-1"], inter[1][1][:, 0], atol=1e-6)


def test_timm_cnn_blocks_and_one_forward():
    torch.manual_seed(0)
    model = timm.create_model("resnet10t", num_classes=7).eval()
    adapter = adapter_for(model, "timm:resnet10t")
    calls = []
    model.conv1.register_forward_hook(lambda *a: calls.append(1))
    x = images(48)
    names = ["representation"] + [f"blocks.{i}" for i in range(5)] + ["module:layer2.0.conv1"]
    with torch.no_grad():
        out = adapter.forward(x, names)
        assert len(calls) == 1  # one forward pass served every layer
        inter = model.forward_intermediates(x, intermediates_only=True)
    assert [out[f"blocks.{i}"].shape[1] for i in range(5)] == [64, 64, 128, 256, 512]
    for i in range(5):
        assert torch.allclose(out[f"blocks.{i}"], inter[i].mean(dim=(2, 3)), atol=1e-6)
    assert out["representation"].shape == (2, 512)
    assert len(model.conv1._forward_hooks) == 1  # only the test's own hook remains


def test_timm_classifier_module_runs_the_head():
    torch.manual_seed(0)
    model = timm.create_model("resnet10t", num_classes=7).eval()
    adapter = adapter_for(model, "timm:resnet10t")
    with torch.no_grad():
        out = adapter.forward(images(32), ["representation", "module:fc"])
    assert out["module:fc"].shape == (2, 7)
    assert torch.allclose(out["module:fc"], model.fc(out["representation"]), atol=1e-5)


def test_timm_errors_explain():
    torch.manual_seed(0)
    model = timm.create_model("vit_tiny_patch16_224", img_size=32).eval()
    adapter = adapter_for(model, "timm:vit_tiny_patch16_224")
    with pytest.raises(LayerError) as info:
        adapter.check(["blocks.40"])
    text = str(info.value)
    assert "layer 'blocks.40' does not exist for timm:vit_tiny_patch16_224 (12 blocks: blocks.0 … blocks.11" in text
    assert "blocks.-12 … blocks.-1" in text and "representation, blocks.0..blocks.11, module:<name>" in text
    with pytest.raises(LayerError, match="already its pre-logits feature"):
        adapter.check(["pre_projection"])
    with pytest.raises(LayerError, match="Did you mean: representation"):
        adapter.check(["represntation"])
    with pytest.raises(LayerError, match="Did you mean: blocks.1.attn"):
        adapter.check(["module:blocks.1.atn"])


def test_hooks_removed_after_failure():
    torch.manual_seed(0)
    model = timm.create_model("resnet10t").eval()
    adapter = adapter_for(model, "timm:resnet10t")
    with pytest.raises(RuntimeError):
        adapter.forward(torch.randn(2, 5, 32, 32), ["blocks.0", "blocks.1"])  # wrong channel count
    assert no_hooks_left(model)


# -- generic ------------------------------------------------------------------------------------
def test_generic_adapter():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.Conv2d(4, 2, 3)).eval()
    adapter = adapter_for(model, "factory:toy")
    assert isinstance(adapter, GenericAdapter)
    assert adapter.available() == ["representation"]
    x = images(8)
    with torch.no_grad():
        out = adapter.forward(x, ["representation", "module:0", "module:1"])
    assert out["representation"].shape == (2, 2 * 4 * 4)  # the output flattened
    assert torch.allclose(out["module:0"], model[0](x).mean(dim=(2, 3)))
    assert torch.allclose(out["module:1"], model[0](x).relu().mean(dim=(2, 3)))
    with pytest.raises(LayerError, match="timm and open_clip"):
        adapter.check(["blocks.0"])
    with pytest.raises(LayerError, match="open_clip"):
        adapter.check(["pre_projection"])


def test_adapter_for_dispatches_on_capabilities():
    class ClipLike(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.visual = torch.nn.Linear(3, 2)

        def encode_image(self, x, normalize=False):
            return self.visual(x)

    class TimmLike(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.body = torch.nn.Linear(3, 4)
            self.head = torch.nn.Linear(4, 2)

        def forward_features(self, x):
            return self.body(x)

        def forward_head(self, x, pre_logits=False):
            return x if pre_logits else self.head(x)

    clip_like = adapter_for(ClipLike(), "factory:clip")
    timm_like = adapter_for(TimmLike(), "factory:timm")
    assert isinstance(clip_like, OpenClipAdapter) and isinstance(timm_like, TimmAdapter)
    x = torch.randn(2, 3)
    assert clip_like.forward(x, ["representation"])["representation"].shape == (2, 2)
    assert timm_like.forward(x, ["representation"])["representation"].shape == (2, 4)
    assert timm_like.forward(x, ["module:head"])["module:head"].shape == (2, 2)
