"""The plan through pytest (issue 24): what reads an audit later is planned (a reference model's twin, a
relation file, a saved baseline, the fixture's on-demand value); the record, JUnit XML and the report
carry the plan and the time per phase; `validate --plan` prints it; a warm run imports neither torch nor
timm.  The tiny timm ViT checkpoints of the session (a classifier head: the direction metrics apply)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET

import pytest

from support import spec_text

KURTOSIS = "kurtosis_mean: {min: 0}\n"


def run(pytester, *args):
    return pytester.runpytest("-p", "no:randomly", *args)


def test_record_junit_and_report_carry_the_plan_and_the_phases(pytester, tiny_checkpoints):
    pytester.makefile(".yaml", spec=spec_text(tiny_checkpoints["plain"], KURTOSIS,
                                              extra="measure: [importance_top_share]\n"))
    result = run(pytester, "--audit", "spec.yaml", "--audit-json", "record.json", "--junitxml", "junit.xml",
                 "--audit-report", "report.html")
    result.assert_outcomes(passed=1)
    audit = json.loads((pytester.path / "record.json").read_text())["audits"][0]
    metrics = audit["layers"][0]["metrics"]
    assert "importance_top_share" in metrics and "prunable_fraction" not in metrics
    assert audit["plan"]["planned"]["importance_top_share"]["why"] == ["measure"]
    assert audit["plan"]["planned"]["kurtosis_mean"]["why"] == ["default", "check"]
    assert audit["plan"]["left_out"]["prunable_fraction"].startswith("not asked for")
    assert {"hashing", "analysis: outliers", "analysis: directions", "head SVD"} <= set(audit["phases"])
    properties = {p.get("name"): p.get("value") for p in ET.parse(pytester.path / "junit.xml").iter("property")}
    assert "phase_s:hashing" in properties and float(properties["phase_s:analysis: outliers"]) >= 0
    html = (pytester.path / "report.html").read_text(encoding="utf-8")
    assert "metrics not computed, and how to ask for them" in html and "<code>prunable_fraction" in html
    assert "time per phase" in html


def test_validate_plan_prints_what_each_spec_computes_without_running_it(pytester, tiny_checkpoints):
    pytester.makefile(".yaml", spec=spec_text(tiny_checkpoints["plain"], "prunable_fraction: {min: 0}\n"))
    done = subprocess.run([sys.executable, "-m", "pytest_robustaudit", "validate", "--plan", "spec.yaml"],
                          cwd=pytester.path, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "robustaudit plan: spec: 13 metrics on 1 layers" in out, out
    assert "prunable_fraction" in out and "(check)" in out and "not computed (16)" in out
    assert "images" not in out.split("robustaudit plan")[0].lower() or "/11 images" not in out   # nothing ran


def test_a_reference_twin_computes_what_the_relative_checks_read(pytester, tiny_checkpoints):
    reference = f"reference: {{model: {{source: timm, name: vit_tiny_patch16_224, checkpoint: {tiny_checkpoints['plain']}}}}}\n"
    pytester.makefile(".yaml", spec=spec_text(tiny_checkpoints["planted"], "importance_top_share: {min_ratio: 0.01}\n",
                                              extra=reference))
    result = run(pytester, "--audit", "spec.yaml", "--audit-json", "record.json", "--no-audit-report")
    result.assert_outcomes(passed=1)
    audit = json.loads((pytester.path / "record.json").read_text())["audits"][0]
    check = audit["checks"][0]
    assert check["reference"] is not None and 0 < check["reference"] <= 1, check   # the twin computed it


def test_save_baseline_measures_everything_a_later_relative_check_may_read(pytester, tiny_checkpoints):
    pytester.makefile(".yaml", spec=spec_text(tiny_checkpoints["plain"], "kurtosis_mean: {min_ratio: 0.5}\n",
                                              extra="reference: {baseline: base.json}\n"))
    run(pytester, "--audit", "spec.yaml", "--audit-save-baseline", "--no-audit-report").assert_outcomes(skipped=1)
    audit = json.loads((pytester.path / "base.json").read_text())["audits"][0]
    assert "head_effective_rank" in audit["layers"][0]["metrics"]
    assert audit["plan"]["planned"]["head_effective_rank"]["why"] == ["measure: all"]
    # a later spec may gate a metric its first run never checked
    pytester.makefile(".yaml", spec=spec_text(tiny_checkpoints["plain"], "head_effective_rank: {min_ratio: 0.99}\n",
                                              extra="reference: {baseline: base.json}\n"))
    run(pytester, "--audit", "spec.yaml", "--no-audit-report").assert_outcomes(passed=1)


def test_the_fixture_computes_a_metric_out_of_the_plan_on_demand(pytester, tiny_checkpoints):
    pytester.makefile(".yaml", spec=spec_text(tiny_checkpoints["plain"], KURTOSIS))
    pytester.makepyfile(test_mine=textwrap.dedent("""\
        def test_on_demand(audit):
            run = audit("spec.yaml")
            assert "head_effective_rank" not in run.layer().metrics        # not in the plan
            value = run.value("head_effective_rank")                        # computed now
            assert value >= 1 and "head_effective_rank" in run.layer().metrics
        """))
    run(pytester, "test_mine.py").assert_outcomes(passed=1)


def test_a_warm_run_imports_neither_torch_nor_timm(pytester, tiny_checkpoints):
    pytester.makefile(".yaml", spec=spec_text(tiny_checkpoints["plain"], KURTOSIS + "outlier_count: {max: 0}\n"))
    pytester.makeconftest(textwrap.dedent("""\
        import json, sys

        def pytest_sessionfinish(session):
            with open("modules.json", "w") as out:
                json.dump(sorted(m for m in ("torch", "timm", "open_clip") if m in sys.modules), out)
        """))
    args = ["--audit", "spec.yaml", "--audit-cache-dir", "store", "--no-audit-report", "--audit-json", "record.json"]
    pytester.runpytest_subprocess(*args).assert_outcomes(passed=2)
    assert json.loads((pytester.path / "modules.json").read_text()) == ["timm", "torch"]    # cold: the model ran
    pytester.runpytest_subprocess(*args).assert_outcomes(passed=2)
    assert json.loads((pytester.path / "modules.json").read_text()) == []                  # warm: neither
    audit = json.loads((pytester.path / "record.json").read_text())["audits"][0]
    assert audit["activations"]["from_store"] and "model build" not in audit["phases"]


@pytest.mark.parametrize("cache", ["on", "refresh"])
def test_kept_intervals_are_those_of_a_fresh_computation(pytester, tiny_checkpoints, cache):
    pytester.makefile(".yaml", spec=spec_text(tiny_checkpoints["planted"], "outlier_count: {max: 10}\n"))
    args = ["--audit", "spec.yaml", "--audit-cache-dir", "store", "--no-audit-report"]
    run(pytester, *args, "--audit-json", "cold.json").assert_outcomes(passed=1)
    assert list((pytester.path / "store" / "intervals").glob("*.json"))
    run(pytester, *args, "--audit-cache", cache, "--audit-json", "warm.json").assert_outcomes(passed=1)
    cold, warm = (json.loads((pytester.path / f"{n}.json").read_text())["audits"][0]["layers"][0]["intervals"]
                  for n in ("cold", "warm"))
    assert cold == warm
