"""Turn a metric value and its bounds into a verdict with a short, plain failure message.

Bounds are absolute (``min``/``max``) or relative to a reference value (``min_ratio``,
``max_ratio``, ``min_delta``, ``max_delta``); all of them are folded into one effective interval,
and the message says which bound was crossed, in which direction, and where it came from.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ..metrics.types import MetricValue
from ..results import CheckOutcome
from ..spec.schema import CheckSpec


def format_number(value: float | None) -> str:
    """Readable in a terminal: 4 significant digits (``1e+06``, ``20.59``, ``0.001234``)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "undefined"
    return f"{value:.4g}"


@dataclass(frozen=True)
class Bound:
    value: float
    why: str          # "" for an absolute bound, else how it derives from the reference


def effective_bounds(check: CheckSpec, reference: float | None) -> tuple[Bound | None, Bound | None]:
    """The tightest lower and upper bound among the check's absolute and relative bounds."""
    lows: list[Bound] = []
    highs: list[Bound] = []
    if check.min is not None:
        lows.append(Bound(check.min, ""))
    if check.max is not None:
        highs.append(Bound(check.max, ""))
    if reference is not None:
        ref = format_number(reference)
        if check.min_ratio is not None:
            lows.append(Bound(check.min_ratio * reference, f"{check.min_ratio:.4g} × the reference {ref}"))
        if check.max_ratio is not None:
            highs.append(Bound(check.max_ratio * reference, f"{check.max_ratio:.4g} × the reference {ref}"))
        if check.min_delta is not None:
            lows.append(Bound(reference + check.min_delta, f"the reference {ref} {check.min_delta:+.4g}"))
        if check.max_delta is not None:
            highs.append(Bound(reference + check.max_delta, f"the reference {ref} {check.max_delta:+.4g}"))
    low = max(lows, key=lambda b: b.value) if lows else None
    high = min(highs, key=lambda b: b.value) if highs else None
    return low, high


def describe_bounds(low: Bound | None, high: Bound | None) -> str:
    """The allowed range in words, for the ``required:`` line: ``between 5 and 60``, ``at least 5``,
    ``at most 0`` (words, not ``<=``: read the same in a terminal, a CI page and a Markdown file)."""
    if low is not None and high is not None:
        return f"between {format_number(low.value)} and {format_number(high.value)}"
    if low is not None:
        return f"at least {format_number(low.value)}"
    if high is not None:
        return f"at most {format_number(high.value)}"
    return "no bound"


def bound_text(low: float | None, high: float | None) -> str:
    """The bounds as a table shows them: ``min 5, max 60``, ``min 5``, ``max 0``."""
    parts = ([f"min {format_number(low)}"] if low is not None else []) + \
            ([f"max {format_number(high)}"] if high is not None else [])
    return ", ".join(parts) or "no bound"


def _excess(value: float, bound: float) -> str:
    """How far past its bound a value is: ``, +37%`` (``, ×21`` beyond ten times; nothing for a 0 bound)."""
    if bound == 0 or not math.isfinite(value) or not math.isfinite(bound):
        return ""
    ratio = (value - bound) / abs(bound)
    if abs(ratio) >= 10:
        return f", ×{value / bound:.3g}"
    return f", {ratio:+.0%}"


def verdict_text(value: float | None, low: float | None, high: float | None) -> str:
    """The value against its bounds in one plain phrase, the one every output shows beside a verdict:
    ``20.59 > max 15, +37%``, ``3.1 < min 5, -38%``, ``0 ≤ max 0``, ``20.59, between min 5 and max 60``."""
    shown = format_number(value)
    if value is None or math.isnan(value):
        return shown
    if low is not None and value < low:
        return f"{shown} < min {format_number(low)}{_excess(value, low)}"
    if high is not None and value > high:
        return f"{shown} > max {format_number(high)}{_excess(value, high)}"
    if low is not None and high is not None:
        return f"{shown}, between min {format_number(low)} and max {format_number(high)}"
    if low is not None:
        return f"{shown} ≥ min {format_number(low)}"
    if high is not None:
        return f"{shown} ≤ max {format_number(high)}"
    return shown


def params_label(params: dict[str, Any]) -> str:
    """A metric's parameters as shown to people: ``factor=100`` (floats without trailing zeros)."""
    return ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())


def check_label(check: CheckSpec) -> str:
    label = f"{check.metric} on layer '{check.layer}'"
    return label + f" ({params_label(check.params)})" if check.params else label


