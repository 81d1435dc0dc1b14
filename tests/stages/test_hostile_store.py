"""Hostile inputs, round 3, at the store and its tools: special files, malformed memos and manifests,
bit rot that keeps a file's size and times, and ``cache`` given a wrong ``--dir`` (issue 25).

Calls that would block for ever if a fix regressed (a FIFO opened for reading) carry a pytest-timeout
mark, which interrupts the blocked ``open()`` with SIGALRM.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import numpy as np
import pytest

from pytest_robustaudit.errors import RobustAuditWarning
from pytest_robustaudit.store import (ActivationStore, FileHasher, RottenEntry, StoreError, cache_main, content_key,
                                      list_entries)
from pytest_robustaudit.store.entries import _manifest_digest

from test_store import META, PARTS, age_files, image_ids, write_entry


def _layer_file(entry, layer="representation") -> Path:
    return entry.path / entry.info(layer).file


def _rot(path: Path, offset: int = -5) -> None:
    """Flip one byte in place and put the size, inode and times back: what bit rot looks like to stat."""
    before = path.stat()
    with open(path, "r+b") as handle:
        handle.seek(offset, os.SEEK_END)
        byte = handle.read(1)
        handle.seek(offset, os.SEEK_END)
        handle.write(bytes([byte[0] ^ 0x10]))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = path.stat()
    assert (after.st_size, after.st_ino, after.st_mtime_ns) == (before.st_size, before.st_ino, before.st_mtime_ns)


def _rewrite_manifest(entry, change) -> None:
    path = entry.path / "manifest.json"
    manifest = json.loads(path.read_text())
    change(manifest)
    manifest["manifest_sha256"] = _manifest_digest(manifest)   # a checksum that matches: only the shape is wrong
    path.write_text(json.dumps(manifest))


# ---- special files in the store: never waited on -------------------------------------------------------


@pytest.mark.timeout(60)
@pytest.mark.parametrize("which", ["layer", "manifest"])
def test_a_fifo_in_an_entry_is_set_aside_not_waited_on(tmp_path, capsys, which):
    store = ActivationStore(tmp_path)
    entry, _ = write_entry(store)
    target = _layer_file(entry) if which == "layer" else entry.path / "manifest.json"
    if which == "manifest":   # `cache list` reads the manifest of every entry
        target.unlink()
        os.mkfifo(target)
        assert cache_main(["--dir", str(tmp_path), "list"]) == 0
        out = capsys.readouterr().out
        assert entry.key[:12] in out and "named pipe (FIFO)" in out, out
    else:
        target.unlink()
        os.mkfifo(target)
    fresh = ActivationStore(tmp_path)
    assert fresh.open(entry.key) is None
    assert len(fresh.problems) == 1 and "named pipe (FIFO)" in fresh.problems[0] and "recomputed" in fresh.problems[0]
    assert not entry.path.exists()


@pytest.mark.timeout(60)
def test_a_fifo_as_the_hash_memo_or_a_hashed_file_is_refused_at_once(tmp_path):
    from pytest_robustaudit.errors import DataError

    os.mkfifo(tmp_path / "filehashes.json")
    hasher = FileHasher(tmp_path / "filehashes.json")        # an unusable memo costs a re-hash, nothing more
    (tmp_path / "a.bin").write_bytes(b"abc")
    assert hasher.sha256(tmp_path / "a.bin") == hasher.sha256(tmp_path / "a.bin")
    os.mkfifo(tmp_path / "pipe.bin")
    with pytest.raises(DataError, match="named pipe"):
        hasher.sha256(tmp_path / "pipe.bin")


# ---- malformed memo and manifests: no traceback ------------------------------------------------------


@pytest.mark.parametrize("files", [
    {"X": 5}, {"X": [1, 2]}, {"X": ["a", "b", "c", "d", "e"]}, {"X": [1, 2, 3, 4, 5]}, {"X": None},
])
def test_a_memo_of_the_wrong_shape_only_costs_a_rehash(tmp_path, files):
    data = tmp_path / "a.bin"
    data.write_bytes(b"some bytes")
    age_files(tmp_path)
    memo = tmp_path / "filehashes.json"
    memo.write_text(json.dumps({"version": 1, "files": {str(data) if k == "X" else k: v for k, v in files.items()}}))
    hasher = FileHasher(memo)
    import hashlib

    assert hasher.sha256(data) == hashlib.sha256(b"some bytes").hexdigest() and hasher.hashed == 1


@pytest.mark.parametrize("change, words", [
    (lambda m: m["layers"][0].update(name=7), "name or sha256 is not a string"),
    (lambda m: m["layers"][0].update(name=["a", "b"]), "name or sha256 is not a string"),
    (lambda m: m["layers"][0].update(shape="10x6"), "no [rows, features] shape"),
    (lambda m: m["layers"][0].update(file="../../x.npy"), "names no plain file"),
    (lambda m: m.update(images=[1, 2, 3]), "image identity that is not a string"),
    (lambda m: m.update(created="yesterday"), "lacks or mangles a field"),
    (lambda m: m.update(layers={"a": 1}), "lacks or mangles a field"),
    (lambda m: m.update(meta=[]), "lacks or mangles a field"),
])
def test_a_manifest_of_the_wrong_shape_is_listed_and_set_aside_without_a_traceback(tmp_path, capsys, change, words):
    store = ActivationStore(tmp_path)
    entry, _ = write_entry(store)
    _rewrite_manifest(entry, change)
    assert cache_main(["--dir", str(tmp_path), "list"]) == 0
    out = capsys.readouterr().out
    assert entry.key[:12] in out and words in out, out
    fresh = ActivationStore(tmp_path)
    assert fresh.open(entry.key) is None and words in fresh.problems[0]


def test_a_manifest_with_nan_or_deep_nesting_is_refused(tmp_path):
    store = ActivationStore(tmp_path)
    entry, _ = write_entry(store)
    path = entry.path / "manifest.json"
    path.write_text(path.read_text().replace('"created": ', '"created": NaN, "x": ', 1))
    assert store.open(entry.key) is None and "mangles" in store.problems[-1]
    entry, _ = write_entry(store)
    path.write_text('{"a": ' + "[" * 100_000 + "]" * 100_000 + "}")
    assert store.open(entry.key) is None and "nests" in store.problems[-1]


# ---- bit rot: size, inode and times kept -------------------------------------------------------------


def test_rot_that_keeps_the_stat_is_found_while_streaming_before_the_last_chunk(tmp_path):
    store = ActivationStore(tmp_path)
    entry, data = write_entry(store, n=10, d=6)
    age_files(entry.path)
    assert store.open(entry.key) is not None       # the hashes are now remembered by stat
    _rot(_layer_file(entry), offset=-200)           # inside the rows of the second chunk of three
    entry = ActivationStore(tmp_path).open(entry.key)
    assert entry is not None, "the stat memo cannot see it: the stream must"
    seen = []
    with pytest.raises(RottenEntry, match="does not match its sha256") as caught:
        for chunk in entry.rows("representation", chunk_rows=4):
            seen.append(chunk)
    assert len(seen) == 2, "the last chunk is never handed out"
    assert caught.value.key == entry.key and "fix:" in str(caught.value)
    np.testing.assert_array_equal(np.concatenate(list(entry.rows("blocks.11", chunk_rows=4))), data["blocks.11"])


def test_cache_verify_hashes_every_entry_again_and_sets_rotten_ones_aside(tmp_path, capsys):
    store = ActivationStore(tmp_path)
    good, _ = write_entry(store)
    bad, _ = write_entry(store, parts={**PARTS, "other": 1})
    age_files(tmp_path)
    assert store.open(good.key) and store.open(bad.key)
    _rot(_layer_file(bad))
    assert cache_main(["verify", "--dir", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert f"{bad.key[:12]}  set aside:" in out and "sha256" in out and "1 whole, 1 set aside" in out
    assert [r.key for r in list_entries(tmp_path)] == [good.key]
    assert cache_main(["--dir", str(tmp_path), "verify"]) == 0
    assert "1 whole, 0 set aside" in capsys.readouterr().out


# ---- the cache command given a wrong folder ----------------------------------------------------------


def test_dir_is_accepted_before_and_after_the_sub_command(tmp_path, capsys):
    write_entry(ActivationStore(tmp_path / "store"))
    assert cache_main(["prune", "--older-than", "14d", "--dir", str(tmp_path / "store")]) == 0
    assert f"removed 0 entries (0 B) not used for 14d from {tmp_path / 'store'}" in capsys.readouterr().out
    assert cache_main(["--dir", str(tmp_path / "nowhere"), "list", "--dir", str(tmp_path / "store")]) == 0
    assert "1 entry" in capsys.readouterr().out


@pytest.mark.timeout(60)
@pytest.mark.parametrize("command", [["list"], ["clear"], ["prune", "--older-than", "1d"], ["verify"]])
def test_a_dir_that_is_no_folder_is_an_error_naming_it(tmp_path, capsys, command):
    (tmp_path / "file").write_text("not a store")
    os.symlink("loop", tmp_path / "loop")
    for target, words in ((tmp_path / "file", "is a regular file, not a store folder"),
                          (tmp_path / "loop", "cannot be used as a store folder")):
        assert cache_main([*command, "--dir", str(target)]) == 2
        out = capsys.readouterr().out
        assert str(target) in out and words in out and "fix:" in out, out
    assert (tmp_path / "file").read_text() == "not a store"
    assert cache_main([*command, "--dir", str(tmp_path / "not-yet")]) == 0   # a store not made yet is empty


# ---- writing: values the storage dtype cannot hold ---------------------------------------------------


def test_a_finite_value_beyond_float32_is_refused_not_stored_as_infinity(tmp_path):
    store = ActivationStore(tmp_path)
    with store.create(content_key(PARTS), PARTS, META, image_ids(2)) as writer:
        with pytest.raises(StoreError, match=r"exceed the float32 range.*largest here 1e\+300") as caught:
            writer.append("representation", np.array([[1.0, 1e300], [0.0, 2.0]]))
    assert "scale the features down" in caught.value.fix
    with store.create(content_key(PARTS), PARTS, META, image_ids(2)) as writer:   # infinity itself is kept as is
        writer.append("representation", np.array([[1.0, np.inf], [0.0, 2.0]]))
        assert np.isinf(np.concatenate(list(writer.commit().rows("representation")))).sum() == 1


# ---- an unusable store location ----------------------------------------------------------------------


def test_an_unusable_store_folder_falls_back_to_a_private_store_with_one_warning(tmp_path):
    from pytest_robustaudit.measure.activations import StoreOptions

    (tmp_path / "file").write_text("")
    options = StoreOptions(tmp_path / "file" / "store")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first, second = options.open(), options.open()
    said = [w for w in caught if issubclass(w.category, RobustAuditWarning)]
    assert first is second and len(said) == 1
    text = str(said[0].message)
    assert str(tmp_path / "file" / "store") in text and "--audit-cache-dir" in text and "pytest-xdist" in text
    assert "cannot be used" in options.describe and first.root.is_dir()
    write_entry(first)
    options.close()
    assert not first.root.exists()
    (tmp_path / "odd").mkdir()
    (tmp_path / "odd" / "entries").write_text("a file where the entries folder should be")
    odd = StoreOptions(tmp_path / "odd")
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        odd.open()
    assert "its entries/ is not a folder" in odd.describe
    odd.close()


# ---- imported arrays (source: activations): counts, range, rot ---------------------------------------


def _arrays_spec(folder: Path, layers: dict[str, str]):
    from pytest_robustaudit.registries import standalone
    from pytest_robustaudit.spec import load_spec

    arrays = ", ".join(f"{layer}: {file}" for layer, file in layers.items())
    text = (f"model: {{source: activations, arrays: {{{arrays}}}}}\nlayers: [{', '.join(layers)}]\n"
            "checks: {kurtosis_mean: {min: 0}}\n")
    return load_spec(folder / "spec.yaml", standalone(), text=text)


def _measure(spec, root: Path):
    from pytest_robustaudit.audit.runner import measure
    from pytest_robustaudit.measure.activations import StoreOptions
    from pytest_robustaudit.registries import standalone

    return measure(spec, standalone(), StoreOptions(root))


def test_imported_layers_with_different_row_counts_name_both_files(tmp_path):
    from pytest_robustaudit.measure.imported import ArrayError

    rng = np.random.default_rng(0)
    np.save(tmp_path / "ten.npy", rng.normal(size=(10, 8)))
    np.save(tmp_path / "seven.npy", rng.normal(size=(7, 8)))
    with pytest.raises(ArrayError) as caught:
        _measure(_arrays_spec(tmp_path, {"representation": "ten.npy", "blocks.-1": "seven.npy"}), tmp_path / "s")
    text = str(caught.value)
    assert "model.arrays.blocks.-1" in text and "seven.npy holds 7 rows but ten.npy (layer 'representation') holds 10" \
        in text and "fix:" in text


def test_an_imported_float64_beyond_float32_is_refused_naming_the_file(tmp_path):
    from pytest_robustaudit.measure.imported import ArrayError

    big = np.random.default_rng(0).normal(size=(6, 4))
    big[2, 1] = 1e300
    np.save(tmp_path / "big.npy", big)
    with pytest.raises(ArrayError, match=r"big\.npy: layer 'representation': 1 activation\(s\) exceed the float32 range"):
        _measure(_arrays_spec(tmp_path, {"representation": "big.npy"}), tmp_path / "s")


def test_a_rotten_imported_entry_is_imported_again_and_said(tmp_path):
    np.save(tmp_path / "h.npy", np.random.default_rng(1).normal(size=(12, 5)).astype(np.float32))
    spec = _arrays_spec(tmp_path, {"representation": "h.npy"})
    cold = _measure(spec, tmp_path / "s")
    key = cold.activations["keys"]["representation"]
    age_files(tmp_path / "s" / "entries")
    assert _measure(spec, tmp_path / "s").activations["extracted"] == []   # remembered by stat now
    _rot(next((tmp_path / "s" / "entries" / key).glob("*.npy")))
    again = _measure(spec, tmp_path / "s")
    assert again.activations["extracted"] == ["representation"]
    assert any(key[:12] in n and "sha256" in n for n in again.provenance["notes"]), again.provenance["notes"]
    np.testing.assert_array_equal(again.layers["representation"].stats.kurtosis,
                                  cold.layers["representation"].stats.kurtosis)
