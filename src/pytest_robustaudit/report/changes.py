"""How the change from a reference release reads: terminal lines, Markdown, and the report's section.

One wording for ``--audit-compare`` (the run's outputs) and ``python -m pytest_robustaudit diff``, from
:class:`~..analyse.compare.AuditComparison` objects (or their record form, ``run.comparison``).
Checked metrics come first, with their gate verdict; unchecked values follow as exploratory readings
(only checks gate: many comparisons at 95% flag some false changes).  Free of pytest.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

from ..analyse.checks import format_number
from ..analyse.compare import AuditComparison, Change, comparison_from_json, value_name
from .sections import PageContext, PageSection, register_section

#: the terminal's budget (docs/report.md: the summary fits 120 columns)
WIDTH = 120
MARKS = {"regressed": "✗", "improved": "↑", "unchanged": "=", "inconclusive": "?",
         "changed up": "+", "changed down": "-", "no clear change": "·"}


def change_text(change: Change) -> str:
    """``+6.2 [+4.1, +8.3]`` (the change and its interval), or the change alone."""
    iv = change.interval
    text = _signed(change.delta)
    if iv is not None and iv.has_interval:
        text += f" [{_signed(iv.low)}, {_signed(iv.high)}]"
    return text


def _signed(x: float) -> str:
    if not math.isfinite(x):
        return format_number(x)
    return f"{x:+.4g}"


def metric_text(change: Change) -> str:
    return value_name(change.metric, change.params, change.layer)


def _fit(text: str, width: int) -> str:
    return text if len(text) <= width else text[:width - 1] + "…"


def change_lines(comparisons: Sequence[AuditComparison], exploratory: bool = False, width: int = WIDTH) -> list[str]:
    """The comparison as terminal lines (each at most ``width`` columns): per audit, its reference, every
    checked metric's verdict, and (``exploratory``) each unchecked value's reading, else how many moved."""
    lines: list[str] = []
    for comp in comparisons:
        head = f"{comp.audit}: compared with {comp.reference}" if comp.reference else f"{comp.audit}:"
        if comp.skipped:
            lines.append(_fit(f"{comp.audit}: not compared: {comp.skipped}", width))
            continue
        counts = comp.counts()
        summary = ", ".join(f"{counts[v]} {v}" for v in ("regressed", "improved", "unchanged", "inconclusive")
                            if counts.get(v))
        lines.append(_fit(head + (f" ({summary})" if summary else " (no checked metric in common)"), width))
        for note in comp.notes:
            lines.append(_fit(f"  note: {note}", width))
        rows = [c for c in comp.changes if c.checked] + ([c for c in comp.changes if not c.checked] if exploratory else [])
        for c in rows:
            verdict = f"{MARKS.get(c.verdict, ' ')} {c.verdict.upper() if c.checked else c.verdict}"
            values = f"{format_number(c.reference)} → {format_number(c.value)}  {change_text(c)}"
            tail = f"  margin {format_number(c.margin)}" if c.checked else ""
            line = f"  {verdict:<17} {values}  {metric_text(c)}{tail}"
            lines.append(_fit(line, width))
            if c.checked:
                lines.append(_fit(f"    {c.basis}; bound {c.bound}", width))
        if not exploratory:
            moved = [c for c in comp.changes if not c.checked and c.verdict in ("changed up", "changed down")]
            total = sum(not c.checked for c in comp.changes)
            if total:
                lines.append(_fit(f"  exploratory: {len(moved)} of {total} unchecked values changed beyond their "
                                  "interval (not a gate; every value is in the report)", width))
    return lines


def changes_markdown(comparisons: Sequence[AuditComparison]) -> str:
    """The checked metrics' changes as a Markdown table (what a CI job page shows)."""
    if not comparisons:
        return ""
    out = ["", "## Change from the reference release", "",   # a blank line first: it follows another block
           "| audit | metric @ layer | reference → this run | change [interval] | verdict | basis |",
           "|---|---|---|---|---|---|"]
    notes = []
    for comp in comparisons:
        if comp.skipped:
            notes.append(f"- **{_md(comp.audit)}**: not compared: {_md(comp.skipped)}")
            continue
        for c in comp.changes:
            if c.checked:
                out.append(f"| {_md(comp.audit)} | {_md(metric_text(c))} | {format_number(c.reference)} → "
                           f"{format_number(c.value)} | {change_text(c)} | {MARKS.get(c.verdict, '')} {c.verdict} | "
                           f"{_md(c.basis)} |")
        moved = sum(not c.checked and c.verdict in ("changed up", "changed down") for c in comp.changes)
        if moved:
            notes.append(f"- {_md(comp.audit)} (vs {_md(comp.reference)}): {moved} unchecked value(s) changed "
                         "(exploratory, not a gate)")
    if len(out) == 5:
        out = out[:3]
    return "\n".join(out + ([""] + notes if notes else [])) + "\n"


def _md(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


# ---- the report's section ---------------------------------------------------------------------------------------

@dataclass
class ChangeRow:
    verdict: str
    mark: str
    metric: str
    values: str
    change: str
    basis: str
    margin: str
    bound: str


@dataclass
class AuditChanges:
    audit: str
    reference: str
    skipped: str
    notes: list[str]
    checked: list[ChangeRow]
    exploratory: list[ChangeRow]


def _row(c: Change) -> ChangeRow:
    return ChangeRow(c.verdict, MARKS.get(c.verdict, ""), metric_text(c),
                     f"{format_number(c.reference)} → {format_number(c.value)}", change_text(c), c.basis,
                     format_number(c.margin) if c.checked else "", c.bound)


def changes_view(run_info: dict[str, Any]) -> list[AuditChanges]:
    found = run_info.get("comparison")
    if not isinstance(found, dict):
        return []
    out = []
    audits = found.get("audits")
    for data in audits if isinstance(audits, list) else []:
        try:
            comp = comparison_from_json(data)
        except (KeyError, TypeError, ValueError, AttributeError, OverflowError):
            continue        # a hand-edited record: the page shows what it can read
        out.append(AuditChanges(comp.audit, comp.reference, comp.skipped, comp.notes,
                                [_row(c) for c in comp.changes if c.checked],
                                [_row(c) for c in comp.changes if not c.checked]))
    return out


def _changes_section(ctx: PageContext) -> list[PageSection]:
    view = changes_view(ctx.run_info)
    if not view:
        return []
    return [PageSection("changes", "Change from the reference release", "sections/changes.html.j2", view, 25)]


register_section("changes", _changes_section)
