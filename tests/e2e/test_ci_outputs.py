"""What a CI job gets besides the exit code: the Markdown summary, plugin report sections, and
the marks of an interrupted run."""

from __future__ import annotations

import math
import re

import pytest

from support import spec_text

CHECKS = """\
kurtosis_mean: {min: 1}
outlier_count: {max: 0}
"""


def test_markdown_summary_for_the_job_page(pytester, tiny_checkpoints):
    pytester.makefile(".yaml", plain=spec_text(tiny_checkpoints["plain"], CHECKS).replace(
        "model:", "name: plain | <b>model</b>\nmodel:", 1))
    pytester.makefile(".yaml", planted=spec_text(tiny_checkpoints["planted"], CHECKS))
    result = pytester.runpytest("--audit", "plain.yaml", "--audit", "planted.yaml", "--audit-markdown", "summary.md")
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines(["robustaudit: Markdown summary: *summary.md"])
    text = (pytester.path / "summary.md").read_text()
    assert text.startswith("## Robustness audit: ❌ 1 of 4 checks failed")
    assert "| plain \\| &lt;b>model&lt;/b> | `representation` | `timm:vit_tiny_patch16_224 [plain.safetensors]` | 11 |" \
        in text  # a tag cannot open; the rest reads as written
    # the outliers column shows the value checked, its interval, its mark and its parameters
    assert "| 3 [3, 3] ✗ (factor=10) | ❌ 1/2 |" in text
    assert re.search(r"\| 2\.836 \[2\.7\d*, 2\.9\d*\] ✓ \| ", text), text   # the plain model's kurtosis_mean
    assert "- **planted** · `representation::outlier_count (factor=10)`: outlier_count on layer 'representation' " \
           "(factor=10) = 3 > max 0\n  - required: at most 0 (lower values pass)\n" in text  # its own bullet
    assert "&lt;=" not in text and "&gt;" not in text
    assert "Full report: `robustaudit-report.html` (the job's artefact)" in text  # relative, not this machine's path
    result = pytester.runpytest("--audit", "planted.yaml", "--audit-markdown", "s2.md",
                                "--audit-report-link", "https://ci.example/run/7/artifacts/report")
    assert "[Full report](https://ci.example/run/7/artifacts/report)" in (pytester.path / "s2.md").read_text()
    pytester.runpytest("--audit", "planted.yaml", "--audit-markdown", "s3.md", "--audit-report-link", "none")
    assert "Full report" not in (pytester.path / "s3.md").read_text()


def test_plugin_report_section(pytester, tiny_checkpoints):
    pytester.makeconftest("""
        from pytest_robustaudit import ReportSection

        def pytest_robustaudit_report_sections(results):
            return [ReportSection("Release notes", "<i>checked by the gate</i>", ("audit", "images"),
                                  tuple((r.name, r.n_images) for r in results))]
    """)
    pytester.makefile(".yaml", spec=spec_text(tiny_checkpoints["plain"], CHECKS))
    pytester.runpytest("--audit", "spec.yaml", "--audit-report", "report.html").assert_outcomes(passed=2)
    html = (pytester.path / "report.html").read_text()
    assert "Release notes" in html and "&lt;i&gt;checked by the gate&lt;/i&gt;" in html
    assert "<i>checked by the gate</i>" not in html


def test_interrupted_run_is_marked_in_report_and_record(pytester, tiny_checkpoints):
    pytester.makeconftest("""
        import pytest

        @pytest.hookimpl(tryfirst=True)
        def pytest_runtest_call(item):
            if item.name == "outlier_count":
                raise KeyboardInterrupt
    """)
    pytester.makefile(".yaml", spec=spec_text(tiny_checkpoints["plain"], CHECKS))
    result = pytester.runpytest_subprocess("--audit", "spec.yaml", "--audit-report", "report.html",
                                           "--audit-json", "record.json")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    import json

    assert json.loads((pytester.path / "record.json").read_text())["run"]["interrupted"] is True
    assert 'id="interrupted"' in (pytester.path / "report.html").read_text()


# --------------------------------------------------------------------------------------------
# pytest's selection: what did not run is in no output
# --------------------------------------------------------------------------------------------

THREE = """\
kurtosis_mean: {min: 1}
outlier_count: {max: 0}
rotated_kurtosis_mean: {min: 1, max: 10, why: the basis control sits near 3}
"""


def _outputs(pytester, *args):
    result = pytester.runpytest("-p", "no:randomly", *args, "--audit-report", "r.html", "--audit-json", "r.json",
                                "--audit-markdown", "s.md")
    import json

    record = json.loads((pytester.path / "r.json").read_text())
    return result, record, (pytester.path / "r.html").read_text(), (pytester.path / "s.md").read_text()


