"""The release history folder (results/history.py): keys, labels, concurrent writers, damaged entries, pruning,
and the ``history`` sub-command."""

from __future__ import annotations

import json
import multiprocessing
import subprocess
import sys

import pytest

from builders import make_result
from pytest_robustaudit.results.history import History, HistoryError, audit_key, default_label, key_for


def test_keys_are_relative_to_the_rootdir_and_survive_a_new_checkpoint(tmp_path):
    a = make_result("lite0", path=str(tmp_path / "audits" / "lite0.yaml"))
    b = make_result("lite0", seed=3, model="timm:other [b.pt]", path=str(tmp_path / "audits" / "lite0.yaml"))
    assert audit_key(a, tmp_path) == audit_key(b, tmp_path) == "audits/lite0.yaml::lite0"
    assert key_for("/elsewhere/x.yaml", "x", tmp_path) == "/elsewhere/x.yaml::x"


def test_the_default_label_is_the_ci_tag_else_the_commit(tmp_path):
    assert default_label(tmp_path, {"GITHUB_REF_TYPE": "tag", "GITHUB_REF_NAME": "v1.4.0"}) == "v1.4.0"
    assert default_label(tmp_path, {"CI_COMMIT_TAG": "v2"}) == "v2"
    assert default_label(tmp_path, {"GITHUB_SHA": "0123456789abcdef0123"}) == "0123456789ab"
    assert default_label(tmp_path, {}) == ""     # not a git checkout, no CI variables: known by its time
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    subprocess.run(["git", "-C", str(tmp_path), "-c", "user.email=a@b", "-c", "user.name=a", "commit", "-q",
                    "--allow-empty", "-m", "x"], check=True)
    commit = subprocess.run(["git", "-C", str(tmp_path), "rev-parse", "HEAD"], capture_output=True, text=True).stdout
    assert default_label(tmp_path, {}) == commit.strip()[:12]
    subprocess.run(["git", "-C", str(tmp_path), "tag", "v9"], check=True)
    assert default_label(tmp_path, {}) == "v9"


def _write_many(folder: str, worker: int, count: int) -> None:
    history = History(folder)
    for i in range(count):
        history.write([make_result("a", seed=worker), make_result("b")], {"worker": worker}, None,
                      label=f"w{worker}-{i}")


def test_concurrent_writers_lose_and_corrupt_nothing(tmp_path):
    """Eight processes write three runs each into one folder at once (CI jobs sharing a disk)."""
    folder = tmp_path / "hist"
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_write_many, args=(str(folder), w, 3)) for w in range(8)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    history = History(folder)
    entries = history.entries()
    assert not history.problems
    assert sorted(e.label for e in entries) == sorted(f"w{w}-{i}" for w in range(8) for i in range(3))
    assert len({e.id for e in entries}) == 24
    assert not [p for p in folder.rglob("*") if p.name.startswith(".")]      # no temporary file left behind
    for entry in entries:                                                   # every entry names a whole record
        run, result = history.read_audit(entry, "/audits/a.yaml::a")
        assert run["label"] == entry.label and run["history_entry"] == entry.id and result.name == "a"


PASSING = (("kurtosis_mean", {"min": 1.0}, {}),)


def test_last_is_the_last_release_not_a_partial_run_a_failed_candidate_or_this_label(tmp_path):
    history = History(tmp_path)
    first = history.write([make_result("a", checks=PASSING)], {}, None, label="v1")
    history.write([make_result("a", seed=2, checks=PASSING)], {}, None, label="v2", partial="1 check(s) deselected")
    failed = history.write([make_result("a", seed=3)], {}, None, label="v3")      # outlier_count fails: a candidate
    key = "/audits/a.yaml::a"
    assert not failed.audit(key).passed and first.audit(key).passed
    assert history.find(key, "last").id == first.id
    assert history.find(key, "v2").partial == "1 check(s) deselected"
    assert history.find(key, "v3").id == failed.id                               # a label finds what it names
    assert history.find(key, "last", exclude=[first.id]) is None
    assert history.find("/audits/b.yaml::b", "last") is None
    retried = history.write([make_result("a", checks=PASSING)], {}, None, label="v4")
    assert history.find(key, "last", label="v4").id == first.id                  # a retried job: never itself
    assert history.find(key, "last", label="v5").id == retried.id
    (point,) = [c for c in history.entry(first.id).audit(key).checks if c.metric == "kurtosis_mean"]
    assert point.status == "pass" and point.value == make_result("a", checks=PASSING).checks[0].value


