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

from .outlier_stats import CONSTANT_ULPS, LayerStats, null_band
from .bootstrap_profiles import kurtosis_rows, max_over_mean, max_over_median, outlier_margins
from .types import ChartReference, Evidence, Metric, MetricValue, Param

#: relative precision assumed by the helpers below when the caller does not say (float32)
_FLOAT32_EPS = float(np.finfo(np.float32).eps)


def _precision_words(stats: LayerStats) -> str:
    return f"{CONSTANT_ULPS:g} ulps of {stats.input_dtype} (max − min ≤ {CONSTANT_ULPS:g}·ε·max|h|, ε = {stats.eps:.3g})"


def _sample_stat(values: np.ndarray, how: Callable[[np.ndarray], float], stats: LayerStats,
                 what: str) -> MetricValue:
    defined = values[~np.isnan(values)]
    details = {"images": int(defined.size), "undefined_images": int(values.size - defined.size)}
    if what == "rotated" and stats.dim:
        details["null_band"] = list(null_band(stats.dim))
    if defined.size == 0:
        skipped = [note for note in stats.notes if "rotation" in note]  # records written before the fast rotation
        if what == "rotated" and skipped:
            return MetricValue(math.nan, details, "; ".join(skipped))
        why = ("the layer has a single feature (d = 1), and kurtosis across features needs at least 2"
               if stats.dim == 1 else
               f"every image's feature vector on layer '{stats.layer}' is constant to within "
               f"{_precision_words(stats)}: the layer is degenerate (collapsed)")
        return MetricValue(math.nan, details, f"kurtosis is undefined: {why}")
    return MetricValue(float(how(defined)), details)


def kurtosis(values: np.ndarray, eps: float = 0.0) -> float:
    """Non-excess kurtosis of a 1-D array (Gaussian = 3); NaN if constant at relative precision ``eps``
    (max − min ≤ 4·eps·max|v|; ``eps`` = 0: only an exactly constant array)."""
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0 or float(v.max() - v.min()) <= CONSTANT_ULPS * eps * float(np.abs(v).max()):
        return math.nan
    c = v - v.mean()
    m2 = float(np.mean(c * c))
    return float(np.mean(c ** 4) / (m2 * m2)) if m2 > 0 else math.nan


def dead_mask(profile: np.ndarray, eps: float = _FLOAT32_EPS) -> np.ndarray:
    """Dead features: m_i ≤ eps · max_j m_j (identically zero, or below the rounding unit of the layer's
    largest feature at the precision the activations were computed in)."""
    profile = np.asarray(profile, dtype=np.float64)
    top = float(profile.max()) if profile.size else 0.0
    return profile <= eps * top


def reference_scale(profile: np.ndarray, factor: float, eps: float = _FLOAT32_EPS) -> tuple[float, np.ndarray]:
    """The outlier threshold's reference scale s and the outlier mask (definition version 2).

    s is the mean |activation| of the live features (not :func:`dead_mask`) that are not outliers
    themselves: starting from S = ∅, repeat s = mean_{i live, i ∉ S} m_i, S = {i live : m_i > τ·s}
    until S stops growing (each step can only lower s and grow S, so it ends within d steps, in
    practice 1–3: the smallest self-consistent cut).  Why this scale:

    * dead features are left out, and near-dead ones can only lower s by their share of the live
      features (never collapse it as they collapse a median: a random-init RN50's pre-projection
      layer had 190 "outliers" over τ × median, 0 over τ × s);
    * found outliers are left out, so one huge feature does not mask smaller ones (as τ × the plain
      mean would);
    * outliers are a minority: k equal outliers are found while k < d_live/τ.

    Returns (s, mask); s is NaN when every feature is dead.
    """
    profile = np.asarray(profile, dtype=np.float64)
    live = ~dead_mask(profile, eps)
    outliers = np.zeros(profile.shape, dtype=bool)
    if not live.any():
        return math.nan, outliers
    while True:
        scale = float(profile[live & ~outliers].mean())
        grown = live & (profile > factor * scale)
        if np.array_equal(grown, outliers):
            return scale, outliers
        outliers = grown


def outlier_indices(profile: np.ndarray, factor: float, eps: float = _FLOAT32_EPS) -> np.ndarray:
    """Outlier features (m_i > τ × :func:`reference_scale`), largest first."""
    profile = np.asarray(profile, dtype=np.float64)
    _, mask = reference_scale(profile, factor, eps)
    idx = np.flatnonzero(mask)
    return idx[np.argsort(-profile[idx], kind="stable")]


def _outlier_margins(factor: float) -> Callable[[np.ndarray], np.ndarray]:
    """The interval's margins of ``outlier_count`` (definition 2): each resampled profile gets its own
    :func:`reference_scale`, and feature i counts where m_i − τ·s > 0 (docs/intervals.md)."""
    def reference(profiles: np.ndarray) -> np.ndarray:
        flat = np.asarray(profiles, dtype=np.float64).reshape(-1, profiles.shape[-1])
        scales = np.array([reference_scale(row, factor)[0] for row in flat])
        return np.nan_to_num(scales, nan=np.inf).reshape(profiles.shape[:-1])
    return outlier_margins(factor, reference)