def test_deselected_and_unreached_checks_are_in_no_output(pytester, tiny_checkpoints):
    pytester.makefile(".yaml", planted=spec_text(tiny_checkpoints["planted"], THREE))
    result, record, html, md = _outputs(pytester, "--audit", "planted.yaml", "-k", "rotated")
    result.assert_outcomes(passed=1, deselected=2)
    assert result.ret == 0
    (audit,) = record["audits"]
    assert [c["metric"] for c in audit["checks"]] == ["rotated_kurtosis_mean"]
    assert audit["checks"][0]["why"] == "the basis control sits near 3"
    assert record["run"]["checks_deselected"] == 2 and record["run"]["checks_not_run"] == 0
    assert "outlier_count (factor=10) @" not in html and "FAIL" not in html.split("<main>")[1].split("</header>")[0]
    assert "2 checks deselected: left out of this report" in html
    assert "why: the basis control sits near 3" in html
    assert "✅ all checks passed" in md and "2 checks deselected" in md and "✗" not in md and "###" not in md
    result.stdout.fnmatch_lines(["robustaudit: 2 checks deselected: left out of every output"])
    # -x: the failing check stops the run; the check after it never ran and gets no verdict
    result, record, html, md = _outputs(pytester, "--audit", "planted.yaml", "-x")
    result.assert_outcomes(passed=1, failed=1)
    assert [c["metric"] for c in record["audits"][0]["checks"]] == ["kurtosis_mean", "outlier_count"]
    assert record["run"]["checks_not_run"] == 1 and "1 check not run" in html and "1 check not run" in md


def test_collect_only_and_validate_write_nothing(pytester, tiny_checkpoints):
    import subprocess
    import sys

    pytester.makefile(".yaml", invalid=spec_text(tiny_checkpoints["plain"], "kurtoss_mean: {min: 1}\n"))
    pytester.runpytest("--audit", "invalid.yaml", "--collect-only")
    done = subprocess.run([sys.executable, "-m", "pytest_robustaudit", "validate", "invalid.yaml"],
                          cwd=pytester.path, capture_output=True, text=True)
    assert done.returncode == 1 and "Did you mean: kurtosis_mean?" in done.stdout + done.stderr
    assert sorted(p.name for p in pytester.path.iterdir() if not p.name.startswith(".")) == ["invalid.yaml"]


# --------------------------------------------------------------------------------------------
# --audit-csv: the record's values as a table
# --------------------------------------------------------------------------------------------

PARAMS = """\
kurtosis_mean: {min: 1}
outlier_count:
  - {max: 0}
  - {max: 0, factor: 100}
"""


def test_the_csv_table_holds_the_record_s_values(pytester, tiny_checkpoints):
    import csv

    from pytest_robustaudit.results.csv_table import RECORD_COLUMNS, params_json, read_float
    from pytest_robustaudit.results.record import read_record

    pytester.makefile(".yaml", planted=spec_text(tiny_checkpoints["planted"], PARAMS))
    result = pytester.runpytest("--audit", "planted.yaml", "--audit-json", "record.json", "--audit-csv", "out/values.csv",
                                "--no-audit-report")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["robustaudit: CSV table: *values.csv"])
    _, (audit,) = read_record(pytester.path / "record.json")
    with open(pytester.path / "out" / "values.csv", encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        rows = list(reader)
    assert reader.fieldnames == list(RECORD_COLUMNS)
    layer = audit.layers["representation"]
    defaults = {r["metric"]: r for r in rows if (r["layer"], r["metric"]) != ("representation", "outlier_count")
                or r["params"] == '{"factor":10.0}'}
    assert set(defaults) == set(layer.metrics)                           # every metric the audit computed, once
    for metric, measured in layer.metrics.items():
        cell = read_float(defaults[metric]["value"])
        assert cell == measured.value or (math.isnan(cell) and math.isnan(measured.value)), metric
        assert defaults[metric]["fingerprint"] == audit.fingerprint and defaults[metric]["audit"] == "planted"
    statuses = {(r["metric"], r["params"]): r["status"] for r in rows if r["status"]}
    assert statuses == {(c.metric, params_json(c.params)): c.record_status for c in audit.checks}
    assert statuses[("outlier_count", '{"factor":10.0}')] == "fail"     # 3 planted outliers at 10x
    strict = next(r for r in rows if r["params"] == '{"factor":100.0}')
    assert read_float(strict["value"]) == audit.check("outlier_count", "representation", {"factor": 100.0}).value
