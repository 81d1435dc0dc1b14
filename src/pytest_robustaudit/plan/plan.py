"""The plan of one audit: which metrics it computes on which layers, and so what it must measure.

Why a plan: an audit used to evaluate every registered metric on every layer, and a metric pulled
what it needed on the way (a shifted set's extraction, a head, a random null).  Now the metrics
declare what they read (:attr:`~..metrics.types.Metric.inputs`) and the plan is derived before
anything runs, from what will read the audit:

* the spec's checks (each at its layer);
* the spec's ``measure:`` key (names, or ``all``);
* the defaults: every metric marked :attr:`~..metrics.types.Metric.by_default` whose inputs the spec
  already declares (the outlier family always; top-1/top-5 where the probe is labelled and a head
  is at hand; the shift metrics where the spec has ``shifts:``; ``concepts_encoded`` where it has
  ``concepts:``).  Directions, pruning and the random-direction concept nulls never run unasked;
* requests from outside the spec (:class:`Request`): the candidate's relative checks read a
  reference model's twin audit, a relation file reads its metric and ER across every audit,
  ``--audit-save-baseline`` keeps what a future relative check may read, a fixture's
  ``run.value(...)`` asks on demand.

The runner then measures exactly what the planned metrics read (:attr:`AuditPlan.inputs`) and the
analyses compute exactly the planned metrics.  Free of torch and pytest.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterable

from ..metrics.types import (NEEDS_CONCEPTS, NEEDS_CORRUPTED, NEEDS_HEAD, NEEDS_LABELS, NEEDS_ROWS, NEEDS_SHIFTED,
                             NEEDS_SUMMARY)

if TYPE_CHECKING:
    from ..registries import Registries
    from ..spec.schema import AuditSpec

#: ``measure: all`` in a spec (or ``--audit-measure all``)
ALL = "all"

#: why a metric is planned, as the plan listing and the record say it
WHY_DEFAULT = "default"
WHY_CHECK = "check"
WHY_MEASURE = "measure"


@dataclass(frozen=True)
class Request:
    """A metric something outside the spec will read (``layers`` empty: every layer of the spec)."""

    metric: str
    why: str
    layers: tuple[str, ...] = ()


@dataclass(frozen=True)
class Planned:
    """One planned metric: the layers it is computed on and every reason it is computed."""

    metric: str
    layers: tuple[str, ...]
    why: tuple[str, ...]


@dataclass(frozen=True)
class AuditPlan:
    """What one audit computes (``planned``, in registry order) and what it leaves out (``left_out``:
    metric name -> why it is not computed and how to ask for it)."""

    audit: str
    layers: tuple[str, ...]
    planned: dict[str, Planned] = field(default_factory=dict)
    left_out: dict[str, str] = field(default_factory=dict)
    #: the inputs the planned metrics read (:data:`~..metrics.types.NEEDS`): what the runner measures
    inputs: frozenset[str] = frozenset()

    def computes(self, metric: str, layer: str | None = None) -> bool:
        found = self.planned.get(metric)
        return found is not None and (layer is None or layer in found.layers)

    def metrics_on(self, layer: str) -> list[str]:
        """The planned metrics of ``layer``, in registry order."""
        return [name for name, p in self.planned.items() if layer in p.layers]

    def needs(self, what: str) -> bool:
        return what in self.inputs

    def to_record(self) -> dict[str, Any]:
        """The JSON form kept in the record (``plan``)."""
        return {"planned": {n: {"layers": list(p.layers), "why": list(p.why)} for n, p in self.planned.items()},
                "left_out": dict(self.left_out), "inputs": sorted(self.inputs)}

    def lines(self) -> list[str]:
        """The plan as ``validate --plan`` prints it."""
        out = [f"{self.audit}: {len(self.planned)} metrics on {len(self.layers)} layers; "
               f"measures: {', '.join(sorted(self.inputs))}"]
        width = max((len(n) for n in self.planned), default=0)
        for name, p in self.planned.items():
            on = "every layer" if p.layers == self.layers else ", ".join(p.layers)
            out.append(f"  {name:<{width}}  {on:<28}  ({'; '.join(p.why)})")
        if self.left_out:
            out.append(f"  not computed ({len(self.left_out)}): " + ", ".join(self.left_out))
        return out


def declared_inputs(spec: "AuditSpec", registries: "Registries", labelled: bool | None = None) -> frozenset[str]:
    """The inputs the spec itself declares, so that a default metric reading only these is computed.

    ``labelled``: whether the probe has labels (None: not known yet, judged from ``data.labels``)."""
    from ..measure.head_source import head_wanted, resolved_kind

    have = {NEEDS_SUMMARY, NEEDS_ROWS}
    if labelled is None:
        labelled = spec.data.labels != "none" and spec.model.source != "activations"
    if labelled:
        have.add(NEEDS_LABELS)
    kind = resolved_kind(spec)
    # a zero-shot head costs minutes of text tower: at hand only when asked for (head: or a check)
    if kind == "classifier" or (kind == "zero-shot" and head_wanted(spec, registries)):
        have.add(NEEDS_HEAD)
    if any(s.kind != "corruption" for s in spec.shifts):
        have.add(NEEDS_SHIFTED)
    if any(s.kind == "corruption" for s in spec.shifts):
        have.add(NEEDS_CORRUPTED)
    if spec.concepts is not None:
        have.add(NEEDS_CONCEPTS)
    return frozenset(have)


def build_plan(spec: "AuditSpec", registries: "Registries", requests: Iterable[Request] = (),
               labelled: bool | None = None, measure_all: bool = False) -> AuditPlan:
    """The plan of ``spec`` (see the module docstring); ``measure_all``: as if the spec said ``measure: all``."""
    metrics = registries.metrics
    layers = tuple(spec.layers)
    declared = declared_inputs(spec, registries, labelled)
    wanted: dict[str, dict[str, list[str]]] = {}   # metric -> layer -> reasons

    def want(metric: str, on: Iterable[str], why: str) -> None:
        per_layer = wanted.setdefault(metric, {})
        for layer in on:
            reasons = per_layer.setdefault(layer, [])
            if why not in reasons:
                reasons.append(why)

    everything = measure_all or getattr(spec, "measure_all", False)
    for name in metrics.names():
        metric = metrics.get(name)
        if everything:
            want(name, layers, f"{WHY_MEASURE}: {ALL}")
        elif metric.by_default and metric.inputs <= declared:
            want(name, layers, WHY_DEFAULT)
    for name in getattr(spec, "measure", ()) or ():
        if name in metrics:
            want(name, layers, WHY_MEASURE)
    for check in spec.checks:
        if check.metric in metrics:
            want(check.metric, (check.layer,), WHY_CHECK)
    for request in requests:
        if request.metric in metrics:
            want(request.metric, request.layers or layers, request.why)
    planned: dict[str, Planned] = {}
    inputs: set[str] = {NEEDS_SUMMARY}
    for name in metrics.names():           # registry order: the order every output lists metrics in
        per_layer = wanted.get(name)
        if not per_layer:
            continue
        on = tuple(layer for layer in layers if layer in per_layer) + \
            tuple(layer for layer in per_layer if layer not in layers)
        why: list[str] = []
        for reasons in per_layer.values():
            why.extend(r for r in reasons if r not in why)
        planned[name] = Planned(name, on, tuple(why))
        inputs |= metrics.get(name).inputs
    left_out = {name: _how_to_ask(metrics.get(name), spec, declared) for name in metrics.names() if name not in planned}
    return AuditPlan(spec.name, layers, planned, left_out, frozenset(inputs))


def _how_to_ask(metric: Any, spec: "AuditSpec", declared: frozenset[str]) -> str:
    """Why ``metric`` is left out of a plan, and the way to ask for it."""
    missing = sorted(metric.inputs - declared)
    if metric.by_default and missing:
        return "; ".join(_MISSING.get(need, need) for need in missing if need in _MISSING) \
            .replace("{head}", "the spec sets `head: none`" if spec.head.kind == "none" else
                     "a zero-shot head is built only when a check reads it or the spec sets `head:`") \
            or f"reads {', '.join(missing)}, which this audit does not have"
    return f"not asked for: check it, or list it under `measure:` (or `measure: {ALL}`)"


#: a default metric left out for want of an input: what is missing, and the way to give it
_MISSING = {
    NEEDS_LABELS: "the probe images carry no labels (label them: docs/data.md)",
    NEEDS_HEAD: "no classification head ({head})",
    NEEDS_SHIFTED: "the spec has no shifted sets (`shifts:`, docs/spec.md#shifts)",
    NEEDS_CORRUPTED: "the spec has no corruptions (`shifts:` entries with `corruption:`, docs/corruptions.md)",
    NEEDS_CONCEPTS: "the spec has no concept bank (`concepts:`, docs/concepts.md)",
}


def relation_requests(relation: Any) -> list[Request]:
    """What a relation file reads of every audit: its metric (on its layer, else every layer) and ER."""
    why = f"relation {relation.path.name}"
    layers = (relation.layer,) if relation.layer else ()
    return [Request(relation.metric, why, layers), Request("effective_robustness", why)]
