"""Wire the interval core into audits: every metric value gets its interval, from the stored rows.

Why this module: :mod:`.metrics.bootstrap` and :mod:`.metrics.bootstrap_profiles` are pure; an
audit must feed them what they resample without running the model again.  Per layer, one pass over
the store's rows (:func:`sample_layer`) draws the resampled activation profiles at both resample
sizes (m-out-of-n for extremes and counts, n-out-of-n for smooth functionals) with one seed per
(audit, layer), and keeps the content hashes of the images behind the per-image values, so a
relative check can pair the same images with another model.  :func:`metric_interval` then gives
any metric's interval from its declared family (``Metric.interval``) at any level, sidedness and
parameters, and :func:`relative_difference` the paired (or, said so, unpaired) difference with a
reference.  Free of pytest and torch (numpy only).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Sequence

import numpy as np

from ..errors import AuditError
from ..metrics import bootstrap as bs
from ..metrics import bootstrap_profiles as bp

if TYPE_CHECKING:
    from ..metrics.outlier_stats import LayerStats
    from ..metrics.types import Metric, MetricValue

#: recommended minimum of usable images for gating outlier metrics (docs/measured.md, docs/intervals.md)
RECOMMENDED_MIN_IMAGES = 200


@dataclass(frozen=True)
class IntervalSettings:
    """How intervals are computed in a run: the level shown, the resamples drawn, the default confidence.

    ``level``: the two-sided level shown beside every value (report, messages); ``resamples``: bootstrap
    resamples per interval; ``confidence``: the project default for checks (ini ``audit_confidence``;
    None: checks gate on the value unless they or their spec say ``confidence``)."""

    level: float = bs.DEFAULT_LEVEL
    resamples: int = bs.DEFAULT_RESAMPLES
    confidence: float | None = None
    #: bootstrap method of the per-image families (ini ``audit_bootstrap_method``; :data:`~.metrics.bootstrap.METHODS`)
    method: str = "auto"
    #: what an inconclusive check does to the exit status: "fail" (default) or "pass" (``--audit-inconclusive``)
    inconclusive_policy: str = "fail"


@dataclass
class LayerSample:
    """What a bootstrap resamples on one layer (kept at run time only, never in the record).

    ``hashes``: content hashes of the images with finite rows, in row order: the order of the
    per-image values in :class:`LayerStats`.  ``rows``: their store rows.  ``profiles``: the
    resampled profiles (m-out-of-n, n-out-of-n) of one pass; ``chunks``: re-reads the layer's rows
    (for a paired pass with another model; None or failing once the store is gone)."""

    audit: str
    layer: str
    hashes: tuple[str, ...]
    rows: tuple[int, ...]
    seed: int
    resamples: int
    _profiles: tuple[bp.ProfileResamples, bp.ProfileResamples] | None
    chunks: Callable[[], Iterable[np.ndarray]] | None = None
    #: the bootstrap method asked for (spec ``bootstrap_method``, ini ``audit_bootstrap_method``)
    method: str = "auto"
    _paired: dict = field(default_factory=dict, repr=False)
    #: computes the profiles on first use (a sample made without its pass: :func:`sample_layer` ``lazy``)
    _pending: Callable[[], Any] | None = field(default=None, repr=False)

    @property
    def profiles(self) -> tuple[bp.ProfileResamples, bp.ProfileResamples] | None:
        """The resampled profiles, computed by one pass over the rows the first time they are read."""
        if self._pending is not None:
            pending, self._pending = self._pending, None
            self._profiles = pending()
        return self._profiles

    @profiles.setter
    def profiles(self, value: Any) -> None:
        self._pending = None
        self._profiles = value


def profile_seed(audit: str, layer: str) -> int:
    """The one seed of a layer's shared profile pass (one per audit and layer)."""
    return bs.derive_seed(audit, layer, "profiles", {})


