"""Typed results of an audit: what hooks, fixtures, the report and the JSON record exchange.

Pure data (numbers, strings, numpy arrays): no torch, no pytest, no HTML.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from ..data.decode import SkippedImage
from ..metrics.types import MetricValue
from ..metrics.outlier_stats import LayerStats


@dataclass
class LayerResult:
    """Every registered metric (at its default parameters) on one layer, plus the raw summary."""

    layer: str
    stats: LayerStats
    metrics: dict[str, MetricValue] = field(default_factory=dict)
    #: each metric's two-sided interval at its default parameters (docs/intervals.md); {} in old records
    intervals: dict[str, Any] = field(default_factory=dict)
    #: content hashes of the images behind the per-image values, in their order (pairs a baseline's images)
    image_hashes: tuple[str, ...] = ()
    #: what a bootstrap resamples (:class:`~.intervals.LayerSample`): run time only, never in the record
    sample: Any = field(default=None, repr=False, compare=False)
    #: what metrics that read more than the summary read (:class:`~.metrics.inputs.LayerInputs`: stored
    #: rows, labels, head); None for a result read back from a record (not serialised)
    inputs: Any = field(default=None, repr=False, compare=False)

    def value(self, metric: str) -> float:
        return self.metrics[metric].value

    def evaluate(self, metric: Any, params: dict[str, Any] | None = None) -> MetricValue:
        """``metric`` (a :class:`~.metrics.types.Metric`) on this layer at ``params``; the value computed at
        the defaults when the layer's inputs are gone (a result read from a record)."""
        if self.inputs is None and metric.name in self.metrics and (not params or params == metric.defaults()):
            return self.metrics[metric.name]
        return metric.evaluate(self.inputs if self.inputs is not None else self.stats, params)


@dataclass
class CheckOutcome:
    """The verdict of one check (one pytest item)."""

    metric: str
    layer: str
    value: float
    min: float | None
    max: float | None
    passed: bool
    message: str
    params: dict[str, Any] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    reference: float | None = None   # the reference's value, for relative bounds
    skip_reason: str = ""            # set when the check could not run yet (e.g. no baseline saved)
    why: str = ""                    # the spec's reason for the bound (its check key ``why:``)
    interval: Any = None             # the value's Interval (metrics/bootstrap.py) the check saw, or None
    difference: Any = None           # relative checks: candidate − reference, paired on matched images when possible
    confidence: float | None = None  # the confidence the check gated at (None: gated on the value)
    #: its interval straddles a bound (not settled); ``passed`` is then what the run's inconclusive policy
    #: made of it (False unless ``--audit-inconclusive pass``)
    inconclusive: bool = False
    images_needed: int | None = None  # inconclusive: about how many images would settle it
    #: what the verdict was read from (analyse.checks.BASES: value, interval, difference, unmeasured; "" in
    #: records before schema 4 and for skipped checks), and the delta bounds a "difference" verdict read
    basis: str = ""
    min_delta: float | None = None
    max_delta: float | None = None
    #: the pytest node id of the item that ran the check (relative to the rootdir), set when it runs; "" for
    #: an audit run outside pytest's items (the audit fixture, the API) and in records that predate it
    nodeid: str = ""
    #: the equivalence margin a comparison with an earlier release reads this check at (its ``margin:``, else
    #: the size of its smallest delta bound; None: 0), in the metric's units (analyse/compare.py); schema 5
    margin: float | None = None

    @property
    def status(self) -> str:
        """``"pass"``, ``"fail"``, ``"inconclusive"`` (the interval straddles a bound: not settled, whatever
        the run's policy made of it) or ``"skip"`` (could not run yet); the one place that decides it."""
        if self.skip_reason:
            return "skip"
        return "inconclusive" if self.inconclusive else ("pass" if self.passed else "fail")

    @property
    def record_status(self) -> str:
        """The record's ``checks[].status``: one of :data:`RECORD_STATUSES`; ``error`` is a check that could
        not be measured (basis ``unmeasured``), which the terminal and the report count as failed."""
        if self.skip_reason:
            return "skipped"
        if self.basis == "unmeasured":
            return "error"
        return self.status


#: the record's word for each check (docs/report.md, schema 4)
RECORD_STATUSES = ("pass", "fail", "inconclusive", "error", "skipped")

#: what an inconclusive check does to the exit status (``--audit-inconclusive``, docs/intervals.md)
INCONCLUSIVE_POLICIES = ("fail", "pass")


def tally(checks: Iterable[CheckOutcome]) -> dict[str, int]:
    """How many checks passed, failed, were inconclusive and were skipped:
    ``{"pass": n, "fail": n, "inconclusive": n, "skip": n}``."""
    counts = {"pass": 0, "fail": 0, "inconclusive": 0, "skip": 0}
    for check in checks:
        counts[check.status] += 1
    return counts


def verdict_of(counts: dict[str, int]) -> str:
    """The verdict of a group of checks (a layer, a model) from their :func:`tally`: a failure decides it,
    then an undecided check (inconclusive is its own word, whatever the exit-status policy made of it),
    then a pass; "skip" when every check was skipped, "none" without checks.  Every output uses it."""
    for status in ("fail", "inconclusive", "pass", "skip"):
        if counts.get(status):
            return status
    return "none"


@dataclass(frozen=True)
class ReportSection:
    """A plugin's own section of the HTML report: typed content, escaped by the renderer."""

    title: str
    text: str = ""
    headers: tuple[str, ...] = ()
    rows: tuple[tuple[Any, ...], ...] = ()


@dataclass
class AuditResult:
    """One spec's run: provenance, probe data, per-layer results and check verdicts."""

    spec_path: Path
    name: str
    model: str                       # human label, e.g. "timm:efficientnet_lite0 [weights.pth]"
    source: str
    fingerprint: str
    device: str
    precision: str
    data_path: Path
    n_images: int                    # images that went through the model
    n_found: int                     # images selected from the folder (before unreadable ones were skipped)
    skipped: list[SkippedImage]      # unreadable images (path, reason)
    seconds: float
    layers: dict[str, LayerResult]
    checks: list[CheckOutcome]
    batch_size: int = 0
    provenance: dict[str, Any] = field(default_factory=dict)
    extraction_s: float = 0.0        # seconds the model ran in this audit (0 when every layer came from the store)
    #: where the activations came from: from_store (no layer extracted), extracted (layers), keys
    #: (layer -> store entry key), store (folder, or off), mode (on/off/refresh); {} in old records
    activations: dict[str, Any] = field(default_factory=dict)
    #: what the audit computed and why, and what it left out (:meth:`~..plan.plan.AuditPlan.to_record`);
    #: {} in records older than schema 4
    plan: dict[str, Any] = field(default_factory=dict)
    #: seconds per phase (model build, hashing, extraction per image set, each analysis), exclusive
    phases: dict[str, float] = field(default_factory=dict)
    #: sha256 of the spec file's bytes as the run collected it ("" in records before schema 4, and for an
    #: audit run from a spec object with no file behind it): what ``merge`` matches against a shard's spec set
    spec_sha256: str = ""

    def check(self, metric: str, layer: str, params: dict[str, Any] | None = None) -> CheckOutcome:
        """The verdict of ``metric`` on ``layer`` (at ``params``, when the spec checks it at several)."""
        for outcome in self.checks:
            if outcome.metric == metric and outcome.layer == layer and (params is None or outcome.params == dict(params)):
                return outcome
        raise KeyError(f"no check of {metric!r} on layer {layer!r} in {self.spec_path}")

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)
