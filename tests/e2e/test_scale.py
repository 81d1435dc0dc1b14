"""Scale-out: pytest-xdist keeps a spec on one worker, workers take their own device, shards merge."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from support import spec_text

CHECKS = """\
kurtosis_mean: {min: 1}
outlier_count: {max: 2, factor: 10}  # beta's three planted outliers fail it
rotated_kurtosis_mean: {min: 1, max: 10}
"""

#: a conftest that counts model loads (the provenance hook runs once per audited model, after loading)
COUNTING_CONFTEST = """
import os

def pytest_robustaudit_provenance(spec, model):
    with open(os.path.join(os.path.dirname(__file__), "loads.txt"), "a") as handle:
        handle.write(spec.name + "\\n")
"""


def _specs(pytester, tiny_checkpoints, names=("alpha", "beta")):
    pytester.mkdir("audits")
    for i, name in enumerate(names):
        checkpoint = tiny_checkpoints["planted" if i % 2 else "plain"]
        (pytester.path / "audits" / f"{name}.yaml").write_text(spec_text(checkpoint, CHECKS))
    pytester.makeconftest(COUNTING_CONFTEST)


def _loads(pytester) -> list[str]:
    path = pytester.path / "loads.txt"
    return sorted(path.read_text().split()) if path.exists() else []


def _verdicts(path) -> dict:
    record = json.loads(path.read_text())
    return {(a["name"], c["layer"], c["metric"], json.dumps(c["params"], sort_keys=True)): (c["value"], c["passed"])
            for a in record["audits"] for c in a["checks"]}


def test_xdist_runs_each_spec_once_and_writes_the_same_record(pytester, tiny_checkpoints):
    """Plain ``-n 2``: the plugin schedules a spec's items on one worker, so two specs are extracted
    twice in all (not four times), and the record equals a single process's."""
    pytest.importorskip("xdist")
    _specs(pytester, tiny_checkpoints)
    single = pytester.runpytest_subprocess("--audit", "audits", "--audit-json", "single.json", "-p", "no:cacheprovider")
    assert single.ret == pytest.ExitCode.TESTS_FAILED, single.stdout.str()
    assert _loads(pytester) == ["alpha", "beta"]
    (pytester.path / "loads.txt").unlink()
    spread = pytester.runpytest_subprocess("--audit", "audits", "-n", "2", "--audit-json", "xdist.json",
                                           "-p", "no:cacheprovider")
    assert spread.ret == pytest.ExitCode.TESTS_FAILED, spread.stdout.str()
    assert _loads(pytester) == ["alpha", "beta"], "each spec must be extracted exactly once under -n 2"
    assert _verdicts(pytester.path / "xdist.json") == _verdicts(pytester.path / "single.json")


def test_work_units_keep_a_spec_together_and_other_tests_apart():
    pytest.importorskip("xdist")
    from pytest_robustaudit.plugin.scheduling import work_unit

    assert work_unit("audits/a.yaml::representation::kurtosis_mean") == "audits/a.yaml"
    assert work_unit("audits/a.yaml::blocks.-1::outlier_count[factor=100]") == "audits/a.yaml"
    assert work_unit("audits/a.yaml::representation::kurtosis_mean@audits/a.yaml") == "audits/a.yaml"
    assert work_unit("tests/test_x.py::test_one") == "tests/test_x.py::test_one"
    assert work_unit("tests/test_x.py::test_one@db") == "@db"


@pytest.mark.parametrize("worker,count,expected", [(None, 4, "cuda"), (0, 4, "cuda:0"), (5, 4, "cuda:1"),
                                                   (3, 1, "cuda:0")])
def test_auto_maps_worker_k_to_cuda_k_mod_count(monkeypatch, worker, count, expected):
    import torch

    from pytest_robustaudit.measure.devices import default_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
    assert default_device("auto", worker) == expected
    assert default_device("cpu", worker) == "cpu"  # an explicit device is never changed


def test_the_device_hook_lets_a_conftest_choose(pytester, tiny_checkpoints):
    pytester.makeconftest("""
        def pytest_robustaudit_choose_device(requested, worker_index):
            return "cpu" if requested == "auto" else None
    """)
    pytester.makefile(".yaml", spec=spec_text(tiny_checkpoints["plain"], CHECKS).replace("device: cpu", "device: auto"))
    result = pytester.runpytest("--audit", "spec.yaml", "--audit-json", "r.json")
    assert result.ret == pytest.ExitCode.OK
    assert json.loads((pytester.path / "r.json").read_text())["audits"][0]["device"] == "cpu"


def _merge(pytester, *args):
    return subprocess.run([sys.executable, "-m", "pytest_robustaudit", "merge", *args], cwd=pytester.path,
                          capture_output=True, text=True)