def sample_layer(audit: str, layer: str, image_hashes: Sequence[str], chunks: Callable[[], Iterable[np.ndarray]],
                 resamples: int = bs.DEFAULT_RESAMPLES, signed: bool = True, method: str = "auto",
                 all_finite: bool = False) -> LayerSample | None:
    """One pass over ``layer``'s rows: finite rows, their hashes, and the resampled profiles.

    ``chunks()`` yields the stored rows in order; ``image_hashes`` names them (row i ↔ hash i).
    None when no row is finite (no metric is defined there).  ``all_finite``: the layer's summary
    says every row is finite, so the rows and hashes are known without reading them and the pass
    waits until an interval reads the profiles (a warm audit whose intervals are kept never makes it)."""
    if all_finite and len(image_hashes):
        n_rows = len(image_hashes)
        seed = profile_seed(audit, layer)

        def pending():
            sizes = (bp.default_m(n_rows), n_rows)
            return bp.resample_profiles(chunks(), n_rows, seed=seed, resamples=resamples, m=sizes, signed=signed)
        return LayerSample(audit, layer, tuple(image_hashes), tuple(range(n_rows)), seed, resamples, None, chunks,
                           method=method, _pending=pending)
    finite: list[np.ndarray] = []

    def watched() -> Iterator[np.ndarray]:
        for chunk in chunks():
            rows = np.asarray(chunk)
            finite.append(np.isfinite(rows).all(axis=1))
            yield rows

    n_rows = len(image_hashes)
    seed = profile_seed(audit, layer)
    profiles = None
    try:
        if n_rows >= 1:
            sizes = (bp.default_m(n_rows), n_rows)
            stream = watched()
            first = next(stream, None)
            if first is not None:   # the layer's width is known now: check the pass fits before drawing anything
                bs.ensure_memory(profile_pass_bytes(resamples, n_rows, first.shape[1], signed),
                                 f"the intervals of layer '{layer}' ({resamples} resamples of {n_rows} images, "
                                 f"{first.shape[1]} features)")
            profiles = bp.resample_profiles(itertools.chain([] if first is None else [first], stream), n_rows,
                                            seed=seed, resamples=resamples, m=sizes, signed=signed)
    except ValueError:      # no finite row was streamed
        profiles = None
    mask = np.concatenate(finite) if finite else np.zeros(0, dtype=bool)
    rows = tuple(int(i) for i in np.flatnonzero(mask))
    if not rows:
        return None
    return LayerSample(audit, layer, tuple(image_hashes[i] for i in rows), rows, seed, resamples, profiles, chunks,
                       method=method)


def profile_pass_bytes(resamples: int, n: int, d: int, signed: bool = True) -> int:
    """Memory of :func:`sample_layer`'s pass: the weights of both resample sizes (``[B, n]`` each) and
    the resampled profiles (``[B, d]``, mean |h| and, when ``signed``, mean h, for both sizes), float64."""
    return 8 * resamples * (2 * n + (4 if signed else 2) * d)


def _no_interval(value: float, note: str, n: int = 0) -> bs.Interval:
    return bs.Interval(float(value), math.nan, math.nan, math.nan, "none", n=n, note=note)


def _per_image(stats: "LayerStats", source: Any, family: str) -> Any:
    if family == "ratio":
        return tuple(np.asarray(getattr(stats, name), dtype=np.float64) for name in source)
    return np.asarray(getattr(stats, source), dtype=np.float64)


_PER_IMAGE = {"mean": "mean", "median": "median", "ratio": "ratio_of_means"}


def _count_parts(source: Any, params: dict[str, Any]) -> tuple[Callable, bool]:
    factory, per_feature = (source, False) if callable(source) else (source[0], source[1] == "per_feature")
    return factory(**params), per_feature


def _profile_parts(source: Any) -> tuple[Callable, str]:
    return (source, "abs") if callable(source) else (source[0], source[1])


def _scaled(iv: bs.Interval, by: float) -> bs.Interval:
    import dataclasses

    return dataclasses.replace(iv, value=iv.value / by, low=iv.low / by, high=iv.high / by)


