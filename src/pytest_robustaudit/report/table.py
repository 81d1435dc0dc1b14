"""The compact plain-text table printed at the end of a pytest run (one row per model and layer).

Fixed-width columns: model, layer, one column per headline metric (each followed by its control
when it declares one: kurtosis, rotated, outliers for the built-ins), checks passed/failed,
verdict; specs that could not run get one ERROR row with the first line of their message.  A
metric cell shows the value each check of it on that layer judged, with the check's mark and the
parameters it ran at (``0 ✓ (factor=100)``), else the default-parameter value, labelled and
unmarked (:mod:`.values`).  With ``intervals`` (pytest ``-v``) each value is followed by its
confidence interval, ``2.836 [2.704, 2.937] ✓``; without, the table stays within a 120-column
terminal and the intervals are in the failure messages, the Markdown summary and the report.  The
metric columns come from the metrics' own declarations, so a plugin's headline metric gets a
column like a built-in.  Free of pytest.
"""

from __future__ import annotations

import os
from typing import Any, Iterable

from .values import PASSED_HEADER, passed_of_total, shown_values
from ..errors import headline
from ..metrics.types import NOT_APPLICABLE, Metric, controls_of, headline_metrics
from ..results import AuditResult, tally, verdict_of

MAX_MODEL = 36
MAX_LAYER = 20
MAX_ERROR = 90


def _clip(text: str, width: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _metric(result: AuditResult, layer: str, metric: Metric, intervals: bool = False) -> str:
    from .values import not_applicable

    shown = shown_values(result, layer, metric.name, metric)
    if not_applicable(result, layer, metric.name) and not any(v.check is not None for v in shown):
        return "n/a"   # e.g. accuracy on a layer the head does not read
    return "; ".join(v.plain(intervals=intervals) for v in shown) if shown else "-"


def columns(metrics: Any = None) -> list[Metric]:
    """The metric columns: each headline metric, then its control (when that is a headline too)."""
    if metrics is None:
        from ..metrics import BUILTIN_METRICS

        metrics = BUILTIN_METRICS
    found = headline_metrics(metrics)
    by_name = {m.name: m for m in found}
    controls = controls_of(found)
    ordered: list[Metric] = []
    for metric in found:
        if metric.name in controls:
            continue
        ordered.append(metric)
        if metric.control in by_name:
            ordered.append(by_name[metric.control])
    return ordered


def shown_columns(results: Iterable[AuditResult], metrics: Any = None) -> list[Metric]:
    """:func:`columns` that apply to some audit of ``results`` (no all-n/a column, e.g. top-1 with no labels)."""
    from .values import applying

    return applying(columns(metrics), results)


def headers(metrics: Any = None, results: Iterable[AuditResult] = ()) -> tuple[str, ...]:
    return ("model", "layer", *(m.headline for m in shown_columns(results, metrics)), PASSED_HEADER, "verdict")


def rows(results: Iterable[AuditResult], errors: dict[Any, str] | None = None,
         metrics: Any = None, intervals: bool = False) -> list[tuple[str, ...]]:
    """The table's rows (strings), without header."""
    results = list(results)
    shown = shown_columns(results, metrics)
    out: list[tuple[str, ...]] = []
    for result in results:
        for i, layer in enumerate(result.layers):
            checks = [c for c in result.checks if c.layer == layer]
            counts = tally(checks)
            verdict = verdict_of(counts).upper() if checks else "-"
            counted = passed_of_total(counts)
            out.append((_clip(result.name, MAX_MODEL) if i == 0 else "", _clip(layer, MAX_LAYER),
                        *(_metric(result, layer, metric, intervals) for metric in shown), counted if checks else "-", verdict))
    for path, message in (errors or {}).items():
        out.append((_clip(os.path.basename(os.fspath(path)), MAX_MODEL), "-", *("-" for _ in shown), "-",
                    "ERROR: " + _clip(headline(message), MAX_ERROR)))
    return out


def terminal_table(results: Iterable[AuditResult], errors: dict[Any, str] | None = None,
                   metrics: Any = None, intervals: bool = False) -> list[str]:
    """The summary as lines of text (no trailing spaces); empty when there is nothing to show.

    ``passed/total`` reads checks passed of checks run, as in the Markdown summary (plus how many were
    inconclusive or skipped, when any); numbers have 4 significant digits.
    ``metrics``: the registry (or metrics) whose headline declarations make the columns (default:
    the built-ins).
    """
    results = list(results)
    body = rows(results, errors, metrics, intervals)
    if not body:
        return []
    head = headers(metrics, results)
    numeric = set(range(2, len(head) - 2))
    widths = [max(len(h), *(len(r[i]) for r in body)) for i, h in enumerate(head)]

    def line(cells: tuple[str, ...]) -> str:
        parts = [c.rjust(widths[i]) if i in numeric else c.ljust(widths[i]) for i, c in enumerate(cells)]
        return "  ".join(parts).rstrip()

    header = line(head)
    return [header, "-" * len(header), *(line(r) for r in body)]


RELATION_HEADERS = ("relation", "metric vs ER", "rho [interval]", "models", "bound", "verdict")


def relation_table(relations: Iterable[Any]) -> list[str]:
    """The run-level relation checks (:class:`~..results.relations.RelationOutcome`) as lines: one row
    each (file, metric, rho with its interval, models related, bound, verdict), then what each left out
    and, for one that did not pass or was deferred, the first line of its message; [] without any."""
    from ..results.relations import rho_text

    relations = list(relations)
    if not relations:
        return []
    body = [(_clip(r.file, MAX_MODEL), r.metric + (f" ({r.layer})" if r.layer else ""), rho_text(r),
             str(r.n) if r.status != "deferred" else "-", r.bound_text(), r.status.upper()) for r in relations]
    widths = [max(len(h), *(len(row[i]) for row in body)) for i, h in enumerate(RELATION_HEADERS)]

    def line(cells: tuple[str, ...]) -> str:
        return "  ".join(c.rjust(widths[i]) if i == 3 else c.ljust(widths[i]) for i, c in enumerate(cells)).rstrip()

    header = line(RELATION_HEADERS)
    out = [header, "-" * len(header)]
    for relation, row in zip(relations, body):
        out.append(line(row))
        if relation.status != "pass":
            out.append(f"  {relation.file}: {headline(relation.message)}")   # the verdict in full: never clipped
        if relation.left_out:
            out.append(f"  {relation.file}: left out: " + _clip("; ".join(relation.left_out), MAX_ERROR + 30))
    return out
