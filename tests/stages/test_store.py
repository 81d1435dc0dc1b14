"""The activation store's pure core: keys, entries, locks, list/clear/prune (no model, no pytest plugin)."""

from __future__ import annotations

import json
import re
import os
import signal
import subprocess
import sys
import textwrap
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

import pytest_robustaudit.store as store_pkg
from pytest_robustaudit.errors import AuditError
from pytest_robustaudit.store import (
    STORE_FORMAT_VERSION, ActivationStore, FileHasher, StoreError, cache_main, content_key, format_table,
    hash_files, list_entries, parse_age, prune,
)
from pytest_robustaudit.store.entries import _manifest_digest

SRC = Path(store_pkg.__file__).resolve().parents[2]
PARTS = {"weights": "a" * 64, "preprocess": {"size": 224, "mean": [0.5, 0.5, 0.5]}, "images": "b" * 64,
         "layers": ["blocks.11", "representation"], "precision": {"device": "cpu", "autocast": None}}
META = {"model": "timm/vit_tiny", "data": "photos (12 images)", "layers": ["blocks.11", "representation"]}


def image_ids(n: int) -> list[str]:
    return [f"{i:064x}" for i in range(n)]


def rows_for(n: int, d: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32) * 3


def write_entry(store: ActivationStore, parts=PARTS, n: int = 10, d: int = 6, dtype: str = "float32", batch: int = 4,
                meta=META):
    data = {"blocks.11": rows_for(n, d), "representation": rows_for(n, d + 2, seed=1)}
    with store.create(content_key(parts), parts, meta, image_ids(n), dtype=dtype) as writer:
        for start in range(0, n, batch):
            for layer, array in data.items():
                writer.append(layer, array[start:start + batch])
        entry = writer.commit()
    return entry, data


def age_files(folder: Path, seconds: float = 100.0) -> None:
    """Make files look older than the hash memo's racy window, so the memo records them."""
    old = time.time() - seconds
    for path in [folder, *folder.rglob("*")]:
        os.utime(path, (old, old))


# -- round trip -----------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_round_trip(tmp_path, dtype):
    store = ActivationStore(tmp_path / "store")
    created, data = write_entry(store, dtype=dtype)
    entry = ActivationStore(tmp_path / "store").open(content_key(PARTS))
    assert entry is not None and entry.key == created.key == content_key(PARTS)
    assert entry.images == tuple(image_ids(10)) and entry.meta == META and entry.parts == json.loads(json.dumps(PARTS))
    assert entry.layers == ("blocks.11", "representation") and entry.dtype == dtype
    tolerance = 0 if dtype == "float32" else 2e-3
    for layer, expected in data.items():
        assert entry.shape(layer) == expected.shape
        whole = np.concatenate(list(entry.rows(layer, chunk_rows=3, dtype=np.float64)))
        assert whole.dtype == np.float64
        np.testing.assert_allclose(whole, expected, rtol=tolerance, atol=tolerance)
        mapped = entry.array(layer)
        assert isinstance(mapped, np.memmap) and mapped.dtype == np.dtype(dtype)
        # a plain numpy user can read the file without this plugin
        np.testing.assert_array_equal(np.load(entry.path / entry.info(layer).file), mapped)
    assert entry.size_bytes == sum(p.stat().st_size for p in entry.path.iterdir())
    if dtype == "float16":
        as_float32 = write_entry(ActivationStore(tmp_path / "s32"), n=1000)[0]
        as_float16 = write_entry(ActivationStore(tmp_path / "s16"), n=1000, dtype="float16")[0]
        sizes = [sum(p.stat().st_size for p in e.path.glob("*.npy")) for e in (as_float32, as_float16)]
        assert sizes[1] < 0.51 * sizes[0]


