"""Confidence intervals (metrics/bootstrap*.py) and verdicts (metrics/verdicts.py) on synthetic populations.

Coverage trials: 200 seeded samples from a population whose metric value is known; a nominal 95%
interval must cover it in 90-99% of them.  They use 300-400 resamples rather than 1,000: the
coverage rate averages the resampling noise of the interval ends over the trials, and the test
stays within a few seconds (docs/intervals.md gives the 1,000-resample figures).  The coverage
trials stream each sample as one chunk (many small matrix products are slow under a contended
multi-threaded BLAS); chunking itself is tested for identical results separately.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from pytest_robustaudit.metrics import bootstrap as bs
from pytest_robustaudit.metrics import bootstrap_profiles as bp
from pytest_robustaudit.metrics.verdicts import images_to_settle, sided_for, verdict

TRIALS = 200


def kurt_rows(h: np.ndarray) -> np.ndarray:
    c = h - h.mean(axis=-1, keepdims=True)
    return (c ** 4).mean(axis=-1) / ((c ** 2).mean(axis=-1)) ** 2


def coverage(intervals, truth) -> float:
    return float(np.mean([iv.low <= truth <= iv.high for iv in intervals]))


def chunked(h: np.ndarray, size: int = 64):
    return [h[i:i + size] for i in range(0, len(h), size)]


# ---- coverage per family ---------------------------------------------------------------------------------------

def test_mean_of_per_image_values_bca_covers_a_skewed_truth():
    shape, scale = 2.0, 3.0                      # gamma: right-skewed like per-image kurtosis, mean 6
    ivs = [bs.per_image_interval(np.random.default_rng(t).gamma(shape, scale, 60), "mean", seed=t, resamples=400)
           for t in range(TRIALS)]
    assert all(iv.method == "BCa bootstrap" for iv in ivs)
    assert 0.90 <= coverage(ivs, shape * scale) <= 0.99


def test_median_of_per_image_values_percentile_covers():
    truth = math.log(2) * 4.0                    # median of an exponential with mean 4
    ivs = [bs.per_image_interval(np.random.default_rng(t).exponential(4.0, 81), "median", seed=t, resamples=400)
           for t in range(TRIALS)]
    assert ivs[0].method == "percentile bootstrap"
    assert 0.90 <= coverage(ivs, truth) <= 0.99


def test_ratio_of_means_covers_and_ignores_undefined_images():
    ivs = []
    for t in range(TRIALS):
        rng = np.random.default_rng(t)
        num, den = rng.gamma(2.0, 5.0, 80), 3 + rng.standard_normal(80) * 0.3
        num[:3] = np.nan                         # images whose kurtosis is undefined
        ivs.append(bs.per_image_interval((num, den), "ratio_of_means", seed=t, resamples=400))
    assert 0.90 <= coverage(ivs, 10.0 / 3.0) <= 0.99
    assert ivs[-1].value == pytest.approx(np.nanmean(num) / den.mean())


def test_profile_extreme_m_out_of_n_covers_with_tied_top_features():
    mu = np.linspace(0.5, 1.5, 100)
    mu[:2] = 5.0                                 # two tied largest features: the non-smooth case
    truth = mu.max() / np.median(mu)
    ivs = []
    for t in range(TRIALS):
        h = np.random.default_rng(t).exponential(mu, size=(200, mu.size))
        res = bp.resample_profiles([h], len(h), seed=t, resamples=300)
        ivs.append(bp.profile_interval(res, bp.max_over_median))
    assert ivs[0].method == "m-out-of-n bootstrap" and res.m == bp.default_m(200) < 200
    assert 0.90 <= coverage(ivs, truth) <= 0.99


def test_profile_smooth_functional_basic_log_covers():
    mu = np.linspace(0.5, 1.5, 64)             # a flat profile: the noise of 64 means biases its kurtosis
    truth = float(kurt_rows(mu))
    ivs = []
    for t in range(TRIALS):
        h = np.random.default_rng(t).exponential(mu, size=(200, mu.size))
        res = bp.resample_profiles([h], len(h), seed=t, resamples=300, m=len(h))
        ivs.append(bp.profile_interval(res, bp.kurtosis_rows))
    assert ivs[0].method == "basic bootstrap (log scale)"
    assert 0.90 <= coverage(ivs, truth) <= 0.99


def test_thresholded_count_covers_with_features_on_the_threshold():
    """outlier_count at factor 10: two features far above, two exactly at 10 x median (not counted)."""
    bulk = np.linspace(0.5, 1.5, 97)
    median = float(np.median(np.concatenate([bulk, [30.0] * 4])))
    mu = np.concatenate([bulk, [30.0, 30.0, 10 * median, 10 * median]])
    truth = int(np.count_nonzero(mu > 10 * np.median(mu)))
    assert truth == 2
    ivs = []
    for t in range(TRIALS):
        h = np.random.default_rng(t).exponential(mu, size=(200, mu.size))
        res = bp.resample_profiles([h], len(h), seed=t, resamples=300)
        ivs.append(bp.count_interval(res, bp.outlier_margins(10.0)))
    assert 0.90 <= coverage(ivs, truth) <= 0.99
    assert all(iv.low <= iv.value <= iv.high and float(iv.low).is_integer() for iv in ivs)


def test_count_far_from_threshold_is_exact_and_dead_units_are_found():
    rng = np.random.default_rng(0)
    h = np.abs(rng.standard_normal((150, 40)))
    h[:, :3] *= 40                               # three clear outliers
    h[:, 10:15] = 0.0                            # five dead units
    res = bp.resample_profiles(chunked(h), len(h), seed=1, resamples=300)
    out = bp.count_interval(res, bp.outlier_margins(10.0))
    dead = bp.count_interval(res, bp.dead_margins())
    assert (out.value, out.low, out.high) == (3, 3, 3)
    assert (dead.value, dead.low, dead.high) == (5, 5, 5)


def test_accuracy_clopper_pearson_covers_and_is_exact_at_the_edges():
    p, n = 0.7, 120
    ivs = [bs.binomial_interval(int(np.random.default_rng(t).binomial(n, p)), n) for t in range(TRIALS)]
    assert 0.90 <= coverage(ivs, p) <= 0.99
    assert bs.binomial_interval(0, 10).low == 0.0 and bs.binomial_interval(10, 10).high == 1.0
    # the textbook value: 0 of 10 at 95% two-sided has upper end 1 - 0.025 ** (1/10)
    assert bs.binomial_interval(0, 10).high == pytest.approx(1 - 0.025 ** 0.1)


# ---- determinism and seeding -----------------------------------------------------------------------------------

def test_same_seed_same_interval_and_seed_depends_only_on_the_inputs():
    seed = bs.derive_seed("audit", "representation", "kurtosis_mean", {"factor": 10})
    assert seed == bs.derive_seed("audit", "representation", "kurtosis_mean", {"factor": 10})
    assert seed != bs.derive_seed("audit", "representation", "kurtosis_mean", {"factor": 100})
    assert seed != bs.derive_seed("audit", "blocks.-1", "kurtosis_mean", {"factor": 10})
    assert seed == 2206477748065872766            # stable across runs, machines and Python versions
    x = np.random.default_rng(3).gamma(2.0, 2.0, 50)
    assert bs.per_image_interval(x, seed=seed) == bs.per_image_interval(x, seed=seed)
    assert bs.per_image_interval(x, seed=seed) != bs.per_image_interval(x, seed=seed + 1)
    h = np.abs(np.random.default_rng(4).standard_normal((90, 16)))
    one = bp.profile_interval(bp.resample_profiles(chunked(h, 7), 90, seed=seed), bp.max_over_median)
    assert one == bp.profile_interval(bp.resample_profiles(chunked(h, 7), 90, seed=seed), bp.max_over_median)
    two = bp.profile_interval(bp.resample_profiles([h], 90, seed=seed), bp.max_over_median)
    # chunking changes only the order of float64 sums
    assert (one.value, one.low, one.high) == pytest.approx((two.value, two.low, two.high), rel=1e-12)


def test_one_pass_with_two_sizes_equals_two_passes_and_rows_select_images():
    h = np.abs(np.random.default_rng(5).standard_normal((60, 12)))
    moon, full = bp.resample_profiles(chunked(h, 25), 60, seed=9, resamples=50, m=(bp.default_m(60), 60))
    assert np.allclose(moon.resampled, bp.resample_profiles([h], 60, seed=9, resamples=50).resampled, rtol=1e-12)
    assert np.allclose(full.resampled, bp.resample_profiles([h], 60, seed=9, resamples=50, m=60).resampled, rtol=1e-12)
    assert moon.m == bp.default_m(60) and full.m == 60
    # rows: only the listed store rows take part, in the listed order
    perm = np.random.default_rng(6).permutation(60)[:40]
    sel = bp.resample_profiles(chunked(h, 25), seed=9, resamples=50, rows=perm)
    ref = bp.resample_profiles([h[perm]], 40, seed=9, resamples=50)
    assert np.allclose(sel.resampled, ref.resampled) and np.allclose(sel.observed, h[perm].mean(axis=0))
    with pytest.raises(ValueError, match="59 rows were streamed for weights drawn over 60"):
        bp.resample_profiles([h[:59]], 60, seed=9, resamples=5)


def test_weighted_statistics_with_unit_weights_are_numpy_s():
    for n in (7, 8):
        x = np.random.default_rng(n).standard_normal(n)
        x[2] = np.nan
        ones = np.ones((1, n))
        assert bs._weighted_medians(x, ones)[0] == np.nanmedian(x)
        assert bs._weighted_means(x[:, None], ones)[0, 0] == pytest.approx(np.nanmean(x))
        twice = bs._weighted_medians(x, np.where(np.arange(n) == 0, 2.0, 1.0)[None, :])[0]
        assert twice == np.nanmedian(np.concatenate([x, x[:1]]))


def test_a_profile_statistic_that_does_not_vectorise_gives_the_same_interval():
    h = np.abs(np.random.default_rng(7).standard_normal((80, 20)))
    res = bp.resample_profiles([h], 80, seed=2, resamples=100)
    plain = bp.profile_interval(res, lambda p: float(np.max(p) / np.median(p)))
    assert plain == bp.profile_interval(res, bp.max_over_median)


# ---- paired differences ----------------------------------------------------------------------------------------

def _model_rows(seed: int, n: int = 150, d: int = 64) -> np.ndarray:
    return np.maximum(np.random.default_rng(seed).standard_normal((n, d)), 0) + 0.05


def test_paired_difference_detects_planted_outliers_but_not_a_rescaling():
    a = _model_rows(0)
    b = a.copy()
    b[:, :4] *= 30                               # planted outlier features
    idx = np.arange(len(a))
    order = np.random.default_rng(1).permutation(len(a))      # model b's store holds the images in another order
    b_stored, b_index = b[order], np.argsort(order)
    diff = bs.paired_difference(kurt_rows(b_stored), kurt_rows(a), b_index, idx, seed=3)
    assert diff.excludes(0) and diff.value > 0 and "paired" in diff.method
    pa, pb = bp.resample_profiles_paired(chunked(b_stored), chunked(a), b_index, idx, seed=3)
    prof = bp.paired_profile_difference(pa, pb, bp.max_over_median)
    assert prof.excludes(0) and prof.value > 0
    rescaled = bs.paired_difference(kurt_rows(3 * a), kurt_rows(a), idx, idx, seed=3)
    assert max(abs(rescaled.value), abs(rescaled.low), abs(rescaled.high)) < 1e-9   # kurtosis is scale-invariant


def test_paired_difference_of_a_1e4_perturbation_is_indistinguishable_from_zero():
    same_kurt, same_prof = [], []
    for t in range(40):
        a = _model_rows(100 + t)
        b = a * (1 + 1e-4 * np.random.default_rng(t).standard_normal(a.shape))
        idx = np.arange(len(a))
        same_kurt.append(not bs.paired_difference(kurt_rows(b), kurt_rows(a), idx, idx, seed=t, resamples=300).excludes(0))
        pa, pb = bp.resample_profiles_paired([b], [a], idx, idx, seed=t, resamples=300)
        same_prof.append(not bp.paired_profile_difference(pa, pb, bp.max_over_mean).excludes(0))
    assert np.mean(same_kurt) >= 0.9 and np.mean(same_prof) >= 0.9


def test_unpaired_fallback_says_so_and_is_wider():
    rng = np.random.default_rng(8)
    a, b = rng.gamma(2, 3, 100), rng.gamma(2, 3, 100) + 0.5
    ia, ib = bs.per_image_interval(a, seed=1), bs.per_image_interval(b, seed=2)
    un = bs.unpaired_difference(ia, ib)
    assert un.note.startswith("unpaired") and un.value == pytest.approx(ia.value - ib.value)
    assert un.high - un.low > max(ia.high - ia.low, ib.high - ib.low)
    exact = bs.no_interval(6.0, exact=True, note="given in the spec")
    assert bs.unpaired_difference(ia, exact).high - bs.unpaired_difference(ia, exact).low == pytest.approx(
        ia.high - ia.low, rel=0.05)


# ---- one-sided intervals ---------------------------------------------------------------------------------------

def test_one_sided_bounds_hold_at_the_level_and_equal_the_two_sided_2c_minus_1_interval():
    x = np.random.default_rng(9).gamma(2.0, 3.0, 70)
    lower = bs.per_image_interval(x, seed=5, sided="lower")
    two90 = bs.per_image_interval(x, seed=5, level=0.90)
    two95 = bs.per_image_interval(x, seed=5)
    assert (lower.low, lower.high) == pytest.approx((two90.low, two90.high), rel=1e-12) and lower.low > two95.low
    held = [bs.per_image_interval(np.random.default_rng(t).gamma(2.0, 3.0, 60), seed=t, resamples=300,
                                  sided="lower").low <= 6.0 for t in range(TRIALS)]
    assert 0.90 <= np.mean(held) <= 0.99
    assert sided_for(5, None) == "lower" and sided_for(None, 0) == "upper" and sided_for(1, 2) == "two-sided"
    with pytest.raises(ValueError, match="sided"):
        bs.per_image_interval(x, seed=1, sided="left")


# ---- verdicts --------------------------------------------------------------------------------------------------

def test_tiny_probe_set_is_inconclusive_with_interval_bound_and_images_to_settle():
    x = np.random.default_rng(10).gamma(2.0, 7.0, 11)          # 11 images, like the shipped photos
    iv = bs.per_image_interval(x, seed=1, sided="lower")
    bound = iv.value - 0.4 * (iv.value - iv.low)                # below the value, inside the interval
    v = verdict("kurtosis_mean", iv, minimum=bound, confidence=True)
    assert v.outcome == "inconclusive"
    assert f"{bound:g}" in v.message and "straddles the minimum" in v.message
    assert f"[{iv.low:.4g}, {iv.high:.4g}]" in v.message and f"about {v.images_needed} images" in v.message
    assert v.images_needed == math.ceil(11 / 0.4 ** 2)
    # the same check without confidence gates on the value, and still shows the interval
    plain = verdict("kurtosis_mean", iv, minimum=bound)
    assert plain.outcome == "pass" and f"[{iv.low:.4g}, {iv.high:.4g}]" in plain.message


def test_conclusive_pass_and_fail_and_exact_metrics():
    iv = bs.Interval(10.0, 9.0, 11.0, 0.95, "BCa bootstrap", "two-sided", 1000, 500)
    assert verdict("m", iv, minimum=8, maximum=12, confidence=True).outcome == "pass"
    assert verdict("m", iv, maximum=8.5, confidence=True).outcome == "fail"
    assert "whole 95% interval is below the minimum 12" in verdict("m", iv, minimum=12, confidence=True).message
    both = verdict("m", iv, minimum=9.5, maximum=10.5, confidence=True)
    assert both.outcome == "inconclusive" and "the minimum 9.5 and the maximum 10.5" in both.message
    exact = bs.no_interval(0.7, exact=True, note="accuracy given in the spec")
    v = verdict("accuracy", exact, minimum=0.8, confidence=True)
    assert v.outcome == "fail" and "exact" in v.message and "no interval" in v.message
    assert verdict("m", bs.Interval(math.nan, math.nan, math.nan, 0.95, "x"), minimum=1).outcome == "fail"


def test_images_to_settle_scales_the_half_width():
    iv = bs.Interval(10.0, 8.0, 13.0, 0.95, "BCa bootstrap", n=100, resamples=1000)
    assert images_to_settle(iv, 9.0) == 400                    # half-width 2 must shrink to 1: 4x the images
    assert images_to_settle(iv, 12.0) == 225                   # upper half-width 3 -> 2
    assert images_to_settle(iv, 10.0) is None


def test_the_example_in_docs_intervals_runs():
    import re

    from support import REPO

    blocks = re.findall(r"```python\n(.*?)```", (REPO / "docs" / "intervals.md").read_text(), re.S)
    assert blocks
    for code in blocks:
        exec(compile(code, "docs/intervals.md", "exec"), {})


def test_an_undecided_count_says_how_many_images_would_decide_it():
    """outlier_count {max: 0} with one feature near the threshold: the value 0 sits on the bound."""
    rng = np.random.default_rng(11)
    mu = np.concatenate([np.full(39, 1.0), [11.0]])          # one feature just above 10 x median
    h = rng.exponential(mu, size=(12, mu.size))
    res = bp.resample_profiles([h], 12, seed=1, resamples=400)
    iv = bp.count_interval(res, bp.outlier_margins(10.0), sided="upper")
    assert iv.low < iv.high and iv.settle_n is not None and iv.settle_n > 12
    v = verdict("outlier_count", iv, maximum=0, confidence=True)
    assert v.outcome == "inconclusive" and v.images_needed == iv.settle_n
    assert f"about {iv.settle_n} images would settle it (now 12)" in v.message


def test_the_method_can_be_asked_for_and_a_median_keeps_percentile():
    from pytest_robustaudit.metrics.bootstrap import METHODS, per_image_interval
    from pytest_robustaudit.spec.load import BOOTSTRAP_METHODS

    assert BOOTSTRAP_METHODS == METHODS
    values = np.random.default_rng(3).gamma(2.0, 3.0, size=80)
    auto = per_image_interval(values, "mean", seed=7)
    plain = per_image_interval(values, "mean", seed=7, method="percentile")
    weights = bs.resample_weights(80, 1000, 7)
    expected = np.quantile(weights @ values / 80, [0.025, 0.975])
    assert (plain.method, auto.method) == ("percentile bootstrap", "BCa bootstrap")
    np.testing.assert_allclose([plain.low, plain.high], expected, rtol=1e-12)
    assert (auto.low, auto.high) != (plain.low, plain.high)      # BCa corrects the skew the percentile ignores
    median = per_image_interval(values, "median", seed=7, method="bca")
    assert median.method == "percentile bootstrap" and "BCa asked for" in median.note
    with pytest.raises(ValueError, match="method must be one of"):
        per_image_interval(values, "mean", seed=7, method="jackknife")
