"""Intervals of the head metrics (issue 19 x issues 15/16): each family on known answers.

* accuracies (top-1, pruned) are exact binomial counts: Clopper-Pearson on correct / labelled;
* the head's effective rank is a function of its weights only: exact, no interval;
* importance share, outlier alignment and prunable fraction resample the images themselves: the
  interval holds the value, is reproducible for a seed, narrows with more images;
* the share re-ranks by its own score in every resample (a winner's curse): its basic interval covers
  a known truth where the percentile interval does not; the alignment's outlier features are a
  threshold: its interval is the exact range over every outlier set the undecided features allow
  (its coverage on the real Lite0: benchmarks/measure_families.py, docs/intervals.md; issue 26).
"""

from __future__ import annotations

import numpy as np
import pytest

from types import SimpleNamespace

from pytest_robustaudit.analyse.intervals import LayerSample, metric_interval
from pytest_robustaudit.metrics import BUILTIN_METRICS, LayerInputs
from pytest_robustaudit.metrics import bootstrap as bs
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


#: the rule each self-resampling head metric's interval uses (the record's ``method``)
METHOD = {"importance_top_share": "basic bootstrap, n- and m-out-of-n hull",
          "direction_outlier_alignment": "percentile bootstrap over undecided selections",
          "prunable_fraction": "percentile bootstrap"}


def test_resampled_head_metrics_hold_their_value_and_repeat_for_a_seed():
    inputs, _ = _labelled_inputs()
    for name in ("importance_top_share", "direction_outlier_alignment", "prunable_fraction"):
        measured, iv = _interval(name, inputs)
        again = _interval(name, _labelled_inputs()[0])[1]
        assert iv.method == METHOD[name] and iv.resamples == 1000 and iv.n == 300, (name, iv)
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


def test_an_outlier_carried_by_three_images_is_undecided_and_said():
    rows = rows_with_outliers(planted=False)
    rows[:3, 7] = 5000.0         # three images carry the only outlier: the sample cannot decide it
    inputs, _ = _labelled_inputs(rows=rows)
    measured, iv = _interval("direction_outlier_alignment", inputs)
    assert np.isfinite(measured.value) and measured.details["outlier_features"] == [7]
    assert "0 sure, 1 undecided" in iv.note and iv.low <= measured.value <= iv.high, iv


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


# -- coverage on known truths (issue 26): trials drawn with replacement from a finite population ------------
def _light_inputs(rows, head):
    """What the head metrics read of a layer, without the summary's kurtosis and rotation (not read here)."""
    stats = SimpleNamespace(layer="representation", dim=rows.shape[1], n_images=rows.shape[0],
                            profile=np.abs(rows).astype(np.float64).mean(0))
    return LayerInputs(stats, "representation", lambda: iter([rows]), None, lambda: head)


def _coverage(name, params, population, head, n=100, trials=150, resamples=200):
    """Share of trials whose 95% interval holds the population's value, for the metric's interval and for
    the plain percentile interval of the same replicates (the method before issue 26)."""
    metric = METRICS[name]
    merged = {**metric.defaults(), **params}
    truth = metric.evaluate(_light_inputs(population, head), params).value
    rng = np.random.default_rng(11)
    held = plain = 0
    for t in range(trials):
        inputs = _light_inputs(population[rng.integers(0, len(population), n)], head)
        measured = metric.evaluate(inputs, params)
        sample = LayerSample(f"trial-{t}", "representation", tuple(map(str, range(n))), tuple(range(n)), 0,
                             resamples, None)
        iv = metric_interval(metric, inputs.stats, sample, measured, params, audit=f"trial-{t}", inputs=inputs)
        held += iv.low <= truth <= iv.high
        seed = bs.derive_seed(f"trial-{t}", "representation", name, merged)
        reps, _, _ = metric.interval_input(inputs, seed=seed, resamples=resamples, **merged)
        old = bs.percentile_interval(measured.value, reps.values, n=n)
        plain += old.low <= truth <= old.high
    return held / trials, plain / trials, truth