def evaluate(check: CheckSpec, measured: MetricValue, context: str,
             reference: MetricValue | None = None, reference_label: str = "", *, interval: Any = None,
             confidence: float | None = None, difference: Any = None, notes: tuple[str, ...] = (),
             inconclusive_policy: str = "fail") -> CheckOutcome:
    """Compare ``measured`` with ``check``'s bounds (relative ones against ``reference``).

    ``inconclusive_policy``: whether an inconclusive verdict passes the gate (:func:`counts_as_passed`).

    ``context`` names model, images and device; ``reference_label`` names what the reference is.
    ``interval``: the value's :class:`~.metrics.bootstrap.Interval` (shown; with ``confidence`` the
    check gates on it: pass inside the bounds, fail beyond one, else *inconclusive*, docs/intervals.md).
    ``difference``: candidate − reference (paired when the images matched), shown and, for a check
    with only delta bounds and ``confidence``, gated on.  ``notes``: extra lines (e.g. setup drift).
    """
    value = measured.value
    label = check_label(check)
    ref_value = None
    problem = measured.undefined_reason or ("the metric is undefined (NaN)" if math.isnan(value) else "")
    if check.relative:
        if reference is None:
            problem = problem or f"no reference value ({reference_label or 'no reference'})"
        elif reference.undefined_reason or math.isnan(reference.value):
            problem = problem or f"the reference value is undefined: {reference.undefined_reason or 'NaN'}"
        else:
            ref_value = reference.value
    low, high = effective_bounds(check, ref_value)
    required = describe_bounds(low, high)
    lo_value, hi_value = (low.value if low else None), (high.value if high else None)
    basis = gate_basis(check, problem, confidence, interval, difference)
    decided = decide(basis, value, lo_value, hi_value, interval=interval, difference=difference,
                     min_delta=check.min_delta, max_delta=check.max_delta, label=label)
    passed = counts_as_passed(decided.outcome, inconclusive_policy)
    if problem:
        message = f"{label}{UNMEASURED}{problem}\n  required: {required}"
    elif low is not None and value < low.value:
        source = f" ({low.why})" if low.why else ""
        message = (f"{label} = {verdict_text(value, lo_value, hi_value)}{source}"
                   f"\n  required: {required} (higher values pass)")
    elif high is not None and value > high.value:
        source = f" ({high.why})" if high.why else ""
        message = (f"{label} = {verdict_text(value, lo_value, hi_value)}{source}"
                   f"\n  required: {required} (lower values pass)")
    else:
        message = f"{label} = {verdict_text(value, lo_value, hi_value)}"
    gate = decided if basis in ("interval", "difference") else None
    if gate is not None:   # the interval's verdict replaces the value's wording, never the spec's reason
        message = gate.message + (f"\n  required: {required}" if gate.outcome != "inconclusive" else "")
    if check.why:
        message += f"\n  why: {check.why}"
    if gate is None and interval is not None and getattr(interval, "has_interval", False) and not problem:
        message += f"\n  interval: {interval.describe()}"
    if ref_value is not None:
        change = value - ref_value
        ratio = f", ×{value / ref_value:.3g}" if ref_value else ""
        message += (f"\n  candidate {format_number(value)} vs reference {format_number(ref_value)}: "
                    f"change {change:+.4g}{ratio} ({reference_label})")
    if difference is not None and not problem:
        settled = "distinguishable from zero" if difference.excludes(0) else "not distinguishable from zero"
        level = f" at {difference.level:.0%}" if difference.has_interval else ""
        message += f"\n  candidate − reference: {difference.describe()}: {settled}{level}"
        if difference.note:
            message += f" ({difference.note})"
    for note in notes:
        message += f"\n  note: {note}"
    if measured.details.get("indices"):
        shown = measured.details["indices"][:10]
        more = len(measured.details["indices"]) - len(shown)
        message += f"\n  outlier features: {', '.join(map(str, shown))}{f' (+{more} more)' if more > 0 else ''}"
    message += f"\n  {context}"
    return CheckOutcome(check.metric, check.layer, value, lo_value, hi_value,
                        passed, message, dict(check.params), dict(measured.details),
                        reference=ref_value, why=check.why, interval=interval, difference=difference,
                        confidence=confidence if gate is not None else None,
                        inconclusive=decided.outcome == "inconclusive",
                        images_needed=gate.images_needed if gate is not None else None,
                        basis=basis, min_delta=check.min_delta if basis == "difference" else None,
                        max_delta=check.max_delta if basis == "difference" else None,
                        margin=release_margin(check))


