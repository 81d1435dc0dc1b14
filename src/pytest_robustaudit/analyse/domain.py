"""An interval that respects its metric's domain, and says when it is uninformative (issue 26).

A bootstrap knows nothing of what a metric can take: on 11 images ``profile_max_over_median`` (a
ratio of a maximum to a median, at least 1) read 13.15 [-5.873, 15.58].  An end outside
``Metric.domain`` is clipped to it, with a note that gives the end the bootstrap drew, since such
an end says the resampling did not behave at this n.  An interval is *uninformative* (our rule,
docs/intervals.md) when it had to be clipped, or when it is more than :data:`WIDE` times wider than
the value's own scale, max(|value|, 1) (``dead_units`` 3 [3, 1272] on 11 images): the outputs say
so beside the ends instead of letting the numbers read as a measurement.  Pure.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

__all__ = ["WIDE", "respect_domain"]

#: an interval wider than this many times max(|value|, 1) is uninformative at its n
WIDE = 10.0


def _end(x: float) -> str:
    return "∞" if x == math.inf else "−∞" if x == -math.inf else f"{x:g}"


def respect_domain(iv: Any, domain: Any) -> Any:
    """``iv`` (a :class:`~.metrics.bootstrap.Interval`) clipped to ``domain`` (a :class:`~..metrics.types.Domain`,
    or ``(low, high)``) and marked uninformative
    where it is (module docstring); unchanged when it has no interval."""
    if iv is None or not iv.has_interval:
        return iv
    low, high, notes, why = iv.low, iv.high, [], []
    if domain is not None:
        lo, hi = (domain.low, domain.high) if hasattr(domain, "low") else domain   # a metrics.types.Domain
        if low < lo or high > hi:
            drawn = ", ".join(f"{name} {x:.4g}" for name, x, out in (("low", low, low < lo), ("high", high, high > hi)) if out)
            notes.append(f"clipped to the metric's domain [{_end(lo)}, {_end(hi)}] (the bootstrap drew {drawn})")
            why.append("its ends left the metric's domain")
            low, high = max(low, lo), min(high, hi)
    scale = max(abs(iv.value), 1.0) if math.isfinite(iv.value) else 1.0
    if high - low > WIDE * scale:
        why.append(f"it is more than {WIDE:g}× wider than the value")
    if not notes and not why:
        return iv
    note = "; ".join(notes + ([iv.note] if iv.note else []))
    return dataclasses.replace(iv, low=low, high=high, note=note, uninformative="; ".join(why))