def test_the_top_share_covers_where_the_percentile_interval_does_not():
    """40 directions whose importances lie close together (a diagonal head, features of similar scale):
    the top-4 share of 100 images is biased upward and every resample's re-ranked share more so."""
    d = 40
    population = (np.random.default_rng(7).normal(size=(2000, d)) * np.linspace(1.5, 1.0, d)).astype(np.float32)
    head = classifier(np.diag(np.linspace(2.0, 1.0, d)))
    held, plain, _ = _coverage("importance_top_share", {}, population, head)
    assert plain < 0.8, plain          # the winner's curse, added twice
    assert held >= 0.88, held          # nominal 95%; 150 trials


def test_the_alignment_hull_is_the_exact_range_over_the_allowed_outlier_sets():
    """Per resample, the least and greatest mean loading over every outlier set between the sure
    features and the sure-or-undecided ones (never empty), checked against all the sets by brute force."""
    import itertools

    from pytest_robustaudit.metrics.directions import _mean_extremes

    rng = np.random.default_rng(3)
    per_feature = rng.random((6, 9))
    for sure, undecided in (([0, 4], [1, 2, 7]), ([], [3, 5, 6, 8]), ([2], [])):
        sets = [list(sure) + list(extra) for k in range(len(undecided) + 1)
                for extra in itertools.combinations(undecided, k) if sure or extra]
        means = np.array([[row[s].mean() for s in sets] for row in per_feature])
        low, high = _mean_extremes(per_feature, np.array(sure, dtype=int), np.array(undecided, dtype=int))
        np.testing.assert_allclose(low, means.min(axis=1))
        np.testing.assert_allclose(high, means.max(axis=1))


def test_the_interval_rule_is_recorded_and_no_kept_interval_can_go_stale():
    """The record keeps the method each interval used (read back unchanged); intervals kept in the store
    are only those of metrics that read the layer's summary alone, so a self-resampling head metric's
    interval is computed afresh in every audit (the rule it changed to cannot meet an older kept one)."""
    from pytest_robustaudit.analyse.kept_intervals import keepable
    from pytest_robustaudit.results.record import interval_from_json, interval_to_json

    inputs, _ = _labelled_inputs()
    for name in METHOD:
        _, iv = _interval(name, inputs)
        back = interval_from_json(interval_to_json(iv))
        assert (back.method, back.low, back.high) == (METHOD[name], iv.low, iv.high), name
        assert not keepable(METRICS[name]), name
    assert all(not keepable(m) for m in BUILTIN_METRICS if m.interval == "resampled")


def test_the_basic_rule_reflects_about_the_value_and_joins_the_m_out_of_n_interval():
    rng = np.random.default_rng(4)
    full, fewer, value = rng.normal(1.2, 0.1, 1000), rng.normal(1.3, 0.3, 1000), 1.0
    q_lo, q_hi = np.quantile(full, [0.025, 0.975])
    alone = bs.resampled_interval(value, bs.Replicates(full, "basic"), n=300)
    assert (alone.low, alone.high) == pytest.approx((2 - q_hi, 2 - q_lo)) and alone.method == "basic bootstrap"
    m_lo, m_hi = np.quantile(fewer, [0.025, 0.975])
    joined = bs.resampled_interval(value, bs.Replicates(full, "basic", fewer=(fewer, 0.5)), n=300)
    assert joined.low == pytest.approx(min(2 - q_hi, 1 - 0.5 * (m_hi - 1)))
    assert joined.high == pytest.approx(max(2 - q_lo, 1 - 0.5 * (m_lo - 1)))
    assert joined.method == "basic bootstrap, n- and m-out-of-n hull"
    with pytest.raises(ValueError, match="rule"):
        bs.Replicates(full, "bca")
