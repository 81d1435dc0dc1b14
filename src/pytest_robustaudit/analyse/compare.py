"""How each value of an audit moved from a reference run (the last release, a label, a record file).

Why this module: a release is judged against the one before it, and a reviewer must tell a real
change from resampling noise.  Every value both runs hold gets its change (current − reference) with
an interval:

* **paired by image** where the metric's interval resamples per-image values the record keeps
  (``kurtosis_mean`` and its family) and both runs saw exactly the same images: the same bootstrap
  weights on both sides, so the image-to-image variation common to both cancels;
* **from the recorded intervals** otherwise (unpaired: each side's standard error read off its
  interval, combined as independent; wider and approximate, and said so);
* none when one side has no interval (then only an exact zero change reads as unchanged).

A **checked** metric gets a gate verdict against an equivalence margin ``m`` (the check's ``margin:``,
else the size of its delta bound, else 0), reading the change in the direction that moves toward
violating its bound ("bad"):

* ``regressed``: the whole interval of the bad-direction change is above ``m``;
* ``improved``: the whole interval is below ``-m``;
* ``unchanged``: the whole interval lies within ``[-m, m]``;
* ``inconclusive``: anything else (more images, or a margin, would settle it).

An **unchecked** value reads ``changed up`` / ``changed down`` when its interval excludes zero, else
``no clear change``: exploratory only, since many comparisons at 95% flag some false changes, so only
checks gate.  Free of pytest and torch.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

from ..metrics import bootstrap as bs
from ..results import AuditResult, CheckOutcome
from .checks import bound_text, params_label
from .intervals import match_images, paired_per_image, per_image_family

#: gate verdicts of a checked metric, and readings of an unchecked one
GATE_VERDICTS = ("regressed", "improved", "unchanged", "inconclusive")
EXPLORATORY = ("changed up", "changed down", "no clear change", "unchanged")


@dataclass(frozen=True)
class Change:
    """One value's move from the reference: ``interval`` is of current − reference (None: none)."""

    layer: str
    metric: str
    params: dict[str, Any]
    checked: bool
    value: float
    reference: float
    interval: bs.Interval | None
    basis: str
    verdict: str
    margin: float = 0.0
    bound: str = ""         # the check's bounds, as messages write them ("" for an unchecked value)
    bad: str = ""           # the direction that moves toward violating the bound: "up", "down" or ""

    @property
    def delta(self) -> float:
        return self.value - self.reference


@dataclass
class AuditComparison:
    """An audit's changes from its reference, or why it was not compared (``skipped``)."""

    audit: str
    key: str
    reference: str = ""                     # what the reference is, for people ("v1.3 (2026-11-30T…)")
    changes: list[Change] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    skipped: str = ""

    @property
    def regressed(self) -> list[Change]:
        return [c for c in self.changes if c.checked and c.verdict == "regressed"]

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for c in self.changes:
            if c.checked:
                out[c.verdict] = out.get(c.verdict, 0) + 1
        return out


def value_name(metric: str, params: dict[str, Any], layer: str) -> str:
    """How a compared value is named in every output: ``outlier_count (factor=100) @ representation``."""
    return (f"{metric} ({params_label(params)})" if params else metric) + f" @ {layer}"


def default_margin(check: CheckOutcome) -> float:
    """The equivalence margin of ``check`` as judged (:func:`.checks.release_margin`; 0 when it has none)."""
    margin = check.margin
    return float(margin) if margin is not None and math.isfinite(margin) else 0.0


def crosses_middle(check: CheckOutcome, reference_value: float, value: float) -> bool:
    """Whether, between two bounds, the value moved from nearer one bound to nearer the other: the room
    left to the bounds is then not read off the change's sign (:func:`gate_verdict` never says improved)."""
    low, high = check.min, check.max
    if low is None or high is None or not all(math.isfinite(x) for x in (low, high, reference_value, value)):
        return False
    middle = (low + high) / 2
    return (reference_value - middle) * (value - middle) < 0


