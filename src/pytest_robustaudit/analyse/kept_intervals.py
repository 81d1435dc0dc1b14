"""Intervals of the outlier family kept in the activation store, so a warm audit does not resample again.

Why: an outlier metric's interval is a pure function of the layer's stored rows, the audit's seeds (its
name and layer), the resamples, the bootstrap method and the level, and the metric's definition.  It is
the dearest part of a warm audit (a pass of resampled profiles over every row, then a thousand
resamples per metric).  Kept per layer under a content key of all of those in ``intervals/``; the rows
enter by their entry's key and creation time, so a refreshed entry gets new intervals.  Only metrics
that read nothing but the layer's summary are kept: the others depend on a head or other image sets.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from pathlib import Path
from typing import Any

from ..metrics.types import NEEDS_SUMMARY

INTERVALS = "intervals"
#: bumped when an interval family's computation changes
KEPT_FORMAT = 2   # 2: intervals clipped to the metric's domain and marked uninformative (issue 26)


def keepable(metric: Any) -> bool:
    """A metric whose interval depends on the layer's rows alone."""
    return metric.inputs <= {NEEDS_SUMMARY}


def kept_key(entry: Any, audit: str, layer: str, resamples: int, method: str, level: float,
             metrics: dict[str, Any]) -> str:
    """The content key of one layer's kept intervals (``metrics``: name -> Metric, the keepable ones)."""
    from ..store import content_key

    # the audit's name and the layer seed its resamples; a name is any text (a file name that is not UTF-8)
    named = hashlib.sha256(json.dumps([audit, layer]).encode("ascii")).hexdigest()
    return content_key({"kept_intervals": {
        "format": KEPT_FORMAT, "entry": entry.key, "created": entry.created, "audit_layer": named,
        "resamples": int(resamples), "method": method, "level": float(level),
        "metrics": {n: [m.version, m.interval, json.loads(json.dumps(m.defaults(), default=str))]
                    for n, m in sorted(metrics.items())}}})


def _digest(intervals: Any) -> str:
    """sha256 of the intervals' canonical JSON: a kept file whose numbers changed on disk is recomputed."""
    return hashlib.sha256(json.dumps(intervals, sort_keys=True).encode("ascii")).hexdigest()


def _path(store: Any, key: str) -> Path:
    return Path(store.root) / INTERVALS / f"{key}.json"


def read_kept(store: Any, key: str) -> dict[str, Any] | None:
    """The kept intervals (metric -> Interval), or None (absent or damaged: recomputed)."""
    from ..files import read_json
    from ..results.record import interval_from_json

    path = _path(store, key)
    try:
        if not path.is_file():
            return None
        found = read_json(path, 1 << 24)   # a regular file only, of a bounded size
        if not isinstance(found, dict) or found.get("key") != key or not isinstance(found.get("intervals"), dict):
            return None
        if found.get("sha256") != _digest(found["intervals"]):   # a flipped digit in a number: not trusted
            return None
        return {str(name): interval_from_json(value) for name, value in found["intervals"].items()}
    except Exception:  # noqa: BLE001 - a damaged file is recomputed, never trusted
        return None


def write_kept(store: Any, key: str, intervals: dict[str, Any]) -> None:
    """Keep ``intervals`` under ``key`` (a temporary file renamed into place; not kept is only slower)."""
    from ..atomic import write_text_atomic
    from ..results.record import interval_to_json

    kept = {n: interval_to_json(iv) for n, iv in intervals.items()}
    with contextlib.suppress(OSError):
        write_text_atomic(_path(store, key), json.dumps({"key": key, "sha256": _digest(kept), "intervals": kept}))
