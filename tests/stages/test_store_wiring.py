"""The activation store wired into audits: what hits, what misses, what is recomputed, and that the
numbers do not depend on where the rows came from.  Extractions are counted by
the record's ``activations.extracted`` (the layers a forward pass wrote in this run)."""

from __future__ import annotations

import shutil
import textwrap

import numpy as np
import pytest

from support import PHOTOS

from pytest_robustaudit.measure import activations
from pytest_robustaudit.measure.activations import StoreOptions
from pytest_robustaudit.registries import standalone
from pytest_robustaudit.audit.runner import measure
from pytest_robustaudit.spec import load_spec

FACTORY = '''
import torch
from torch import nn
from torchvision import transforms


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)
        self.head = nn.Linear(8, 12)

    def forward(self, x):
        return self.head(torch.relu(self.conv(x)).mean(dim=(2, 3)))


def build(size=16):
    return Tiny(), transforms.Compose([transforms.Resize(size), transforms.CenterCrop(size), transforms.ToTensor()])
'''


@pytest.fixture
def setup(tmp_path):
    from PIL import Image

    (tmp_path / "tiny_factory.py").write_text(FACTORY)
    images = tmp_path / "images"
    images.mkdir()
    for i in range(6):
        Image.new("RGB", (24, 20), (40 * i, 30 + 5 * i, 200 - 30 * i)).save(images / f"im{i}.png")
    (images / "broken.png").write_bytes(b"not an image")
    return tmp_path


def spec_of(folder, data="images", options="{}", layers="[representation]", extra=""):
    text = textwrap.dedent(f"""\
        model: {{source: factory, factory: tiny_factory.py:build, options: {options}}}
        data: {{path: {data}, batch_size: 4}}
        layers: {layers}
        device: cpu
        checks: {{kurtosis_mean: {{min: 0}}}}
        """) + extra
    return load_spec(folder / "spec.yaml", standalone(), text=text)


def run(spec, options):
    """The audit's result, and how many forward passes it ran (the record's ``activations.extracted``)."""
    result = measure(spec, standalone(), options)
    return result, int(bool(result.activations["extracted"]))


def same_stats(a, b):
    for name, layer in a.layers.items():
        other = b.layers[name].stats
        for key in ("kurtosis", "rotated_kurtosis", "profile", "feature_mean", "feature_var"):
            np.testing.assert_array_equal(getattr(layer.stats, key), getattr(other, key), err_msg=f"{name}.{key}")
        assert layer.stats.n_images == other.n_images


def test_cold_then_warm_hits_with_identical_results(setup, tmp_path):
    store = StoreOptions(tmp_path / "store")
    cold, extracted = run(spec_of(setup), store)
    assert extracted == 1 and cold.activations["from_store"] is False and cold.extraction_s > 0
    warm, extracted = run(spec_of(setup), store)
    assert extracted == 0 and warm.activations["from_store"] is True and warm.extraction_s == 0
    assert warm.activations["keys"] == cold.activations["keys"]
    same_stats(cold, warm)
    off, extracted = run(spec_of(setup), StoreOptions(mode="off"))
    assert extracted == 1 and off.activations["store"].startswith("off")
    same_stats(cold, off)
    # the unreadable file is excluded the same way whether rows were extracted or read
    assert [s.path.name for s in warm.skipped] == ["broken.png"] == [s.path.name for s in cold.skipped]
    assert warm.n_images == cold.n_images == 6 and warm.n_found == 7


def test_rows_give_the_same_stats_as_streaming(setup):
    """The stored-rows path equals the accumulator fed straight from the model (today's numbers)."""
    from pytest_robustaudit import data
    from support import summarised
    from pytest_robustaudit.models import load_model

    spec = spec_of(setup)
    stored, _ = run(spec, StoreOptions(mode="off"))
    loaded = load_model(spec.model, standalone().sources)
    skipped = []
    batches = (b for b, _ in data.iter_batches(data.discover(spec.data), loaded.preprocess, 4, 0, skipped))
    direct = summarised(loaded, batches, ["representation"], "cpu", "fp32").layers["representation"]
    got = stored.layers["representation"].stats
    np.testing.assert_allclose(got.kurtosis, direct.kurtosis, rtol=1e-12)
    np.testing.assert_allclose(got.feature_var, direct.feature_var, rtol=1e-12)
    np.testing.assert_allclose(got.profile, direct.profile, rtol=1e-12)


def test_renamed_folder_hits_and_changed_bytes_miss(setup, tmp_path):
    store = StoreOptions(tmp_path / "store")
    run(spec_of(setup), store)
    shutil.copytree(setup / "images", setup / "renamed")
    moved, extracted = run(spec_of(setup, data="renamed"), store)
    assert extracted == 0, "same bytes in the same order under another name must hit"
    assert [s.path.parent.name for s in moved.skipped] == ["renamed"]
    from PIL import Image

    Image.new("RGB", (24, 20), (1, 2, 3)).save(setup / "renamed" / "im3.png")
    _, extracted = run(spec_of(setup, data="renamed"), store)
    assert extracted == 1, "one image's bytes changed: a miss"