def bad_direction(check: CheckOutcome, reference_value: float) -> str:
    """``up`` when an increase moves toward violating the check's bounds, ``down`` for a decrease: a
    check with only a lower bound fails low, one with only an upper bound fails high, one with both
    toward whichever bound the reference value was nearer to (the caller passes the current value where
    the move crossed the middle: :func:`crosses_middle`)."""
    low = check.min if check.min is not None and math.isfinite(check.min) else None
    high = check.max if check.max is not None and math.isfinite(check.max) else None
    if low is not None and high is None:
        return "down"
    if high is not None and low is None:
        return "up"
    if low is not None and high is not None:
        if math.isfinite(reference_value):
            return "down" if reference_value - low <= high - reference_value else "up"
        return "down"
    return ""


def gate_verdict(interval: bs.Interval | None, delta: float, bad: str, margin: float, crossed: bool = False) -> str:
    """One of :data:`GATE_VERDICTS` for a checked metric (see the module docstring).  ``crossed``: the move
    crossed the middle between two bounds (``bad`` then points at the bound now nearer): it may have
    regressed, never improved, and when the room to the bounds did not shrink by more than the margin it
    is inconclusive."""
    if crossed:
        found = gate_verdict(interval, delta, bad, margin)
        return "regressed" if found == "regressed" else "inconclusive"
    if not math.isfinite(delta):
        return "inconclusive"
    if interval is None or not interval.has_interval:
        return "unchanged" if abs(delta) <= margin else "inconclusive"
    # the change toward the bound (no direction is worse without one: then only equivalence can be read)
    sign = -1.0 if bad == "down" else 1.0
    lo, hi = sorted((sign * interval.low, sign * interval.high))
    if bad and lo > margin:
        return "regressed"
    if bad and hi < -margin:
        return "improved"
    return "unchanged" if -margin <= lo and hi <= margin else "inconclusive"


def exploratory_reading(interval: bs.Interval | None, delta: float) -> str:
    """One of :data:`EXPLORATORY` for an unchecked value."""
    if not math.isfinite(delta):
        return "no clear change"
    if interval is None or not interval.has_interval:
        return "unchanged" if delta == 0 else "no clear change"
    if interval.excludes(0):
        return "changed up" if delta > 0 else "changed down"
    return "no clear change"


def _metric(metrics: Any, name: str) -> Any:
    if metrics is None:
        return None
    from ..errors import RegistryError

    try:
        return metrics.get(name)
    except RegistryError:   # a record may name a plugin metric this process does not register
        return None


def _same_images(current: AuditResult, reference: AuditResult, layer: str) -> tuple[list[int], list[int]] | None:
    a, b = current.layers[layer].image_hashes, reference.layers[layer].image_hashes
    if len(a) < 2 or len(a) != len(b):
        return None
    a_index, b_index = match_images(a, b)
    return (a_index, b_index) if len(a_index) == len(a) else None


def _change_interval(metric: Any, name: str, params: dict[str, Any], current: AuditResult, reference: AuditResult,
                     layer: str, cur_iv: Any, ref_iv: Any, level: float, resamples: int,
                     delta: float) -> tuple[bs.Interval | None, str]:
    """The interval of current − reference and the words for how it was found."""
    pairs = _same_images(current, reference, layer)
    if metric is not None and per_image_family(metric) and pairs is not None:
        seed = bs.derive_seed(current.name, layer, name + " (release change)", params)
        try:
            iv = paired_per_image(metric, current.layers[layer].stats, reference.layers[layer].stats, *pairs,
                                  seed=seed, level=level, resamples=resamples)
            if iv.has_interval:
                return iv, f"paired by image ({len(pairs[0])} images)"
        except (ValueError, ArithmeticError, AttributeError):
            pass        # per-image values missing or malformed on one side: the recorded intervals below
    if all(iv is not None and getattr(iv, "exact", False) for iv in (cur_iv, ref_iv)) and math.isfinite(delta):
        return bs.Interval(delta, delta, delta, level, "exact"), "exact on both sides"
    has = [iv is not None and getattr(iv, "has_interval", False) and _usable_level(iv.level) for iv in (cur_iv, ref_iv)]
    if all(has):
        try:
            iv = bs.unpaired_difference(cur_iv, ref_iv, level=level)
        except (ValueError, ArithmeticError):
            return None, "no interval: a recorded interval could not be read"
        # centred on the change of the values compared (an interval recorded beside a check at other
        # parameters, or rounded in a record, may carry another point value)
        shift = delta - iv.value
        if math.isfinite(shift) and shift:
            iv = dataclasses.replace(iv, value=delta, low=iv.low + shift, high=iv.high + shift)
        return iv, "from the recorded intervals (unpaired)"
    return None, "no interval on " + ("either side" if not any(has) else "the reference" if has[0] else "this run")


