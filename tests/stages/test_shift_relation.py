"""The paper's relation across a run's audits (Spearman between an outlier metric and ER), and the
report's shifts section drawn from the shift metrics' details, also after a JSON record round trip."""

from __future__ import annotations

import math

import numpy as np
import pytest
from builders import make_result

from pytest_robustaudit import outlier_robustness_correlation
from pytest_robustaudit.metrics import MetricValue
from pytest_robustaudit.results.record import dumps, loads
from pytest_robustaudit.report.page import render_report


def _with_shifts(name, kurtosis, er, seed=0, clean=0.7, shifted=0.4):
    result = make_result(name, seed=seed)
    metrics = result.layers["representation"].metrics
    metrics["kurtosis_mean"] = MetricValue(kurtosis)
    shifts = {"imagenet-r": {"kind": "folder", "set": "imagenet_r", "accuracy": shifted, "correct": 40, "total": 100,
                             "classes": 200, "from_store": True},
              "objectnet": {"kind": "given", "set": "objectnet", "accuracy": 0.3, "source": "paper, table 2"}}
    common = {"clean": clean, "clean_source": "top-1 on the probe images", "layer": "representation"}
    pruning = {"imagenet-r": {"grid": [0.0, 0.5, 0.9], "importance": [shifted, shifted, 0.2], "unpruned": shifted}}
    metrics["shift_accuracy"] = MetricValue(0.35, {"shifts": shifts, "pruning": pruning, **common})
    metrics["effective_robustness"] = MetricValue(er, {"shift_accuracy": shifted, "method": "each shift against its "
                                                       "own baseline, then averaged (imagenet_r, objectnet)", **common})
    return result


def test_planted_monotone_relation_gives_rho_one_and_shuffled_about_zero():
    kurtosis = np.geomspace(3, 3000, 40)
    er = np.log(kurtosis) ** 3 / 100 - 0.1          # monotone, far from linear
    results = [_with_shifts(f"m{i}", float(k), float(e)) for i, (k, e) in enumerate(zip(kurtosis, er))]
    relation = outlier_robustness_correlation(results, "kurtosis_mean")
    assert relation.spearman.rho == 1.0 and relation.spearman.n == 40
    assert relation.models[0] == "m0" and relation.layers[0] == "representation"
    shuffled = np.random.default_rng(0).permutation(er)
    results = [_with_shifts(f"m{i}", float(k), float(e)) for i, (k, e) in enumerate(zip(kurtosis, shuffled))]
    loose = outlier_robustness_correlation(results, "kurtosis_mean").spearman
    assert abs(loose.rho) < 0.3 and loose.low < 0 < loose.high and loose.n == 40


def test_audits_without_er_are_left_out_and_named():
    results = [_with_shifts("a", 3.0, 0.1), _with_shifts("b", 5.0, 0.2), make_result("plain")]
    relation = outlier_robustness_correlation(results, "kurtosis_mean")
    assert relation.models == ("a", "b") and relation.spearman.rho is None  # 2 models: rho needs 3
    assert relation.left_out and relation.left_out[0].startswith("plain (effective_robustness")


def test_report_shows_shifts_scatter_and_correlation_and_survives_the_record():
    results = [_with_shifts(f"clip-{i}", k, e, seed=i, clean=c)
               for i, (k, e, c) in enumerate([(3.0, -0.02, 0.76), (40.0, 0.1, 0.65), (900.0, 0.24, 0.6), (12.0, 0.05, 0.7)])]
    html = render_report(results)
    assert 'id="shifts"' in html and "er-scatter" in html and 'class="baseline"' in html
    assert "relation-scatter" in html and "outlier-er-correlation" in html
    assert "+1.00" in html   # the planted ranking: kurtosis and ER in the same order
    assert "paper, table 2" in html and "40/100" in html
    # their ER averages per-shift baselines: the figure says it is not the height above the dashed line
    assert 'id="er-scatter-note"' in html and "clip-0, clip-1, clip-2, clip-3: fewer than the five" in html
    assert 'id="shift-prune-0-0-0"' in html and "Pruning curve on imagenet-r" in html
    _, again = loads(dumps(results))
    assert render_report(again).count("er-scatter") == html.count("er-scatter")
    assert 'id="shifts"' not in render_report([make_result("plain")])   # nothing to show: no section
