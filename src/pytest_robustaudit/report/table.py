"""The compact plain-text table printed at the end of a pytest run (one row per model and layer).

Columns: model, layer, one column per headline metric (each followed by its control when it
declares one: kurtosis, rotated, outliers for the built-ins), checks passed/total, verdict; specs
that could not run get one ERROR row with the first line of their message.  A metric cell shows
the value each check of it on that layer judged, with the check's mark and the parameters it ran at
(``0 ✓ (factor=100)``), else the default-parameter value, labelled and unmarked (:mod:`.values`).
With ``intervals`` (pytest ``-v``) each value is followed by its confidence interval,
``2.836 [2.704, 2.937] ✓``.  The metric columns come from the metrics' own declarations, so a
plugin's headline metric gets a column like a built-in.  Free of pytest.

**Width.** Without ``-v`` no line is wider than :data:`WIDTH` (a CI log, a default terminal): the
model, layer, count and verdict columns always stand in the table (a model name clipped at its end,
a layer name in its middle, keeping more of its end, where ``…resblocks.10.mlp`` and
``…resblocks.11.mlp`` differ); each metric column, in order, stands in the table if the line still fits with it, else it
is *folded*: written under each row as ``name: value`` items on indented continuation lines, as
the HTML summary folds its columns on a phone.  Nothing is dropped but the tail of an item that
alone is wider than a line (the failure messages, the Markdown summary and the report have it whole).
"""

from __future__ import annotations

import os
import textwrap
from typing import Any, Iterable

from .values import PASSED_HEADER, passed_of_total, shown_values
from ..errors import headline
from ..metrics.types import Metric, controls_of, headline_metrics
from ..results import AuditResult, tally, verdict_of

#: the widest line of the table without ``-v`` (docs/report.md)
WIDTH = 120
MAX_MODEL = 36
#: how long a model name may stay whole when the table has room for it
MAX_MODEL_ROOMY = 64
MAX_LAYER = 24
MAX_ERROR = 90
#: between two columns, and between two folded items
GAP = "  "
FOLD_GAP = "   "
#: how far a folded line is set in from the layer column
FOLD_MARK = "  "


def _clip(text: str, width: int) -> str:
    """``text`` on one line, cut at its end to ``width`` characters (``…`` marks the cut)."""
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[: max(width - 1, 0)] + "…"


def _elide(text: str, width: int) -> str:
    """``text`` on one line, cut in its middle to ``width`` characters: a layer name keeps its start and
    more of its end than of its start (``visual.t…ocks.11.mlp.c_fc``): siblings differ at their ends."""
    text = " ".join(str(text).split())
    if len(text) <= width:
        return text
    if width < 3:
        return _clip(text, width)
    tail = (2 * (width - 1)) // 3   # the end is where siblings differ most (blocks.10.mlp, blocks.11.mlp)
    return text[: width - 1 - tail] + "…" + text[len(text) - tail:]


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


def rows(results: Iterable[AuditResult], metrics: Any = None, intervals: bool = False) -> list[tuple[str, ...]]:
    """The audits' rows (whole strings, one per model and layer; the model only on its first layer),
    in the order of :func:`headers`."""
    results = list(results)
    shown = shown_columns(results, metrics)
    out: list[tuple[str, ...]] = []
    for result in results:
        for i, layer in enumerate(result.layers):
            checks = [c for c in result.checks if c.layer == layer]
            counts = tally(checks)
            verdict = verdict_of(counts).upper() if checks else "-"
            counted = passed_of_total(counts)
            out.append((" ".join(result.name.split()) if i == 0 else "", " ".join(layer.split()),
                        *(_metric(result, layer, metric, intervals) for metric in shown), counted if checks else "-", verdict))
    return out


def _fit(widths: list[int], width: int | None) -> tuple[list[int], list[int]]:
    """Which metric columns (indices into ``widths``, between the two leading and the two trailing ones)
    stand in the table, and which are folded: taken in their order, each stands if the line still fits
    ``width`` with it, else it is folded (a wide column does not push the narrow ones after it out)."""
    metric_columns = list(range(2, len(widths) - 2))
    if width is None:
        return metric_columns, []
    used = widths[0] + widths[1] + widths[-2] + widths[-1] + 3 * len(GAP)
    kept: list[int] = []
    folded: list[int] = []
    for i in metric_columns:
        if used + len(GAP) + widths[i] > width:
            folded.append(i)
        else:
            used += len(GAP) + widths[i]
            kept.append(i)
    return kept, folded