def _usable_level(level: Any) -> bool:
    """A recorded interval's level a standard error can be read from (a hand-edited 1.0 or 0.3 cannot)."""
    return isinstance(level, (int, float)) and 0.5 < level < 1


def interval_level(result: AuditResult) -> float:
    """The level ``result``'s intervals were computed at (the run's; the project default without any), which
    a comparison of it uses, in a run and in ``diff`` alike."""
    for layer in result.layers.values():
        for iv in layer.intervals.values():
            if getattr(iv, "has_interval", False) and _usable_level(iv.level):
                return float(iv.level)
    return bs.DEFAULT_LEVEL


def _params_key(params: dict[str, Any]) -> tuple:
    return tuple(sorted((k, repr(v)) for k, v in params.items()))


def compare_audits(current: AuditResult, reference: AuditResult, metrics: Any = None, *, key: str = "",
                   reference_label: str = "", level: float = bs.DEFAULT_LEVEL,
                   resamples: int = bs.DEFAULT_RESAMPLES) -> AuditComparison:
    """Every value ``current`` and ``reference`` both hold, with its change and verdict."""
    out = AuditComparison(current.name, key or current.name, reference_label)
    if current.fingerprint and reference.fingerprint and current.fingerprint == reference.fingerprint:
        out.notes.append("the same checkpoint as the reference (same model fingerprint)")
    shared = [name for name in current.layers if name in reference.layers]
    for name in current.layers:
        if name not in reference.layers:
            out.notes.append(f"layer {name} is not in the reference: not compared")
    if shared and _same_images(current, reference, shared[0]) is None:
        hashed = all(layer.layers[shared[0]].image_hashes for layer in (current, reference))
        out.notes.append("the probe images differ from the reference's: every change is unpaired" if hashed else
                         "a record keeps no image hashes: every change is unpaired")
    ref_checks = {(c.metric, c.layer, _params_key(c.params)): c for c in reference.checks}
    covered: set[tuple] = set()
    for check in current.checks:
        label = value_name(check.metric, check.params, check.layer)
        if check.layer not in reference.layers:
            continue                                   # said once per layer above
        if math.isnan(check.value):
            if not check.skip_reason:
                out.notes.append(f"{label} not compared: its value is undefined in this run")
            continue
        metric = _metric(metrics, check.metric)
        defaults = metric.defaults() if metric is not None else {}
        at_defaults = dict(check.params) == defaults or not check.params
        ref_check = ref_checks.get((check.metric, check.layer, _params_key(check.params)))
        ref_layer = reference.layers[check.layer]
        if ref_check is not None and not math.isnan(ref_check.value):
            ref_value, ref_iv = ref_check.value, ref_check.interval
            if at_defaults and check.metric in ref_layer.intervals:
                ref_iv = ref_layer.intervals[check.metric]
        elif at_defaults and check.metric in ref_layer.metrics:
            ref_value, ref_iv = ref_layer.metrics[check.metric].value, ref_layer.intervals.get(check.metric)
        else:
            out.notes.append(f"{label} not compared: the reference has no value of it at these parameters")
            continue
        if not math.isfinite(ref_value) and not math.isfinite(check.value):
            continue
        cur_layer = current.layers[check.layer]
        cur_iv = cur_layer.intervals.get(check.metric) if at_defaults and check.metric in cur_layer.intervals \
            else check.interval
        iv, basis = _change_interval(metric, check.metric, dict(check.params), current, reference, check.layer,
                                     cur_iv, ref_iv, level, resamples, check.value - ref_value)
        crossed = crosses_middle(check, ref_value, check.value)
        bad = bad_direction(check, check.value if crossed else ref_value)
        margin = default_margin(check)
        out.changes.append(Change(check.layer, check.metric, dict(check.params), True, check.value, ref_value, iv,
                                  basis, gate_verdict(iv, check.value - ref_value, bad, margin, crossed), margin,
                                  bound_text(check.min, check.max), bad))
        if at_defaults:
            covered.add((check.metric, check.layer))
    for layer in shared:
        cur_layer, ref_layer = current.layers[layer], reference.layers[layer]
        for name, mv in cur_layer.metrics.items():
            if (name, layer) in covered or name not in ref_layer.metrics:
                continue
            ref_mv = ref_layer.metrics[name]
            if mv.undefined_reason or ref_mv.undefined_reason or math.isnan(mv.value) or math.isnan(ref_mv.value):
                continue
            metric = _metric(metrics, name)
            iv, basis = _change_interval(metric, name, metric.defaults() if metric is not None else {}, current,
                                         reference, layer, cur_layer.intervals.get(name), ref_layer.intervals.get(name),
                                         level, resamples, mv.value - ref_mv.value)
            out.changes.append(Change(layer, name, {}, False, mv.value, ref_mv.value, iv, basis,
                                      exploratory_reading(iv, mv.value - ref_mv.value)))
    return out


