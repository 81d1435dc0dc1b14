"""Pass, fail or inconclusive: a check's verdict from a value, its interval and its bounds (pure).

Without ``confidence`` a check gates on the value exactly as before; the message only adds the
interval.  With ``confidence`` (the interval's level) it passes only when the interval lies inside
the bounds, fails only when it lies entirely beyond one, and otherwise fails as *inconclusive*,
naming the interval, the bound and about how many images would settle it.

One-sided checks (only ``min`` or only ``max``) take a ``sided="lower"``/``"upper"`` interval,
whose ends are both one-sided bounds at the level (metrics/bootstrap.py): "passes" and "fails"
are each claims at that confidence.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .bootstrap import Interval

__all__ = ["OUTCOMES", "Verdict", "images_to_settle", "sided_for", "verdict"]

OUTCOMES = ("pass", "fail", "inconclusive")


@dataclass(frozen=True)
class Verdict:
    outcome: str                       # one of OUTCOMES
    message: str
    images_needed: int | None = None   # for "inconclusive": about how many images would settle it


def sided_for(minimum: float | None, maximum: float | None) -> str:
    """The interval a check with these bounds needs: one-sided for a single bound, else two-sided."""
    if minimum is not None and maximum is None:
        return "lower"
    if maximum is not None and minimum is None:
        return "upper"
    return "two-sided"


def images_to_settle(interval: Interval, bound: float) -> int | None:
    """About how many images would move the interval's end facing ``bound`` past it.

    The end facing the bound is at distance h from the value; h shrinks like 1/sqrt(n), so it
    clears the bound when n' = n · (h / |value - bound|)².  A rough guide for messages (it assumes
    the value stays where it is); None when the value sits on the bound or there is no interval.
    An interval that carries its own estimate (``settle_n``: a count's undecided features, whose
    z-scores grow like sqrt(n)) gives that instead.
    """
    if not interval.has_interval or interval.n < 1 or not math.isfinite(interval.value):
        return None
    if interval.settle_n is not None:       # the method's own estimate (a count: when its features are decided)
        return interval.settle_n
    gap = abs(interval.value - bound)
    if gap == 0:
        return None
    half = interval.value - interval.low if bound < interval.value else interval.high - interval.value
    if half <= 0:
        return interval.n
    return max(interval.n + 1, math.ceil(interval.n * (half / gap) ** 2))


def _bounds_text(minimum: float | None, maximum: float | None) -> str:
    parts = [f"min {minimum:g}" if minimum is not None else "", f"max {maximum:g}" if maximum is not None else ""]
    return ", ".join(p for p in parts if p)


def verdict(name: str, interval: Interval, minimum: float | None = None, maximum: float | None = None,
            confidence: bool = False) -> Verdict:
    """The verdict of check ``name`` on ``interval`` (whose ``value`` is the measured value).

    ``confidence``: gate on the interval (its ``level`` is the confidence asked for) rather than on
    the value.  A metric that is exact or informational, or has no interval (too few images), is
    gated on its value, and the message says so.
    """
    value = interval.value
    shown = interval.describe()
    bounds = _bounds_text(minimum, maximum)
    if not math.isfinite(value):
        return Verdict("fail", f"{name} is undefined ({interval.note or 'no value'}); bounds {bounds}")
    below = minimum is not None and value < minimum
    above = maximum is not None and value > maximum
    if not confidence or not interval.has_interval:
        why = "" if not confidence else " (gated on the value: no interval)"
        if below:
            return Verdict("fail", f"{name} = {shown} is below the minimum {minimum:g}{why}")
        if above:
            return Verdict("fail", f"{name} = {shown} is above the maximum {maximum:g}{why}")
        return Verdict("pass", f"{name} = {shown} is within {bounds}{why}")
    level = f"{interval.level:.0%}"
    if maximum is not None and interval.low > maximum:
        return Verdict("fail", f"{name} = {shown}: the whole {level} interval is above the maximum {maximum:g}")
    if minimum is not None and interval.high < minimum:
        return Verdict("fail", f"{name} = {shown}: the whole {level} interval is below the minimum {minimum:g}")
    low_ok = minimum is None or interval.low >= minimum
    high_ok = maximum is None or interval.high <= maximum
    if low_ok and high_ok:
        return Verdict("pass", f"{name} = {shown}: the {level} interval lies within {bounds}")
    straddled = [b for b, ok in ((minimum, low_ok), (maximum, high_ok)) if not ok]
    needs = [images_to_settle(interval, b) for b in straddled]
    needed = None if any(x is None for x in needs) else max(needs)
    which = " and ".join(("the minimum " if b == minimum and not low_ok else "the maximum ") + f"{b:g}"
                         for b in straddled)
    settle = (f"about {needed} images would settle it (now {interval.n})" if needed is not None else
              f"the value sits on the bound, so no number of images is sure to settle it (now {interval.n})")
    return Verdict("inconclusive",
                   f"{name} is inconclusive at {level}: {shown} straddles {which}; {settle}", needed)
