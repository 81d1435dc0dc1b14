"""Corrupted probe sets through the activation store (corrupted.py): what hits and what misses, that
the clean keys did not change, that the stored rows are the model on the corrupted eval crops, and that
those crops are the same bytes on every run for a seed.  A random-init timm vit_tiny on four photos;
extractions are counted by ``activations.EXTRACTIONS``."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from support import PHOTOS, spec_text

from pytest_robustaudit import data
from pytest_robustaudit.measure import activations
from pytest_robustaudit.measure.activations import Progress, measure_layers
from pytest_robustaudit.measure.corrupted import corruption_variant, measure_corrupted
from pytest_robustaudit.data import corruptions as C
from pytest_robustaudit.registries import standalone
from pytest_robustaudit.spec import load_spec
from pytest_robustaudit.store import ActivationStore
from pytest_robustaudit.store.manage import list_entries


class Recording(Progress):
    def __init__(self):
        self.labels: list[tuple[str, int]] = []

    def start(self, label, total, device):
        self.labels.append((label, total))


@pytest.fixture(scope="module")
def tiny(tiny_checkpoints, tmp_path_factory):
    """The spec (4 photos), its probe set, and one store holding the clean rows and gaussian_noise s3 seed 0."""
    folder = tmp_path_factory.mktemp("corrupted")
    text = spec_text(tiny_checkpoints["plain"], "kurtosis_mean: {min: 0}").replace(
        "batch_size: 4", "batch_size: 4\n  limit: 4")
    registries = standalone()
    spec = load_spec(folder / "spec.yaml", registries, text=text)
    probe = data.discover(spec.data)
    store = ActivationStore(folder / "store", durable=False)
    progress = Recording()
    before = activations.EXTRACTIONS["count"]
    clean = measure_layers(spec, registries, probe, "cpu", store, progress)
    noisy = measure_corrupted(spec, registries, probe, "cpu", store, progress, corruption="gaussian_noise",
                              severity=3, seed=0)
    assert activations.EXTRACTIONS["count"] - before == 2
    return {"spec": spec, "registries": registries, "probe": probe, "store": store, "clean": clean,
            "noisy": noisy, "progress": progress}


def measured(tiny, **corruption):
    before = activations.EXTRACTIONS["count"]
    got = measure_corrupted(tiny["spec"], tiny["registries"], tiny["probe"], "cpu", tiny["store"], **corruption)
    return got, activations.EXTRACTIONS["count"] - before


def rows(got, layer="representation"):
    return np.concatenate(list(got.entries[layer].rows(layer)))


def test_a_second_run_reads_the_store_and_another_severity_seed_or_corruption_misses(tiny):
    clean, noisy = tiny["clean"], tiny["noisy"]
    assert noisy.extracted == ["representation"] and len(noisy.image_hashes) == 4
    assert noisy.keys["representation"] != clean.keys["representation"]
    again, ran = measured(tiny, corruption="gaussian_noise", severity=3, seed=0)
    assert ran == 0 and again.from_store and again.keys == noisy.keys
    np.testing.assert_array_equal(rows(again), rows(noisy))
    assert again.row_labels == noisy.row_labels == clean.row_labels
    seen = {noisy.keys["representation"], clean.keys["representation"]}
    for other in ({"corruption": "gaussian_noise", "severity": 4, "seed": 0},
                  {"corruption": "gaussian_noise", "severity": 3, "seed": 1}):
        got, ran = measured(tiny, **other)
        assert ran == 1 and got.extracted == ["representation"], other
        assert got.keys["representation"] not in seen, other
        seen.add(got.keys["representation"])
    # and the clean set is still a hit under its old key
    before = activations.EXTRACTIONS["count"]
    back = measure_layers(tiny["spec"], tiny["registries"], tiny["probe"], "cpu", tiny["store"])
    assert activations.EXTRACTIONS["count"] == before and back.keys == clean.keys


def test_the_clean_key_is_unchanged_and_the_corrupted_key_names_the_corruption(tiny):
    clean, noisy = tiny["clean"], tiny["noisy"]
    clean_parts = clean.entries["representation"].parts
    assert set(clean_parts["extra"]) == {"code"}  # what the key held before corrupted sets existed
    parts = noisy.entries["representation"].parts
    assert {k: v for k, v in parts.items() if k != "extra"} == {k: v for k, v in clean_parts.items() if k != "extra"}
    assert parts["extra"]["code"] == clean_parts["extra"]["code"]
    variant = parts["extra"]["variant"]
    assert (variant["corruption"], variant["severity"], variant["seed"]) == ("gaussian_noise", 3, 0)
    assert variant["version"] == C.table.CORRUPTION_VERSION and len(variant["source_sha256"]) == 64
    assert "scipy" in variant["versions"]
    # the row's label in the listing and the progress line say which set it is
    listed = {record.key: record.data for record in list_entries(tiny["store"].root)}
    assert listed[noisy.keys["representation"]].endswith("(4), gaussian_noise severity 3")
    assert listed[clean.keys["representation"]].endswith("(4)")
    labels = [label for label, _ in tiny["progress"].labels]
    assert labels[0].startswith(f"{tiny['spec'].name}: ") and "gaussian" not in labels[0]
    assert labels[1] == labels[0] + ", gaussian_noise severity 3" and tiny["progress"].labels[1][1] == 4


def test_stored_rows_are_the_model_on_the_corrupted_eval_crops(tiny):
    """Independently of the store: the eval crop, corrupted with corrupt() at the crop's content index,
    through the transform's tensor part, through the model, gives the stored rows."""
    import torch
    from PIL import Image

    from pytest_robustaudit.measure.extract import run_model

    loaded = tiny["noisy"].model()
    geometric, tensor_part = C.split_eval_transform(loaded.preprocess)
    tensors = []
    for image in tiny["probe"].images:
        crop = np.asarray(geometric(data.load_rgb(image.path)).convert("RGB"))
        out = C.corrupt(crop, "gaussian_noise", 3, seed=0, index=C.content_index(crop))
        tensors.append(tensor_part(Image.fromarray(out)))
    got = []
    run_model(loaded, [torch.stack(tensors)], ["representation"], "cpu", "fp32",
              lambda outputs: got.append(outputs["representation"].float().numpy()))
    expected = np.concatenate(got)
    stored, clean = rows(tiny["noisy"]), rows(tiny["clean"])
    np.testing.assert_allclose(stored, expected, rtol=1e-4, atol=1e-4)
    assert np.abs(stored - clean).max() > 100 * np.abs(stored - expected).max() + 1e-3  # the noise shows