def compare_runs(current: Sequence[AuditResult], reference: Sequence[AuditResult], metrics: Any = None, *,
                 reference_label: str = "", level: float | None = None,
                 resamples: int = bs.DEFAULT_RESAMPLES) -> list[AuditComparison]:
    """Two records' audits matched by name (``diff``); an audit only one side holds is reported skipped.
    ``level``: None reads each audit's own (:func:`interval_level`), as its run's ``--audit-compare`` did."""
    by_name = {r.name: r for r in reference}
    out = []
    for result in current:
        found = by_name.get(result.name)
        if found is None:
            out.append(AuditComparison(result.name, result.name, reference_label,
                                       skipped="the reference record holds no audit of this name"))
            continue
        out.append(compare_audits(result, found, metrics, reference_label=reference_label,
                                  level=interval_level(result) if level is None else level, resamples=resamples))
    return out


def any_regression(comparisons: Iterable[AuditComparison]) -> bool:
    return any(c.regressed for c in comparisons)


# ---- the record's form ----------------------------------------------------------------------------------------

def change_to_json(change: Change) -> dict[str, Any]:
    iv = change.interval
    has = iv is not None and iv.has_interval
    return {"layer": change.layer, "metric": change.metric, "params": dict(change.params), "checked": change.checked,
            "value": change.value, "reference": change.reference, "change": change.delta,
            "low": iv.low if has else None, "high": iv.high if has else None,
            "level": iv.level if has else None, "basis": change.basis, "margin": change.margin,
            "bad": change.bad, "bound": change.bound, "verdict": change.verdict}


def comparison_to_json(comparison: AuditComparison) -> dict[str, Any]:
    return {"audit": comparison.audit, "key": comparison.key, "reference": comparison.reference,
            "skipped": comparison.skipped, "notes": list(comparison.notes),
            "counts": comparison.counts(), "changes": [change_to_json(c) for c in comparison.changes]}


def _num(value: Any) -> float:
    from ..results.history import json_float

    return json_float(value)


def comparison_from_json(data: dict[str, Any]) -> AuditComparison:
    """Read back what :func:`comparison_to_json` wrote (a record's ``run.comparison.audits`` items)."""
    changes = []
    for c in data.get("changes", []):
        low, high = c.get("low"), c.get("high")
        iv = None
        if low is not None and high is not None:
            iv = bs.Interval(_num(c.get("change")), _num(low), _num(high), _num(c.get("level")), "recorded")
        changes.append(Change(str(c["layer"]), str(c["metric"]), dict(c.get("params") or {}), bool(c.get("checked")),
                              _num(c.get("value")), _num(c.get("reference")), iv, str(c.get("basis", "")),
                              str(c.get("verdict", "")), _num(c.get("margin")) if c.get("margin") is not None else 0.0,
                              str(c.get("bound", "")), str(c.get("bad", ""))))
    return AuditComparison(str(data.get("audit", "")), str(data.get("key", "")), str(data.get("reference", "")),
                           changes, [str(n) for n in data.get("notes", [])], str(data.get("skipped", "")))