def _folded_lines(items: list[str], indent: int, width: int | None) -> list[str]:
    """``items`` packed onto lines of at most ``width`` characters, each starting ``indent`` spaces in."""
    room = None if width is None else max(width - indent, 8)
    lines: list[str] = []
    current = ""
    for item in items:
        if room is not None:
            item = _clip(item, room)
        joined = f"{current}{FOLD_GAP}{item}" if current else item
        if current and room is not None and len(joined) > room:
            lines.append(current)
            joined = item
        current = joined
    if current:
        lines.append(current)
    return [" " * indent + line for line in lines]


def _fold_items(header: str, cell: str) -> list[str]:
    """A folded cell as ``name: value`` items: one per value of a cell that shows several checks
    (``outliers: 0 ✓ (factor=100)``, ``outliers: 1 ✓ (factor=10)``), so a line breaks between values."""
    if cell in ("", "-"):
        return []
    return [f"{header}: {part}" for part in cell.split("; ")]


def terminal_table(results: Iterable[AuditResult], errors: dict[Any, str] | None = None,
                   metrics: Any = None, intervals: bool = False, width: int | None = WIDTH) -> list[str]:
    """The summary as lines of text (no trailing spaces); empty when there is nothing to show.

    ``passed/total`` reads checks passed of checks run, as in the Markdown summary (plus how many were
    inconclusive or skipped, when any); numbers have 4 significant digits.  ``metrics``: the registry
    (or metrics) whose headline declarations make the columns (default: the built-ins).  ``width``: no
    line is wider (the module docstring says how it fits); None (pytest ``-v``) lets every column stand
    in the table, as wide as its cells.
    """
    results = list(results)
    head = headers(metrics, results)
    body = rows(results, metrics, intervals)
    if not body and not errors:
        return []
    # model names whole (up to MAX_MODEL_ROOMY) when every column still fits; else cut to MAX_MODEL
    for most in (MAX_MODEL_ROOMY, MAX_MODEL):
        failed = [(_clip(os.path.basename(os.fspath(path)), most), headline(message))
                  for path, message in (errors or {}).items()]
        cut = [(_clip(r[0], most), _elide(r[1], MAX_LAYER), *r[2:]) for r in body]
        widths = [max(len(h), *(len(r[i]) for r in cut)) if cut else len(h) for i, h in enumerate(head)]
        widths[0] = max(widths[0], *(len(name) for name, _ in failed)) if failed else widths[0]
        if width is None or sum(widths) + len(GAP) * (len(widths) - 1) <= width:
            break
    body = cut
    fixed = widths[0] + widths[1] + widths[-2] + widths[-1] + 3 * len(GAP)
    if width is not None and fixed > width:   # huge counts: the model names give the room
        widths[0] = max(len(head[0]), widths[0] - (fixed - width))
        body = [(_clip(r[0], widths[0]), *r[1:]) for r in body]
        failed = [(_clip(name, widths[0]), message) for name, message in failed]
    kept, folded = _fit(widths, width)
    shown = [0, 1, *kept, len(head) - 2, len(head) - 1]
    numeric = set(kept)

    def line(cells: tuple[str, ...]) -> str:
        parts = [cells[i].rjust(widths[i]) if i in numeric else cells[i].ljust(widths[i]) for i in shown]
        return GAP.join(parts).rstrip()

    header = line(head)
    out = [header, "-" * len(header)]
    indent = widths[0] + len(GAP)
    fold_indent = indent + len(FOLD_MARK)   # under the layer, set in: not read as a row of its own
    for cells in body:
        out.append(line(cells))
        items = [item for i in folded for item in _fold_items(head[i], cells[i])]
        out.extend(_folded_lines(items, fold_indent, width))
    for name, message in failed:   # the message where the layer would be: the row's columns say nothing
        text = "ERROR: " + _clip(message, MAX_ERROR)
        if width is not None:
            text = _clip(text, width - indent)
        out.append(name.ljust(widths[0]) + GAP + text)
    return out


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
        if relation.status != "pass":   # the verdict in full: never clipped, wrapped to the terminal's budget
            out.extend(textwrap.wrap(f"  {relation.file}: {headline(relation.message)}", WIDTH,
                                     subsequent_indent="    ", break_on_hyphens=False))
        if relation.left_out:
            said = f"  {relation.file}: left out: " + "; ".join(relation.left_out)
            out.append(said if len(said) <= WIDTH else said[:WIDTH - 1] + "…")
    return out