def metric_interval(metric: "Metric", stats: "LayerStats", sample: LayerSample | None, measured: "MetricValue",
                    params: dict[str, Any] | None = None, *, level: float = bs.DEFAULT_LEVEL,
                    sided: str = "two-sided", audit: str = "", inputs: Any = None) -> bs.Interval:
    """``metric``'s interval on one layer from its declared family (``measured``: its value there),
    within the metric's domain and marked when uninformative (:func:`~.domain.respect_domain`).

    ``inputs``: the layer's :class:`~.metrics.inputs.LayerInputs`, read by a ``"resampled"`` family
    (none from a record: then no interval, said so)."""
    from .domain import respect_domain

    found = _family_interval(metric, stats, sample, measured, params, level=level, sided=sided, audit=audit,
                             inputs=inputs)
    return respect_domain(found, getattr(metric, "domain", None))


def _family_interval(metric: "Metric", stats: "LayerStats", sample: LayerSample | None, measured: "MetricValue",
                     params: dict[str, Any] | None = None, *, level: float = bs.DEFAULT_LEVEL,
                     sided: str = "two-sided", audit: str = "", inputs: Any = None) -> bs.Interval:
    """The interval of ``metric``'s declared family, as the family draws it."""
    family = metric.interval
    merged = metric.defaults()
    merged.update(params or {})
    value = measured.value
    if family == "exact":
        return bs.no_interval(value, exact=True, note="the metric declares itself exact")
    if family == "informational":
        return bs.no_interval(value, informational=True, note="the metric declares itself informational")
    if family is None:
        return _no_interval(value, "the metric declares no interval family")
    if measured.undefined_reason or not math.isfinite(value):
        return _no_interval(value, "undefined value")
    if family == "binomial":
        correct = measured.details.get("correct")
        total = measured.details.get("total", measured.details.get("labelled"))
        if correct is None or not total:
            if callable(metric.interval_input):     # e.g. a mean over several sets: resampled instead
                return _resampled(metric, merged, measured, inputs, sample, stats.layer, audit, level, sided)
            return _no_interval(value, "no correct/total counts")
        return bs.binomial_interval(int(correct), int(total), level=level, sided=sided)
    if family == "resampled":
        return _resampled(metric, merged, measured, inputs, sample, stats.layer, audit, level, sided)
    if family in _PER_IMAGE:
        seed = bs.derive_seed(audit or (sample.audit if sample else ""), stats.layer, metric.name, merged)
        values = _per_image(stats, metric.interval_input, family)
        return bs.per_image_interval(values, _PER_IMAGE[family], seed=seed, level=level, sided=sided,
                                     resamples=sample.resamples if sample else bs.DEFAULT_RESAMPLES,
                                     method=sample.method if sample else "auto")
    if sample is None or sample.profiles is None:
        return _no_interval(value, "no stored rows to resample (read from a record)")
    moon, full = sample.profiles
    if family == "count":
        margins, per_feature = _count_parts(metric.interval_input, merged)
        iv = bp.count_interval(moon, margins, level=level, sided=sided)
        return _scaled(iv, stats.dim) if per_feature and stats.dim else iv
    statistic, uses = _profile_parts(metric.interval_input)
    if family == "extreme":
        return bp.profile_interval(moon, statistic, level=level, sided=sided, uses=uses)
    if family == "smooth":
        return bp.profile_interval(full, statistic, level=level, sided=sided, uses=uses)
    return _no_interval(value, f"unknown interval family {family!r}")


