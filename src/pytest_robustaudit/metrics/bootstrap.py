"""Confidence intervals over images: the result type, seeds, resampling weights, per-image and accuracy families.

Every metric is an estimate from a finite probe set; this module says how precise it is.  The
statistical core is pure numpy (scipy only for the exact binomial), fed by the activation store:

* per-image values (the kurtosis of each image in the neuron basis and after the rotation, per-image
  correctness, NaN where undefined) -> :func:`per_image_interval`, :func:`paired_difference`;
* the layer's rows streamed in chunks -> :mod:`.bootstrap_profiles` (profile functionals, counts);
* correct/total counts -> :func:`binomial_interval`.

Methods per family, and why (docs/intervals.md has the formulas and references):

* **mean of per-image values** (``kurtosis_mean``, ``rotated_kurtosis_mean``) and **ratios of such
  means** (``basis_ratio``): BCa.  They are smooth functions of means, where BCa is second-order
  accurate and corrects for the strong right skew of per-image kurtosis that the percentile
  interval ignores; the acceleration comes from the exact (closed-form) jackknife of the means.
* **median of per-image values** (``*_kurtosis_median``): percentile.  The bootstrap of a sample
  median is consistent (Ghosh et al. 1984), but the jackknife that BCa needs for its acceleration
  is not (Efron 1982: the delete-one jackknife of the median is inconsistent), so BCa is not used.
* **accuracies**: Clopper-Pearson, exact: its coverage is never below the level, which is what a
  gate must promise (Wilson is closer to nominal on average but dips below it for some p).

Seeding: :func:`derive_seed` hashes (audit, layer, metric, params) with BLAKE2b, so the same inputs
give the same interval whatever else the run contains, on every platform and Python version.

Sidedness: a ``"two-sided"`` interval at level c leaves (1-c)/2 in each tail.  A check with a single
bound uses ``"lower"`` (a ``min``) or ``"upper"`` (a ``max``): then **each end is a one-sided level-c
bound** (each tail 1-c; numerically the two-sided 2c-1 interval).  The end facing the bound decides
a pass, the other one a conclusive failure (:mod:`.verdicts`).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any, Iterator, Sequence

import numpy as np

__all__ = ["DEFAULT_LEVEL", "DEFAULT_RESAMPLES", "METHODS", "SIDED", "Interval", "bca_ends", "binomial_interval", "derive_seed",
           "no_interval", "paired_difference", "per_image_interval", "percentile_interval", "resample_weights", "tail_probabilities",
           "unpaired_difference"]

DEFAULT_LEVEL = 0.95
DEFAULT_RESAMPLES = 1000
#: the most resamples an interval may draw (spec ``resamples``, ini ``audit_resamples``): beyond it the
#: percentile ends no longer move, and the weights alone would be 800 MB per 1000 images
MAX_RESAMPLES = 100_000
#: resampling weights are drawn this many bytes at a time (the same numbers as in one draw)
WEIGHT_BLOCK_BYTES = 32 << 20
SIDED = ("two-sided", "lower", "upper")
PER_IMAGE_STATISTICS = ("mean", "median", "ratio_of_means")
#: bootstrap methods a run or spec may ask for (``audit_bootstrap_method``, spec ``bootstrap_method``):
#: ``auto`` is each family's own choice (docs/intervals.md); ``percentile`` and ``bca`` override it
#: where the family resamples images with the ordinary bootstrap (per-image values; BCa falls back
#: to percentile for a median, whose jackknife is inconsistent, and says so)
METHODS = ("auto", "percentile", "bca")

_NORMAL = NormalDist()


@dataclass(frozen=True)
class Interval:
    """A metric value with its confidence interval.

    ``exact``: the value has no sampling error to speak of (a head's SVD spectrum, an accuracy given
    in a spec); ``informational``: the metric is not gated on (concept metrics).  Either way ``low``
    and ``high`` are NaN and ``method`` is ``"none"``; the report says which and why (``note``).
    For ``sided`` ``"lower"``/``"upper"`` both ends are one-sided level bounds (module docstring).
    """

    value: float
    low: float
    high: float
    level: float
    method: str
    sided: str = "two-sided"
    resamples: int = 0
    n: int = 0
    exact: bool = False
    informational: bool = False
    note: str = ""
    #: images at which the method expects the interval to close on its value, where it knows better
    #: than the sqrt(n) rule of :func:`~.verdicts.images_to_settle` (a count: its undecided features)
    settle_n: int | None = None
    #: why the interval says little at this n ("" when it is informative): its ends left the metric's
    #: domain, or it is far wider than the value (analyse/domain.py); every output shows it beside the ends
    uninformative: str = ""

    @property
    def has_interval(self) -> bool:
        return not (self.exact or self.informational) and math.isfinite(self.low) and math.isfinite(self.high)

    def excludes(self, x: float) -> bool:
        """Whether ``x`` lies outside [low, high] (e.g. 0 for a difference that is distinguishable from zero)."""
        return self.has_interval and (x < self.low or x > self.high)

    def describe(self, digits: int = 4) -> str:
        """``"14.5 [13.9, 15.2] (95% BCa, 1000 resamples, 1000 images)"``: what messages and tables show."""
        v = _fmt(self.value, digits)
        if not self.has_interval:
            why = "exact" if self.exact else "informational" if self.informational else "no interval"
            return f"{v} ({why}{': ' + self.note if self.note else ''})"
        side = "" if self.sided == "two-sided" else " one-sided"
        boot = f", {self.resamples} resamples" if self.resamples else ""
        said = f"; {self.note}" if self.note.startswith("clipped") else ""
        useless = f"; uninformative at {self.n} images: {self.uninformative}" if self.uninformative else ""
        return (f"{v} [{_fmt(self.low, digits)}, {_fmt(self.high, digits)}] "
                f"({self.level:.0%}{side} {self.method}{boot}, {self.n} images{said}{useless})")


def _fmt(x: float, digits: int) -> str:
    if isinstance(x, (int, np.integer)) or (math.isfinite(x) and float(x).is_integer() and abs(x) < 1e15):
        return str(int(x))
    return f"{x:.{digits}g}"


def no_interval(value: float, *, exact: bool = False, informational: bool = False, note: str = "",
                n: int = 0) -> Interval:
    """An :class:`Interval` for a metric that declares itself exact or informational (carries none)."""
    if exact == informational:
        raise ValueError("no_interval: say exactly one of exact=True or informational=True")
    return Interval(float(value), math.nan, math.nan, math.nan, "none", n=n, exact=exact,
                    informational=informational, note=note)


def derive_seed(audit: str, layer: str, metric: str, params: dict[str, Any] | None = None) -> int:
    """A 63-bit seed that depends on these inputs only (stable across runs, machines, Python versions)."""
    text = json.dumps([audit, layer, metric, params or {}], sort_keys=True, default=str, separators=(",", ":"))
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big") >> 1


def tail_probabilities(level: float, sided: str) -> tuple[float, float]:
    """(lower tail, upper tail) probabilities left outside [low, high] for this level and sidedness."""
    if not 0.5 < level < 1:
        raise ValueError(f"level must be in (0.5, 1), got {level}")
    if sided not in SIDED:
        raise ValueError(f"sided must be one of {SIDED}, got {sided!r}")
    alpha = 1.0 - level
    return (alpha / 2, alpha / 2) if sided == "two-sided" else (alpha, alpha)


def resample_weight_blocks(n: int, resamples: int, seed: int, m: int | None = None) -> Iterator[np.ndarray]:
    """The rows of :func:`resample_weights` in blocks of at most :data:`WEIGHT_BLOCK_BYTES` (the same
    numbers: one generator stream, drawn block after block), so a statistic that reduces each resample
    at once never holds ``W`` whole."""
    if n < 1:
        raise ValueError("resample_weights: no images to resample")
    m = n if m is None else int(m)
    rng = np.random.default_rng([int(seed), m])     # m is part of the stream: each resample size draws its own
    step = max(1, WEIGHT_BLOCK_BYTES // (8 * max(n, m)))
    for start in range(0, resamples, step):
        rows = min(step, resamples - start)
        picks = rng.integers(0, n, size=(rows, m))
        flat = picks + (np.arange(rows, dtype=np.int64) * n)[:, None]
        yield np.bincount(flat.ravel(), minlength=rows * n).reshape(rows, n).astype(np.float64)


def resample_weights(n: int, resamples: int, seed: int, m: int | None = None) -> np.ndarray:
    """Multinomial resampling counts ``W [resamples, n]`` (each row sums to ``m``, default ``n``).

    Row b says how many times each image enters resample b; a weighted sum ``W @ x`` is the
    resample's sum, so no resampled data set is ever materialised.  Drawn in blocks into one array
    (peak memory: ``W`` and one block), after checking that ``W`` fits in memory (:func:`ensure_memory`).
    """
    ensure_memory(8 * resamples * max(n, 1), f"the resampling weights ({resamples} resamples x {n} images)")
    out = np.empty((resamples, n), dtype=np.float64)
    start = 0
    for block in resample_weight_blocks(n, resamples, seed, m):
        out[start:start + block.shape[0]] = block
        start += block.shape[0]
    return out


def available_memory() -> int | None:
    """Bytes of memory this machine can still give (Linux ``MemAvailable``, else the free pages), or
    None when the platform does not say."""
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, ValueError, OSError):
        return None


def ensure_memory(needed: int, what: str) -> None:
    """Refuse (an :class:`~..errors.AuditError` naming ``resamples`` and the way out) to allocate
    ``needed`` bytes for ``what`` when the machine has less available: a clear error instead of a
    MemoryError traceback or the kernel's OOM killer."""
    available = available_memory()
    if available is None or needed <= available:
        return
    from ..errors import AuditError

    raise AuditError(f"{what} need about {needed / 1e9:.2f} GB of memory, more than the {available / 1e9:.2f} GB "
                     f"this machine has available", where="resamples",
                     fix=f"lower `resamples` (the spec key, or the ini key audit_resamples; default "
                         f"{DEFAULT_RESAMPLES}), or audit fewer images (docs/intervals.md#limits)")


