"""The outcome of a run-level relation check, as every output and ``merge`` read it.

Why a module: a relation file (docs/spec.md#relation-checks) is judged over the *set* of a run's
audits, so its verdict is a run-level fact, not a check of one audit.  :func:`judge` decides it from
the audits' results (the pytest item, and ``merge`` over every shard's audits read back from their
records: the same function, so the same verdict); :func:`deferred` is what a ``--audit-shard`` run
records instead, with the bounds ``merge`` needs.  The record keeps each outcome under
``run.relations`` (:meth:`RelationOutcome.to_dict`; schema 5, docs/report.md#relation-checks) and
:func:`relations_in` reads them back, located errors for a malformed one.  Free of pytest.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Iterable

from ..errors import AuditError, headline

#: every status a relation can have; "deferred": judged by ``merge`` over every shard's audits
RELATION_STATUSES = ("pass", "fail", "inconclusive", "error", "deferred")
#: the statuses that fail a run (and ``merge``): only "pass" passes; "deferred" is not judged yet
FAILING = ("fail", "inconclusive", "error")


class RelationRecordError(AuditError):
    """A record's ``run.relations`` entry that cannot be read."""


@dataclass(frozen=True)
class RelationOutcome:
    """One relation file's verdict over a run's audits.

    ``file``: the file's path relative to pytest's rootdir (how shards name it, as ``run.spec_set``
    does); ``sha256``: its bytes'.  ``status``: one of :data:`RELATION_STATUSES`.  ``rho``, ``low``,
    ``high`` (None where undefined), ``level``, ``n``: Spearman's rho and its interval; ``models``: each
    related audit as ``{"name", "value", "robustness", "layer"}``; ``left_out``: audits without both
    values, or that could not be audited, each with why; ``message``: the verdict in words (a
    deferred one says who decides it)."""

    file: str
    metric: str
    layer: str | None = None
    min_rho: float | None = None
    max_rho: float | None = None
    confidence: float | None = None
    status: str = "deferred"
    rho: float | None = None
    low: float | None = None
    high: float | None = None
    level: float | None = None
    n: int = 0
    models: tuple[dict[str, Any], ...] = ()
    left_out: tuple[str, ...] = ()
    message: str = ""
    sha256: str = ""
    nodeid: str = ""
    robustness: str = "effective_robustness"

    @property
    def failed(self) -> bool:
        return self.status in FAILING

    def bound_text(self) -> str:
        """The bound in words: ``rho ≥ 0.5`` (and the confidence the interval is read at)."""
        parts = ([f"rho ≥ {self.min_rho:g}"] if self.min_rho is not None else []) + \
                ([f"rho ≤ {self.max_rho:g}"] if self.max_rho is not None else [])
        text = " and ".join(parts) or "none"
        return text + (f" ({self.confidence:.0%} interval)" if self.confidence is not None else "")

    def to_dict(self) -> dict[str, Any]:
        """The record's ``run.relations[]`` entry (plain JSON; non-finite numbers as the record writes them)."""
        return {"file": self.file, "sha256": self.sha256, "nodeid": self.nodeid, "metric": self.metric,
                "robustness": self.robustness, "layer": self.layer, "min_rho": self.min_rho,
                "max_rho": self.max_rho, "confidence": self.confidence, "status": self.status, "rho": self.rho,
                "low": self.low, "high": self.high, "level": self.level, "n": self.n,
                "models": [dict(m) for m in self.models], "left_out": list(self.left_out), "message": self.message}


def bounds_of(spec: Any, file: str, sha256: str = "", nodeid: str = "") -> RelationOutcome:
    """A not-yet-judged outcome carrying a :class:`~..spec.schema.RelationSpec`'s bounds."""
    return RelationOutcome(file=file, metric=spec.metric, layer=spec.layer, min_rho=spec.min_rho,
                           max_rho=spec.max_rho, confidence=spec.confidence, sha256=sha256, nodeid=nodeid)


def deferred(bounds: RelationOutcome, shard: str) -> RelationOutcome:
    """What shard ``shard`` ("K/N") records: the bounds, no verdict (each shard holds part of the audits)."""
    return replace(bounds, status="deferred",
                   message=f"deferred under --audit-shard {shard}: the relation relates every shard's audits; "
                           f"`python -m pytest_robustaudit merge` decides it over all of them")


def judge(bounds: RelationOutcome, results: Iterable[Any], errors: Iterable[str] = ()) -> RelationOutcome:
    """The verdict of ``bounds`` over ``results`` (:class:`~.AuditResult` objects, a run's or read back
    from records); ``errors``: audits that could not run, listed with those left out."""
    from ..metrics.relation import outlier_robustness_correlation, relation_verdict

    found = outlier_robustness_correlation(results, bounds.metric, layer=bounds.layer, level=bounds.confidence or 0.95)
    errors = list(errors)
    verdict = relation_verdict(found, bounds.min_rho, bounds.max_rho, bounds.confidence, errors)
    sp = found.spearman
    models = tuple({"name": m, "value": x, "robustness": y, "layer": at}
                   for m, x, y, at in zip(found.models, found.x, found.y, found.layers))
    return replace(bounds, status=verdict.status, rho=sp.rho, low=sp.low, high=sp.high, level=sp.level, n=sp.n,
                   models=models, left_out=(*found.left_out, *errors), message=verdict.message,
                   robustness=found.robustness)


