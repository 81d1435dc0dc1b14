"""Release history end to end (issue 28): two releases of one audit, the second on a checkpoint whose
representation was changed on purpose, kept with --audit-history, compared with --audit-compare last,
gated by ``reference: {history: last}``, and the same comparison from ``diff`` of the two records."""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys

from support import spec_text

CHECKS = """\
kurtosis_mean: {max: 1000}
outlier_count: {max_delta: 0}
"""
GATE = "reference: {history: last}\n"


def _release(pytester, checkpoint, *args):
    pytester.makefile(".yaml", release=spec_text(checkpoint, CHECKS, extra=GATE))
    return pytester.runpytest("--audit", "release.yaml", "--audit-history", "hist", *args)


def test_two_releases_compare_and_gate(pytester, tiny_checkpoints):
    first = _release(pytester, tiny_checkpoints["plain"], "--audit-label", "v1", "--audit-json", "r1.json",
                     "--no-audit-report")
    first.assert_outcomes(passed=1, skipped=1)          # nothing to compare with yet: the relative gate waits
    first.stdout.fnmatch_lines(["*history: kept as v1 (*"])
    smoke = _release(pytester, tiny_checkpoints["plain"], "--audit-limit", "4", "--no-audit-report")
    smoke.stdout.fnmatch_lines(["*history: this run is not kept*smoke run*"])

    second = _release(pytester, tiny_checkpoints["planted"], "--audit-label", "v2", "--audit-compare", "last",
                      "--audit-json", "r2.json", "--audit-csv", "r2.csv", "--audit-report", "r2.html",
                      "--audit-markdown", "r2.md")
    second.assert_outcomes(passed=1, failed=1)          # outlier_count rose above the last release's
    second.stdout.fnmatch_lines(["*change from last*", "release: compared with v1 (*", "*REGRESSED*kurtosis_mean*"])
    assert "release v1" in second.stdout.str()          # the gate's message names the release it compared with

    record = json.loads((pytester.path / "r2.json").read_text())
    assert record["schema_version"] == 5 and record["run"]["label"] == "v2"
    (comp,) = record["run"]["comparison"]["audits"]
    kurtosis = next(c for c in comp["changes"] if c["metric"] == "kurtosis_mean")
    assert kurtosis["checked"] and kurtosis["verdict"] == "regressed" and kurtosis["low"] > 0
    assert kurtosis["basis"].startswith("paired by image")
    assert "regressed" in (pytester.path / "r2.md").read_text()
    html = (pytester.path / "r2.html").read_text()
    assert 'id="changes"' in html and 'id="trends"' in html and 'class="current"' in html
    series = {(s["metric"]): s for s in record["run"]["history"]["series"]}
    assert [p["label"] for p in series["kurtosis_mean"]["points"]] == ["v1", "v2"]

    # diff of the two records: the same verdicts and intervals, exit 1 for the regression
    done = subprocess.run([sys.executable, "-m", "pytest_robustaudit", "diff", "r1.json", "r2.json", "--csv",
                           "diff.csv"], cwd=pytester.path, capture_output=True, text=True)
    assert done.returncode == 1, done.stderr
    assert "REGRESSED" in done.stdout and "a checked metric regressed" in done.stdout
    with open(pytester.path / "diff.csv", newline="", encoding="utf-8") as handle:
        rows = {(r["metric"], r["params"]): r for r in csv.DictReader(handle)}
    for change in comp["changes"]:
        row = rows[(change["metric"], json.dumps(change["params"], sort_keys=True, separators=(",", ":")))]
        assert row["verdict"] == change["verdict"]
        for key, column in (("change", "change"), ("low", "change_low"), ("high", "change_high")):
            if change[key] is not None:
                assert float(row[column]) == change[key], (change["metric"], key)

    # the run's CSV, as pandas reads it, holds the record's values
    import pandas as pd

    table = pd.read_csv(pytester.path / "r2.csv")
    layer = record["audits"][0]["layers"][0]
    seen = 0
    for row in table.itertuples():
        if row.metric in layer["metrics"] and row.label == "v2":
            want = layer["metrics"][row.metric]["value"]
            assert (math.isnan(row.value) and want == "NaN") or row.value == want, row.metric
            seen += 1
    assert seen >= len(layer["metrics"])

    listed = subprocess.run([sys.executable, "-m", "pytest_robustaudit", "history", "list", "--dir", "hist"],
                            cwd=pytester.path, capture_output=True, text=True)
    assert listed.returncode == 0 and "2 kept runs" in listed.stdout, listed.stdout


def test_compare_without_a_history_is_skipped_with_the_way_out(pytester, tiny_checkpoints):
    pytester.makefile(".yaml", alone=spec_text(tiny_checkpoints["plain"], "kurtosis_mean: {max: 1000}\n"))
    done = pytester.runpytest("--audit", "alone.yaml", "--audit-compare", "last", "--no-audit-report")
    done.assert_outcomes(passed=1)
    done.stdout.fnmatch_lines(["alone: not compared: no release history*--audit-history DIR*"])
    missing = pytester.runpytest("--audit", "alone.yaml", "--audit-compare", "old/r.json", "--no-audit-report")
    missing.stdout.fnmatch_lines(["*--audit-compare old/r.json: *r.json*"])
    # a record file holding two audits: each of this run's two audits compared with its own
    pytester.makefile(".yaml", second=spec_text(tiny_checkpoints["planted"], "kurtosis_mean: {max: 1000}\n"))
    pytester.runpytest("--audit", "alone.yaml", "--audit", "second.yaml", "--audit-json", "both.json",
                       "--no-audit-report").assert_outcomes(passed=2)
    both = pytester.runpytest("--audit", "alone.yaml", "--audit", "second.yaml", "--audit-compare", "both.json",
                              "--no-audit-report")
    both.assert_outcomes(passed=2)
    both.stdout.fnmatch_lines(["alone: compared with record both.json (1 unchanged)*",
                               "second: compared with record both.json (1 unchanged)*"], consecutive=False)
    pytester.path.joinpath("afile").write_text("x")
    usage = pytester.runpytest("--audit", "alone.yaml", "--audit-history", "afile")
    assert usage.ret == 4 and "not a folder" in usage.stderr.str()
