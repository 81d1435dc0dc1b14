"""Checkpoint reading, fitting and fingerprints (models/checkpoints.py), on tiny models built here."""

from __future__ import annotations

import os
import pickle
from collections import OrderedDict

import pytest
import torch
from safetensors.torch import save_file

from pytest_robustaudit.errors import CheckpointError, ModelLoadError
from pytest_robustaudit.models.checkpoints import fingerprint_state_dict, fit_state_dict, read_state_dict
from pytest_robustaudit.spec.schema import CheckpointSpec


def tiny() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.BatchNorm1d(8), torch.nn.Linear(8, 5))


def same(a: dict, b: dict, ordered: bool = True) -> bool:
    keys_agree = list(a) == list(b) if ordered else sorted(a) == sorted(b)
    return keys_agree and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture
def weights():
    return tiny().state_dict()


# -- reading ------------------------------------------------------------------------------------
@pytest.mark.parametrize("wrap", ["plain", "state_dict", "model", "model_state_dict", "ddp", "training"])
def test_read_torch_containers(tmp_path, weights, wrap):
    obj = {
        "plain": weights,
        "state_dict": {"state_dict": weights, "epoch": 3},
        "model": {"model": weights},
        "model_state_dict": {"model_state_dict": weights, "optimizer": {"lr": 0.1}},
        "ddp": OrderedDict((f"module.{k}", v) for k, v in weights.items()),
        "training": {"state_dict": {f"module.{k}": v for k, v in weights.items()}, "step": 1},
    }[wrap]
    path = tmp_path / "w.pt"
    torch.save(obj, path)
    assert same(read_state_dict(CheckpointSpec(path)), dict(weights))


def test_read_safetensors_and_legacy_pickle(tmp_path, weights):
    st = tmp_path / "w.safetensors"
    save_file(dict(weights), str(st))
    assert same(read_state_dict(CheckpointSpec(st)), dict(weights), ordered=False)  # safetensors sorts
    legacy = tmp_path / "w.pth"
    torch.save(weights, legacy, _use_new_zipfile_serialization=False)
    assert same(read_state_dict(CheckpointSpec(legacy)), dict(weights))


@pytest.mark.filterwarnings("ignore::FutureWarning")  # torch.jit.script/save are deprecated, still used
def test_read_torchscript_archive(tmp_path):
    model = tiny().eval()
    path = tmp_path / "scripted.pt"
    torch.jit.save(torch.jit.script(model), str(path))
    assert same(read_state_dict(CheckpointSpec(path)), dict(model.state_dict()))


def test_content_decides_not_suffix(tmp_path, weights):
    path = tmp_path / "weights.bin"
    save_file(dict(weights), str(path))  # safetensors content under a torch suffix
    assert same(read_state_dict(CheckpointSpec(path)), dict(weights), ordered=False)


def test_safetensors_refuses_by_order(tmp_path, weights):
    path = tmp_path / "w.safetensors"
    save_file(dict(weights), str(path))
    with pytest.raises(CheckpointError, match="original order"):
        read_state_dict(CheckpointSpec(path, match_keys="by_order"))


def test_missing_and_empty_file(tmp_path):
    with pytest.raises(CheckpointError, match="file not found"):
        read_state_dict(CheckpointSpec(tmp_path / "nope.pt"))
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    with pytest.raises(CheckpointError) as info:
        read_state_dict(CheckpointSpec(empty))
    assert str(empty) in str(info.value) and "empty" in str(info.value)
    assert isinstance(info.value, ModelLoadError)


@pytest.mark.parametrize("fmt", ["zip", "legacy", "safetensors"])
def test_truncated_file(tmp_path, weights, fmt):
    path = tmp_path / ("w.safetensors" if fmt == "safetensors" else "w.pt")
    if fmt == "safetensors":
        save_file(dict(weights), str(path))
    else:
        torch.save(weights, path, _use_new_zipfile_serialization=(fmt == "zip"))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError) as info:
        read_state_dict(CheckpointSpec(path))
    text = str(info.value)
    assert str(path) in text and "truncated or corrupt" in text and "fix:" in text


@pytest.mark.parametrize(
    "name, content, kind",
    [
        ("photo.pt", b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(200), "JPEG"),
        ("notes.pth", b"these are not weights\n" * 10, "text file"),
        ("image.safetensors", b"\x89PNG\r\n\x1a\n" + bytes(100), "PNG"),
    ],
)
def test_not_a_checkpoint(tmp_path, name, content, kind):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(CheckpointError) as info:
        read_state_dict(CheckpointSpec(path))
    assert str(path) in str(info.value) and kind in str(info.value)


