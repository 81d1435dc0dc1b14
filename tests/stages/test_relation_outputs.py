"""A relation check's outcome in every output (results/relations.py): the record's ``run.relations``
(schema 5, read back; older records read as none), ``merge`` judging the shards' deferred relations
over every shard's audits, the terminal table, the Markdown and the page.  Hand-built results
(tests/builders.py): no model runs; the end-to-end run is tests/e2e/test_relation_file.py."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from pytest_robustaudit.metrics import MetricValue
from pytest_robustaudit.results.merge import MergeError, merge_records, spec_set_of
from pytest_robustaudit.results.record import SCHEMA_VERSION, dumps, loads, write_record
from pytest_robustaudit.results.relations import (RelationOutcome, RelationRecordError, deferred, judge,
                                                  relation_from_dict, relations_in)

from builders import make_result

#: four audits whose ER falls as their kurtosis grows: rho = -1
ER = {"a": 0.30, "b": 0.20, "c": 0.10, "d": 0.0}
KURTOSIS = {"a": 3.0, "b": 4.5, "c": 9.0, "d": 40.0}
BOUNDS = RelationOutcome(file="audits/relation.yaml", metric="kurtosis_mean", min_rho=0.5, sha256="5" * 64)


def results():
    found = {}
    for i, name in enumerate(ER):
        result = make_result(name, seed=i)
        result.layers["representation"].metrics["effective_robustness"] = MetricValue(ER[name])
        result.layers["representation"].metrics["kurtosis_mean"] = MetricValue(KURTOSIS[name])
        found[name] = result
    return found


def test_a_judged_relation_reads_back_from_the_record_exactly():
    judged = judge(BOUNDS, list(results().values()), ["e (could not be audited: boom)"])
    assert (judged.status, judged.n, judged.left_out) == ("fail", 4, ("e (could not be audited: boom)",))
    assert judged.rho == pytest.approx(-1.0) and [m["name"] for m in judged.models] == ["a", "b", "c", "d"]
    run, _ = loads(dumps([], {"relations": [judged.to_dict()]}))
    assert relations_in(run) == [judged]


@pytest.mark.parametrize("version", [3, 4])
def test_records_of_schema_3_and_4_read_with_no_relations(version):
    assert SCHEMA_VERSION == 5
    data = json.loads(dumps([results()["a"]], {"exit_status": 0}))
    data["schema_version"] = version
    run, found = loads(json.dumps(data))
    assert relations_in(run) == [] and [r.name for r in found] == ["a"]


@pytest.mark.parametrize("change, words", [
    (lambda e: e.update(status="passed"), "run.relations[0].status: 'passed' is not one of pass, fail"),
    (lambda e: e.update(min_rho=2), "run.relations[0].min_rho: 2.0 is not a correlation in [-1, 1]"),
    (lambda e: e.update(rho="high"), "run.relations[0].rho: expected a number or null, got 'high'"),
    (lambda e: e.pop("file"), "run.relations[0].file: expected a string, got None"),
])
def test_a_malformed_relation_entry_is_located(change, words):
    entry = deferred(BOUNDS, "1/2").to_dict()
    change(entry)
    with pytest.raises(RelationRecordError) as caught:
        relation_from_dict(entry)
    assert words in str(caught.value)


def write_shards(folder: Path, relation: dict | None = None, count: int = 2) -> list[Path]:
    """Shard records of the four audits and the relation file (each shard defers it: its bounds only)."""
    found = results()
    specs = {f"audits/{n}.yaml": r.spec_sha256 for n, r in found.items()} | {BOUNDS.file: BOUNDS.sha256}
    paths = []
    for index in range(1, count + 1):
        spec_set = spec_set_of(specs, index, count)
        mine = [found[Path(m).stem] for m in spec_set["members"] if Path(m).stem in found]
        entry = relation if relation is not None and index == count else deferred(BOUNDS, f"{index}/{count}").to_dict()
        path = folder / f"shard{index}.json"
        write_record(mine, path, {"shard": f"{index}/{count}", "spec_set": spec_set, "exit_status": 0,
                                  "relations": [entry]})
        paths.append(path)
    return paths


def test_merge_judges_the_deferred_relation_over_every_shard_s_audits(tmp_path):
    run, merged = merge_records(write_shards(tmp_path))
    [relation] = relations_in(run)
    assert relation == judge(BOUNDS, list(results().values()))   # what one process judges over the four
    assert relation.status == "fail" and relation.n == 4 and relation.rho == pytest.approx(-1.0)
    from pytest_robustaudit.__main__ import main

    assert main(["merge", *map(str, write_shards(tmp_path)), "--report", "none"]) == 1   # the relation fails merge


def test_merge_refuses_shards_that_disagree_on_a_relation(tmp_path):
    other = dataclasses.replace(deferred(BOUNDS, "2/2"), min_rho=0.1).to_dict()
    with pytest.raises(MergeError, match="the relation audits/relation.yaml differs between .*shard1.json and "
                                         ".*shard2.json"):
        merge_records(write_shards(tmp_path, other))
    changed = dataclasses.replace(deferred(BOUNDS, "1/2"), sha256="6" * 64).to_dict()
    paths = write_shards(tmp_path, changed, count=1)
    with pytest.raises(MergeError, match="recorded content sha256 666666666666, but the spec set has 555555555555"):
        merge_records(paths)
    broken = {**deferred(BOUNDS, "2/2").to_dict(), "status": "maybe"}
    with pytest.raises(MergeError, match=r"run.relations\[0\].status: 'maybe'"):
        merge_records(write_shards(tmp_path, broken))


def test_the_relation_in_the_table_the_markdown_and_the_page():
    from pytest_robustaudit.report import render_report
    from pytest_robustaudit.report.markdown import render_markdown
    from pytest_robustaudit.report.table import relation_table

    audits = list(results().values())
    judged = judge(BOUNDS, audits, ["e (could not be audited: boom)"])
    waiting = deferred(dataclasses.replace(BOUNDS, file="audits/other.yaml", max_rho=0.9, min_rho=None), "1/2")
    lines = relation_table([judged, waiting])
    assert lines[0].split() == ["relation", "metric", "vs", "ER", "rho", "[interval]", "models", "bound", "verdict"]
    assert lines[2].split()[:3] == ["audits/relation.yaml", "kurtosis_mean", "-1.000"] and lines[2].endswith("rho ≥ 0.5  FAIL")
    assert "rho < min_rho 0.5" in " ".join(lines[3:5])        # the verdict in full, wrapped to 120 columns
    assert "  audits/relation.yaml: left out: e (could not be audited: boom)" in lines
    assert max(len(line) for line in lines) <= 120
    deferred_row = next(i for i, line in enumerate(lines) if line.endswith("rho ≤ 0.9  DEFERRED"))
    assert "merge` decides it" in " ".join(lines[deferred_row + 1:])
    page = render_markdown(audits, relations=[judged, waiting])
    assert page.startswith("## Robustness audit: ❌ 4 of 8 checks failed; 1 of 2 relation checks did not pass\n")
    assert "| `audits/relation.yaml` | kurtosis_mean | -1.000" in page and "| ⏸ deferred |" in page
    assert "- `audits/relation.yaml`: models by kurtosis_mean: a (" in page
    html = render_report(audits, run_info={"relations": [judged.to_dict(), waiting.to_dict()]})
    assert 'id="relations"' in html and '<span class="badge fail">FAIL</span>' in html
    assert 'id="overall">FAIL' in html and "Left out: e (could not be audited: boom)" in html
    passing = render_report([make_result("z", checks=())], run_info={"relations": [dataclasses.replace(judged, status="pass").to_dict()]})
    assert 'id="overall">PASS' in passing and 'relations' not in _run_section(passing)


def _run_section(html: str) -> str:
    start = html.find('id="run"')
    return html[start:] if start >= 0 else ""
