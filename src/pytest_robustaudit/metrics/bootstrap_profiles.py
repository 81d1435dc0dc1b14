"""Intervals for metrics of the activation profile m_i = mean_x |h_i(x)|: functionals and thresholded counts.

The profile is a mean over images, so a resampled profile is ``W @ |H| / m`` for resampling counts
``W [B, N]``.  :func:`resample_profiles` accumulates that product chunk by chunk from the store's
rows, so memory is O(B·d) whatever N is; every profile metric is then a callable of the resampled
profiles (``[..., d] -> [...]``, reducing the last axis), so a metric whose definition changes (the
outlier reference scale, ``dead_units``, ``kurtosis_of_mean`` on the signed mean) only changes its
callable, never this module.

Methods (docs/intervals.md):

* **Extremes of the profile** (``profile_max_over_median``, ``profile_max_over_mean``): m-out-of-n
  bootstrap, basic (reverse-percentile) interval rescaled by sqrt(m/n), with m = ceil(n^0.8).  A max
  over features of means is not differentiable where the largest features tie or nearly tie;
  there the n-out-of-n bootstrap is inconsistent (Andrews 2000; Bickel, Götze & van Zwet 1997):
  a max of noisy means is biased upward and the percentile interval adds that bias again instead
  of removing it (measured with five tied top features, nominal 95%: percentile 32% coverage,
  BC 66.5%, m-out-of-n basic 94.5%; docs/intervals.md).  (Linear scale here: on the log scale the
  m-out-of-n basic interval covered only 88% in that case.)
  Resampling m << n images keeps the root-n limit and makes the bootstrap law consistent for such
  functionals (Bickel & Sakov 2008); where the max is unique it only costs some width.
* **Smooth functionals of the profile** (``profile_kurtosis``, ``kurtosis_of_mean``): the ordinary
  bootstrap (m = n), basic (reverse-percentile) interval on the log scale (the statistic is
  positive).  These are differentiable functions of d means, where the bootstrap is consistent;
  but each of the d means carries its own noise, which changes the profile's spread by O(1/n) per
  feature: a bias that can exceed the standard error when d is comparable to n.  The basic
  interval reflects that bias away; percentile-type intervals keep it (measured on a flat profile:
  BC percentile 41.5% coverage, log-basic 96.5%).  m-out-of-n would over-correct it (its
  replicates carry noise of order 1/m).
* **Thresholded counts** (``outlier_count`` at a factor, ``dead_units``): per-feature exceedance.  The
  callable returns each feature's signed margin to the threshold (counted when > 0).  A count is
  locally constant in the profile and jumps where a feature crosses its threshold, so no resampling
  law of the count itself is consistent there.  Instead each feature's margin gets a bootstrap
  standard error; features whose margin is significantly positive are surely counted, those
  significantly negative surely not, and the interval is [#surely counted, #not surely excluded].
  Features are tested at Bonferroni level over the *contested* ones (those within the
  all-feature Bonferroni band of their threshold), so the interval holds for all of them at once.
  Consistent: as N grows every feature not exactly on its threshold is decided, and the interval
  shrinks to the true count.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import Callable, Iterable, Sequence

import numpy as np

from .bootstrap import DEFAULT_LEVEL, DEFAULT_RESAMPLES, Interval, resample_weights, tail_probabilities

__all__ = ["FAMILY", "MOON_EXPONENT", "ProfileResamples", "count_interval", "default_m", "dead_margins", "kurtosis_rows",
           "max_over_mean", "max_over_median", "outlier_margins", "paired_profile_difference", "profile_interval",
           "resample_profiles", "resample_profiles_paired"]

#: m = ceil(n ** MOON_EXPONENT) images per m-out-of-n resample (docs/intervals.md: coverage measured)
MOON_EXPONENT = 0.8

#: which resampling each built-in profile metric uses: "extreme" (m-out-of-n, basic interval),
#: "smooth" (ordinary n-out-of-n bootstrap, basic interval on the log scale), "count" (per-feature exceedance)
FAMILY = {
    "profile_max_over_median": "extreme",
    "profile_max_over_mean": "extreme",
    "profile_kurtosis": "smooth",
    "kurtosis_of_mean": "smooth",
    "outlier_count": "count",
    "outlier_fraction": "count",
    "dead_units": "count",
}

_NORMAL = NormalDist()

ProfileStatistic = Callable[[np.ndarray], np.ndarray]


def default_m(n: int) -> int:
    """Resample size of the m-out-of-n bootstrap for n images (at least 2, at most n)."""
    return int(min(n, max(2, math.ceil(n ** MOON_EXPONENT))))


@dataclass(frozen=True)
class ProfileResamples:
    """The observed profile and ``resamples`` m-out-of-n resampled profiles of one layer.

    ``observed``/``resampled``: mean |h| (the activation profile), ``[d]`` and ``[B, d]``.
    ``observed_signed``/``resampled_signed``: mean h (for ``kurtosis_of_mean``), when requested.
    """

    n: int
    m: int
    resamples: int
    seed: int
    observed: np.ndarray
    resampled: np.ndarray
    observed_signed: np.ndarray | None = None
    resampled_signed: np.ndarray | None = None

    def pick(self, uses: str) -> tuple[np.ndarray, np.ndarray]:
        if uses == "abs":
            return self.observed, self.resampled
        if uses == "signed":
            if self.observed_signed is None:
                raise ValueError("this metric reads the signed mean: call resample_profiles(..., signed=True)")
            return self.observed_signed, self.resampled_signed
        raise ValueError(f"uses must be 'abs' or 'signed', got {uses!r}")


class _Accumulator:
    """Sums ``W[:, cols] @ |rows|`` (and the signed product) chunk by chunk; rows without a column are skipped."""

    def __init__(self, weights: np.ndarray, column_of_row: np.ndarray | None, signed: bool):
        self.w = weights
        self.col_of = column_of_row
        self.signed = signed
        self.offset = 0
        self.abs_sum = self.sum = None
        self.obs_abs = self.obs = None
        self.boot_count = np.zeros(weights.shape[0])
        self.obs_count = 0

    def add(self, chunk: np.ndarray) -> None:
        rows = np.asarray(chunk, dtype=np.float64)
        if rows.ndim != 2:
            raise ValueError(f"profile chunks must be [rows, features], got shape {rows.shape}")
        start, self.offset = self.offset, self.offset + rows.shape[0]
        if self.col_of is None:
            cols = np.arange(start, self.offset)
        else:
            idx = np.arange(start, self.offset)
            cols = np.where(idx < self.col_of.size, self.col_of[np.minimum(idx, self.col_of.size - 1)], -1)
        keep = (cols >= 0) & np.isfinite(rows).all(axis=1)    # non-finite images are excluded, as in LayerStats
        if cols.size and cols.max(initial=-1) >= self.w.shape[1]:
            raise ValueError(f"more rows than the {self.w.shape[1]} images the weights were drawn for")
        rows, cols = rows[keep], cols[keep]
        if self.abs_sum is None:
            d = rows.shape[1]
            self.abs_sum, self.obs_abs = np.zeros((self.w.shape[0], d)), np.zeros(d)
            if self.signed:
                self.sum, self.obs = np.zeros((self.w.shape[0], d)), np.zeros(d)
        if rows.shape[0] == 0:
            return
        wc = self.w[:, cols]
        a = np.abs(rows)
        self.abs_sum += wc @ a
        self.obs_abs += a.sum(axis=0)
        if self.signed:
            self.sum += wc @ rows
            self.obs += rows.sum(axis=0)
        self.boot_count += wc.sum(axis=1)
        self.obs_count += rows.shape[0]

    def finish(self, n: int, m: int, resamples: int, seed: int) -> ProfileResamples:
        if self.abs_sum is None or self.obs_count == 0:
            raise ValueError("resample_profiles: no finite rows were streamed")
        if self.col_of is None and self.offset != self.w.shape[1]:
            raise ValueError(f"resample_profiles: {self.offset} rows were streamed for weights drawn over "
                             f"{self.w.shape[1]}")
        with np.errstate(invalid="ignore", divide="ignore"):
            bc = self.boot_count[:, None]
            return ProfileResamples(
                n=self.obs_count, m=m, resamples=resamples, seed=seed,
                observed=self.obs_abs / self.obs_count, resampled=self.abs_sum / bc,
                observed_signed=None if self.sum is None else self.obs / self.obs_count,
                resampled_signed=None if self.sum is None else self.sum / bc)


def _column_map(rows: Sequence[int]) -> np.ndarray:
    rows = np.asarray(rows, dtype=np.int64)
    if rows.ndim != 1 or (rows.size and rows.min() < 0) or np.unique(rows).size != rows.size:
        raise ValueError("row indices must be distinct non-negative integers")
    col_of = np.full(int(rows.max(initial=-1)) + 1, -1, dtype=np.int64)
    col_of[rows] = np.arange(rows.size)
    return col_of


def resample_profiles(chunks: Iterable[np.ndarray], n: int | None = None, *, seed: int, resamples: int = DEFAULT_RESAMPLES,
                      m: int | Sequence[int] | None = None, signed: bool = False,
                      rows: Sequence[int] | None = None) -> ProfileResamples | tuple[ProfileResamples, ...]:
    """Observed and resampled profiles of one layer from its rows, streamed in store order.

    ``chunks``: consecutive ``[rows, d]`` blocks of the layer (any float dtype); ``n``: the number of
    rows (needed up front to draw the weights); or ``rows``: the store-row indices taking part, in
    the order that pairs them with another model (the others are skipped; ``n`` is then ``len(rows)``).
    ``m``: resample size, default :func:`default_m` (extremes, counts); ``n``
    gives the ordinary bootstrap (smooth functionals, :data:`FAMILY`).  A sequence of sizes, e.g.
    ``(default_m(n), n)``, draws each with its own weights in **one pass** over the rows and returns a
    tuple.  Memory O(resamples·d) per size.
    """
    if rows is None and n is None:
        raise ValueError("resample_profiles: give n (the number of rows) or rows (the rows taking part)")
    n = len(rows) if rows is not None else int(n)
    sizes = [default_m(n) if m is None else int(m)] if m is None or np.isscalar(m) else [int(x) for x in m]
    col_of = None if rows is None else _column_map(rows)
    accs = [_Accumulator(resample_weights(n, resamples, seed, size), col_of, signed) for size in sizes]
    for chunk in chunks:
        for acc in accs:
            acc.add(chunk)
    out = tuple(acc.finish(n, size, resamples, seed) for acc, size in zip(accs, sizes))
    return out[0] if m is None or np.isscalar(m) else out


def resample_profiles_paired(chunks_a: Iterable[np.ndarray], chunks_b: Iterable[np.ndarray],
                             a_index: Sequence[int], b_index: Sequence[int], *, seed: int,
                             resamples: int = DEFAULT_RESAMPLES, m: int | None = None,
                             signed: bool = False) -> tuple[ProfileResamples, ProfileResamples]:
    """Profiles of two models resampled with the **same** weights over their matched images.

    ``a_index[k]``/``b_index[k]``: the store rows of matched image k in each model's layer.
    """
    if len(a_index) != len(b_index):
        raise ValueError("a_index and b_index must have the same length (one pair of rows per image)")
    n = len(a_index)
    m = default_m(n) if m is None else int(m)
    w = resample_weights(n, resamples, seed, m)
    out = []
    for chunks, index in ((chunks_a, a_index), (chunks_b, b_index)):
        acc = _Accumulator(w, _column_map(index), signed)
        for chunk in chunks:
            acc.add(chunk)
        out.append(acc.finish(n, m, resamples, seed))
    return out[0], out[1]


def _apply(statistic: ProfileStatistic, profiles: np.ndarray) -> np.ndarray:
    """Evaluate a profile statistic on ``[B, d]``; one that does not vectorise is called row by row."""
    with np.errstate(invalid="ignore", divide="ignore"):
        try:
            out = np.asarray(statistic(profiles), dtype=np.float64)
            if out.shape == profiles.shape[:-1]:
                return out
        except (TypeError, ValueError):
            pass
        return np.array([float(statistic(p)) for p in profiles])


def _basic_moon_ends(value: float, boot: np.ndarray, scale: float,
                     tails: tuple[float, float]) -> tuple[float, float, int]:
    """Basic m-out-of-n ends: value - sqrt(m/n) * (bootstrap quantile - value), reversed."""
    good = boot[np.isfinite(boot)]
    if good.size == 0:
        return math.nan, math.nan, boot.size
    q_lo, q_hi = np.quantile(good, [tails[0], 1 - tails[1]])
    return value - scale * (q_hi - value), value - scale * (q_lo - value), boot.size - good.size


def _basic_log_ends(value: float, boot: np.ndarray, tails: tuple[float, float]) -> tuple[float, float, str]:
    """Basic interval of the ordinary bootstrap, on the log scale when the statistic is positive.

    The reflection value - (quantile - value) removes the bias the bootstrap reproduces; on the log
    scale the ends stay positive and the skew of a kurtosis is mostly gone.
    """
    good = boot[np.isfinite(boot)]
    if value > 0 and good.size and (good > 0).all():
        low, high, _ = _basic_moon_ends(math.log(value), np.log(good), 1.0, tails)
        return math.exp(low), math.exp(high), "basic bootstrap (log scale)"
    low, high, _ = _basic_moon_ends(value, boot, 1.0, tails)
    return low, high, "basic bootstrap"


def profile_interval(res: ProfileResamples, statistic: ProfileStatistic, *, level: float = DEFAULT_LEVEL,
                     sided: str = "two-sided", uses: str = "abs") -> Interval:
    """m-out-of-n bootstrap interval for a functional of the profile (``statistic``: ``[..., d] -> [...]``)."""
    tails = tail_probabilities(level, sided)
    observed, resampled = res.pick(uses)
    value = float(_apply(statistic, observed[None, :])[0])
    if not math.isfinite(value) or res.n < 2:
        return Interval(value, math.nan, math.nan, level, "bootstrap", sided, 0, res.n,
                        note="undefined value" if not math.isfinite(value) else "fewer than 2 images")
    boot = _apply(statistic, resampled)
    bad = int(np.count_nonzero(~np.isfinite(boot)))
    if res.m >= res.n:
        low, high, method = _basic_log_ends(value, boot, tails)
        note = ""
    else:
        method, note = "m-out-of-n bootstrap", f"m = {res.m} of {res.n} images per resample"
        low, high, _ = _basic_moon_ends(value, boot, math.sqrt(res.m / res.n), tails)
    if bad:
        note += ("; " if note else "") + f"{bad} resamples undefined and left out"
    return Interval(value, low, high, level, method, sided, res.resamples, res.n, note=note)


def paired_profile_difference(res_a: ProfileResamples, res_b: ProfileResamples, statistic: ProfileStatistic, *,
                              level: float = DEFAULT_LEVEL, sided: str = "two-sided", uses: str = "abs") -> Interval:
    """``stat(a) - stat(b)`` from :func:`resample_profiles_paired` (same weights), m-out-of-n basic interval."""
    if (res_a.seed, res_a.m, res_a.n, res_a.resamples) != (res_b.seed, res_b.m, res_b.n, res_b.resamples):
        raise ValueError("paired_profile_difference needs both sides from one resample_profiles_paired call")
    tails = tail_probabilities(level, sided)
    (oa, ra), (ob, rb) = res_a.pick(uses), res_b.pick(uses)
    value = float(_apply(statistic, oa[None, :])[0] - _apply(statistic, ob[None, :])[0])
    if not math.isfinite(value):
        return Interval(value, math.nan, math.nan, level, "paired bootstrap", sided, 0, res_a.n,
                        note="undefined value")
    boot = _apply(statistic, ra) - _apply(statistic, rb)
    if res_a.m >= res_a.n:
        method = "paired basic bootstrap"
        low, high, _ = _basic_moon_ends(value, boot, 1.0, tails)
    else:
        method = "paired m-out-of-n bootstrap"
        low, high, _ = _basic_moon_ends(value, boot, math.sqrt(res_a.m / res_a.n), tails)
    return Interval(value, low, high, level, method, sided, res_a.resamples, res_a.n,
                    note=f"paired on {res_a.n} matched images; m = {res_a.m}")


def exceedance_scores(obs: np.ndarray, boot: np.ndarray, scale: float,
                      tails: tuple[float, float]) -> tuple[np.ndarray, float, float]:
    """Per-feature z-scores of threshold margins and the two Bonferroni cut-offs of :func:`count_interval`.

    ``obs`` ``[d]``: the observed margins; ``boot`` ``[B, d]``: their replicates (rows with a non-finite
    margin left out), whose spread times ``scale`` (sqrt(m/n) for m-out-of-n replicates, 1 for n-out-of-n)
    is each margin's standard error.  Returns (z, c_low, c_high): feature i is surely over its threshold
    when z_i > c_low, surely under when z_i < -c_high, undecided otherwise.  Shared by the counts and by
    ``direction_outlier_alignment``, which takes every outlier set the undecided features allow."""
    finite_rows = np.isfinite(boot).all(axis=1)
    se = boot[finite_rows].std(axis=0) * scale if finite_rows.any() else np.zeros_like(obs)
    with np.errstate(invalid="ignore", divide="ignore"):
        z = np.where(se > 0, obs / np.where(se > 0, se, 1.0), np.where(obs > 0, np.inf, -np.inf))
    d = obs.size
    values = []
    for tail in tails:
        screen = _NORMAL.inv_cdf(1 - tail / max(d, 1))
        contested = int(np.count_nonzero(np.abs(z) < screen))
        values.append(_NORMAL.inv_cdf(1 - tail / max(contested, 1)))
    return z, values[0], values[1]


def count_interval(res: ProfileResamples, margins: ProfileStatistic, *, level: float = DEFAULT_LEVEL,
                   sided: str = "two-sided", uses: str = "abs") -> Interval:
    """Interval for a thresholded count: ``margins`` maps profiles ``[..., d]`` to per-feature margins ``[..., d]``.

    The count is #(margin > 0) on the observed profile.  Each margin's standard error is the spread
    of its m-out-of-n replicates times sqrt(m/n); a feature is surely counted when margin/se > c,
    surely not when < -c, with c the normal quantile at tail/k, k = features within the Bonferroni
    band (tail/d) of their threshold.  The interval is [surely counted, counted or undecided].
    """
    tails = tail_probabilities(level, sided)
    observed, resampled = res.pick(uses)
    with np.errstate(invalid="ignore", divide="ignore"):
        obs = np.asarray(margins(observed[None, :]), dtype=np.float64).reshape(-1)
        boot = np.asarray(margins(resampled), dtype=np.float64)
    if boot.shape != resampled.shape:
        boot = np.stack([np.asarray(margins(p), dtype=np.float64).reshape(-1) for p in resampled])
    if not np.isfinite(obs).all():
        return Interval(math.nan, math.nan, math.nan, level, "per-feature exceedance", sided, 0, res.n,
                        note="undefined margins (e.g. a zero reference scale)")
    count = int(np.count_nonzero(obs > 0))
    z, c_low, c_high = exceedance_scores(obs, boot, math.sqrt(res.m / res.n), tails)
    low, high = int(np.count_nonzero(z > c_low)), int(np.count_nonzero(z > -c_high))
    undecided = high - low
    note = (f"{undecided} feature(s) undecided at this level" if undecided else "every feature decided") + \
        f"; SE from m = {res.m} of {res.n} images per resample"
    # an undecided feature's |z| grows like sqrt(n): it is decided once n * (c / |z|)^2 images are used
    torn = np.abs(z[(z <= c_low) & (z > -c_high)])
    settle = None
    if torn.size and torn.min() > 0:
        settle = max(res.n + 1, math.ceil(res.n * (max(c_low, c_high) / torn.min()) ** 2))
    return Interval(float(count), float(low), float(high), level, "per-feature exceedance", sided, res.resamples,
                    res.n, note=note, settle_n=settle)


# ---- built-in profile statistics, vectorised over leading axes --------------------------------------------------

def max_over_median(p: np.ndarray) -> np.ndarray:
    """``profile_max_over_median``: max(m) / median(m) along the last axis."""
    return p.max(axis=-1) / np.median(p, axis=-1)


def max_over_mean(p: np.ndarray) -> np.ndarray:
    """``profile_max_over_mean``: max(m) / mean(m) along the last axis."""
    return p.max(axis=-1) / p.mean(axis=-1)


def kurtosis_rows(p: np.ndarray) -> np.ndarray:
    """Non-excess kurtosis along the last axis (``profile_kurtosis`` on |h|, ``kurtosis_of_mean`` on signed h)."""
    c = p - p.mean(axis=-1, keepdims=True)
    m2 = np.mean(c * c, axis=-1)
    return np.mean(c ** 4, axis=-1) / (m2 * m2)


def outlier_margins(factor: float, reference: Callable[[np.ndarray], np.ndarray] | None = None) -> ProfileStatistic:
    """Margins of ``outlier_count``: m_i - factor * reference(m) (counted when > 0).

    ``reference``: the scale, ``[..., d] -> [...]``; default the median over features (today's
    definition; issue 11 may replace it with a scale dead units cannot collapse: pass that one).
    """
    ref = reference or (lambda p: np.median(p, axis=-1))

    def margins(p: np.ndarray) -> np.ndarray:
        return p - factor * np.asarray(ref(p))[..., None]
    return margins


def dead_margins(tolerance: float = 0.0) -> ProfileStatistic:
    """Margins of a ``dead_units`` count: a unit is dead when its mean |activation| is <= tolerance."""
    def margins(p: np.ndarray) -> np.ndarray:
        return tolerance - p + (p <= tolerance) * np.finfo(np.float64).tiny
    return margins