def _dead_margins() -> Callable[[np.ndarray], np.ndarray]:
    """The interval's margins of ``dead_units``: feature i is dead where m_i ≤ ε · max_j m_j."""
    def margins(profiles: np.ndarray) -> np.ndarray:
        p = np.asarray(profiles, dtype=np.float64)
        tolerance = _FLOAT32_EPS * p.max(axis=-1, keepdims=True)
        return tolerance - p + (p <= tolerance) * np.finfo(np.float64).tiny
    return margins


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


def _kurtosis_across_features(values: np.ndarray, s: LayerStats, what: str) -> MetricValue:
    if s.dim < 2:
        return MetricValue(math.nan, undefined_reason="the layer has a single feature (d = 1)")
    value = kurtosis(values, s.eps)
    if math.isnan(value):
        return MetricValue(math.nan, undefined_reason=f"layer '{s.layer}' is degenerate: every feature has the same "
                                                      f"{what} to within {_precision_words(s)}")
    return MetricValue(value)


def _profile_kurtosis(s: LayerStats) -> MetricValue:
    return _kurtosis_across_features(s.profile, s, "mean |activation|")


def _kurtosis_of_mean(s: LayerStats) -> MetricValue:
    return _kurtosis_across_features(s.feature_mean, s, "mean activation")


def _dead_units(s: LayerStats) -> MetricValue:
    dead = dead_mask(s.profile, s.eps)
    idx = np.flatnonzero(dead)
    exact = int((s.profile[idx] == 0).sum())
    return MetricValue(float(idx.size), {"identically_zero": exact, "tolerance": f"m_i ≤ {s.eps:.3g} · max m",
                                         "indices": [int(i) for i in idx[:50]]})


def _outlier_count(s: LayerStats, factor: float) -> MetricValue:
    scale, mask = reference_scale(s.profile, factor, s.eps)
    if math.isnan(scale):
        return MetricValue(math.nan, undefined_reason=f"every feature of layer '{s.layer}' is dead (mean |activation| "
                                                      f"0 or at rounding level), so no outlier scale is defined")
    idx = np.flatnonzero(mask)
    idx = idx[np.argsort(-s.profile[idx], kind="stable")]
    dead = int(dead_mask(s.profile, s.eps).sum())
    return MetricValue(float(idx.size), {"factor": factor, "reference_scale": scale, "dead_units": dead,
                                         "indices": [int(i) for i in idx]})


def _outlier_fraction(s: LayerStats, factor: float) -> MetricValue:
    count = _outlier_count(s, factor)
    if count.undefined_reason:
        return count
    return MetricValue(count.value / s.dim, count.details)


_FACTOR = Param(float, 10.0, "τ: a feature is an outlier when its mean |activation| exceeds τ × the reference scale "
                             "(the mean over live, non-outlier features)", minimum=1.0)

_SAME = "same evidence as kurtosis"
_BAND = "3 ± 2√(24/d) for any representation (per image)"