def test_a_damaged_entry_is_reported_and_skipped(tmp_path):
    history = History(tmp_path)
    good = history.write([make_result("a")], {}, None, label="v1")
    bad = history.write([make_result("a")], {}, None, label="v2")
    (tmp_path / "index" / f"{bad.id}.json").write_text('{"format": "pytest-robustaudit/history-entry", "version": 1}')
    (tmp_path / "index" / "notes.json").write_text("{}")
    (tmp_path / "index" / f".{good.id}.json.123.tmp").write_text("half")   # a write under way: not an entry
    history = History(tmp_path)            # what another process (the next run) reads
    assert [e.id for e in history.entries()] == [good.id]
    problems = dict(history.problems)
    assert "damaged" in problems[tmp_path / "index" / f"{bad.id}.json"]
    assert "not a history entry name" in problems[tmp_path / "index" / "notes.json"]
    good.record_path.write_text("{not json")
    with pytest.raises(HistoryError, match=f"history prune --id {good.id}"):
        history.read_audit(good, "/audits/a.yaml::a")
    newer = tmp_path / "index" / f"{good.id}.json"
    data = json.loads(newer.read_text())
    newer.write_text(json.dumps({**data, "version": 99}))
    history = History(tmp_path)
    assert history.entries() == [] and "newer pytest-robustaudit" in " ".join(w for _, w in history.problems)


def test_a_file_is_not_a_history_folder(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(HistoryError, match="not a folder"):
        History(tmp_path / "f").write([make_result("a")], {}, None, label="v1")


def test_prune_keeps_the_newest_runs_of_every_audit(tmp_path):
    history = History(tmp_path)
    ids = [history.write([make_result("a")], {}, None, label=f"a{i}").id for i in range(4)]
    only_b = history.write([make_result("b")], {}, None, label="b0").id
    removed = history.prune(keep=2)
    assert [e.id for e in removed] == ids[:2]
    assert [e.id for e in history.entries()] == ids[2:] + [only_b]
    assert not (tmp_path / "runs" / f"{ids[0]}.json").exists()
    assert [e.id for e in history.prune(ids=[ids[2]])] == [ids[2]]
    with pytest.raises(HistoryError, match="no history entry nope"):
        history.prune(ids=["nope"])


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "pytest_robustaudit", "history", *args], capture_output=True, text=True)


def test_the_history_command_lists_and_prunes(tmp_path):
    history = History(tmp_path / "h")
    for i in range(3):
        history.write([make_result("a")], {}, None, label=f"v{i}", partial="interrupted" if i == 1 else "")
    listed = _cli("list", "--dir", str(tmp_path / "h"))
    assert listed.returncode == 0 and "3 kept runs" in listed.stdout and "[partial: interrupted]" in listed.stdout
    assert "/audits/a.yaml::a" in listed.stdout and "1 fail, 1 pass" in listed.stdout
    pruned = _cli("--dir", str(tmp_path / "h"), "prune", "--keep", "1")
    assert pruned.returncode == 0 and "removed 2 kept runs" in pruned.stdout
    assert [e.label for e in history.entries()] == ["v2"]
    for args, said in ((("list",), "give --dir DIR"), (("prune", "--dir", str(tmp_path / "h")), "say what to remove"),
                       (("list", "--dir", str(tmp_path / "nowhere")), "no history folder"),
                       (("prune", "--keep", "0", "--dir", str(tmp_path / "h")), "at least 1"),
                       (("prune", "--older-than", "soon", "--dir", str(tmp_path / "h")), "cannot read the age")):
        done = _cli(*args)
        assert done.returncode == 2 and said in done.stderr + done.stdout, (args, done.stderr)
        assert "Traceback" not in done.stderr