def test_fewer_rows_than_images_are_committed_with_the_final_images(tmp_path):
    store = ActivationStore(tmp_path)
    key = content_key(PARTS)
    array = rows_for(7, 4)
    with store.create(key, PARTS, META, image_ids(10)) as writer:
        writer.append("representation", array[:5])
        writer.append("representation", array[5:])
        with pytest.raises(ValueError, match="7 rows for 10 images"):
            writer.commit()
        entry = writer.commit(images=image_ids(7))
    assert store.open(key).shape("representation") == (7, 4)
    np.testing.assert_array_equal(np.load(entry.path / entry.info("representation").file), array)
    with store.create(content_key({**PARTS, "x": 1}), {**PARTS, "x": 1}, META, image_ids(2)) as writer:
        with pytest.raises(ValueError, match="more rows"):
            writer.append("representation", array[:3])


def test_float16_overflow_is_refused_with_the_way_out(tmp_path):
    store = ActivationStore(tmp_path)
    with store.create(content_key(PARTS), PARTS, META, image_ids(2), dtype="float16") as writer:
        with pytest.raises(StoreError, match="store_dtype: float32"):
            writer.append("representation", np.array([[1.0, 1e6], [0.0, 2.0]]))
    assert store.open(content_key(PARTS)) is None
    assert not list((tmp_path / "incomplete").iterdir())


def test_an_exception_while_writing_aborts(tmp_path):
    store = ActivationStore(tmp_path)
    with pytest.raises(RuntimeError):
        with store.create(content_key(PARTS), PARTS, META, image_ids(3)) as writer:
            writer.append("representation", rows_for(2, 4))
            raise RuntimeError("model crashed")
    assert store.open(content_key(PARTS)) is None and not list((tmp_path / "incomplete").iterdir())


# -- keys -----------------------------------------------------------------------------------------


def test_keys_hit_on_same_content_and_miss_on_any_changed_part(tmp_path):
    key = content_key(PARTS)
    reordered = dict(reversed(list(PARTS.items())))
    assert content_key(reordered) == key
    assert content_key({**PARTS, "layers": tuple(PARTS["layers"])}) == key  # tuples are lists in JSON
    changed = [
        {**PARTS, "images": "c" * 64},
        {**PARTS, "weights": "d" * 64},
        {**PARTS, "layers": ["blocks.10", "representation"]},
        {**PARTS, "preprocess": {**PARTS["preprocess"], "size": 256}},
        {**PARTS, "precision": {"device": "cuda", "autocast": "bfloat16"}},
    ]
    assert len({key, *(content_key(parts) for parts in changed)}) == 1 + len(changed)
    with pytest.raises(TypeError):
        content_key({"path": Path("x")})

    store = ActivationStore(tmp_path)
    write_entry(store)
    assert store.open(key) is not None
    assert all(store.open(content_key(parts)) is None for parts in changed)
    assert store.problems == []
    with pytest.raises(ValueError, match="content_key"):
        store.create(key, changed[0], META, image_ids(1))


def test_file_hasher_rehashes_a_changed_file_only(tmp_path):
    files = [tmp_path / "images" / f"{i}.jpg" for i in range(3)]
    files[0].parent.mkdir()
    for i, path in enumerate(files):
        path.write_bytes(b"pixels %d" % i)
    age_files(files[0].parent)
    memo = tmp_path / "store" / "filehashes.json"
    first = hash_files(files, FileHasher(memo))
    hasher = FileHasher(memo)
    assert hash_files(files, hasher) == first and (hasher.hashed, hasher.hits) == (0, 3)

    files[1].write_bytes(b"PIXELS 1")  # same size, new bytes, new mtime
    hasher = FileHasher(memo)
    second = hash_files(files, hasher)
    assert (hasher.hashed, hasher.hits) == (1, 2)
    assert second[0] == first[0] and second[2] == first[2] and second[1] != first[1]

    # a renamed folder gives the same content hashes (the memo misses, the bytes are the same)
    moved = tmp_path / "renamed"
    files[0].parent.rename(moved)
    assert hash_files([moved / p.name for p in files], FileHasher(memo)) == second

    memo.write_text("{not json")
    hasher = FileHasher(memo)
    assert hash_files([moved / p.name for p in files], hasher) == second and hasher.hashed == 3


