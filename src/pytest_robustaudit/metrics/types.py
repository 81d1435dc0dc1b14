"""What a metric is: a named, documented statistic that describes itself to every output.

The terminal table, the Markdown summary and the HTML report never name a metric: they iterate
over these declarations (what it reads, how strong its evidence is, whether it is a headline
column, its control, unit and direction), so a plugin's metric appears beside the built-ins as
soon as it declares itself a headline.  Free of pytest and of torch.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Callable

#: what a metric reads: the outlier-feature summary of one layer (``compute(stats, **params)``) ...
READS_OUTLIER_SUMMARY = "outlier summary"
#: ... or the layer's stored rows with the probe labels and the classification head
#: (``compute(inputs, **params)``, ``inputs`` a :class:`~.inputs.LayerInputs`)
READS_HEAD = "stored rows, labels and head"
#: ... or the concept bank's rows on the layer (``compute(inputs, **params)``, ``inputs.concepts``; the
#: concept metrics, docs/concepts.md), with the head's directions when the audit has a head
READS_CONCEPTS = "the concept bank's rows"
#: What a metric may declare it reads (``Metric.needs``), the vocabulary of the audit's plan
#: (docs/architecture.md#the-plan): each names an input the audit must measure or build before any
#: analysis runs, so the runner prepares exactly what the planned metrics read and nothing else.
NEEDS_SUMMARY = "summary"            # the layer's streaming outlier summary (always measured)
NEEDS_ROWS = "rows"                  # the probe's stored rows of the layer
NEEDS_LABELS = "labels"              # the probe labels of those rows
NEEDS_HEAD = "head"                  # the classification head (the model's, or open_clip's zero-shot head)
NEEDS_DIRECTIONS = "directions"      # the head's SVD (privileged directions); a weights-only result, stored
NEEDS_SHIFTED = "shifted sets"       # the spec's folder shifts, extracted like the probe
NEEDS_CORRUPTED = "corrupted sets"   # the spec's corruptions of the probe, extracted like the probe
NEEDS_CONCEPTS = "concept bank"      # the concept bank's rows on the layer
NEEDS_NULL = "null"                  # a random null (permutations, random directions): bounded cost, still a cost
NEEDS = (NEEDS_SUMMARY, NEEDS_ROWS, NEEDS_LABELS, NEEDS_HEAD, NEEDS_DIRECTIONS, NEEDS_SHIFTED, NEEDS_CORRUPTED,
         NEEDS_CONCEPTS, NEEDS_NULL)
#: what ``reads`` implies when a metric declares no ``needs`` (third-party metrics written before the plan)
NEEDS_OF_READS = {READS_OUTLIER_SUMMARY: (NEEDS_SUMMARY,),
                  READS_HEAD: (NEEDS_SUMMARY, NEEDS_ROWS, NEEDS_LABELS, NEEDS_HEAD),
                  READS_CONCEPTS: (NEEDS_SUMMARY, NEEDS_CONCEPTS)}
#: the prefix of ``MetricValue.undefined_reason`` for a metric that does not apply to a layer
NOT_APPLICABLE = "not applicable: "


class NotApplicable(Exception):
    """Raised by a metric's ``compute`` when it does not apply (no head, no labels, no outlier feature);
    :meth:`Metric.evaluate` turns it into NaN with the reason prefixed by :data:`NOT_APPLICABLE`."""

#: evidence levels, strongest first (the report's glossary says which one a metric has)
EVIDENCE_LEVELS = ("indicator", "control", "informational", "not assessed")

#: interval families a metric may declare (docs/intervals.md); None: no interval declared
INTERVAL_FAMILIES = ("mean", "median", "ratio", "extreme", "smooth", "count", "binomial", "resampled", "exact",
                     "informational")


@dataclass(frozen=True)
class Param:
    """A metric parameter settable per check in the spec, e.g. ``outlier_count: {factor: 100}``.

    ``minimum`` and ``maximum`` (inclusive; None: open), ``choices`` and ``check`` are what the spec
    validator refuses beyond: ``importance_top_share: {fraction: 1.5}`` would otherwise run and pass as if
    it said 1."""

    type: type
    default: Any
    help: str = ""
    minimum: float | None = None
    maximum: float | None = None
    #: the values a string parameter may take (None: any)
    choices: tuple[str, ...] | None = None
    #: ``check(value) -> ""`` or why the value cannot be meant (a pruning grid beyond [0, 1), say)
    check: Callable[[Any], str] | None = None


@dataclass(frozen=True)
class Domain:
    """Every value a metric can take: ``[low, high]`` (``math.inf`` for an open end), and what that is
    in words (``"a fraction"``, ``"a count"``).

    Why declared: a bound outside it can never pass (``top1_accuracy: {min: 70}``, a percentage written
    for a fraction) and the spec validator says so with the likely fix; the same declaration tells a
    reader of a number what range it lives in."""

    low: float = -math.inf
    high: float = math.inf
    what: str = ""

    def contains(self, value: float) -> bool:
        return self.low <= value <= self.high

    def __str__(self) -> str:
        def end(v: float) -> str:
            return "∞" if v == math.inf else ("-∞" if v == -math.inf else f"{v:g}")
        span = f"[{end(self.low)}, {end(self.high)}]"
        return f"{self.what}, in {span}" if self.what else span


#: the domains the built-in metrics declare
FRACTION = Domain(0.0, 1.0, "a fraction")
SIGNED_FRACTION = Domain(-1.0, 1.0, "a difference of two fractions")
COUNT = Domain(0.0, math.inf, "a count")
#: non-excess kurtosis is at least 1 for any distribution (Pearson: κ ≥ skewness² + 1)
KURTOSIS = Domain(1.0, math.inf, "a non-excess kurtosis")
POSITIVE_RATIO = Domain(0.0, math.inf, "a ratio of non-negative numbers")
AT_LEAST_ONE = Domain(1.0, math.inf, "a largest value over a typical one")
EFFECTIVE_RANK = Domain(1.0, math.inf, "a number of directions")
CONCEPTS_PER_DIRECTION = Domain(0.0, math.inf, "concepts per direction")


@dataclass(frozen=True)
class MetricValue:
    value: float
    details: dict[str, Any] = field(default_factory=dict)
    undefined_reason: str = ""
    #: the definition version of the metric that computed it (:attr:`Metric.version`); 1 in records
    #: written before versions existed
    version: int = 1


@dataclass(frozen=True)
class Evidence:
    """How strongly the metric is known to track ImageNet-shift robustness, and why (one sentence)."""

    level: str
    why: str


@dataclass(frozen=True)
class ChartReference:
    """A reference value drawn on the metric's comparison chart (e.g. ``3 = Gaussian`` for kurtosis)."""

    value: float
    label: str


