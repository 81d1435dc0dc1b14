"""The paper's relation, quantified: rank correlation of an outlier metric with effective robustness
across the audits of a run.

Why a module: the claim under test (Crabbé et al. 2024) is that models with outlier features are the
robust ones, i.e. that an outlier metric *ranks* models the way effective robustness does.  With two
or more audits in a run, :func:`outlier_robustness_correlation` reads each audit's metric and its ER
from the results (or a record read back) and gives Spearman's rho with its interval
(:func:`.robustness.spearman_with_interval`: Fisher z with the Fieller-Hartley-Pearson variance) and
the number of models, for the report and for users' own assertions::

    from pytest_robustaudit import outlier_robustness_correlation
    relation = outlier_robustness_correlation(results, "kurtosis_mean")
    assert relation.spearman.rho > 0.5

:func:`relation_verdict` bounds it for a run-level relation check (a YAML file whose top level is
``relation:``, docs/spec.md#relation-checks).

Pure (numpy via :mod:`.robustness`); reads values, never a model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from .robustness import SpearmanResult, spearman_with_interval

#: the outlier metrics the report relates to ER by default
RELATED_METRICS = ("kurtosis_mean", "outlier_count", "profile_max_over_median")
ROBUSTNESS = "effective_robustness"


@dataclass(frozen=True)
class Relation:
    """Spearman's rho between ``metric`` (x) and ``robustness`` (y) across ``models``; ``left_out``:
    audits without a finite value of one of the two, with why."""

    metric: str
    robustness: str
    spearman: SpearmanResult
    models: tuple[str, ...]
    x: tuple[float, ...]
    y: tuple[float, ...]
    layers: tuple[str, ...]
    left_out: tuple[str, ...] = ()


def _value(result: Any, metric: str, layer: str | None) -> tuple[float | None, str, str]:
    """(value, layer, why not) of ``metric`` on ``layer`` (None: the first layer where it is finite)."""
    layers = result.layers
    names = [layer] if layer is not None else list(layers)
    why = f"no layer '{layer}'" if layer is not None and layer not in layers else f"no value of {metric}"
    for name in names:
        found = layers.get(name)
        value = found.metrics.get(metric) if found is not None else None
        if value is None:
            continue
        if value.undefined_reason or not math.isfinite(value.value):
            why = value.undefined_reason or "not finite"
            continue
        return float(value.value), name, ""
    return None, "", why


def outlier_robustness_correlation(results: Iterable[Any], metric: str = "kurtosis_mean", *,
                                   layer: str | None = None, robustness: str = ROBUSTNESS,
                                   level: float = 0.95) -> Relation:
    """Spearman's rho between ``metric`` and ``robustness`` (default effective robustness) across the
    audits in ``results`` (:class:`~..results.AuditResult` objects, e.g. a session's or a record's).

    ``robustness`` is read on the layer where it is defined (the layer the head reads); ``metric`` on
    ``layer``, by default the same layer as the robustness value.  Audits missing either value are left
    out and listed (``left_out``); rho needs 3 models and its interval 4 (see :class:`SpearmanResult`)."""
    models, xs, ys, layers, left_out = [], [], [], [], []
    for result in results:
        y, at, why = _value(result, robustness, None)
        if y is None:
            left_out.append(f"{result.name} ({robustness}: {why})")
            continue
        x, at_x, why_x = _value(result, metric, layer or at)
        if x is None:
            left_out.append(f"{result.name} ({metric}: {why_x})")
            continue
        models.append(result.name)
        xs.append(x)
        ys.append(y)
        layers.append(at_x)
    return Relation(metric, robustness, spearman_with_interval(xs, ys, level), tuple(models), tuple(xs), tuple(ys),
                    tuple(layers), tuple(left_out))


def relations(results: Sequence[Any], metrics: Sequence[str] = RELATED_METRICS, level: float = 0.95) -> list[Relation]:
    """:func:`outlier_robustness_correlation` for each of ``metrics`` (the report's correlation panel)."""
    return [outlier_robustness_correlation(results, m, level=level) for m in metrics]


@dataclass(frozen=True)
class RelationVerdict:
    """The verdict of a run-level relation check: ``passed``, the message that explains it, and its
    ``status``: "pass", "fail", "inconclusive" (the interval straddles a bound, or no interval where
    ``confidence`` asks for one) or "error" (rho could not be measured).  Only "pass" passes."""

    passed: bool
    message: str
    status: str = ""

    def __post_init__(self) -> None:
        if not self.status:
            object.__setattr__(self, "status", "pass" if self.passed else "fail")


def _bounds_text(min_rho: float | None, max_rho: float | None) -> str:
    parts = ([f"rho ≥ {min_rho:g}"] if min_rho is not None else []) + ([f"rho ≤ {max_rho:g}"] if max_rho is not None else [])
    return " and ".join(parts)


def relation_verdict(relation: Relation, min_rho: float | None = None, max_rho: float | None = None,
                     confidence: float | None = None, errors: Sequence[str] = ()) -> RelationVerdict:
    """Bound Spearman's rho of ``relation`` (a run-level check, docs/spec.md#relation-checks).

    Without ``confidence`` the point estimate is compared with the bounds.  With it (the relation
    computed at that level), the interval decides: inside the bounds passes, wholly outside fails,
    straddling a bound fails as inconclusive (more models narrow it).  Fewer than 3 models with both
    values, or a constant column, fail and say why: an unmeasurable relation never passes silently.
    ``errors``: audits that could not run, listed with those left out."""
    sp = relation.spearman
    label = f"Spearman rho({relation.metric}, {relation.robustness})"
    required = f"\n  required: {_bounds_text(min_rho, max_rho)}" + \
               (f" with {confidence:.0%} confidence (the whole interval)" if confidence is not None else "")
    ordered = sorted(zip(relation.x, relation.y, relation.models))   # by the metric: the ranks read left to right
    pairs = ", ".join(f"{m} ({x:.4g}, {y:+.4g})" for x, y, m in ordered)
    used = f"\n  models by {relation.metric} ({sp.n}; {relation.metric}, ER): {pairs or 'none'}"
    gone = [*relation.left_out, *errors]
    left = f"\n  left out: {'; '.join(gone)}" if gone else ""
    tail = required + used + left
    if sp.rho is None:
        if sp.n < 3:
            why = (f"only {sp.n} audited model{'s' if sp.n != 1 else ''} with both {relation.metric} and ER: "
                   "a rank correlation needs at least 3 (give ER through each spec's `shifts:`, docs/robustness.md)")
        else:
            why = sp.reason or "undefined"
        return RelationVerdict(False, f"{label} could not be measured: {why}{tail}", "error")
    low_ok = min_rho is None or sp.rho >= min_rho
    high_ok = max_rho is None or sp.rho <= max_rho
    interval = f" [{sp.low:.3f}, {sp.high:.3f}] ({sp.level:.0%} interval)" if sp.low is not None else ""
    shown = f"{label} = {sp.rho:.3f}{interval} over {sp.n} models"
    if confidence is None:
        if low_ok and high_ok:
            return RelationVerdict(True, f"{shown}{tail}")
        side = f"< min_rho {min_rho:g}" if not low_ok else f"> max_rho {max_rho:g}"
        return RelationVerdict(False, f"{shown}: rho {side}{tail}")
    if sp.low is None:
        return RelationVerdict(False, f"{shown}: inconclusive, no interval ({sp.reason or 'undefined'}); "
                                      f"audit at least 4 models, or drop `confidence`{tail}", "inconclusive")
    inside = (min_rho is None or sp.low >= min_rho) and (max_rho is None or sp.high <= max_rho)
    outside = (min_rho is not None and sp.high < min_rho) or (max_rho is not None and sp.low > max_rho)
    if inside:
        return RelationVerdict(True, f"{shown}{tail}")
    if outside:
        return RelationVerdict(False, f"{shown}: the whole interval is outside the bounds{tail}")
    return RelationVerdict(False, f"{shown}: inconclusive, the interval straddles a bound "
                                  f"(more models narrow it, or drop `confidence` to bound the estimate){tail}",
                           "inconclusive")