def test_a_recently_modified_file_is_not_trusted_from_the_memo(tmp_path):
    path = tmp_path / "img.jpg"
    path.write_bytes(b"aaaa")
    memo = tmp_path / "memo.json"
    FileHasher(memo).sha256(path)
    hasher = FileHasher(memo)
    hasher.sha256(path)
    assert hasher.hashed == 1  # written within the racy window: hashed again


def test_memo_hits_do_not_read_the_files(tmp_path):
    """A warm run's 50,000 image hashes must not dominate it: an unchanged file is answered from its
    stat signature, without opening it (counted, not timed: tests assert behaviour, not wall-clock;
    the cost is in docs/performance.md)."""
    folder = tmp_path / "many"
    folder.mkdir()
    paths = [folder / f"{i:05d}.jpg" for i in range(2000)]
    for i, path in enumerate(paths):
        path.write_bytes(b"%d" % i)
    age_files(folder)
    memo = tmp_path / "memo.json"
    hash_files(paths, FileHasher(memo))
    hasher = FileHasher(memo)
    import builtins
    opened = []
    real_open = builtins.open

    def counting_open(file, *args, **kwargs):
        if str(file).endswith(".jpg"):
            opened.append(file)
        return real_open(file, *args, **kwargs)

    builtins.open = counting_open
    try:
        hash_files(paths, hasher)
    finally:
        builtins.open = real_open
    assert hasher.hits == 2000 and hasher.hashed == 0 and opened == []


def test_an_unreadable_image_is_a_data_error_naming_it(tmp_path):
    with pytest.raises(AuditError, match="missing.jpg"):
        FileHasher(None).sha256(tmp_path / "missing.jpg")


# -- corruption and versions ------------------------------------------------------------------------


def _truncate(entry):
    path = entry.path / entry.info("representation").file
    os.truncate(path, path.stat().st_size - 8)


def _flip_byte(entry):
    path = entry.path / entry.info("representation").file
    with open(path, "r+b") as handle:
        handle.seek(-5, os.SEEK_END)
        byte = handle.read(1)
        handle.seek(-5, os.SEEK_END)
        handle.write(bytes([byte[0] ^ 0x01]))


def _flip_manifest(entry):
    path = entry.path / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["meta"]["model"] = "something else"
    path.write_text(json.dumps(manifest))


def _cut_manifest(entry):
    path = entry.path / "manifest.json"
    path.write_text(path.read_text()[:100])


def _delete_layer(entry):
    (entry.path / entry.info("blocks.11").file).unlink()


@pytest.mark.parametrize("damage, reason", [
    (_truncate, "truncated"), (_flip_byte, "sha256"), (_flip_manifest, "checksum"),
    (_cut_manifest, "not valid JSON"), (_delete_layer, "missing"),
])
def test_a_damaged_entry_is_reported_in_one_line_and_recomputed(tmp_path, damage, reason):
    store = ActivationStore(tmp_path)
    entry, data = write_entry(store)
    age_files(entry.path)
    assert store.open(entry.key) is not None  # now memoised by stat: the damage must still be seen
    damage(entry)

    fresh = ActivationStore(tmp_path)
    assert fresh.open(entry.key) is None
    assert len(fresh.problems) == 1 and "\n" not in fresh.problems[0]
    assert reason in fresh.problems[0] and entry.key[:12] in fresh.problems[0] and "recomputed" in fresh.problems[0]
    assert not entry.path.exists()

    def build(writer):
        for layer, array in data.items():
            writer.append(layer, array)

    rebuilt, created = fresh.get_or_create(entry.key, PARTS, META, image_ids(10), build)
    assert created and np.array_equal(rebuilt.array("representation"), data["representation"])
    assert ActivationStore(tmp_path).open(entry.key) is not None


