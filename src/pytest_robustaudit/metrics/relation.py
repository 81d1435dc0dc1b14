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
