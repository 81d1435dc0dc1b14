"""The outlier-feature analysis: named functions of a :class:`~.outlier_stats.LayerStats` summary.

Each metric is a :class:`~.types.Metric` registered by name (built-ins through the same
``pytest_robustaudit_register_metrics`` hook third parties use).  A metric returns a
:class:`~.types.MetricValue`: the number, optional details (e.g. the outlier indices) and, when the
number is undefined (NaN), the reason in plain words, so a check can fail with an explanation rather
than a silent NaN.  Formulas and references: docs/metrics.md.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

from .bootstrap_profiles import kurtosis_rows, max_over_mean, max_over_median, outlier_margins
from .outlier_stats import LayerStats
from .types import ChartReference, Evidence, Metric, MetricValue, Param


def _sample_stat(values: np.ndarray, how: Callable[[np.ndarray], float], stats: LayerStats,
                 what: str) -> MetricValue:
    defined = values[~np.isnan(values)]
    details = {"images": int(defined.size), "undefined_images": int(values.size - defined.size)}
    if defined.size == 0:
        if what == "rotated" and stats.notes:
            return MetricValue(math.nan, details, "; ".join(stats.notes))
        why = ("the layer has a single feature (d = 1), and kurtosis across features needs at least 2"
               if stats.dim == 1 else
               f"every image's feature vector on layer '{stats.layer}' is constant (zero variance)")
        return MetricValue(math.nan, details, f"kurtosis is undefined: {why}")
    return MetricValue(float(how(defined)), details)


def kurtosis(values: np.ndarray) -> float:
    """Non-excess kurtosis of a 1-D array (Gaussian = 3); NaN if constant."""
    v = np.asarray(values, dtype=np.float64)
    c = v - v.mean()
    m2 = float(np.mean(c * c))
    return float(np.mean(c ** 4) / (m2 * m2)) if m2 > 0 else math.nan


def outlier_indices(profile: np.ndarray, factor: float) -> np.ndarray:
    """Features whose mean |activation| exceeds ``factor`` × the median over features, largest first."""
    median = float(np.median(profile))
    idx = np.flatnonzero(profile > factor * median)
    return idx[np.argsort(-profile[idx], kind="stable")]


def _ratio(numerator: float, denominator: float, what: str) -> MetricValue:
    if denominator <= 0:
        return MetricValue(math.nan, undefined_reason=f"{what} of the activation profile is 0 (the layer is all zeros for "
                                                      f"at least half of its features)")
    return MetricValue(numerator / denominator)


def _kurtosis_mean(s: LayerStats) -> MetricValue:
    return _sample_stat(s.kurtosis, np.mean, s, "neuron")


def _kurtosis_median(s: LayerStats) -> MetricValue:
    return _sample_stat(s.kurtosis, np.median, s, "neuron")


def _rotated_mean(s: LayerStats) -> MetricValue:
    return _sample_stat(s.rotated_kurtosis, np.mean, s, "rotated")


def _rotated_median(s: LayerStats) -> MetricValue:
    return _sample_stat(s.rotated_kurtosis, np.median, s, "rotated")


def _basis_ratio(s: LayerStats) -> MetricValue:
    neuron, rotated = _kurtosis_mean(s), _rotated_mean(s)
    for part in (neuron, rotated):
        if part.undefined_reason:
            return MetricValue(math.nan, undefined_reason=part.undefined_reason)
    return MetricValue(neuron.value / rotated.value, {"kurtosis_mean": neuron.value, "rotated_kurtosis_mean": rotated.value})


def _max_over_median(s: LayerStats) -> MetricValue:
    return _ratio(float(np.max(s.profile)), float(np.median(s.profile)), "the median")


def _max_over_mean(s: LayerStats) -> MetricValue:
    return _ratio(float(np.max(s.profile)), float(np.mean(s.profile)), "the mean")


def _profile_kurtosis(s: LayerStats) -> MetricValue:
    if s.dim < 2:
        return MetricValue(math.nan, undefined_reason="the layer has a single feature (d = 1)")
    value = kurtosis(s.profile)
    if math.isnan(value):
        return MetricValue(math.nan, undefined_reason="every feature has the same mean |activation|")
    return MetricValue(value)


def _outlier_count(s: LayerStats, factor: float) -> MetricValue:
    if float(np.median(s.profile)) <= 0:
        return MetricValue(math.nan, undefined_reason="the median of the activation profile is 0, so no outlier "
                                                      "factor relative to it is defined")
    idx = outlier_indices(s.profile, factor)
    return MetricValue(float(idx.size), {"factor": factor, "indices": [int(i) for i in idx]})


def _outlier_fraction(s: LayerStats, factor: float) -> MetricValue:
    count = _outlier_count(s, factor)
    if count.undefined_reason:
        return count
    return MetricValue(count.value / s.dim, count.details)


_FACTOR = Param(float, 10.0, "τ: a feature is an outlier when its mean |activation| exceeds τ × the median", minimum=1.0)

_SAME = "same evidence as kurtosis"

BUILTIN_METRICS: tuple[Metric, ...] = (
    Metric("kurtosis_mean", _kurtosis_mean, "Mean over images of the kurtosis of each image's feature vector.",
           "mean_x κ(h(x)), κ(v) = mean_i (v_i−μ)^4 / (mean_i (v_i−μ)^2)^2", direction="higher",
           evidence=Evidence("indicator", "Crabbé et al. (TMLR 2024) found high activation kurtosis (outlier features) "
                                          "only in the robust zero-shot CLIP encoders they studied. An indicator across "
                                          "model families, not a guarantee for one checkpoint."),
           headline="kurtosis", control="rotated_kurtosis_mean", chart_reference=ChartReference(3.0, "3 = Gaussian"),
           interval="mean", interval_input="kurtosis"),
    Metric("kurtosis_median", _kurtosis_median, "Median over images of the per-image kurtosis.",
           "median_x κ(h(x))", direction="higher",
           evidence=Evidence("indicator", "As kurtosis_mean; less sensitive to a few extreme images."),
           interval="median", interval_input="kurtosis"),
    Metric("rotated_kurtosis_mean", _rotated_mean,
           "Basis control: mean per-image kurtosis after a fixed random rotation (≈3 unless the outliers are spread over all directions).",
           "mean_x κ(Q h(x)), Q Haar-random orthogonal", direction="neutral",
           evidence=Evidence("control", "Not a robustness signal: ≈ 3 for a privileged basis. It tells outlier "
                                        "coordinates (drop after rotation) from heavy tails in every direction."),
           headline="rotated", interval="mean", interval_input="rotated_kurtosis"),
    Metric("rotated_kurtosis_median", _rotated_median, "Basis control: median per-image kurtosis after the rotation.",
           "median_x κ(Q h(x))", direction="neutral", evidence=Evidence("control", "As rotated_kurtosis_mean."),
           interval="median", interval_input="rotated_kurtosis"),
    Metric("basis_kurtosis_ratio", _basis_ratio,
           "How privileged the neuron basis is: neuron-basis kurtosis over rotated kurtosis (≫1: privileged basis).",
           "kurtosis_mean / rotated_kurtosis_mean", direction="higher",
           evidence=Evidence("indicator", "Outlier features induce privileged directions (paper, finding 3); this "
                                          "ratio is our test that the neuron basis is privileged."),
           interval="ratio", interval_input=("kurtosis", "rotated_kurtosis")),
    Metric("profile_max_over_median", _max_over_median, "Largest mean |activation| of a feature relative to the median feature.",
           "max_i m_i / median_i m_i, m_i = mean_x |h_i(x)|", direction="higher",
           evidence=Evidence("indicator", "Outlier features seen directly in the activation profile; same evidence "
                                          "as kurtosis (our formula, after Bondarenko et al. 2023)."),
           interval="extreme", interval_input=max_over_median),
    Metric("profile_max_over_mean", _max_over_mean, "Largest mean |activation| of a feature relative to the mean feature.",
           "max_i m_i / mean_i m_i", direction="higher",
           evidence=Evidence("indicator", "As profile_max_over_median; the mean is pulled up by the outliers themselves."),
           interval="extreme", interval_input=max_over_mean),
    Metric("profile_kurtosis", _profile_kurtosis, "Kurtosis of the activation profile across features.",
           "κ(m)", direction="higher",
           evidence=Evidence("indicator", f"Heavy tail of the activation profile; {_SAME} (our formula)."),
           interval="smooth", interval_input=kurtosis_rows),
    Metric("outlier_count", _outlier_count, "Number of outlier features.",
           "|{i : m_i > τ · median(m)}|", unit="features", direction="higher", params={"factor": _FACTOR},
           evidence=Evidence("indicator", "The outlier features themselves, counted at a threshold τ × median (our "
                                          f"formula); {_SAME}."),
           headline="outliers", interval="count", interval_input=outlier_margins),
    Metric("outlier_fraction", _outlier_fraction, "Fraction of features that are outliers.",
           "|{i : m_i > τ · median(m)}| / d", direction="higher", params={"factor": _FACTOR},
           evidence=Evidence("indicator", "outlier_count / d; same evidence."),
           interval="count", interval_input=(outlier_margins, "per_feature")),
)