@dataclass(frozen=True)
class Metric:
    """A named, documented statistic of one layer.

    ``direction`` is the side the paper associates with ImageNet-shift robustness: ``"higher"``
    (e.g. more concentrated activations, more outlier features), ``"lower"``, or ``"neutral"`` (a
    control or informational value).

    Self-description read by the outputs:

    * ``reads``: what the metric is computed from: :data:`READS_OUTLIER_SUMMARY` (``compute`` gets the
      :class:`~.outlier_stats.LayerStats`) or :data:`READS_HEAD` (``compute`` gets the layer's
      :class:`~.inputs.LayerInputs`: stored rows, labels, head, and a per-layer cache).
    * ``evidence``: its :class:`Evidence` (None: the report says "not assessed" or, for a neutral
      metric, "informational").
    * ``headline``: the short column label when the metric is a headline value of the terminal
      table, the Markdown summary and the report's comparison charts ("" = not a headline).
    * ``control``: the name of the metric that controls it (shown beside it in the table and drawn
      as the control marker in its comparison chart).
    * ``chart_reference``: a reference line for its comparison chart.
    * ``version``: the definition version, bumped whenever the formula changes what the number
      means (written into every record beside the value; a relative check never compares values
      of two different versions).
    * ``chart_scale``: ``"log"`` or ``"linear"`` fixes its comparison axis, so two reports of the
      same metric can be compared by eye (``""``: log when the values span more than a decade).
    * ``integer``: its values are counts (the charts tick at whole numbers only).
    * ``interval``: its confidence-interval family (docs/intervals.md): ``"mean"``, ``"median"``,
      ``"ratio"`` (of two per-image means), ``"extreme"``/``"smooth"`` (profile functionals),
      ``"count"`` (thresholded), ``"binomial"`` (accuracy: ``details`` has ``correct`` and ``total`` or
      ``labelled``; without them, e.g. a mean over sets, ``interval_input`` as for ``"resampled"`` if given), ``"resampled"`` (the metric resamples itself: see ``interval_input``),
      ``"exact"``/``"informational"`` (carries none, said so), or None (none declared).
    * ``needs``: what it reads, in the plan's vocabulary (:data:`NEEDS`); empty: derived from ``reads``
      (:data:`NEEDS_OF_READS`).  The runner measures and builds only what the planned metrics need.
    * ``default``: computed on every audit without being asked (a check, ``measure:``); None: when it
      needs nothing but the layer's summary (the outlier family).  Top-1 and top-5 say True: they are
      computed where the probe is labelled and a head is at hand.
    * ``domain``: the :class:`Domain` of its values (a fraction, a count, a kurtosis ≥ 1).
    * ``interval_input``: what that family resamples: the :class:`LayerStats` attribute of the
      per-image values (``"kurtosis"``), a pair of them for a ratio, a profile statistic
      ``[..., d] -> [...]`` (or ``(statistic, "signed")``), or for a count a factory
      ``(**params) -> margins`` (or ``(factory, "per_feature")`` for a fraction of the features), or for
      ``"resampled"`` a function ``(inputs, seed=, resamples=, **params) -> (replicates, n, note)``
      that reads the layer's :class:`~.inputs.LayerInputs`: the replicates as an array (percentile
      interval) or as :class:`~.bootstrap.Replicates` naming the rule their resampling needs (``"basic"``
      for a statistic that re-ranks by its own score, ``"hull"`` for one of a thresholded selection).
    """

    name: str
    compute: Callable[..., MetricValue]
    description: str
    formula: str = ""
    unit: str = ""
    direction: str = "neutral"
    params: dict[str, Param] = field(default_factory=dict)
    reads: str = READS_OUTLIER_SUMMARY
    evidence: Evidence | None = None
    headline: str = ""
    control: str = ""
    chart_reference: ChartReference | None = None
    version: int = 1
    chart_scale: str = ""
    integer: bool = False
    interval: str | None = None
    interval_input: Any = None
    needs: tuple[str, ...] = ()
    default: bool | None = None
    #: every value the metric can take (None: not declared); a ``min`` above its top or a ``max`` below its
    #: bottom is a spec error, and its intervals are clipped to it (analyse/domain.py)
    domain: Domain | None = None

    @property
    def inputs(self) -> frozenset[str]:
        """What the metric reads (:attr:`needs`, or what its ``reads`` implies)."""
        return frozenset(self.needs or NEEDS_OF_READS.get(self.reads, (NEEDS_SUMMARY,)))

    @property
    def by_default(self) -> bool:
        """Computed on every audit that can compute it, asked or not (see :attr:`default`)."""
        return self.inputs <= {NEEDS_SUMMARY} if self.default is None else bool(self.default)

    def evaluate(self, source: Any, params: dict[str, Any] | None = None) -> MetricValue:
        """Compute on ``source``: a layer's :class:`~.inputs.LayerInputs`, or its
        :class:`~.outlier_stats.LayerStats` alone (then a metric that reads more is not applicable).
        A layer with no usable image gives NaN with the reason."""
        stats = getattr(source, "stats", source)
        reason = unusable_reason(stats)
        if reason:
            return MetricValue(math.nan, undefined_reason=reason, version=self.version)
        merged = self.defaults()
        merged.update(params or {})
        if self.reads == READS_OUTLIER_SUMMARY:
            return dataclasses.replace(self.compute(stats, **merged), version=self.version)
        if stats is source:
            return not_applicable(f"{self.name} reads {self.reads}, and only the outlier summary is at hand "
                                  "(e.g. a result read back from a record)")
        try:
            return dataclasses.replace(self.compute(source, **merged), version=self.version)
        except NotApplicable as why:
            return dataclasses.replace(not_applicable(str(why)), version=self.version)
        except Exception as error:  # noqa: BLE001 - see below
            if self.interval != "informational":
                raise
            # an informational metric (the concept metrics) that fails (a bank too large for memory, rows
            # gone) is undefined with the reason: it never takes the audit's other verdicts with it
            from ..errors import describe_error, headline

            return MetricValue(math.nan, undefined_reason=f"could not be computed: {headline(describe_error(error))}",
                               version=self.version)

    def defaults(self) -> dict[str, Any]:
        """The parameters at their default values (what the per-layer tables show)."""
        return {name: p.default for name, p in self.params.items()}


def not_applicable(reason: str) -> MetricValue:
    """NaN marked as not applicable, with the reason (shown by every output instead of a number)."""
    return MetricValue(math.nan, undefined_reason=NOT_APPLICABLE + reason)


def unusable_reason(stats: Any) -> str:
    """Why no metric can be computed on ``stats`` at all ("" when it is usable)."""
    if stats.n_images == 0:
        if stats.n_nonfinite:
            return (f"all {stats.n_nonfinite} images produced NaN/Inf activations on layer '{stats.layer}' "
                    f"(try precision: fp32, and check the checkpoint)")
        return f"no image reached layer '{stats.layer}'"
    return ""


def headline_metrics(metrics: Any) -> list[Metric]:
    """The headline metrics among ``metrics`` (a registry or an iterable of :class:`Metric`), in order."""
    found = [metrics.get(n) for n in metrics.names()] if hasattr(metrics, "names") else list(metrics or ())
    return [m for m in found if m.headline]


def controls_of(metrics: Any) -> set[str]:
    """Names of the metrics that some metric among ``metrics`` declares as its control."""
    return {m.control for m in metrics if m.control}