class Evil:
    """Pickles to a call of os.system: a full (unsafe) load would create the marker file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("legacy", [False, True])
def test_malicious_pickle_is_refused(tmp_path, legacy):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"weight": torch.zeros(2), "payload": Evil(marker)}, path,
               _use_new_zipfile_serialization=not legacy)
    with pytest.raises(CheckpointError) as info:
        read_state_dict(CheckpointSpec(path))
    assert not marker.exists()
    text = str(info.value)
    assert str(path) in text and "execute code" in text
    assert "safetensors" in text and "trusted: true" in text


def test_plain_pickle_without_torch_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.ckpt"
    path.write_bytes(pickle.dumps(Evil(marker), protocol=2))
    with pytest.raises(CheckpointError, match="trusted"):
        read_state_dict(CheckpointSpec(path))
    assert not marker.exists()


def test_trusted_allows_full_pickle(tmp_path, weights):
    path = tmp_path / "full.pt"
    torch.save({"model": tiny(), "note": object.__new__(Note)}, path)
    with pytest.raises(CheckpointError, match="trusted"):
        read_state_dict(CheckpointSpec(path))
    assert same(read_state_dict(CheckpointSpec(path, trusted=True)), dict(weights))


class Note:
    pass


@pytest.mark.parametrize(
    "obj, expected",
    [
        ([torch.zeros(2)], "list, not a mapping"),
        ({"weight": torch.zeros(2), "epoch": 3}, "not tensors: 'epoch' (int)"),
        ({}, "empty mapping"),
    ],
)
def test_not_a_mapping_of_tensors(tmp_path, obj, expected):
    path = tmp_path / "odd.pt"
    torch.save(obj, path)
    with pytest.raises(CheckpointError) as info:
        read_state_dict(CheckpointSpec(path))
    assert expected in str(info.value) and str(path) in str(info.value)


def test_zip_that_is_not_torch(tmp_path):
    import zipfile

    path = tmp_path / "archive.pt"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("readme.txt", "hello")
    with pytest.raises(CheckpointError, match="not a PyTorch checkpoint"):
        read_state_dict(CheckpointSpec(path))


# -- fitting ------------------------------------------------------------------------------------
def test_fit_by_name_loads_exactly(weights):
    model = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.BatchNorm1d(8), torch.nn.Linear(8, 5))
    fit_state_dict(model, weights, "by_name", "test")
    assert same(dict(model.state_dict()), dict(weights))


def test_fit_by_name_tolerates_missing_bn_counter(weights):
    model = tiny()
    state = {k: v for k, v in weights.items() if not k.endswith("num_batches_tracked")}
    fit_state_dict(model, state, "by_name", "test")


def test_fit_by_name_names_what_does_not_fit():
    model = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Linear(8, 1000))
    state = {
        "0.weight": torch.zeros(8, 6),
        "1.weight": torch.zeros(10, 8),  # wrong head size
        "extra.a": torch.zeros(1), "extra.b": torch.zeros(1), "extra.c": torch.zeros(1),
    }
    with pytest.raises(CheckpointError) as info:
        fit_state_dict(model, state, "by_name", "checkpoint /x/w.pt for timm:foo")
    text = str(info.value)
    assert text.startswith("checkpoint /x/w.pt for timm:foo")
    assert "missing 2 keys the model needs: 0.bias, 1.bias" in text
    assert "unexpected 3 keys: extra.a, extra.b, extra.c" in text
    assert "1.weight checkpoint [10, 8] vs model [1000, 8]" in text
    assert "architecture name" in text and "by_order" in text


def test_fit_by_name_lists_first_five_with_count():
    model = torch.nn.Sequential(*[torch.nn.Linear(2, 2) for _ in range(6)])
    with pytest.raises(CheckpointError, match=r"missing 12 keys the model needs: .*\(\+7 more\)"):
        fit_state_dict(model, {}, "by_name", "test")


def test_fit_by_order_renames(weights):
    model = tiny()
    foreign = OrderedDict((f"_other_impl.{i}", v.clone()) for i, v in enumerate(weights.values()))
    fit_state_dict(model, foreign, "by_order", "test")
    for mine, theirs in zip(model.state_dict().values(), foreign.values()):
        assert torch.equal(mine, theirs)


def test_fit_by_order_first_mismatch_named(weights):
    model = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.BatchNorm1d(8), torch.nn.Linear(8, 7))
    with pytest.raises(CheckpointError) as info:
        fit_state_dict(model, weights, "by_order", "test")
    text = str(info.value)
    assert "tensor #7" in text and "checkpoint '2.weight' [5, 8] vs model '2.weight' [7, 8]" in text


def test_fit_by_order_count_mismatch(weights):
    model = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.BatchNorm1d(8), torch.nn.Linear(8, 5),
                                torch.nn.Linear(5, 2))
    with pytest.raises(CheckpointError, match=r"the file has 9 tensors but the model has 11"):
        fit_state_dict(model, weights, "by_order", "test")


def test_fit_by_order_without_bn_counters(weights):
    model = tiny()
    state = OrderedDict((k, v) for k, v in weights.items() if not k.endswith("num_batches_tracked"))
    fit_state_dict(model, state, "by_order", "test")


def test_fit_unknown_mode(weights):
    with pytest.raises(CheckpointError, match="by_name"):
        fit_state_dict(tiny(), weights, "by_shape", "test")


# -- fingerprints -------------------------------------------------------------------------------
def test_fingerprint_is_content_addressed(tmp_path, weights):
    a, b = tmp_path / "a.safetensors", tmp_path / "elsewhere" / "b.pt"
    b.parent.mkdir()
    save_file(dict(weights), str(a))
    torch.save({"state_dict": weights}, b)
    fa = fingerprint_state_dict(read_state_dict(CheckpointSpec(a)))
    fb = fingerprint_state_dict(read_state_dict(CheckpointSpec(b)))
    assert fa == fb == fingerprint_state_dict(weights)
    assert fa.startswith("sha256:") and len(fa) == 7 + 64
    # order of keys does not matter; values, dtypes and names do
    assert fingerprint_state_dict(dict(reversed(list(weights.items())))) == fa
    changed = dict(weights)
    changed["0.weight"] = changed["0.weight"].clone()
    changed["0.weight"][0, 0] += 1e-6
    assert fingerprint_state_dict(changed) != fa
    assert fingerprint_state_dict({k: v.double() if v.is_floating_point() else v for k, v in weights.items()}) != fa
    assert fingerprint_state_dict({("x" + k): v for k, v in weights.items()}) != fa


def test_fingerprint_handles_scalars_and_bfloat16():
    state = {"scale": torch.tensor(2.0), "w": torch.ones(3, dtype=torch.bfloat16), "empty": torch.zeros(0)}
    assert fingerprint_state_dict(state) == fingerprint_state_dict(dict(state))