def test_a_folder_that_cannot_be_created_says_so(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(HistoryError, match="cannot create the history folder .*point --audit-history"):
        History(tmp_path / "f" / "sub").write([make_result("a")], {}, None, label="v1")


def test_an_entry_never_names_files_outside_its_own(tmp_path):
    """An index entry whose id is not its file's own (copied, or edited to ``../../victim``) is damaged:
    prune never deletes through it, read_audit never reads through it."""
    history = History(tmp_path / "h")
    good = history.write([make_result("a")], {}, None, label="v1")
    victim = tmp_path / "victim.json"
    victim.write_text("{}")
    forged = tmp_path / "h" / "index" / "20260101T000000.000000Z-aaaaaaaa.json"
    forged.write_text(json.dumps({**json.loads((tmp_path / "h" / "index" / f"{good.id}.json").read_text()),
                                  "id": "../../victim"}))
    history = History(tmp_path / "h")
    assert [e.id for e in history.entries()] == [good.id]
    assert "names another entry" in dict(history.problems)[forged]
    history.prune(older_than=0.0, now=4e9)
    assert victim.exists()


@pytest.mark.parametrize("edit, said", [
    (lambda d: d["audits"][0]["checks"][0].update(value=10 ** 400), None),       # read as no number
    (lambda d: d.update(created="yesterday"), "damaged"),
    (lambda d: d.update(partial=None), None),
    (lambda d: d.update(audits=5), "damaged"),
])
def test_hand_edited_entries_read_or_are_reported_never_raise(tmp_path, edit, said):
    history = History(tmp_path)
    entry = history.write([make_result("a")], {}, None, label="v1")
    path = tmp_path / "index" / f"{entry.id}.json"
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))
    history = History(tmp_path)
    found = history.entries()
    if said is None:
        assert len(found) == 1 and not found[0].partial and not history.problems
    else:
        assert found == [] and said in dict(history.problems)[path]
    done = _cli("list", "--dir", str(tmp_path))
    assert done.returncode == 0 and "Traceback" not in done.stderr
    pruned = _cli("prune", "--older-than", "1d", "--dir", str(tmp_path))
    assert pruned.returncode == 0 and "Traceback" not in pruned.stderr


def test_keep_counts_complete_runs_and_keeps_a_newer_partial_one(tmp_path):
    history = History(tmp_path)
    v13 = history.write([make_result("a", checks=PASSING)], {}, None, label="v1.3")
    v14 = history.write([make_result("a", checks=PASSING)], {}, None, label="v1.4")
    v15 = history.write([make_result("a", checks=PASSING)], {}, None, label="v1.5", partial="interrupted")
    removed = history.prune(keep=1)
    assert [e.id for e in removed] == [v13.id]
    assert [e.id for e in history.entries()] == [v14.id, v15.id]
    assert history.find("/audits/a.yaml::a", "last").id == v14.id


def test_the_label_is_found_only_when_a_run_looks_into_the_history(tmp_path):
    """Configuring a run (every pytest-xdist worker, every run with the ini key set) starts no git."""
    from pytest_robustaudit.results.history import ReleaseHistory

    asked = []
    history = ReleaseHistory(tmp_path, tmp_path, lambda: asked.append(1) or "v7")
    assert asked == []
    assert history.reference_audit(tmp_path / "a.yaml", "a", "last") is None and asked == [1]
    assert history.label == "v7" and asked == [1]


def test_a_run_reads_the_folder_once_and_sees_its_own_entry(tmp_path, monkeypatch):
    history = History(tmp_path)
    first = History(tmp_path).write([make_result("a")], {}, None, label="v1")
    assert [e.id for e in history.entries()] == [first.id]
    reads = []
    original = History.entry
    monkeypatch.setattr(History, "entry", lambda self, i: reads.append(i) or original(self, i))
    mine = history.write([make_result("a")], {}, None, label="v2")
    assert [e.id for e in history.entries()] == [first.id, mine.id] and reads == [mine.id]