def error_entries(errors: dict[str, str] | Iterable[dict[str, Any]]) -> list[str]:
    """The record's ``errors`` (spec path → message, or its list of ``{"spec_path", "message"}``) as
    the relation's left-out lines: ``name (could not be audited: first line)``."""
    pairs = errors.items() if isinstance(errors, dict) else \
        ((str(e.get("spec_path", "")), str(e.get("message", ""))) for e in errors if isinstance(e, dict))
    return [f"{Path(path).stem} (could not be audited: {headline(message)})" for path, message in pairs]


def relation_file_id(path: Any, rootdir: Any) -> str:
    """A relation file's name in records: its path relative to ``rootdir`` (posix), as shards name specs."""
    resolved = Path(os.path.realpath(path))
    try:
        return resolved.relative_to(Path(os.path.realpath(rootdir))).as_posix()
    except ValueError:
        return resolved.as_posix()


# --------------------------------------------------------------------------------------------
# reading run.relations back (a record of schema 5; older records have none)
# --------------------------------------------------------------------------------------------


def _number(entry: dict[str, Any], key: str, where: str, optional: bool = True) -> float | None:
    from .record import _NONFINITE

    value = entry.get(key)
    if isinstance(value, dict) and set(value) == {"$float"}:   # the record's tag for a non-finite free value
        value = value["$float"]
    if value is None and optional:
        return None
    if isinstance(value, str) and value in _NONFINITE:
        return _NONFINITE[value]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise RelationRecordError(f"{where}.{key}: expected a number{' or null' if optional else ''}, got {value!r}")
    return float(value)


def _text(entry: dict[str, Any], key: str, where: str, default: str | None = None) -> str:
    value = entry.get(key, default)
    if not isinstance(value, str):
        raise RelationRecordError(f"{where}.{key}: expected a string, got {value!r}")
    return value


def relation_from_dict(entry: Any, where: str = "run.relations[0]") -> RelationOutcome:
    """Inverse of :meth:`RelationOutcome.to_dict`; a malformed entry raises :class:`RelationRecordError`
    naming the field."""
    if not isinstance(entry, dict):
        raise RelationRecordError(f"{where}: expected an object, got {type(entry).__name__}")
    status = _text(entry, "status", where)
    if status not in RELATION_STATUSES:
        raise RelationRecordError(f"{where}.status: {status!r} is not one of {', '.join(RELATION_STATUSES)}")
    layer = entry.get("layer")
    if layer is not None and not isinstance(layer, str):
        raise RelationRecordError(f"{where}.layer: expected a layer name or null, got {layer!r}")
    n = entry.get("n", 0)
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise RelationRecordError(f"{where}.n: expected a count, got {n!r}")
    models, left_out = entry.get("models", []), entry.get("left_out", [])
    if not isinstance(models, list) or not all(isinstance(m, dict) for m in models):
        raise RelationRecordError(f"{where}.models: expected a list of objects")
    if not isinstance(left_out, list) or not all(isinstance(m, str) for m in left_out):
        raise RelationRecordError(f"{where}.left_out: expected a list of strings")
    for bound in ("min_rho", "max_rho"):
        value = _number(entry, bound, where)
        if value is not None and not -1 <= value <= 1:
            raise RelationRecordError(f"{where}.{bound}: {value} is not a correlation in [-1, 1]")
    confidence = _number(entry, "confidence", where)
    if confidence is not None and not 0.5 < confidence < 1:
        raise RelationRecordError(f"{where}.confidence: {confidence} is not a level strictly between 0.5 and 1")
    return RelationOutcome(
        file=_text(entry, "file", where), metric=_text(entry, "metric", where), layer=layer,
        min_rho=_number(entry, "min_rho", where), max_rho=_number(entry, "max_rho", where), confidence=confidence,
        status=status, rho=_number(entry, "rho", where), low=_number(entry, "low", where),
        high=_number(entry, "high", where), level=_number(entry, "level", where), n=n,
        models=tuple(dict(m) for m in models), left_out=tuple(left_out), message=_text(entry, "message", where, ""),
        sha256=_text(entry, "sha256", where, ""), nodeid=_text(entry, "nodeid", where, ""),
        robustness=_text(entry, "robustness", where, "effective_robustness"))


def relations_in(run: dict[str, Any], origin: str = "the record") -> list[RelationOutcome]:
    """The relation outcomes of a record's ``run`` ([] for records before schema 5, which had none)."""
    found = run.get("relations", [])
    if not isinstance(found, list):
        raise RelationRecordError(f"{origin}: run.relations: expected a list, got {type(found).__name__}")
    return [relation_from_dict(entry, f"{origin}: run.relations[{i}]") for i, entry in enumerate(found)]


def rho_text(outcome: RelationOutcome) -> str:
    """``+0.800 [+0.10, +0.95] (95%)``, ``n/a`` where rho is undefined, ``-`` when deferred."""
    if outcome.status == "deferred":
        return "-"
    if outcome.rho is None or not math.isfinite(outcome.rho):
        return "n/a"
    interval = (f" [{outcome.low:+.2f}, {outcome.high:+.2f}] ({outcome.level:.0%})"
                if outcome.low is not None and outcome.high is not None and outcome.level is not None else "")
    return f"{outcome.rho:+.3f}{interval}"


def by_value(models: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """A relation's models ordered by the metric (its ranks read left to right, as its message lists them)."""
    def key(model: dict[str, Any]) -> tuple:
        value = model.get("value")
        name = str(model.get("name"))
        return (0, float(value), name) if isinstance(value, (int, float)) else (1, 0.0, name)
    return sorted(models, key=key)