def _resampled(metric: "Metric", merged: dict[str, Any], measured: "MetricValue", inputs: Any,
               sample: LayerSample | None, layer: str, audit: str, level: float, sided: str) -> bs.Interval:
    """A metric that resamples itself: its replicates from the layer's inputs, ends by the rule it
    returns with them (:class:`~.metrics.bootstrap.Replicates`; a plain array: percentile)."""
    from ..metrics.types import NotApplicable

    if inputs is None:
        return _no_interval(measured.value, "the layer's stored rows are not at hand (read from a record)")
    seed = bs.derive_seed(audit or (sample.audit if sample else ""), layer, metric.name, merged)
    resamples = sample.resamples if sample else bs.DEFAULT_RESAMPLES
    try:
        boot, n, note = metric.interval_input(inputs, seed=seed, resamples=resamples, **merged)
    except NotApplicable as why:
        return _no_interval(measured.value, str(why))
    rule = boot.rule if isinstance(boot, bs.Replicates) else "percentile"
    if sample is not None and sample.method == "bca":
        said = f"BCa asked for: {bs.RESAMPLED_METHODS[rule]} used (no jackknife for this statistic)"
        note = f"{note}; {said}" if note else said
    return bs.resampled_interval(measured.value, boot, n=n, level=level, sided=sided, note=note)


def layer_intervals(metrics: Any, stats: "LayerStats", sample: LayerSample | None,
                    values: dict[str, "MetricValue"], level: float, audit: str,
                    inputs: Any = None) -> dict[str, bs.Interval]:
    """Every metric's two-sided interval at its default parameters (what the report and record show)."""
    out = {}
    for name, measured in values.items():
        metric = metrics.get(name)
        try:
            out[name] = metric_interval(metric, stats, sample, measured, level=level, audit=audit, inputs=inputs)
        except (ValueError, ArithmeticError) as error:      # a plugin metric's family that does not fit its data
            out[name] = _no_interval(measured.value, f"interval failed: {error}")
    return out


# ---- relative checks -------------------------------------------------------------------------------------------

def match_images(a_hashes: Sequence[str], b_hashes: Sequence[str]) -> tuple[list[int], list[int]]:
    """Positions of the images both sides have, matched by content hash (first occurrence of a repeat)."""
    where_b: dict[str, int] = {}
    for j, h in enumerate(b_hashes):
        where_b.setdefault(h, j)
    a_index, b_index, seen = [], [], set()
    for i, h in enumerate(a_hashes):
        if h in where_b and h not in seen:
            seen.add(h)
            a_index.append(i)
            b_index.append(where_b[h])
    return a_index, b_index


def per_image_family(metric: "Metric") -> bool:
    """Whether ``metric``'s interval resamples per-image values the record keeps (so two records of the same
    images can be paired without the store)."""
    return metric.interval in _PER_IMAGE


def paired_per_image(metric: "Metric", a_stats: "LayerStats", b_stats: "LayerStats", a_index: Sequence[int],
                     b_index: Sequence[int], *, seed: int, level: float, sided: str = "two-sided",
                     resamples: int = bs.DEFAULT_RESAMPLES) -> bs.Interval:
    """``metric`` on ``a`` − on ``b`` by a paired bootstrap of their per-image values (``a_index[k]`` and
    ``b_index[k]``: the same image's rows); the metric's family must be a per-image one."""
    family = metric.interval
    a = _per_image(a_stats, metric.interval_input, family)
    b = _per_image(b_stats, metric.interval_input, family)
    return bs.paired_difference(a, b, a_index, b_index, _PER_IMAGE[family], seed=seed, level=level, sided=sided,
                                resamples=resamples)