def _crop_digests(preprocess, paths, seed):
    pre = C.CorruptingPreprocess(preprocess, "gaussian_noise", 3, seed)
    return [hashlib.sha256(pre.corrupted_crop(data.load_rgb(p)).tobytes()).hexdigest() for p in paths]


FRESH = """\
import hashlib, sys
import numpy as np
from pytest_robustaudit.data import corruptions as C
crops = np.load(sys.argv[1])
print(" ".join(hashlib.sha256(C.corrupt(crop, "gaussian_noise", 3, seed=0, index=C.content_index(crop)).tobytes())
               .hexdigest() for crop in crops))
"""


def test_generated_crops_are_byte_identical_across_runs_for_a_seed_and_differ_for_another(tiny, tmp_path):
    preprocess = tiny["noisy"].model().preprocess
    paths = [image.path for image in tiny["probe"].images]
    first = _crop_digests(preprocess, paths, seed=0)
    assert _crop_digests(preprocess, paths, seed=0) == first
    other = _crop_digests(preprocess, paths, seed=1)
    assert all(a != b for a, b in zip(first, other))
    assert len(set(first)) == len(first)  # each image its own noise
    # a fresh process (another hash seed, fresh imports) corrupts the same eval crops into the same bytes
    geometric, _ = C.split_eval_transform(preprocess)
    np.save(tmp_path / "crops.npy", np.stack([np.asarray(geometric(data.load_rgb(p)).convert("RGB")) for p in paths]))
    src = os.path.dirname(activations.__file__.rsplit(os.sep, 1)[0])
    out = subprocess.run([sys.executable, "-c", FRESH, str(tmp_path / "crops.npy")], capture_output=True, text=True,
                         check=True, env={**os.environ, "PYTHONHASHSEED": "77",
                                          "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])})
    assert out.stdout.split() == first


def test_bad_corruptions_are_refused_before_any_image_is_read(tiny, monkeypatch, tmp_path):
    entries = len(list_entries(tiny["store"].root))
    for corruption, severity, seed, message in (("gausian_noise", 3, 0, "Did you mean: gaussian_noise"),
                                                ("gaussian_noise", 6, 0, "has no severity 6"),
                                                ("greyscale", 2, 0, "has no severity 2"),
                                                ("gaussian_noise", True, 0, "has no severity True"),
                                                ("gaussian_noise", 3, "0", "seed is an integer")):
        with pytest.raises(C.CorruptionError, match=message):
            measured(tiny, corruption=corruption, severity=severity, seed=seed)
    monkeypatch.setenv(C.FROST_ENV, str(tmp_path))  # no textures there
    with pytest.raises(C.FrostTexturesMissing, match="does not hold ImageNet-C's frost textures"):
        measured(tiny, corruption="frost", severity=1, seed=0)
    assert len(list_entries(tiny["store"].root)) == entries


def test_frost_textures_are_part_of_the_key(tiny, monkeypatch, tmp_path):
    from PIL import Image

    from pytest_robustaudit.data.corruptions.weather import FROST_FILES

    for index, name in enumerate(FROST_FILES[:5]):
        Image.new("RGB", (300, 300), (200, 210, 220 + index)).save(tmp_path / name)
    monkeypatch.setenv(C.FROST_ENV, str(tmp_path))
    store = tiny["store"]
    first = corruption_variant("frost", 2, 0, store).key
    assert len(first["textures"]) == 5 and corruption_variant("frost", 2, 0, store).key == first
    Image.new("RGB", (300, 300), (0, 0, 0)).save(tmp_path / "frost3.png")
    assert corruption_variant("frost", 2, 0, store).key["textures"] != first["textures"]
    assert "textures" not in corruption_variant("fog", 2, 0, store).key
    assert corruption_variant("greyscale", 1, 0, store).label == "greyscale"
    assert corruption_variant("fog", 2, 5, store).label == "fog severity 2 seed 5"


FACTORY = '''
import torch
from torch import nn
from torchvision import transforms


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x):
        return torch.relu(self.conv(x)).mean(dim=(2, 3))


def build():
    return Tiny(), transforms.Compose([transforms.Resize(16), transforms.ColorJitter(0.4), transforms.ToTensor()])
'''


def test_a_transform_that_cannot_be_cut_at_the_crop_fails_naming_the_step(tmp_path):
    (tmp_path / "jitter_factory.py").write_text(FACTORY)
    text = textwrap.dedent(f"""\
        model: {{source: factory, factory: jitter_factory.py:build}}
        data: {{path: {PHOTOS}, limit: 2}}
        layers: [representation]
        device: cpu
        checks: {{kurtosis_mean: {{min: 0}}}}
        """)
    registries = standalone()
    spec = load_spec(tmp_path / "spec.yaml", registries, text=text)
    probe = data.discover(spec.data)
    store = ActivationStore(tmp_path / "store", durable=False)
    for _ in range(2):  # the second attempt is refused the same way: the entry's lock was released
        with pytest.raises(C.CorruptionError, match=r"step 1 \(ColorJitter\) before ToTensor"):
            measure_corrupted(spec, registries, probe, "cpu", store, corruption="fog", severity=1, seed=0)
    assert list_entries(store.root) == []
