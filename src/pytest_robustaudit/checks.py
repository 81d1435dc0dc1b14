"""Turn a metric value and its bounds into a verdict with a short, plain failure message.

Bounds are absolute (``min``/``max``) or relative to a reference value (``min_ratio``,
``max_ratio``, ``min_delta``, ``max_delta``); all of them are folded into one effective interval,
and the message says which bound was crossed, in which direction, and where it came from.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from .metrics.types import MetricValue
from .results import CheckOutcome
from .spec.schema import CheckSpec


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
             reference: MetricValue | None = None, reference_label: str = "") -> CheckOutcome:
    """Compare ``measured`` with ``check``'s bounds (relative ones against ``reference``).

    ``context`` names model, images and device; ``reference_label`` names what the reference is.
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
    if problem:
        message = f"{label} could not be measured: {problem}\n  required: {required}"
        passed = False
    elif low is not None and value < low.value:
        source = f" ({low.why})" if low.why else ""
        message = (f"{label} = {verdict_text(value, lo_value, hi_value)}{source}"
                   f"\n  required: {required} (higher values pass)")
        passed = False
    elif high is not None and value > high.value:
        source = f" ({high.why})" if high.why else ""
        message = (f"{label} = {verdict_text(value, lo_value, hi_value)}{source}"
                   f"\n  required: {required} (lower values pass)")
        passed = False
    else:
        message = f"{label} = {verdict_text(value, lo_value, hi_value)}"
        passed = True
    if check.why:
        message += f"\n  why: {check.why}"
    if ref_value is not None:
        change = value - ref_value
        ratio = f", ×{value / ref_value:.3g}" if ref_value else ""
        message += (f"\n  candidate {format_number(value)} vs reference {format_number(ref_value)}: "
                    f"change {change:+.4g}{ratio} ({reference_label})")
    if measured.details.get("indices"):
        shown = measured.details["indices"][:10]
        more = len(measured.details["indices"]) - len(shown)
        message += f"\n  outlier features: {', '.join(map(str, shown))}{f' (+{more} more)' if more > 0 else ''}"
    message += f"\n  {context}"
    return CheckOutcome(check.metric, check.layer, value, lo_value, hi_value,
                        passed, message, dict(check.params), dict(measured.details),
                        reference=ref_value, why=check.why)
