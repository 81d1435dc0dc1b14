"""``merge`` given hostile records (issue 25): special files, huge or deep JSON, records that contradict
themselves or come from another set of specs, and outputs that cannot be written.  Records are built
by hand (tests/builders.py): no model runs.  The end-to-end split, run by pytest, is in
tests/e2e/test_scale.py."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import pytest

from pytest_robustaudit.__main__ import main
from pytest_robustaudit.metrics.bootstrap import Interval
from pytest_robustaudit.results.merge import MergeError, merge_records, spec_set_of
from pytest_robustaudit.results.record import record_to_dict, write_record

from builders import make_result

#: three audits split over two shards: sorted identities a, b, c -> shard 1 holds a and c, shard 2 holds b
NAMES = ("a", "b", "c")


def _specs(names=NAMES, changed: str = "") -> dict[str, str]:
    specs = {f"audits/{n}.yaml": make_result(n, checks=()).spec_sha256 for n in names}
    if changed:
        specs[f"audits/{changed}.yaml"] = "0" * 64
    return specs


def write_shards(folder: Path, results=None, specs=None, count: int = 2) -> list[Path]:
    """The shard records of a split of ``results`` (default: make_result of a, b, c) over ``count`` shards."""
    specs = specs or _specs()
    results = results or {n: make_result(n) for n in NAMES}
    paths = []
    for index in range(1, count + 1):
        spec_set = spec_set_of(specs, index, count)
        mine = [results[Path(m).stem] for m in spec_set["members"] if Path(m).stem in results]
        path = folder / f"shard{index}.json"
        write_record(mine, path, {"shard": f"{index}/{count}", "spec_set": spec_set, "exit_status": 0})
        paths.append(path)
    return paths


def _edit(path: Path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def test_a_consistent_split_merges(tmp_path):
    run, results = merge_records(write_shards(tmp_path))
    assert [r.name for r in results] == ["a", "b", "c"] and run["spec_set"]["specs"] == _specs()
    assert run["exit_status"] == 0 and [s["shard"] for s in run["shards"]] == ["1/2", "2/2"]


# ---- a record is not taken at its word -------------------------------------------------------------


def test_a_verdict_that_contradicts_its_value_and_bound_is_refused(tmp_path):
    first, second = write_shards(tmp_path)

    def tamper(data):
        check = data["audits"][0]["checks"][0]            # kurtosis_mean >= 5 on audit b
        check.update(value=-99.0, min=-10.0, passed=True)
    _edit(second, tamper)
    with pytest.raises(MergeError) as caught:
        merge_records([first, second])
    text = str(caught.value)
    assert f"{second}: audits[0].checks[0] (kurtosis_mean on layer 'representation') says pass" in text
    assert "recorded value -99 against min -10 (read from its value) gives fail" in text
    assert "does not authenticate" in text and "re-run that shard" in text


def test_an_interval_verdict_is_decided_again_from_the_recorded_interval(tmp_path):
    gated = make_result("b")
    check = gated.checks[0]
    straddling = Interval(check.value, check.value - 1.0, check.value + 1.0, 0.95, "BCa bootstrap", "lower", 1000, 40)
    gated.checks[0] = dataclasses.replace(check, min=check.value, basis="interval", interval=straddling,
                                          confidence=0.95, passed=True)
    first, second = write_shards(tmp_path, {"a": make_result("a"), "b": gated, "c": make_result("c")})
    with pytest.raises(MergeError, match=r"says pass, but .* \(read from its interval\) gives inconclusive"):
        merge_records([first, second])
    gated.checks[0] = dataclasses.replace(gated.checks[0], passed=False, inconclusive=True)
    first, second = write_shards(tmp_path, {"a": make_result("a"), "b": gated, "c": make_result("c")})
    _, results = merge_records([first, second])
    assert not next(r for r in results if r.name == "b").passed


def test_shards_of_another_set_of_specs_are_refused_naming_what_differs(tmp_path):
    first, _ = write_shards(tmp_path)
    other = tmp_path / "other"
    other.mkdir()
    _, theirs = write_shards(other, specs=_specs(changed="b"))
    with pytest.raises(MergeError) as caught:
        merge_records([first, theirs])
    text = str(caught.value)
    assert "were split from different sets of specs" in text and "with other content: audits/b.yaml" in text
    _, extra = write_shards(other, specs=_specs(names=("a", "b", "c", "d")))
    with pytest.raises(MergeError, match="only in .*: audits/d.yaml"):
        merge_records([first, extra])


def test_an_audit_that_is_not_one_of_its_shard_s_specs_is_refused(tmp_path):
    first, second = write_shards(tmp_path)
    _edit(second, lambda data: data["audits"][0].update(spec_sha256="f" * 64))
    with pytest.raises(MergeError, match=r"audits\[0\] \(b\) audited a spec that is not one of shard 2/2's specs"):
        merge_records([first, second])


@pytest.mark.parametrize("change, words", [
    (lambda d: d["run"].pop("spec_set"), "carries no spec set"),
    (lambda d: d["audits"][0]["checks"][0].pop("basis"), "does not say what its verdict was read from"),
    (lambda d: d.update(schema_version=3) or d["run"].pop("spec_set"), "written before record schema 4"),
    (lambda d: d["run"]["spec_set"].update(members=["audits/a.yaml"]), "does not agree with itself"),
])
def test_records_without_the_fields_merge_checks_are_refused_with_the_way_out(tmp_path, change, words):
    first, second = write_shards(tmp_path)
    _edit(second, change)
    with pytest.raises(MergeError) as caught:
        merge_records([first, second])
    assert words in str(caught.value) and "re-run that shard with this pytest-robustaudit" in caught.value.fix


@pytest.mark.parametrize("status", ["1", 1.5, None, [1], True, -3])
def test_an_exit_status_that_is_not_one_is_located(tmp_path, status):
    first, second = write_shards(tmp_path)
    _edit(second, lambda d: d["run"].update(exit_status=status))
    if status is None:    # absent: the shard said nothing, read as 0
        assert merge_records([first, second])[0]["exit_status"] == 0
        return
    with pytest.raises(MergeError, match=rf"{second}: run.exit_status is .*not an exit status"):
        merge_records([first, second])


def test_old_records_still_read_as_baselines(tmp_path):
    """Only merge needs the schema-4 fields: a schema-3 record still reads (e.g. a saved baseline)."""
    from pytest_robustaudit.results.record import read_record

    data = record_to_dict([make_result("a")])
    data["schema_version"] = 3
    for check in data["audits"][0]["checks"]:
        for key in ("basis", "min_delta", "max_delta"):
            del check[key]
    del data["audits"][0]["spec_sha256"]
    (tmp_path / "old.json").write_text(json.dumps(data))
    _, (back,) = read_record(tmp_path / "old.json")
    assert back.checks[0].basis == "" and back.spec_sha256 == "" and back.checks[0].passed


# ---- special files, huge and deep JSON ---------------------------------------------------------------


@pytest.mark.timeout(60)
def test_merge_refuses_a_fifo_a_device_and_deep_nesting_at_once(tmp_path, capsys):
    os.mkfifo(tmp_path / "pipe.json")
    (tmp_path / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    nested = record_to_dict([make_result("a")])
    nested["run"]["extra"] = json.loads("[" * 70 + "]" * 70)
    (tmp_path / "nested.json").write_text(json.dumps(nested))
    for given, words in ((tmp_path / "pipe.json", "is a named pipe (FIFO), not a regular file"),
                         (Path("/dev/zero"), "is a character device, not a regular file"),
                         (tmp_path / "deep.json", "nests arrays or objects deeper than 64 levels"),
                         (tmp_path / "nested.json", "nests arrays or objects deeper than 64 levels")):
        assert main(["merge", str(given), "--report", "none"]) == 2
        err = capsys.readouterr().err
        assert str(given) in err and words in err and "Traceback" not in err, err


def test_a_record_larger_than_the_limit_is_refused(tmp_path, monkeypatch):
    from pytest_robustaudit.results import record

    first, second = write_shards(tmp_path)
    monkeypatch.setattr(record, "MAX_RECORD_BYTES", 1000)
    with pytest.raises(record.RecordError, match="holds more than 1,000 bytes"):
        merge_records([first, second])


# ---- outputs: one that cannot be written costs no other ---------------------------------------------


def test_an_output_that_cannot_be_written_is_named_and_the_others_are_written(tmp_path, capsys):
    first, second = write_shards(tmp_path)
    (tmp_path / "file").write_text("")
    code = main(["merge", str(first), str(second), "--json", str(tmp_path / "file" / "merged.json"),
                 "--markdown", str(tmp_path / "merged.md"), "--report", str(tmp_path / "merged.html"),
                 "--csv", str(tmp_path / "merged.csv")])
    captured = capsys.readouterr()
    assert code == 2 and "Traceback" not in captured.err
    assert f"could not write the JSON record to {tmp_path / 'file' / 'merged.json'}" in captured.err
    assert (tmp_path / "merged.md").exists() and (tmp_path / "merged.html").exists() and (tmp_path / "merged.csv").exists()
    assert "Markdown summary" in captured.out and "CSV table" in captured.out
    code = main(["merge", str(first), str(second), "--report", "none", "--csv", str(tmp_path / "file" / "m.csv")])
    assert code == 2 and f"could not write the CSV table to {tmp_path / 'file' / 'm.csv'}" in capsys.readouterr().err


def test_merge_writes_every_shard_s_values_as_a_csv_table(tmp_path, capsys):
    import csv

    results = {n: make_result(n) for n in NAMES}
    first, second = write_shards(tmp_path, results)
    code = main(["merge", str(first), str(second), "--report", "none", "--csv", str(tmp_path / "merged.csv")])
    assert code == 1   # make_result's outlier_count check fails
    with open(tmp_path / "merged.csv", encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["audit"] for r in rows if r["metric"] == "kurtosis_mean"] == ["a", "b", "c"]
    for row in rows:
        measured = results[row["audit"]].layers[row["layer"]].metrics[row["metric"]].value
        assert row["value"] == repr(measured)   # exact, as the shards recorded it
    checked = {(r["audit"], r["metric"]): r["status"] for r in rows if r["status"]}
    assert checked == {(n, m): s for n in NAMES for m, s in (("kurtosis_mean", "pass"), ("outlier_count", "fail"))}


@pytest.mark.timeout(60)
@pytest.mark.parametrize("shard, words", [
    ("1/999999999", "shards 2/999999999, 3/999999999, .* and 999999988 more are missing"),
    ("1/1000000000", "not written by a sharded run"), ("9" * 5000 + "/1", "not written by a sharded run"),
    ("²/3", "not written by a sharded run"), ("0/2", "not written by a sharded run"),
])
def test_a_shard_field_that_claims_too_much_ends_at_once(tmp_path, shard, words):
    first, _ = write_shards(tmp_path)

    def claim(data):
        data["run"]["shard"] = shard
        if shard == "1/999999999":     # a record consistent with that claim: it reaches the missing shards
            data["run"]["spec_set"] = spec_set_of(_specs(), 1, 999999999)
            data["audits"] = [a for a in data["audits"] if a["name"] == "a"]
    _edit(first, claim)
    with pytest.raises(MergeError, match=words):
        merge_records([first])


def test_a_missing_shard_is_named_alone(tmp_path):
    first, _ = write_shards(tmp_path)
    with pytest.raises(MergeError, match=r"shard 2/2 is missing \(given: 1/2\)"):
        merge_records([first])
