"""End-to-end: pytest runs of YAML audit specs through the installed plugin (pytester)."""

from __future__ import annotations

import re

import pytest

from support import PLANTED_CHANNELS, spec_text

pytestmark = pytest.mark.usefixtures("tiny_checkpoints")

PASSING = """\
kurtosis_mean: {min: 1}
outlier_count: {max: 0, factor: 10}
"""


def run(pytester, *args):
    return pytester.runpytest("-p", "no:randomly", *args)


def test_audit_items_pass_with_node_ids(pytester, tiny_checkpoints):
    pytester.mkdir("audits")
    (pytester.path / "audits" / "plain.yaml").write_text(spec_text(tiny_checkpoints["plain"], PASSING))
    result = run(pytester, "--audit", "audits", "-v")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines([
        "audits/plain.yaml::representation::kurtosis_mean PASSED*",
        "audits/plain.yaml::representation::outlier_count PASSED*",
    ])
    assert result.ret == pytest.ExitCode.OK


def test_planted_outliers_fail_with_plain_message(pytester, tiny_checkpoints):
    pytester.mkdir("audits")
    for name in ("plain", "planted"):
        (pytester.path / "audits" / f"{name}.yaml").write_text(spec_text(tiny_checkpoints[name], PASSING))
    result = run(pytester, "--audit", "audits")
    result.assert_outcomes(passed=3, failed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    out = result.stdout.str()
    assert re.search(r"outlier_count on layer 'representation' \(factor=10\) = 3 > max 0\n", out), out
    assert "required: at most 0 (lower values pass)" in out
    assert f"outlier features: {', '.join(map(str, sorted(PLANTED_CHANNELS)))}" in out.replace("77, 3", "3, 77") or \
        all(str(c) in out for c in PLANTED_CHANNELS)
    assert "model: timm:vit_tiny_patch16_224 [planted.safetensors]" in out
    assert "images: 1" in out or "images:" in out
    assert "Traceback" not in out and "def runtest" not in out


def test_bound_in_both_directions(pytester, tiny_checkpoints):
    checks = """\
    kurtosis_mean: {min: 1000000}
    kurtosis_median: {max: 1.5}
    """
    pytester.makefile(".yaml", spec=spec_text(tiny_checkpoints["plain"], checks))
    result = run(pytester, "--audit", "spec.yaml")
    result.assert_outcomes(failed=2)
    out = result.stdout.str()
    assert re.search(r"kurtosis_mean on layer 'representation' = \d\.\d+ < min 1e\+06, -100%", out), out
    assert "required: at least 1e+06 (higher values pass)" in out
    assert re.search(r"kurtosis_median on layer 'representation' = \d\.\d+ > max 1\.5, \+\d+%", out), out
    assert "required: at most 1.5 (lower values pass)" in out


def test_yaml_is_not_collected_without_audit(pytester, tiny_checkpoints):
    pytester.makefile(".yaml", spec=spec_text(tiny_checkpoints["plain"], PASSING))
    result = run(pytester)
    assert result.ret == pytest.ExitCode.NO_TESTS_COLLECTED


def test_audit_runs_only_audits_not_the_test_suite(pytester, tiny_checkpoints):
    pytester.mkdir("audits")
    (pytester.path / "audits" / "plain.yaml").write_text(spec_text(tiny_checkpoints["plain"], PASSING))
    pytester.makepyfile(test_other="def test_other():\n    assert True\n")
    run(pytester, "--audit", "audits").assert_outcomes(passed=2)
    both = run(pytester, "--audit", "audits", "audits", "test_other.py")
    both.assert_outcomes(passed=3)


def test_ini_default_paths_and_bare_flag(pytester, tiny_checkpoints):
    pytester.mkdir("audits")
    (pytester.path / "audits" / "plain.yml").write_text(spec_text(tiny_checkpoints["plain"], PASSING))
    pytester.makeini("[pytest]\naudit_paths = audits\n")
    run(pytester, "--audit").assert_outcomes(passed=2)


def test_bare_flag_without_ini_is_a_usage_error(pytester):
    result = run(pytester, "--audit")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*audit_paths*not set*"])


def test_missing_audit_path_is_a_usage_error(pytester):
    result = run(pytester, "--audit", "nowhere")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--audit*nowhere: no such file or folder*"])


def test_broken_spec_is_a_located_collection_error(pytester, tiny_checkpoints):
    text = spec_text(tiny_checkpoints["plain"], "kurtossis_mean: {min: 1}\n")
    pytester.makefile(".yaml", broken=text)
    result = run(pytester, "--audit", "broken.yaml")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    out = result.stdout.str()
    assert "ERROR collecting broken.yaml" in out
    assert "\nbroken.yaml:11: checks.kurtossis_mean: unknown metric 'kurtossis_mean'. Did you mean: kurtosis_mean?" in out
    assert "Traceback" not in out


def test_broken_checkpoint_fails_every_item_once_with_clear_message(pytester, tiny_checkpoints, tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(tiny_checkpoints["plain"].read_bytes()[:1000])
    pytester.makefile(".yaml", spec=spec_text(bad, PASSING))
    result = run(pytester, "--audit", "spec.yaml")
    result.assert_outcomes(failed=2)
    out = result.stdout.str()
    assert str(bad) in out
    assert "(the full message is under spec.yaml::representation::kurtosis_mean)" in out
    assert "Traceback" not in out


def test_selection_junitxml_and_last_failed(pytester, tiny_checkpoints):
    checks = """\
    kurtosis_mean: {min: 1}
    kurtosis_median: {min: 1000000}
    """
    pytester.makefile(".yaml", spec=spec_text(tiny_checkpoints["plain"], checks))
    run(pytester, "--audit", "spec.yaml", "-k", "kurtosis_mean").assert_outcomes(passed=1)
    run(pytester, "--audit", "spec.yaml", "spec.yaml::representation::kurtosis_median").assert_outcomes(failed=1)
    xml = pytester.path / "junit.xml"
    run(pytester, "--audit", "spec.yaml", f"--junitxml={xml}").assert_outcomes(passed=1, failed=1)
    text = xml.read_text()
    assert 'name="kurtosis_mean"' in text and '<property name="value"' in text
    last = pytester.runpytest("--audit", "spec.yaml", "--lf")
    last.assert_outcomes(failed=1, deselected=1)


def test_spec_line_in_report_location(pytester, tiny_checkpoints):
    pytester.makefile(".yaml", spec=spec_text(tiny_checkpoints["plain"], "kurtosis_mean: {min: 1000000}\n"))
    result = run(pytester, "--audit", "spec.yaml", "-rf")
    result.stdout.fnmatch_lines(["FAILED spec.yaml::representation::kurtosis_mean*"])


def test_a_metric_registered_twice_is_a_clear_error(pytester, tiny_checkpoints):
    pytester.makeconftest("""
        from pytest_robustaudit import Metric, MetricValue

        def pytest_robustaudit_register_metrics(metrics):
            metrics.register(Metric("kurtosis_mean", lambda stats: MetricValue(1.0), "mine"))
    """)
    pytester.makefile(".yaml", spec=spec_text(tiny_checkpoints["plain"], PASSING))
    result = run(pytester, "--audit", "spec.yaml")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["*metric 'kurtosis_mean' is registered twice: by robustaudit-builtin "
                                 "and by *conftest.py. Rename one of them*"])
    assert "Traceback" not in result.stdout.str() + result.stderr.str()
    assert "is registered twice" in (pytester.path / "robustaudit-report.html").read_text()


def test_one_metric_at_two_parameter_values_is_two_items_with_parametrize_ids(pytester, tiny_checkpoints):
    """outlier_count at factor 10 and at factor 100 on one layer: two items, each judged at its own
    factor; a (metric, layer) checked once keeps its plain id."""
    checks = """\
    kurtosis_mean: {min: 1}
    outlier_count:
      - {max: 0, factor: 10}
      - {max: 0, factor: 1000}
    """
    pytester.makefile(".yaml", spec=spec_text(tiny_checkpoints["planted"], checks))
    result = run(pytester, "--audit", "spec.yaml", "-v")
    result.stdout.re_match_lines([  # (fnmatch would read the brackets as a character class)
        re.escape("spec.yaml::representation::kurtosis_mean PASSED"),
        re.escape("spec.yaml::representation::outlier_count[factor=10] FAILED"),
        re.escape("spec.yaml::representation::outlier_count[factor=1000] PASSED"),
    ])
    assert "(factor=10) = 3 > max 0" in result.stdout.str()


def test_a_plugin_headline_metric_gets_its_own_summary_column(pytester, tiny_checkpoints):
    """The terminal table and the Markdown summary iterate over the metrics' declarations."""
    pytester.makeconftest("""
        from pytest_robustaudit import Metric, MetricValue

        def pytest_robustaudit_register_metrics(metrics):
            metrics.register(Metric("feature_width", lambda stats: MetricValue(float(stats.dim)),
                                    "the layer's width", headline="width"))
    """)
    pytester.makefile(".yaml", spec=spec_text(tiny_checkpoints["plain"], PASSING))
    result = run(pytester, "--audit", "spec.yaml", "--audit-markdown", "summary.md")
    result.assert_outcomes(passed=2)
    header = next(line for line in result.stdout.lines if line.startswith("model "))
    # top-1 and prunable read the head and labels: n/a on every row of this unlabelled run, so left out
    assert header.split() == ["model", "layer", "kurtosis", "rotated", "outliers", "width", "passed/total", "verdict"]
    assert any(line.rstrip().split()[-3:-2] == ["192"] or " 192 " in line for line in result.stdout.lines
               if line.startswith(("vit", "spec"))), result.stdout.str()
    assert "| feature_width |" in (pytester.path / "summary.md").read_text()
