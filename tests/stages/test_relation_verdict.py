"""The verdict of a run-level relation check (metrics.relation.relation_verdict) and the parsing of a
relation file (spec.relation_section): pure, on stand-ins for audit results."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from pytest_robustaudit.errors import SpecError
from pytest_robustaudit.metrics import MetricValue
from pytest_robustaudit.metrics.relation import outlier_robustness_correlation, relation_verdict
from pytest_robustaudit.registries import standalone
from pytest_robustaudit.spec import load_audit_file
from pytest_robustaudit.spec.schema import RelationSpec


def audit(name, kurtosis, er):
    metrics = {"kurtosis_mean": MetricValue(kurtosis), "effective_robustness": MetricValue(er)}
    return SimpleNamespace(name=name, layers={"representation": SimpleNamespace(metrics=metrics)})


KURTOSIS = [3.1, 4.0, 9.5, 27.0, 140.0, 800.0]


def relation(er, level=0.95, kurtosis=KURTOSIS):
    return outlier_robustness_correlation([audit(f"m{i}", k, e) for i, (k, e) in enumerate(zip(kurtosis, er))],
                                          level=level)


NOISY = [-0.02, 0.05, 0.01, 0.12, 0.24, 0.20]   # rho 0.886, 95% interval [0.23, 0.99] (docs/robustness.md)


def test_estimate_against_the_bounds():
    found = relation(NOISY)
    assert found.spearman.rho == pytest.approx(0.8857, abs=1e-4)
    assert relation_verdict(found, min_rho=0.5).status == "pass"
    failed = relation_verdict(found, max_rho=0.5)
    assert not failed.passed and failed.status == "fail"
    assert "= 0.886 [0.23" in failed.message and "over 6 models: rho > max_rho 0.5" in failed.message
    assert "required: rho ≤ 0.5" in failed.message
    assert "models by kurtosis_mean (6; kurtosis_mean, ER): m0 (3.1, -0.02), m1 (4, +0.05)" in failed.message


def test_interval_inside_outside_and_straddling():
    found = relation(NOISY)
    assert relation_verdict(found, min_rho=0.2, confidence=0.95).passed           # [0.23, 0.99] ≥ 0.2
    straddles = relation_verdict(found, min_rho=0.5, confidence=0.95)             # 0.886 ≥ 0.5, but 0.23 < 0.5
    assert not straddles.passed and "inconclusive, the interval straddles a bound" in straddles.message
    assert straddles.status == "inconclusive"
    outside = relation_verdict(relation([-x for x in NOISY]), min_rho=0.1, confidence=0.95)
    assert not outside.passed and "the whole interval is outside the bounds" in outside.message
    assert outside.status == "fail"


def test_too_few_models_and_left_out_fail_saying_why():
    found = outlier_robustness_correlation([audit("a", 3.0, 0.1), audit("b", 5.0, 0.2),
                                            audit("c", 7.0, float("nan"))])
    verdict = relation_verdict(found, min_rho=0.0, errors=["d (could not be audited: boom)"])
    assert not verdict.passed and verdict.status == "error"   # not measurable: never a pass
    assert "only 2 audited models with both kurtosis_mean and ER: a rank correlation needs at least 3" in verdict.message
    assert "left out: c (effective_robustness: not finite); d (could not be audited: boom)" in verdict.message
    constant = relation_verdict(relation([0.1] * 6), min_rho=-1.0)
    assert not constant.passed and "could not be measured" in constant.message and constant.status == "error"


def test_a_relation_file_parses_with_defaults(tmp_path):
    file = tmp_path / "relation.yaml"
    found = load_audit_file(file, standalone(), text="relation:\n  min_rho: -0.2\n  max_rho: 1\n")
    assert isinstance(found, RelationSpec)
    assert (found.metric, found.layer, found.min_rho, found.max_rho, found.confidence) == \
        ("kurtosis_mean", None, -0.2, 1.0, None)


@pytest.mark.parametrize("text, where, words", [
    ("relation:\n  metric: kurtosis_mean\n", "relation", "no bound: give min_rho and/or max_rho"),
    ("relation:\n  min_rho: high\n", "relation.min_rho", "expected a correlation between -1 and 1"),
    ("relation:\n  min_rho: 0.5\n  max_rho: 0.2\n", "relation.min_rho", "is above max_rho"),
    ("relation:\n  min_rho: 0.5\n  confidence: 2\n", "relation.confidence", "strictly between 0.5 and 1"),
    ("relation:\n  min_rho: 0.5\n  metric: effective_robustness\n", "relation.metric", "always 1"),
    ("relation:\n  min_rho: 0.5\nname: x\n", "name", "unknown key 'name'"),
    ("relation: 0.5\n", "relation", "expected a mapping"),
])
def test_bad_relation_files_are_located(tmp_path, text, where, words):
    with pytest.raises(SpecError) as caught:
        load_audit_file(tmp_path / "relation.yaml", standalone(), text=text)
    message = str(caught.value)
    assert f"relation.yaml:" in message and f" {where}: " in message and words in message, message