def release_margin(check: CheckSpec) -> float | None:
    """The equivalence margin a comparison with an earlier release reads ``check`` at: its ``margin:``, else
    the size of its smallest delta bound (the change the spec already tolerates), else None (0)."""
    if check.margin is not None:
        return check.margin
    deltas = [abs(d) for d in (check.min_delta, check.max_delta) if d is not None]
    return min(deltas) if deltas else None


#: what joins a check's label to the reason it could not be measured in its message
UNMEASURED = " could not be measured: "


def unmeasured_reason(message: str) -> str:
    """Why a check could not be measured (its value undefined: not applicable, NaN), read from its message
    ("" when the message does not say): what every summary line shows instead of a bare "undefined"."""
    _, found, rest = message.partition(UNMEASURED)
    return rest.split("\n", 1)[0] if found else ""


#: what a verdict is read from (recorded as ``basis``, so ``merge`` can settle a recorded check again):
#: the value against the effective bounds; the value's interval against them (``confidence``); candidate −
#: reference's interval against the delta bounds (a check with only delta bounds, with ``confidence``);
#: or nothing, when the check could not be measured (it fails)
BASES = ("value", "interval", "difference", "unmeasured")


def gate_basis(check: CheckSpec, problem: str, confidence: float | None, interval: Any, difference: Any) -> str:
    """Which of :data:`BASES` a check's verdict is read from."""
    if problem:
        return "unmeasured"
    if confidence is None or interval is None:
        return "value"
    delta_only = (check.min_delta is not None or check.max_delta is not None) and not any(
        v is not None for v in (check.min, check.max, check.min_ratio, check.max_ratio))
    return "difference" if delta_only and difference is not None and difference.has_interval else "interval"


def decide(basis: str, value: float, low: float | None, high: float | None, *, interval: Any = None,
           difference: Any = None, min_delta: float | None = None, max_delta: float | None = None,
           label: str = "the check") -> Any:
    """The verdict (a :class:`~.metrics.verdicts.Verdict`: pass, fail or inconclusive) of a check read
    from ``basis``: the one decision :func:`evaluate` makes, and ``merge`` makes again from a record's
    value, bounds, interval and difference (:func:`settle_again`) so that no shard is taken at its word."""
    from ..metrics.verdicts import Verdict, verdict

    if basis == "interval" and interval is not None:
        return verdict(label, interval, low, high, confidence=True)
    if basis == "difference" and difference is not None:
        return verdict(f"{label}: candidate − reference", difference, min_delta, max_delta, confidence=True)
    if basis in ("value", "interval", "difference") and not math.isnan(value) and \
            not (low is not None and value < low) and not (high is not None and value > high):
        return Verdict("pass", "")
    return Verdict("fail", "")


def counts_as_passed(outcome: str, inconclusive_policy: str = "fail") -> bool:
    """Whether a check with verdict ``outcome`` passes the gate: a pass does; an inconclusive one only
    under the policy ``"pass"`` (``--audit-inconclusive``; a gate that cannot decide does not pass by
    default); the one rule the run and ``merge`` apply."""
    return outcome == "pass" or (outcome == "inconclusive" and inconclusive_policy == "pass")


def settle_again(check: CheckOutcome) -> str:
    """``"pass"``, ``"fail"`` or ``"inconclusive"``: the verdict of a recorded check decided again from
    what its record says (value, bounds, basis, interval, difference) by :func:`decide`."""
    return decide(check.basis, check.value, check.min, check.max, interval=check.interval,
                  difference=check.difference, min_delta=check.min_delta, max_delta=check.max_delta).outcome


def min_images_outcome(check: CheckSpec, n_images: int, min_images: int, context: str) -> CheckOutcome:
    """A check failed before it is evaluated: fewer usable images than the spec's ``min_images``."""
    message = (f"{check_label(check)}: only {n_images} usable images, below the spec's min_images {min_images}; "
               f"a verdict on so few images would gate on noise\n"
               f"  fix: probe with at least {min_images} images (docs/intervals.md recommends 200 for the outlier "
               f"metrics), or lower min_images in the spec\n  {context}")
    return CheckOutcome(check.metric, check.layer, float("nan"), check.min, check.max, False, message,
                        dict(check.params), basis="unmeasured")