def test_an_entry_of_another_format_version_is_ignored_not_misread(tmp_path):
    store = ActivationStore(tmp_path)
    entry, _ = write_entry(store)
    path = entry.path / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["format_version"] = STORE_FORMAT_VERSION + 1
    manifest["manifest_sha256"] = _manifest_digest(manifest)
    path.write_text(json.dumps(manifest))
    assert store.open(entry.key) is None
    assert f"store format {STORE_FORMAT_VERSION + 1}" in store.problems[0]
    assert list_entries(tmp_path) == []  # set aside


# -- processes -------------------------------------------------------------------------------------

CHILD = textwrap.dedent("""\
    import json, sys, time
    from pathlib import Path
    import numpy as np
    from pytest_robustaudit.store import ActivationStore, content_key

    root, work, mode = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
    parts = {"weights": "w", "images": "i", "layers": ["representation"]}
    key = content_key(parts)
    images = [f"{i:064x}" for i in range(40)]
    rows = np.arange(40 * 8, dtype=np.float32).reshape(40, 8)

    def build(writer):
        with open(work / "builds.txt", "a") as handle:
            handle.write("build\\n")
        for start in range(0, 40, 4):
            writer.append("representation", rows[start:start + 4])
            (work / "started").touch()
            time.sleep(float(sys.argv[4]))

    if mode == "wait":
        while not (work / "go").exists():
            time.sleep(0.01)
    waits = []
    entry, created = ActivationStore(root).get_or_create(key, parts, {"model": "m"}, images, build, on_wait=waits.append)
    assert np.array_equal(entry.array("representation"), rows)
    print(json.dumps({"created": created, "waited": len(waits), "key": entry.key}))
""")