BUILTIN_METRICS: tuple[Metric, ...] = (
    Metric("kurtosis_mean", _kurtosis_mean,
           "Mean over images of the kurtosis of each image's feature vector: how concentrated the activations are "
           "in a few coordinates (a few outlier features give a high value; k equal spikes among d features give "
           "about d/k, so it falls when outliers are many).",
           "mean_x κ(h(x)), κ(v) = mean_i (v_i−μ)^4 / (mean_i (v_i−μ)^2)^2", direction="higher",
           evidence=Evidence("indicator", "Crabbé et al. (TMLR 2024) found high activation kurtosis (a few outlier "
                                          "features) only in the robust zero-shot CLIP encoders they studied. An indicator "
                                          "across model families, not a guarantee for one checkpoint."),
           headline="kurtosis", control="rotated_kurtosis_mean", chart_reference=ChartReference(3.0, "3 = Gaussian"),
           chart_scale="log", interval="mean", interval_input="kurtosis", domain=(1.0, math.inf)),
    Metric("kurtosis_median", _kurtosis_median, "Median over images of the per-image kurtosis (concentration, as kurtosis_mean).",
           "median_x κ(h(x))", direction="higher",
           evidence=Evidence("indicator", "As kurtosis_mean; less sensitive to a few extreme images."), chart_scale="log",
           interval="median", interval_input="kurtosis", domain=(1.0, math.inf)),
    Metric("rotated_kurtosis_mean", _rotated_mean,
           f"Basis control: mean per-image kurtosis after a fixed random rotation; its null band is {_BAND}.",
           "mean_x κ(Q h(x)), Q = Π_r C S_r P_r (3 rounds: permutation, random signs, orthonormal DCT)",
           direction="neutral",
           evidence=Evidence("control", "Not a robustness signal: inside the null band 3 ± 2√(24/d) whatever the "
                                        "representation, when the tails live in the neuron basis. Outside it, the heavy "
                                        "tails are in every direction, not in specific coordinates."),
           headline="rotated", version=2, chart_scale="log", interval="mean", interval_input="rotated_kurtosis", domain=(1.0, math.inf)),
    Metric("rotated_kurtosis_median", _rotated_median,
           f"Basis control: median per-image kurtosis after the rotation (null band {_BAND}).",
           "median_x κ(Q h(x))", direction="neutral", evidence=Evidence("control", "As rotated_kurtosis_mean."), version=2,
           chart_scale="log", interval="median", interval_input="rotated_kurtosis", domain=(1.0, math.inf)),
    Metric("basis_kurtosis_ratio", _basis_ratio,
           "How privileged the neuron basis is: neuron-basis kurtosis over rotated kurtosis. Compare with the "
           "model family's own reference: ReLU CNNs sit near 2 even at random init (random resnet18 1.9, "
           "open_clip RN50 1.8), ViTs near 1 (docs/metrics.md).",
           "kurtosis_mean / rotated_kurtosis_mean", direction="higher",
           evidence=Evidence("indicator", "Outlier features induce privileged directions (paper, finding 3); this "
                                          "ratio is our test that the neuron basis is privileged, read against the "
                                          "family's random-init reference."), version=2,
           interval="ratio", interval_input=("kurtosis", "rotated_kurtosis"), domain=(0.0, math.inf)),
    Metric("profile_max_over_median", _max_over_median, "Largest mean |activation| of a feature relative to the median feature.",
           "max_i m_i / median_i m_i, m_i = mean_x |h_i(x)|", direction="higher",
           evidence=Evidence("indicator", "Outlier features seen directly in the activation profile; same evidence "
                                          "as kurtosis (our formula, after Bondarenko et al. 2023). Dead features pull "
                                          "the median down: read it with dead_units."),
           interval="extreme", interval_input=max_over_median, domain=(1.0, math.inf)),
    Metric("profile_max_over_mean", _max_over_mean, "Largest mean |activation| of a feature relative to the mean feature.",
           "max_i m_i / mean_i m_i", direction="higher",
           evidence=Evidence("indicator", "As profile_max_over_median; the mean is pulled up by the outliers themselves."),
           interval="extreme", interval_input=max_over_mean, domain=(1.0, math.inf)),
    Metric("profile_kurtosis", _profile_kurtosis,
           "Kurtosis of the activation profile across features: how concentrated the mean |activation| is in a few "
           "features.", "κ(m)", direction="higher",
           evidence=Evidence("indicator", f"Concentration of the activation profile; {_SAME} (our formula)."),
           interval="smooth", interval_input=kurtosis_rows, domain=(1.0, math.inf)),
    Metric("kurtosis_of_mean", _kurtosis_of_mean,
           "Kurtosis across features of the mean representation over images (the quantity DINOv2 and \"Massive "
           "Activations\" report). Not the mean of per-image kurtosis: signed features can cancel in the mean; on a "
           "non-negative layer it equals profile_kurtosis.",
           "κ(mean_x h(x))", direction="higher",
           evidence=Evidence("indicator", "Massive activations sit in fixed dimensions of every image, so they survive "
                                          f"the mean over images; {_SAME} (our formula)."),
           interval="smooth", interval_input=(kurtosis_rows, "signed"), domain=(1.0, math.inf)),
    Metric("outlier_count", _outlier_count,
           "Number of outlier features: mean |activation| above τ times the mean of the live, non-outlier features.",
           "|{i : m_i > τ · s}|, s = mean of m over live non-outliers (fixed point)", unit="features", direction="higher",
           params={"factor": _FACTOR},
           evidence=Evidence("indicator", "The outlier features themselves, counted at a threshold τ × s (our "
                                          f"formula); {_SAME}."),
           headline="outliers", version=2, integer=True, interval="count", interval_input=_outlier_margins, domain=(0.0, math.inf)),
    Metric("outlier_fraction", _outlier_fraction, "Fraction of features that are outliers.",
           "|{i : m_i > τ · s}| / d", direction="higher", params={"factor": _FACTOR},
           evidence=Evidence("indicator", "outlier_count / d; same evidence."), version=2,
           interval="count", interval_input=(_outlier_margins, "per_feature"), domain=(0.0, 1.0)),
    Metric("dead_units", _dead_units,
           "Features that are dead: mean |activation| identically 0, or at most ε × the largest feature's (ε: machine "
           "epsilon of the activations' dtype, 1.19e-7 for float32).",
           "|{i : m_i ≤ ε · max_j m_j}|", unit="features", direction="neutral",
           evidence=Evidence("informational", "Not a robustness signal: common in ReLU networks (18.8% of a random-init "
                                              "RN50's pre-projection features). Excluded from the outlier scale."),
           interval="count", interval_input=_dead_margins, domain=(0.0, math.inf)),
)