# ---- per-image values -------------------------------------------------------------------------------------------

def _columns(values: Any, statistic: str) -> np.ndarray:
    """Per-image values as ``X [N, k]`` (k = 2 for a ratio of means), float64, NaN = undefined."""
    if statistic not in PER_IMAGE_STATISTICS:
        raise ValueError(f"statistic must be one of {PER_IMAGE_STATISTICS}, got {statistic!r}")
    arrays = list(values) if statistic == "ratio_of_means" else [values]
    if statistic == "ratio_of_means" and len(arrays) != 2:
        raise ValueError("ratio_of_means takes (numerator values, denominator values)")
    cols = [np.asarray(a, dtype=np.float64).reshape(-1) for a in arrays]
    if len({c.size for c in cols}) != 1:
        raise ValueError("per-image value arrays must have the same length (one value per image)")
    return np.stack(cols, axis=1)


def _weighted_means(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Means of each column of ``x [N, k]`` under weights ``w [B, N]``, ignoring NaN entries -> ``[B, k]``."""
    defined = ~np.isnan(x)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (w @ np.where(defined, x, 0.0)) / (w @ defined.astype(np.float64))


def _combine(statistic: str, means: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return means[..., 0] if statistic == "mean" else means[..., 0] / means[..., 1]


def _weighted_medians(v: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Medians of ``v [N]`` (NaN ignored) under count weights ``w [B, N]`` (np.median's convention)."""
    keep = ~np.isnan(v)
    v, w = v[keep], w[:, keep]
    if v.size == 0:
        return np.full(w.shape[0], np.nan)
    order = np.argsort(v, kind="stable")
    v, cums = v[order], np.cumsum(w[:, order], axis=1)
    total = cums[:, -1]
    lo_rank, hi_rank = np.ceil(total / 2), np.floor(total / 2) + 1   # 1-based ranks of the two middle values
    lo = np.argmax(cums >= lo_rank[:, None], axis=1)
    hi = np.argmax(cums >= np.minimum(hi_rank, total)[:, None], axis=1)
    out = (v[lo] + v[hi]) / 2
    out[total == 0] = np.nan
    return out


def percentile_interval(value: float, boot: np.ndarray, *, n: int, level: float = DEFAULT_LEVEL,
                        sided: str = "two-sided", note: str = "") -> Interval:
    """Percentile interval of bootstrap replicates ``boot`` (non-finite replicates dropped) around ``value``.

    For statistics a metric resamples itself (``Metric.interval == "resampled"``): the head
    directions' shares and the pruning fraction, whose replicates need the rows, the head and a
    re-ranking per resample, so no closed-form family fits them."""
    boot = np.asarray(boot, dtype=np.float64)
    low, high = _percentile_ends(boot, tail_probabilities(level, sided))
    dropped = int(boot.size - np.isfinite(boot).sum())
    if dropped:
        note = f"{note}; " if note else ""
        note += f"{dropped} of {boot.size} resamples undefined and left out"
    return Interval(float(value), low, high, level, "percentile bootstrap", sided, int(boot.size), n, note=note)


@dataclass(frozen=True)
class Replicates:
    """What a self-resampling metric (``Metric.interval == "resampled"``) hands back, and the rule
    that turns it into an interval (:func:`resampled_interval`).

    ``values``: its bootstrap replicates; ``rule``:

    * ``"percentile"``: [Q*(α_lo), Q*(1−α_hi)], for a statistic whose resampling adds no bias of its
      own (a mean over sets, a drop, the pruning fraction with the ranking held fixed);
    * ``"basic"`` (reverse percentile): [2θ̂ − Q*(1−α_hi), 2θ̂ − Q*(α_lo)], for a statistic that
      **re-ranks what it scores by the score itself** in every resample (``importance_top_share``).
      The top-k sum of noisy importances is a convex function of them, so the estimate sits above the
      truth (a winner's curse: the directions that rank in the top k are partly those whose noise
      was high), and a resample re-ranking its own noisy importances sits above the estimate by about
      the same amount.  The percentile interval therefore adds the bias a second time; the basic
      interval reflects the replicates about the estimate, which subtracts it (Davison & Hinkley
      1997, §5.2).  With ``fewer`` = (m-out-of-n replicates, sqrt(m/n)) the interval is the hull of
      the basic intervals of both resample sizes: the n-out-of-n one is right where the top-k sum is
      differentiable (no direction tied at the cut), the m-out-of-n one where directions tie there
      (Bickel, Götze & van Zwet 1997), and which holds is not known from the sample.  Measured on
      the real EfficientNet-Lite0 (docs/intervals.md): percentile 70–83% coverage, n-out-of-n basic
      alone 92.8% at 300 images, the hull above 95% at 100 and 300;
    * ``"hull"``: ``envelope(tails)`` gives, per resample, the lowest and the highest value the
      statistic takes over what the sample cannot decide (``direction_outlier_alignment``: every
      outlier set between the features surely above their threshold and those not surely below it);
      the interval is [Q*(α_lo) of the lows, Q*(1−α_hi) of the highs].  For a statistic of a
      thresholded selection, whose resamples select what the sample selected and so cannot see a
      feature that sits near its threshold (the truth's set may hold it, the sample's not).
    """

    values: np.ndarray
    rule: str = "percentile"
    envelope: Any = None
    #: for ``"basic"``: (m-out-of-n replicates, sqrt(m / n)), whose basic interval joins the n-out-of-n one
    fewer: Any = None

    RULES = ("percentile", "basic", "hull")

    def __post_init__(self):
        if self.rule not in self.RULES:
            raise ValueError(f"Replicates.rule must be one of {self.RULES}, got {self.rule!r}")
        if self.rule == "hull" and not callable(self.envelope):
            raise ValueError("Replicates(rule='hull') needs envelope(tails) -> (lows, highs, note)")


#: the method each rule writes beside its interval (the record's ``method``)
RESAMPLED_METHODS = {"percentile": "percentile bootstrap", "basic": "basic bootstrap",
                     "hull": "percentile bootstrap over undecided selections"}


def resampled_interval(value: float, reps: Any, *, n: int, level: float = DEFAULT_LEVEL, sided: str = "two-sided",
                       note: str = "") -> Interval:
    """The interval of a self-resampling metric from its :class:`Replicates` (a plain array: percentile)."""
    if not isinstance(reps, Replicates):
        reps = Replicates(np.asarray(reps, dtype=np.float64))
    if reps.rule == "percentile":
        return percentile_interval(value, reps.values, n=n, level=level, sided=sided, note=note)
    tails = tail_probabilities(level, sided)
    boot = np.asarray(reps.values, dtype=np.float64)
    method = RESAMPLED_METHODS[reps.rule]
    if reps.rule == "basic":
        q_low, q_high = _percentile_ends(boot, tails)
        low, high = 2 * float(value) - q_high, 2 * float(value) - q_low
        if reps.fewer is not None:
            smaller, scale = reps.fewer
            m_low, m_high = _percentile_ends(np.asarray(smaller, dtype=np.float64), tails)
            low = min(low, float(value) - scale * (m_high - float(value)))
            high = max(high, float(value) - scale * (m_low - float(value)))
            method = "basic bootstrap, n- and m-out-of-n hull"
    else:
        lows, highs, said = reps.envelope(tails)
        low = _percentile_ends(np.asarray(lows, dtype=np.float64), tails)[0]
        high = _percentile_ends(np.asarray(highs, dtype=np.float64), tails)[1]
        note = "; ".join(x for x in (note, said) if x)
    dropped = int(boot.size - np.isfinite(boot).sum())
    if dropped:
        note = f"{note}; " if note else ""
        note += f"{dropped} of {boot.size} resamples undefined and left out"
    return Interval(float(value), low, high, level, method, sided, int(boot.size), n, note=note)


def _percentile_ends(boot: np.ndarray, tails: tuple[float, float]) -> tuple[float, float]:
    boot = boot[np.isfinite(boot)]
    if boot.size == 0:
        return math.nan, math.nan
    lo, hi = np.quantile(boot, [tails[0], 1 - tails[1]])
    return float(lo), float(hi)


def bca_ends(boot: np.ndarray, value: float, jack: np.ndarray, tails: tuple[float, float]) -> tuple[float, float]:
    """Efron's BCa ends from bootstrap replicates, the estimate and its jackknife replicates.

    With no jackknife replicates (empty ``jack``) the acceleration is 0: the bias-corrected (BC)
    percentile interval.
    """
    boot = boot[np.isfinite(boot)]
    jack = jack[np.isfinite(jack)]
    if boot.size == 0:
        return math.nan, math.nan
    below = (np.count_nonzero(boot < value) + 0.5 * np.count_nonzero(boot == value)) / boot.size
    if below <= 0 or below >= 1:             # the estimate lies outside its own bootstrap distribution
        return _percentile_ends(boot, tails)
    z0 = _NORMAL.inv_cdf(below)
    d = jack.mean() - jack if jack.size else np.zeros(1)
    denom = 6.0 * float(np.sum(d * d)) ** 1.5
    accel = float(np.sum(d ** 3)) / denom if denom > 0 else 0.0
    ends = []
    for p in (tails[0], 1 - tails[1]):
        z = _NORMAL.inv_cdf(p)
        shift = 1 - accel * (z0 + z)
        adj = _NORMAL.cdf(z0 + (z0 + z) / shift) if shift > 0 else (1.0 if p > 0.5 else 0.0)
        ends.append(float(np.quantile(boot, min(max(adj, 0.0), 1.0))))
    return ends[0], ends[1]


def _jackknife_means(x: np.ndarray) -> np.ndarray:
    """Exact delete-one means of each column of ``x [N, k]`` (NaN ignored) -> ``[N, k]``."""
    defined = ~np.isnan(x)
    xz = np.where(defined, x, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (xz.sum(axis=0) - xz) / (defined.sum(axis=0) - defined)


def _point(x: np.ndarray, statistic: str) -> float:
    if statistic == "median":
        col = x[:, 0][~np.isnan(x[:, 0])]
        return float(np.median(col)) if col.size else math.nan
    return float(_combine(statistic, _weighted_means(x, np.ones((1, x.shape[0])))[0]))


def _method(statistic: str, method: str = "auto") -> str:
    """The method a per-image statistic uses under ``method`` (see :data:`METHODS`)."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if method == "percentile" or statistic == "median":
        return "percentile bootstrap"
    return "BCa bootstrap"


def per_image_interval(values: Any, statistic: str = "mean", *, seed: int, level: float = DEFAULT_LEVEL,
                       resamples: int = DEFAULT_RESAMPLES, sided: str = "two-sided", method: str = "auto") -> Interval:
    """Interval for a statistic of per-image values: ``"mean"`` / ``"ratio_of_means"`` (BCa), ``"median"`` (percentile).

    ``values``: a 1-D array (NaN = undefined for that image, ignored as the metric ignores it), or
    ``(numerator, denominator)`` arrays for ``"ratio_of_means"`` (``basis_ratio`` = mean neuron-basis
    kurtosis / mean rotated kurtosis, each over the images where it is defined).  ``method``: one of
    :data:`METHODS` (``auto``: BCa for means and ratios, percentile for a median).
    """
    tails = tail_probabilities(level, sided)
    used = _method(statistic, method)
    note = "BCa asked for: percentile used (the jackknife of a median is inconsistent)" \
        if method == "bca" and statistic == "median" else ""
    x = _columns(values, statistic)
    n = x.shape[0]
    value = _point(x, statistic)
    if n < 2 or not math.isfinite(value):
        return Interval(value, math.nan, math.nan, level, used, sided, 0, n,
                        note="fewer than 2 usable images: no interval" if math.isfinite(value) else "undefined value")
    blocks = resample_weight_blocks(n, resamples, seed)     # each resample reduced at once: W never whole
    if statistic == "median":
        low, high = _percentile_ends(np.concatenate([_weighted_medians(x[:, 0], w) for w in blocks]), tails)
    else:
        boot = np.concatenate([_combine(statistic, _weighted_means(x, w)) for w in blocks])
        if used == "percentile bootstrap":
            low, high = _percentile_ends(boot, tails)
        else:
            jack = _combine(statistic, _jackknife_means(x))
            low, high = bca_ends(boot, value, jack, tails)
    return Interval(value, low, high, level, used, sided, resamples, n, note=note)


def paired_difference(a: Any, b: Any, a_index: Sequence[int], b_index: Sequence[int], statistic: str = "mean", *,
                      seed: int, level: float = DEFAULT_LEVEL, resamples: int = DEFAULT_RESAMPLES,
                      sided: str = "two-sided") -> Interval:
    """Paired bootstrap of ``stat(a) - stat(b)`` over the images both models saw.

    ``a_index[k]`` and ``b_index[k]`` are the rows of image k in ``a`` and ``b`` (matched by the
    store's content hashes); both models' values are resampled with the same weights, so the
    image-to-image variation common to both cancels.  ``a``/``b`` take the forms
    :func:`per_image_interval` takes.  Use :meth:`Interval.excludes` ``(0)`` to ask whether the
    difference is distinguishable from zero at the level.
    """
    tails = tail_probabilities(level, sided)
    ai, bi = np.asarray(a_index, dtype=np.int64), np.asarray(b_index, dtype=np.int64)
    if ai.shape != bi.shape or ai.ndim != 1:
        raise ValueError("a_index and b_index must be 1-D and of the same length (one pair of rows per image)")
    xa, xb = _columns(a, statistic)[ai], _columns(b, statistic)[bi]
    n = ai.size
    value = _point(xa, statistic) - _point(xb, statistic)
    method = "paired " + _method(statistic)
    if n < 2 or not math.isfinite(value):
        return Interval(value, math.nan, math.nan, level, method, sided, 0, n, note="fewer than 2 matched images")
    blocks = resample_weight_blocks(n, resamples, seed)     # both sides share each block's weights
    if statistic == "median":
        boot = np.concatenate([_weighted_medians(xa[:, 0], w) - _weighted_medians(xb[:, 0], w) for w in blocks])
        low, high = _percentile_ends(boot, tails)
    else:
        boot = np.concatenate([_combine(statistic, _weighted_means(xa, w)) - _combine(statistic, _weighted_means(xb, w))
                               for w in blocks])
        jack = _combine(statistic, _jackknife_means(xa)) - _combine(statistic, _jackknife_means(xb))
        low, high = bca_ends(boot, value, jack, tails)
    return Interval(value, low, high, level, method, sided, resamples, n, note=f"paired on {n} matched images")


def unpaired_difference(a: Interval, b: Interval, *, level: float | None = None, sided: str = "two-sided") -> Interval:
    """Fallback for ``a - b`` when the images cannot be matched (e.g. a baseline recorded without rows).

    Each interval's standard error is read off its width (normal approximation: half-width / z), the
    two are combined as independent, and the result says it is unpaired: it ignores the correlation
    a paired comparison would cancel, so it is wider and only approximate.  An exact or
    informational side contributes no error.
    """
    level = a.level if level is None or math.isnan(level) else level
    if math.isnan(level):
        level = DEFAULT_LEVEL
    tails = tail_probabilities(level, sided)

    def se(iv: Interval) -> float:
        if not iv.has_interval:
            return 0.0
        z = _NORMAL.inv_cdf(1 - (1 - iv.level) / 2) if iv.sided == "two-sided" else _NORMAL.inv_cdf(iv.level)
        return (iv.high - iv.low) / (2 * z)

    value = a.value - b.value
    spread = math.hypot(se(a), se(b))
    low = value - _NORMAL.inv_cdf(1 - tails[0]) * spread
    high = value + _NORMAL.inv_cdf(1 - tails[1]) * spread
    return Interval(value, low, high, level, "unpaired normal approximation", sided, 0, min(a.n, b.n) if b.n else a.n,
                    note="unpaired: images not matched (no per-image rows on one side); approximate and wider")


# ---- accuracy ---------------------------------------------------------------------------------------------------

def binomial_interval(correct: int, total: int, *, level: float = DEFAULT_LEVEL, sided: str = "two-sided") -> Interval:
    """Clopper-Pearson (exact) interval for an accuracy ``correct / total``; never below the level."""
    from scipy.special import betaincinv   # the beta quantile, without scipy.stats' import cost

    tails = tail_probabilities(level, sided)
    k, n = int(correct), int(total)
    if n <= 0 or not 0 <= k <= n:
        raise ValueError(f"binomial_interval: need 0 <= correct <= total and total > 0, got {k}/{n}")
    low = 0.0 if k == 0 else float(betaincinv(k, n - k + 1, tails[0]))
    high = 1.0 if k == n else float(betaincinv(k + 1, n - k, 1 - tails[1]))
    return Interval(k / n, low, high, level, "Clopper-Pearson exact", sided, 0, n)