def run_child(tmp_path, root, mode, delay):
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    return subprocess.Popen([sys.executable, str(script), str(root), str(tmp_path), mode, str(delay)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_kill_9_mid_write_leaves_no_trusted_entry_and_a_rerun_completes(tmp_path):
    root = tmp_path / "store"
    child = run_child(tmp_path, root, "now", delay=5.0)
    deadline = time.monotonic() + 30
    while not (tmp_path / "started").exists():
        assert child.poll() is None, child.communicate()
        assert time.monotonic() < deadline, "child never started writing"
        time.sleep(0.02)
    os.kill(child.pid, signal.SIGKILL)
    child.communicate()
    assert child.returncode == -signal.SIGKILL

    store = ActivationStore(root)
    key = content_key({"weights": "w", "images": "i", "layers": ["representation"]})
    assert store.open(key) is None and store.problems == []
    leftovers = list((root / "incomplete").iterdir())
    assert len(leftovers) == 1 and leftovers[0].name.startswith(key)

    rerun = run_child(tmp_path, root, "now", delay=0)  # the dead child's lock went with it
    out, err = rerun.communicate(timeout=60)
    assert rerun.returncode == 0, err
    assert json.loads(out)["created"] is True
    assert store.open(key) is not None
    assert (tmp_path / "builds.txt").read_text().count("build") == 2

    assert store.clean_incomplete() == 0  # a fresh leftover may belong to a live writer elsewhere
    age_files(leftovers[0], seconds=2 * 86400)
    assert store.clean_incomplete() == 1 and not leftovers[0].exists()


def test_two_processes_asking_for_one_entry_build_it_once(tmp_path):
    root = tmp_path / "store"
    children = [run_child(tmp_path, root, "wait", delay=0.1) for _ in range(2)]
    time.sleep(0.3)
    (tmp_path / "go").touch()
    results = []
    for child in children:
        out, err = child.communicate(timeout=60)
        assert child.returncode == 0, err
        results.append(json.loads(out))
    assert (tmp_path / "builds.txt").read_text().count("build") == 1
    assert sorted(r["created"] for r in results) == [False, True]
    assert len({r["key"] for r in results}) == 1
    waiter = next(r for r in results if not r["created"])
    assert waiter["waited"] >= 1


def test_a_duplicate_commit_is_discarded_and_theirs_used(tmp_path):
    store = ActivationStore(tmp_path)
    key = content_key(PARTS)
    first = store.create(key, PARTS, META, image_ids(2))
    second = store.create(key, PARTS, {"model": "other"}, image_ids(2))
    first.append("representation", rows_for(2, 3))
    second.append("representation", rows_for(2, 3, seed=5))
    ours = first.commit()
    theirs = second.commit()
    assert second.raced and not first.raced
    assert theirs.meta == META and np.array_equal(theirs.array("representation"), ours.array("representation"))
    assert not list((tmp_path / "incomplete").iterdir())


def test_a_lock_held_too_long_is_a_store_error_naming_the_lock(tmp_path):
    import filelock

    store = ActivationStore(tmp_path, lock_timeout=0.3)
    key = content_key(PARTS)
    (tmp_path / "locks").mkdir()
    holder = filelock.FileLock(str(tmp_path / "locks" / f"{key}.lock"))
    holder.acquire()
    messages = []
    try:
        with pytest.raises(StoreError, match=r"locks.*\.lock.*--audit-cache off"):
            store.get_or_create(key, PARTS, META, image_ids(1), lambda w: None, on_wait=messages.append)
    finally:
        holder.release()
    assert messages and "waiting" in messages[0]


def test_an_unwritable_store_folder_names_it_and_the_way_out(tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    store = ActivationStore(blocker / "store")
    with pytest.raises(StoreError) as info:
        store.create(content_key(PARTS), PARTS, META, image_ids(1))
    assert str(blocker) in str(info.value) and "--audit-cache-dir" in str(info.value)
    assert "--audit-cache off" in str(info.value)


# -- memory ----------------------------------------------------------------------------------------


def test_reading_in_chunks_keeps_memory_flat_in_the_number_of_images(tmp_path):
    store = ActivationStore(tmp_path)
    n, d, chunk = 20000, 64, 500
    parts = {**PARTS, "n": n}
    with store.create(content_key(parts), parts, META, image_ids(n)) as writer:
        for start in range(0, n, 2000):
            writer.append("representation", np.full((2000, d), start, dtype=np.float32))
        writer.commit()
    entry = store.open(content_key(parts))
    total = 0.0
    tracemalloc.start()
    try:
        for rows in entry.rows("representation", chunk_rows=chunk, dtype=np.float64):
            assert rows.shape[0] <= chunk and (rows.base is None or rows.base.nbytes <= chunk * d * 8)
            total += float(rows[:, 0].sum())
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert total == sum(start * 2000 for start in range(0, n, 2000))
    whole = n * d * 8
    assert peak < 4 * chunk * d * 8 < whole / 5, f"peak {peak} bytes while reading a {whole}-byte layer"


# -- list / clear / prune ----------------------------------------------------------------------------


def test_list_prune_and_clear(tmp_path, capsys):
    root = tmp_path / "store"
    store = ActivationStore(root)
    entries = [write_entry(store, parts={**PARTS, "i": i}, meta={**META, "model": f"model-{i}"})[0] for i in range(3)]
    records = list_entries(root)
    assert [r.model for r in records] == ["model-0", "model-1", "model-2"]
    assert records[0].layers == ("blocks.11", "representation") and records[0].images == 10
    assert records[0].data == "photos (12 images)" and records[0].size_bytes == entries[0].size_bytes
    assert 0 <= records[0].age_s < 60 and records[0].idle_s < 60
    table = format_table(records)
    assert "model-1" in table and entries[1].key[:12] in table and "3 entries" in table

    old = time.time() - 3 * 86400
    os.utime(entries[0].path, (old, old))  # not used for three days
    removed = prune(root, parse_age("2d"))
    assert [r.key for r in removed] == [entries[0].key] and removed[0].idle_s > 2 * 86400
    assert [r.model for r in list_entries(root)] == ["model-1", "model-2"]
    assert store.open(entries[1].key) is not None

    assert cache_main(["--dir", str(root), "list"]) == 0
    assert "model-2" in capsys.readouterr().out
    assert cache_main(["--dir", str(root), "prune", "--older-than", "1h"]) == 0
    assert "removed 0 entries" in capsys.readouterr().out
    assert cache_main(["--dir", str(root), "prune", "--older-than", "soon"]) == 2
    assert "7d" in capsys.readouterr().out
    assert cache_main(["--dir", str(root), "clear"]) == 0
    assert "removed 2 entries" in capsys.readouterr().out
    assert list_entries(root) == [] and root.is_dir() and format_table([]) == "activation store is empty"


@pytest.mark.parametrize("text, seconds", [("7d", 7 * 86400), ("12h", 43200), ("30m", 1800), ("90s", 90), ("1.5h", 5400)])
def test_parse_age(text, seconds):
    assert parse_age(text) == seconds


@pytest.mark.parametrize("text", ["", "7", "d7", "7 days", "-1d"])
def test_parse_age_rejects_with_an_example(text):
    with pytest.raises(AuditError, match="e.g. 7d"):
        parse_age(text)


def test_extraction_parts_name_every_ingredient_and_each_one_changes_the_key():
    from pytest_robustaudit.store import extraction_parts

    base = dict(weights="w" * 64, preprocess={"size": 224, "interpolation": "bicubic"}, canary="c" * 64,
                images=image_ids(3), layers=["representation"], precision={"device": "cpu", "autocast": None,
                                                                            "tf32": False},
                versions={"torch": "2.4.0", "timm": "1.0.9"})
    key = content_key(extraction_parts(**base))
    assert content_key(extraction_parts(**{**base, "images": iter(image_ids(3))})) == key
    variants = [
        {"weights": "x" * 64}, {"preprocess": {"size": 256, "interpolation": "bicubic"}}, {"canary": "d" * 64},
        {"images": image_ids(3)[::-1]}, {"images": [*image_ids(2), "f" * 64]}, {"layers": ["blocks.11"]},
        {"precision": {"device": "cuda", "autocast": "float16", "tf32": False}}, {"store_dtype": "float16"},
        {"extraction_format": 2}, {"versions": {"torch": "2.5.0", "timm": "1.0.9"}},
    ]
    keys = {content_key(extraction_parts(**{**base, **change})) for change in variants}
    assert len(keys) == len(variants) and key not in keys
    assert "torch" in extraction_parts(**{**base, "versions": None})["versions"]


def test_the_python_example_of_docs_store_md_runs(tmp_path, monkeypatch, capsys):
    doc = SRC.parent / "docs" / "store.md"
    blocks = re.findall(r"```python\n(.*?)```", doc.read_text(encoding="utf-8"), re.S)
    assert blocks
    monkeypatch.chdir(tmp_path)
    for code in blocks:
        exec(compile(code, str(doc), "exec"), {"__name__": "docs_store"})
    assert list_entries(tmp_path / "example-store")[0].model == "demo"


def test_refresh_replaces_entries_written_before_the_run_started_once(tmp_path):
    store = ActivationStore(tmp_path)
    old, _ = write_entry(store)
    builds = []

    def build(writer):
        builds.append(1)
        writer.append("representation", rows_for(10, 4, seed=len(builds)))

    run_started = old.created + 1e-3
    fresh, created = store.get_or_create(old.key, PARTS, META, image_ids(10), build, refresh_before=run_started)
    assert created and fresh.layers == ("representation",) and fresh.created >= run_started
    again, created = store.get_or_create(old.key, PARTS, META, image_ids(10), build, refresh_before=run_started)
    assert not created and builds == [1] and again.created == fresh.created


def test_a_filesystem_without_locks_still_builds_and_says_so(tmp_path, monkeypatch):
    import filelock

    def refuse(self, *args, **kwargs):
        raise NotImplementedError("FileSystem does not appear to support flock")

    monkeypatch.setattr(filelock.FileLock, "acquire", refuse)
    store = ActivationStore(tmp_path)
    entry, created = store.get_or_create(content_key(PARTS), PARTS, META, image_ids(2),
                                         lambda w: w.append("representation", rows_for(2, 3)))
    assert created and store.open(entry.key) is not None
    assert len(store.problems) == 1 and "cannot lock" in store.problems[0] and "flock" in store.problems[0]