def test_layer_transform_weights_and_precision_each_miss(setup, tmp_path):
    store = StoreOptions(tmp_path / "store")
    run(spec_of(setup), store)
    both, extracted = run(spec_of(setup, layers="[representation, 'module:conv']"), store)
    assert extracted == 1 and both.activations["extracted"] == ["module:conv"], "only the new layer is extracted"
    _, extracted = run(spec_of(setup, layers="['module:conv']"), store)
    assert extracted == 0, "a layer stored by a spec asking for more layers hits"
    _, extracted = run(spec_of(setup, options="{size: 12}"), store)
    assert extracted == 1, "another transform misses"
    _, extracted = run(spec_of(setup, extra="precision: bf16\n"), store)
    assert extracted == 1, "another precision misses"
    _, extracted = run(spec_of(setup, extra="store_dtype: float16\n"), store)
    assert extracted == 1, "another storage dtype misses"


def test_checkpoint_weights_miss_and_warm_timm_run_builds_no_model(tmp_path, tiny_checkpoints, monkeypatch):
    from pytest_robustaudit import models

    def spec(checkpoint, mean=""):
        pre = f"\n  preprocess: {{mean: [{mean}]}}" if mean else ""
        text = textwrap.dedent(f"""\
            model:
              source: timm
              name: vit_tiny_patch16_224
              checkpoint: {checkpoint}""") + pre + textwrap.dedent(f"""
            data: {{path: {PHOTOS}, limit: 2, batch_size: 2}}
            device: cpu
            checks: {{kurtosis_mean: {{min: 0}}}}
            """)
        return load_spec(tmp_path / "spec.yaml", standalone(), text=text)

    store = StoreOptions(tmp_path / "store")
    built = []
    real = models.load_model
    monkeypatch.setattr(models, "load_model", lambda *a, **k: built.append(1) or real(*a, **k))
    cold, extracted = run(spec(tiny_checkpoints["plain"]), store)
    assert extracted == 1 and len(built) == 1
    warm, extracted = run(spec(tiny_checkpoints["plain"]), store)
    assert extracted == 0 and len(built) == 1, "a warm run of a local checkpoint need not build the model"
    assert warm.fingerprint == cold.fingerprint and warm.model == cold.model
    same_stats(cold, warm)
    _, extracted = run(spec(tiny_checkpoints["planted"]), store)
    assert extracted == 1, "other weights miss"
    _, extracted = run(spec(tiny_checkpoints["plain"], mean="0.4, 0.4, 0.4"), store)
    assert extracted == 1, "a transform override misses"


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_damaged_entry_is_reported_and_recomputed(setup, tmp_path, damage):
    store = StoreOptions(tmp_path / "store")
    cold, _ = run(spec_of(setup), store)
    key = cold.activations["keys"]["representation"]
    rows = next((tmp_path / "store" / "entries" / key).glob("*.npy"))
    data = bytearray(rows.read_bytes())
    if damage == "truncate":
        rows.write_bytes(bytes(data[:-7]))
    else:
        data[-3] ^= 0x40
        rows.write_bytes(bytes(data))
    again, extracted = run(spec_of(setup), store)
    assert extracted == 1
    notes = [n for n in again.provenance["notes"] if key[:12] in n]
    assert len(notes) == 1 and "\n" not in notes[0] and "recomputed" in notes[0], again.provenance["notes"]
    same_stats(cold, again)


def test_bit_rot_the_stat_memo_cannot_see_is_found_while_streaming_and_recomputed(setup, tmp_path):
    """Bytes flipped in place, size, inode and times kept: the memo trusts the file, the streamed
    checksum does not; the run reports the stored rows' numbers only after recomputing them."""
    from test_hostile_store import _rot
    from test_store import age_files

    store = StoreOptions(tmp_path / "store")
    cold, _ = run(spec_of(setup), store)
    key = cold.activations["keys"]["representation"]
    age_files(tmp_path / "store" / "entries")
    _, extracted = run(spec_of(setup), store)             # the entry's hash is now remembered by stat
    assert extracted == 0
    _rot(next((tmp_path / "store" / "entries" / key).glob("*.npy")), offset=-3)
    again, extracted = run(spec_of(setup), store)
    assert extracted == 1
    notes = [n for n in again.provenance["notes"] if key[:12] in n]
    assert len(notes) == 1 and "sha256" in notes[0] and "recomputed" in notes[0], again.provenance["notes"]
    same_stats(cold, again)


def test_refresh_recomputes_once(setup, tmp_path):
    import time

    run(spec_of(setup), StoreOptions(tmp_path / "store"))
    refresh = StoreOptions(tmp_path / "store", mode="refresh", refresh_before=time.time() + 0.001)
    time.sleep(0.01)
    _, extracted = run(spec_of(setup), refresh)
    assert extracted == 1
    _, extracted = run(spec_of(setup), refresh)
    assert extracted == 0, "an entry made during this run is not refreshed twice"


def test_workers_auto_is_accepted_and_validated(setup):
    assert spec_of(setup).data.workers == 0
    spec = load_spec(setup / "spec.yaml", standalone(), text=textwrap.dedent("""\
        model: {source: factory, factory: tiny_factory.py:build}
        data: {path: images, workers: auto}
        checks: {kurtosis_mean: {min: 0}}
        """))
    assert spec.data.workers == "auto" and activations.resolve_workers("auto", "cpu") >= 1
    from pytest_robustaudit.errors import SpecError

    with pytest.raises(SpecError, match="workers.*'auto'"):
        load_spec(setup / "spec.yaml", standalone(), text=textwrap.dedent("""\
            model: {source: factory, factory: tiny_factory.py:build}
            data: {path: images, workers: many}
            checks: {kurtosis_mean: {min: 0}}
            """))
