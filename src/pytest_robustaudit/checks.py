"""Turn a metric value and its bounds into a verdict with a short, plain failure message."""

from __future__ import annotations

import math

from .metrics import MetricValue
from .results import CheckOutcome
from .specmodel import CheckSpec


def format_number(value: float) -> str:
    """Readable in a terminal: 4 significant digits, scientific only for very large/small values."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "undefined"
    if value == 0 or 1e-3 <= abs(value) < 1e6:
        text = f"{value:.4g}"
        return text
    return f"{value:.3e}"


def describe_bounds(check: CheckSpec) -> str:
    if check.min is not None and check.max is not None:
        return f"between {format_number(check.min)} and {format_number(check.max)}"
    if check.min is not None:
        return f">= {format_number(check.min)}"
    return f"<= {format_number(check.max)}"


def evaluate(check: CheckSpec, measured: MetricValue, context: str) -> CheckOutcome:
    """Compare ``measured`` with ``check``'s bounds; ``context`` names model, images and spec line."""
    value = measured.value
    label = f"{check.metric} on layer '{check.layer}'"
    if check.params:
        label += " (" + ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in check.params.items()) + ")"
    if measured.undefined_reason or math.isnan(value):
        reason = measured.undefined_reason or "the metric is undefined (NaN)"
        message = f"{label} could not be measured: {reason}\n  required: {describe_bounds(check)}"
        passed = False
    elif check.min is not None and value < check.min:
        message = (f"{label} = {format_number(value)}, below the minimum {format_number(check.min)}"
                   f"\n  required: {describe_bounds(check)} (higher passes)")
        passed = False
    elif check.max is not None and value > check.max:
        message = (f"{label} = {format_number(value)}, above the maximum {format_number(check.max)}"
                   f"\n  required: {describe_bounds(check)} (lower passes)")
        passed = False
    else:
        message = f"{label} = {format_number(value)}, within {describe_bounds(check)}"
        passed = True
    if "indices" in measured.details and measured.details["indices"]:
        shown = measured.details["indices"][:10]
        more = len(measured.details["indices"]) - len(shown)
        message += f"\n  outlier features: {', '.join(map(str, shown))}{f' (+{more} more)' if more > 0 else ''}"
    message += f"\n  {context}"
    return CheckOutcome(check.metric, check.layer, value, check.min, check.max, passed, message,
                        dict(check.params), dict(measured.details))
