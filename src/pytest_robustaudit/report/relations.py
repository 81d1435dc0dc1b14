"""The report's section of run-level relation checks: each relation file's verdict.

Read from the run information's ``relations`` (the record's ``run.relations``, schema 5), so a report
rebuilt by ``merge`` from shards' records shows the verdict ``merge`` reached: per relation file, its
metric against ER, Spearman's rho with its interval, the bound, the verdict, the models it related
(with both values) and the audits it left out, with why.  The correlation panel of the shifts section
stays the exploratory view over every outlier metric; this one is the gate.  Registered as a page
section (order 37).  Free of pytest.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .sections import PageContext, PageSection, register_section

#: the badge class of each status (the page's pass / fail / inconclusive / none colours)
BADGES = {"pass": "pass", "fail": "fail", "error": "fail", "inconclusive": "inconclusive", "deferred": "none"}


@dataclass
class RelationRow:
    file: str
    metric: str
    rho: str
    n: str
    bound: str
    status: str
    badge: str
    message: str
    models: list[dict[str, str]] = field(default_factory=list)
    left_out: list[str] = field(default_factory=list)


def relation_rows(run_info: dict[str, Any]) -> list[RelationRow]:
    """The rows of the section, from ``run_info["relations"]`` ([] when the run had none)."""
    from ..results.relations import by_value, relations_in, rho_text

    rows = []
    for r in relations_in(run_info, "the run information"):
        models = [{"name": str(m.get("name", "")), "value": _short(m.get("value")),
                   "robustness": _short(m.get("robustness"), "+"), "layer": str(m.get("layer", ""))}
                  for m in by_value(r.models)]
        rows.append(RelationRow(r.file, r.metric + (f" (layer {r.layer})" if r.layer else ""), rho_text(r),
                                str(r.n) if r.status != "deferred" else "–", r.bound_text(), r.status,
                                BADGES.get(r.status, "none"), r.message, models, list(r.left_out)))
    return rows


def overall_with_relations(overall: str, run_info: dict[str, Any]) -> str:
    """The page's overall verdict once the relation checks count: one that failed (or could not be
    measured) fails the page, an inconclusive one makes a passing page inconclusive."""
    statuses = {row.status for row in relation_rows(run_info)}
    if statuses & {"fail", "error"}:
        return "fail"
    if "inconclusive" in statuses and overall in ("pass", "none"):
        return "inconclusive"
    if "pass" in statuses and overall == "none":
        return "pass"
    return overall


def _short(value: Any, sign: str = "") -> str:
    return f"{value:{sign}.4g}" if isinstance(value, (int, float)) and not isinstance(value, bool) else str(value)


def _relations_section(ctx: PageContext) -> list[PageSection]:
    rows = relation_rows(ctx.run_info)
    return [PageSection("relations", "Relation checks", "sections/relations.html.j2", rows, 37)] if rows else []


register_section("relations", _relations_section)