def relative_difference(metric: "Metric", params: dict[str, Any] | None,
                        cand: tuple["LayerStats", LayerSample | None, "MetricValue"],
                        ref: tuple["LayerStats", LayerSample | None, "MetricValue", tuple[str, ...]],
                        *, level: float, sided: str = "two-sided", audit: str = "",
                        recorded: bs.Interval | None = None) -> bs.Interval | None:
    """candidate − reference on the same images (paired bootstrap), or unpaired (said so in the note).

    ``ref``'s last item: the reference's image hashes (from its sample, or from its record);
    ``recorded``: the reference's interval as its record kept it (used when it has no rows to resample)."""
    c_stats, c_sample, c_value = cand
    r_stats, r_sample, r_value, r_hashes = ref
    family = metric.interval
    if family in (None, "exact", "informational", "binomial", "resampled") or c_sample is None:
        return None
    if c_value.undefined_reason or r_value.undefined_reason:
        return None
    merged = metric.defaults()
    merged.update(params or {})
    a_index, b_index = match_images(c_sample.hashes, r_hashes)
    seed = bs.derive_seed(audit or c_sample.audit, c_stats.layer, metric.name + " (paired)", merged)
    if len(a_index) >= 2 and family in _PER_IMAGE:
        return paired_per_image(metric, c_stats, r_stats, a_index, b_index, seed=seed, level=level, sided=sided,
                                resamples=c_sample.resamples)
    if family == "count":
        return _unpaired(metric, merged, cand, ref, level, sided, audit,
                         "a count's per-feature exceedance interval has no paired form", recorded)
    if len(a_index) >= 2 and r_sample is not None and c_sample.chunks is not None and r_sample.chunks is not None:
        try:
            return _paired_profile(metric, merged, c_stats, c_sample, r_sample, a_index, b_index, seed, level, sided)
        except (OSError, ValueError, KeyError, AuditError):
            pass    # the rows are gone (a private store closed): fall back to unpaired below
    return _unpaired(metric, merged, cand, ref, level, sided, audit,
                     "the reference has no per-image rows" if r_sample is None else
                     "the two sides share fewer than 2 images" if len(a_index) < 2 else "the rows could not be re-read",
                     recorded)


def _paired_profile(metric, merged, c_stats, c_sample, r_sample, a_index, b_index, seed, level, sided) -> bs.Interval:
    family = metric.interval
    n = len(a_index)
    m = n if family == "smooth" else bp.default_m(n)
    key = (tuple(a_index), tuple(b_index), r_sample.audit, m)
    if key not in c_sample._paired:
        store_a = [c_sample.rows[i] for i in a_index]
        store_b = [r_sample.rows[j] for j in b_index]
        c_sample._paired[key] = bp.resample_profiles_paired(c_sample.chunks(), r_sample.chunks(), store_a, store_b,
                                                            seed=seed, resamples=c_sample.resamples, m=m)
    res_a, res_b = c_sample._paired[key]
    statistic, uses = _profile_parts(metric.interval_input)
    return bp.paired_profile_difference(res_a, res_b, statistic, level=level, sided=sided, uses=uses)


def _unpaired(metric, merged, cand, ref, level, sided, audit, why, recorded=None) -> bs.Interval | None:
    import dataclasses

    c_stats, c_sample, c_value = cand
    r_stats, r_sample, r_value, _ = ref
    a = metric_interval(metric, c_stats, c_sample, c_value, merged, level=level, audit=audit)
    b = metric_interval(metric, r_stats, r_sample, r_value, merged, level=level, audit=audit)
    if not b.has_interval and recorded is not None and recorded.has_interval and merged == metric.defaults():
        b = recorded
    if not (a.has_interval and b.has_interval):
        return None
    iv = bs.unpaired_difference(a, b, level=level, sided=sided)
    note = iv.note if iv.note.startswith("unpaired") else f"unpaired: {iv.note}" if iv.note else "unpaired"
    return dataclasses.replace(iv, note=f"{note} ({why})")


def setup_differences(candidate: Any, reference: Any) -> list[str]:
    """How the reference was measured differently (device, precision, batch size), worded for messages."""
    out = []
    for what, a, b in (("device", candidate.device, reference.device),
                       ("precision", candidate.precision, reference.precision),
                       ("batch size", candidate.batch_size, reference.batch_size)):
        if not a or not b:
            continue        # unknown on one side (an old record): nothing to compare
        same = str(a).split(":")[0] == str(b).split(":")[0] if what == "device" else a == b
        if not same:
            out.append(f"{what} {b} (reference) vs {a} (this run)")
    return out