def test_three_shards_merge_into_what_one_run_writes(pytester, tiny_checkpoints):
    _specs(pytester, tiny_checkpoints, names=("alpha", "beta", "gamma"))
    whole = pytester.runpytest("--audit", "audits", "--audit-json", "whole.json", "--no-audit-report")
    assert whole.ret == pytest.ExitCode.TESTS_FAILED  # beta and its planted outliers fail outlier_count
    for k in (1, 2, 3):
        shard = pytester.runpytest("--audit", "audits", "--audit-shard", f"{k}/3", "--audit-json", f"shard{k}.json",
                                   "--no-audit-report")
        shard.assert_outcomes(**({"passed": 2, "failed": 1} if k == 2 else {"passed": 3}))
    done = _merge(pytester, "shard3.json", "shard1.json", "shard2.json", "--json", "merged.json",
                  "--report", "merged.html", "--markdown", "merged.md")
    assert done.returncode == 1, done.stderr  # one check failed, as in the single run
    assert _verdicts(pytester.path / "merged.json") == _verdicts(pytester.path / "whole.json")
    merged = json.loads((pytester.path / "merged.json").read_text())
    assert [a["name"] for a in merged["audits"]] == ["alpha", "beta", "gamma"]
    assert [s["shard"] for s in merged["run"]["shards"]] == ["1/3", "2/3", "3/3"]
    assert all("created" in s and "host" in s for s in merged["run"]["shards"])
    assert "beta" in (pytester.path / "merged.html").read_text()
    assert "FAIL" in done.stdout and "alpha" in done.stdout

    missing = _merge(pytester, "shard1.json", "shard3.json")
    assert missing.returncode == 2 and "shard 2/3 is missing" in missing.stderr, missing.stderr
    twice = _merge(pytester, "shard1.json", "shard1.json", "shard2.json", "shard3.json")
    assert twice.returncode == 2 and "shard 1/3 is given twice" in twice.stderr
    unsharded = _merge(pytester, "whole.json")
    assert unsharded.returncode == 2 and "whole.json was not written by a sharded run" in unsharded.stderr
    assert "Traceback" not in missing.stderr + twice.stderr + unsharded.stderr


def test_a_bad_shard_option_is_a_usage_error(pytester):
    pytester.mkdir("audits")
    result = pytester.runpytest("--audit", "audits", "--audit-shard", "4/3")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "expected K/N with 1 <= K <= N" in result.stderr.str()


def test_a_matrix_wider_than_the_specs_gives_empty_shards_that_merge(pytester, tiny_checkpoints):
    """--audit-shard 3/3 with two specs: exit 0 and an empty record (not pytest's 5 and no record), so a
    CI matrix of any width merges; a run with no spec at all still says 5."""
    _specs(pytester, tiny_checkpoints)
    empty = pytester.runpytest("--audit", "audits", "--audit-shard", "3/3", "--audit-json", "shard3.json",
                               "--no-audit-report")
    assert empty.ret == pytest.ExitCode.OK, empty.stdout.str()
    empty.stdout.fnmatch_lines(["*shard 3/3 holds none of the 2 specs*"])
    record = json.loads((pytester.path / "shard3.json").read_text())
    assert record["audits"] == [] and record["run"]["shard"] == "3/3" and record["run"]["exit_status"] == 0
    assert sorted(record["run"]["spec_set"]["specs"]) == ["audits/alpha.yaml", "audits/beta.yaml"]
    for k in (1, 2):
        pytester.runpytest("--audit", "audits", "--audit-shard", f"{k}/3", "--audit-json", f"shard{k}.json",
                           "--no-audit-report")
    done = _merge(pytester, "shard1.json", "shard2.json", "shard3.json", "--json", "merged.json", "--report", "none")
    assert done.returncode == 1, done.stderr       # beta's planted outliers fail, as in a single run
    assert [a["name"] for a in json.loads((pytester.path / "merged.json").read_text())["audits"]] == ["alpha", "beta"]

    pytester.mkdir("nothing")
    none_at_all = pytester.runpytest("--audit", "nothing", "--audit-shard", "1/2", "--audit-json", "n.json")
    assert none_at_all.ret == pytest.ExitCode.NO_TESTS_COLLECTED and not (pytester.path / "n.json").exists()


@pytest.mark.parametrize("value", ["", "9" * 5000 + "/9", "²/3"])
def test_an_empty_or_absurd_shard_option_is_a_usage_error_not_everything(pytester, value):
    pytester.mkdir("audits")
    result = pytester.runpytest("--audit", "audits", "--audit-shard", value)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "expected K/N with 1 <= K <= N" in result.stderr.str() and "Traceback" not in result.stderr.str()
