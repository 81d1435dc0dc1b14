"""Intervals of the head metrics (issue 19 x issues 15/16): each family on known answers.

* accuracies (top-1, pruned) are exact binomial counts: Clopper-Pearson on correct / labelled;
* the head's effective rank is a function of its weights only: exact, no interval;
* importance share, outlier alignment and prunable fraction resample the images themselves
  (percentile bootstrap): the interval holds the value, is reproducible for a seed, narrows with
  more images, and a resample with no outlier feature is left out and said so.
"""

from __future__ import annotations

import numpy as np

from pytest_robustaudit.analyse.intervals import metric_interval
from pytest_robustaudit.metrics import BUILTIN_METRICS, LayerInputs
from pytest_robustaudit.metrics.bootstrap import binomial_interval

from test_directions import C, D, classifier, inputs_of, labels_from, rows_with_outliers, stats_of

METRICS = {m.name: m for m in BUILTIN_METRICS}


def _labelled_inputs(n_seed=0, rows=None):
    rows = rows_with_outliers(n_seed) if rows is None else rows
    rng = np.random.default_rng(5)
    head = classifier(rng.normal(size=(C, D)), rng.normal(size=C))
    return inputs_of(rows, head, labels_from(head, rows)), head


def _interval(name, inputs, params=None, audit="a"):
    metric = METRICS[name]
    measured = metric.evaluate(inputs, params)
    return measured, metric_interval(metric, inputs.stats, None, measured, params, audit=audit, inputs=inputs)


def test_accuracies_are_clopper_pearson_on_their_counts():
    inputs, _ = _labelled_inputs()
    for name, params in (("top1_accuracy", None), ("accuracy_at_pruning", {"p": 0.3})):
        measured, iv = _interval(name, inputs, params)
        expected = binomial_interval(measured.details["correct"], measured.details["labelled"])
        assert (iv.low, iv.high, iv.method) == (expected.low, expected.high, "Clopper-Pearson exact"), name
        assert iv.low <= measured.value <= iv.high and iv.n == 300


def test_effective_rank_is_exact():
    inputs, _ = _labelled_inputs()
    _, iv = _interval("head_effective_rank", inputs)
    assert iv.exact and not iv.has_interval


def test_resampled_head_metrics_hold_their_value_and_repeat_for_a_seed():
    inputs, _ = _labelled_inputs()
    for name in ("importance_top_share", "direction_outlier_alignment", "prunable_fraction"):
        measured, iv = _interval(name, inputs)
        again = _interval(name, _labelled_inputs()[0])[1]
        assert iv.method == "percentile bootstrap" and iv.resamples == 1000 and iv.n == 300, (name, iv)
        assert iv.low <= measured.value <= iv.high, (name, iv)
        assert (iv.low, iv.high) == (again.low, again.high), name
        assert "head (its SVD) is fixed" in iv.note
        other = _interval(name, inputs, audit="b")[1]       # another audit name: another seed
        assert np.isfinite(other.low), name
    # alignment on planted outlier features sits far above chance across resamples
    _, iv = _interval("direction_outlier_alignment", inputs)
    assert iv.low > 1.0


def test_the_top_share_interval_narrows_with_more_images():
    small, _ = _labelled_inputs(rows=rows_with_outliers(3)[:40])
    large, _ = _labelled_inputs(rows=np.concatenate([rows_with_outliers(s) for s in (3, 4, 5, 6)]))
    w_small = _interval("importance_top_share", small)[1]
    w_large = _interval("importance_top_share", large)[1]
    assert (w_large.high - w_large.low) < 0.7 * (w_small.high - w_small.low), (w_small, w_large)


def test_a_resample_without_outlier_features_is_left_out_and_said():
    rows = rows_with_outliers(planted=False)
    rows[:3, 7] = 5000.0         # three images carry the only outlier: some resamples miss all three
    inputs, _ = _labelled_inputs(rows=rows)
    measured, iv = _interval("direction_outlier_alignment", inputs)
    assert np.isfinite(measured.value)
    assert "resamples undefined and left out" in iv.note, iv


def test_a_loss_of_exactly_the_tolerance_is_within_it(monkeypatch):
    """17/1000 - 0.01 lies above 7/1000 in floating point: a drop of exactly the tolerance must still hold."""
    from types import SimpleNamespace

    from pytest_robustaudit.metrics import directions

    assert 7 / 1000 < 17 / 1000 - 0.01      # the rounding the check must not fall for
    monkeypatch.setattr(directions, "_labelled", lambda inputs: 1000)
    monkeypatch.setattr(directions, "accuracy_counts", lambda inputs: {"top1": 17})
    monkeypatch.setattr(directions, "pruning_curve",
                        lambda inputs, points: {"importance": [17 / 1000, 7 / 1000, 6 / 1000]})
    assert directions._prunable(SimpleNamespace(layer="representation"), 0.01, "0, 0.1, 0.2").value == 0.1


def test_a_sparse_layer_has_the_outliers_outlier_count_counts():
    """Most features dead (median |activation| 0): the alignment still finds the outlier that
    outlier_count finds (definition 2), instead of saying there is none."""
    rows = rows_with_outliers(planted=False)
    rows[:, 20:] = 0.0                 # 44 of 64 features dead: the profile's median is 0
    rows[:, 5] *= 200.0
    inputs, _ = _labelled_inputs(rows=rows)
    assert np.median(inputs.stats.profile) == 0
    count = METRICS["outlier_count"].evaluate(inputs).value
    aligned = METRICS["direction_outlier_alignment"].evaluate(inputs)
    assert count >= 1 and not aligned.undefined_reason, aligned
    assert 5 in aligned.details["outlier_features"]
