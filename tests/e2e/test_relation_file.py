"""Run-level relation checks (issue 17): a YAML file whose top level is ``relation:`` bounds Spearman's
rho between an outlier metric and effective robustness across the run's audits.

Four audits of one tiny factory model whose representation's channel 0 is scaled by 1, 3, 10, 30
(kurtosis across channels grows with it), each given ImageNet and ImageNet-R accuracies so ER
exists without shifted images: the ER order is planted, the relation is then ±1 by construction."""

from __future__ import annotations

import sys
import textwrap

import numpy as np
import pytest

from support import tiny_classifier_factory

FACTORY = tiny_classifier_factory()

SCALES = (1.0, 3.0, 10.0, 30.0)


def run(pytester, *args):
    return pytester.runpytest("-p", "no:randomly", *args)


@pytest.fixture
def audits(pytester):
    """``audits/`` with the factory, probe images and a writer of the four specs."""
    from PIL import Image

    root = pytester.path / "audits"
    (root / "images").mkdir(parents=True)
    (root / "tiny_relation_factory.py").write_text(FACTORY)
    rng = np.random.default_rng(0)
    for label in ("0", "1", "2"):
        (root / "images" / label).mkdir()
        for i in range(4):
            Image.fromarray(rng.integers(0, 255, (20, 24, 3), dtype=np.uint8)).save(root / "images" / label / f"{i}.png")

    def write(shifted_accuracies, scales=SCALES):
        for scale, shifted in zip(scales, shifted_accuracies):
            (root / f"tiny_x{scale:g}.yaml").write_text(textwrap.dedent(f"""\
                name: tiny-x{scale:g}
                model: {{source: factory, factory: tiny_relation_factory.py:build, options: {{scale: {scale}}}}}
                data: {{path: images, batch_size: 4}}
                layers: [representation]
                device: cpu
                shifts:
                  - {{name: imagenet, accuracy: 0.7, source: trial}}
                  - {{set: imagenet-r, accuracy: {shifted}, source: trial}}
                checks:
                  kurtosis_mean: {{min: -10}}
                """))
        return root

    sys.modules.pop("tiny_relation_factory", None)
    yield write
    sys.modules.pop("tiny_relation_factory", None)


RELATION = """\
relation:
  metric: kurtosis_mean
  min_rho: 0.5
"""


def test_planted_monotone_relation_passes_after_the_audits(audits, pytester):
    root = audits((0.2, 0.3, 0.4, 0.5))        # ER grows with the scale, as kurtosis does
    (root / "relation.yaml").write_text(RELATION)
    result = run(pytester, "--audit", "audits", "-v", "--no-audit-report")
    result.assert_outcomes(passed=5)
    lines = [line for line in result.stdout.lines if "PASSED" in line]
    assert lines[-1].startswith("audits/relation.yaml::relation::kurtosis_mean PASSED"), lines


def test_reversed_relation_fails_with_the_models_under_xdist(audits, pytester):
    """Under -n 2 the relation item runs on one worker, which audits there the specs it did not run."""
    pytest.importorskip("xdist", reason="pytest-xdist is not installed")
    root = audits((0.5, 0.4, 0.3, 0.2))
    (root / "relation.yaml").write_text(RELATION)
    result = run(pytester, "--audit", "audits", "--no-audit-report", "-n", "2")
    result.assert_outcomes(passed=4, failed=1)
    out = result.stdout.str()
    assert "Spearman rho(kurtosis_mean, effective_robustness) = -1.000 [-1.000, -1.000] (95% interval) over 4 " \
           "models: rho < min_rho 0.5" in out, out
    assert "required: rho ≥ 0.5" in out
    assert "models by kurtosis_mean (4; kurtosis_mean, ER): tiny-x1 (1.8" in out and "tiny-x30 (4.1" in out
    assert "no audit result reached the report" not in out and "Traceback" not in out


def test_interval_gate_needs_an_interval(audits, pytester):
    root = audits((0.2, 0.3, 0.4), scales=SCALES[:3])   # 3 models: rho, but no interval (it needs 4)
    (root / "relation.yaml").write_text(RELATION + "  confidence: 0.9\n")
    result = run(pytester, "--audit", "audits", "--no-audit-report")
    result.assert_outcomes(passed=3, failed=1)
    out = result.stdout.str()
    assert "= 1.000 over 3 models: inconclusive, no interval" in out, out
    assert "required: rho ≥ 0.5 with 90% confidence (the whole interval)" in out


def test_fewer_than_three_models_fail_saying_why(audits, pytester):
    root = audits((0.2, 0.3), scales=(1.0, 3.0))
    (root / "broken.yaml").write_text("model: {source: factory, factory: tiny_relation_factory.py:nothing}\n"
                                      "data: {path: images}\ndevice: cpu\nchecks: {kurtosis_mean: {min: 0}}\n")
    (root / "no_er.yaml").write_text("name: no-er\nmodel: {source: factory, factory: tiny_relation_factory.py:build}\n"
                                     "data: {path: images}\nlayers: [representation]\ndevice: cpu\n"
                                     "checks: {kurtosis_mean: {min: 0}}\n")
    (root / "relation.yaml").write_text(RELATION)
    result = run(pytester, "--audit", "audits", "--no-audit-report")
    out = result.stdout.str()
    assert "could not be measured: only 2 audited models with both kurtosis_mean and ER" in out, out
    assert "needs at least 3" in out
    assert "broken (could not be audited: " in out
    assert "no-er (effective_robustness: " in out
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def test_bad_keys_are_located_spec_errors(pytester):
    pytester.mkdir("audits")
    (pytester.path / "audits" / "relation.yaml").write_text(
        "relation:\n  metric: kurtosis_maen\n  min_rho: 1.5\n  confidense: 0.9\n")
    result = run(pytester, "--audit", "audits", "--no-audit-report")
    out = result.stdout.str()
    assert result.ret != pytest.ExitCode.OK
    assert "invalid relation file (3 problems):" in out, out
    assert "relation.yaml:2" in out and "relation.metric" in out and "kurtosis_mean" in out, out
    assert "relation.yaml:3" in out and "relation.min_rho" in out and "[-1, 1]" in out
    assert "relation.yaml:4" in out and "unknown key 'confidense'" in out and "confidence" in out


def test_validate_accepts_a_relation_file(pytester, tmp_path):
    from pytest_robustaudit.__main__ import main

    (tmp_path / "relation.yaml").write_text("relation:\n  metric: outlier_count\n  max_rho: 0.9\n  confidence: 0.9\n")
    assert main(["validate", str(tmp_path / "relation.yaml")]) == 0
    (tmp_path / "relation.yaml").write_text("relation:\n  metric: outlier_count\n")
    assert main(["validate", str(tmp_path / "relation.yaml")]) == 1



def test_a_relation_on_a_metric_no_check_reads_is_planned_in_every_audit(audits, pytester):
    """The relation's metric is computed by every audit it relates, though no spec checks it (issue 24)."""
    import json

    root = audits((0.2, 0.3, 0.4, 0.5))
    (root / "relation.yaml").write_text("relation:\n  metric: importance_top_share\n  min_rho: -1\n")
    result = run(pytester, "--audit", "audits", "--no-audit-report", "--audit-json", "record.json")
    result.assert_outcomes(passed=5)
    record = json.loads((pytester.path / "record.json").read_text())
    for audit in record["audits"]:
        assert "relation relation.yaml" in audit["plan"]["planned"]["importance_top_share"]["why"]
        assert "relation relation.yaml" in audit["plan"]["planned"]["effective_robustness"]["why"]
