"""A Markdown summary of an audit run, for CI job pages (e.g. GitHub's ``$GITHUB_STEP_SUMMARY``).

Pure function from results to text: one table of audits (one row per audit and layer), then one
bullet per failed check with its plain verdict (``20.59 > max 15, +37%``), the bound in words and
the spec's ``why:`` as sub-bullets, and a table of the run-level relation checks (rho, interval,
bound, verdict, models, audits left out), so the job page answers "what failed and by how much" without
opening the HTML report.  Written to read well both rendered and raw (a CI log, a file): no HTML
entities where none is needed, and a link to the report that means something on the job page.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ..audit.notices import notices_of
from ..errors import headline
from ..metrics.types import NOT_APPLICABLE, controls_of, headline_metrics
from ..results import AuditResult, tally, verdict_of
from ..results.relations import by_value, rho_text
from .values import PASSED_HEADER, applying, check_label, left_out, not_applicable, passed_of_total, shown_values

#: a "<" that could open an HTML tag or comment: escaped; "3 < min 5" stays as written
_TAG_OPEN = re.compile(r"<(?=[A-Za-z/!?])")


def _cell(text: object) -> str:
    """Escape what would break a table cell or inject markup (pipes, newlines, tags)."""
    value = str(text).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")
    return _TAG_OPEN.sub("&lt;", value)


def _number(value: Any, sign: str = "") -> str:
    """A related model's value, 4 significant digits (ER signed)."""
    return f"{value:{sign}.4g}" if isinstance(value, (int, float)) else str(value)


def _link(report: str) -> str:
    if re.match(r"^https?://", report):
        return f"[Full report]({report})"
    return f"Full report: `{_cell(report)}` (the job's artefact)"


def render_markdown(results: list[AuditResult], errors: dict[str, str] | None = None,
                    report: str | Path | None = None, metrics: Any = None,
                    not_shown: tuple[int, int] = (0, 0), relations: Any = ()) -> str:
    """``metrics``: the registry (or metrics) whose headline declarations make the value columns
    (default: the built-ins); controls are left to the HTML report.  ``report``: how to name the
    HTML report (a URL, an artefact name or a relative path; "" or None: not mentioned).
    ``not_shown``: (checks deselected, checks not run), said under the verdict.  ``relations``: the
    run's :class:`~..results.relations.RelationOutcome` (a failed one fails the verdict line)."""
    if metrics is None:
        from ..metrics import BUILTIN_METRICS

        metrics = BUILTIN_METRICS
    found = headline_metrics(metrics)
    shown = applying([m for m in found if m.name not in controls_of(found)], results)
    errors = errors or {}
    problems = [(r, c) for r in results for c in r.checks if c.status in ("fail", "inconclusive")]
    total = sum(len(r.checks) for r in results)
    failed = sum(c.status == "fail" for _, c in problems)
    undecided = len(problems) - failed
    if not problems and not errors:
        verdict = "✅ all checks passed"
    elif failed or errors:
        verdict = f"❌ {failed} of {total} checks failed" + (f", {undecided} inconclusive" if undecided else "")
    else:
        verdict = f"❔ {undecided} of {total} checks inconclusive"
    if errors:
        verdict += f", {len(errors)} audit(s) could not run"
    relations = list(relations or ())
    bad = sum(r.failed for r in relations)
    if bad:   # a relation check that did not pass fails the run, as its pytest item does
        said = f"{bad} of {len(relations)} relation check{'s' if len(relations) > 1 else ''} did not pass"
        verdict = f"❌ {said}; all {total} audit checks passed" if verdict.startswith("✅") else f"{verdict}; {said}"
    lines = [f"## Robustness audit: {verdict}", ""]
    if any(not_shown):
        lines += [f"_{left_out(*not_shown)}: left out of this summary._", ""]
    lines += ["| audit | layer | model | images | device | " + "".join(f"{m.name} | " for m in shown) + f"checks {PASSED_HEADER} |",
              "|---|---|---|---:|---|" + "---:|" * len(shown) + "---|"]
    for result in results:
        for i, (layer_name, layer) in enumerate(result.layers.items()):
            checks = [c for c in result.checks if c.layer == layer_name]
            values = ["n/a" if not_applicable(result, layer_name, m.name) else
                      "; ".join(v.plain() for v in shown_values(result, layer_name, m.name, m)) or "–" for m in shown]
            counts = tally(checks)
            mark = {"fail": "❌", "inconclusive": "❔", "pass": "✅"}.get(verdict_of(counts), "–")
            first = i == 0
            lines.append(f"| {_cell(result.name) if first else ''} | `{_cell(layer_name)}` "
                         f"| {'`' + _cell(result.model) + '`' if first else ''} | {result.n_images if first else ''} "
                         f"| {_cell(result.device) if first else ''} | " + "".join(f"{_cell(v)} | " for v in values)
                         + (f"{mark} {passed_of_total(counts)} |" if checks else "– |"))
    for path, message in errors.items():
        lines.append(f"| {_cell(Path(path).name)} | – | – | – | – | " + "– | " * len(shown) + "❌ error |")
    notices = [(result, notice) for result in results for notice in notices_of(result)]
    if notices:   # random weights, a smoke run, a dropped check (audit/notices.py)
        lines += ["", "### Notices", ""] + [f"- **{_cell(r.name)}**: {_cell(n)}" for r, n in notices]
    if relations:
        lines += ["", "### Relation checks", "", "| relation | metric vs ER | rho [interval] | models | bound | verdict |",
                  "|---|---|---|---:|---|---|"]
        marks = {"pass": "✅", "fail": "❌", "error": "❌", "inconclusive": "❔", "deferred": "⏸"}
        for r in relations:
            lines.append(f"| `{_cell(r.file)}` | {_cell(r.metric)}{f' (`{_cell(r.layer)}`)' if r.layer else ''} "
                         f"| {_cell(rho_text(r))} | {r.n if r.status != 'deferred' else '–'} | {_cell(r.bound_text())} "
                         f"| {marks.get(r.status, '')} {r.status} |")
        for r in relations:
            if r.models:
                lines.append(f"- `{_cell(r.file)}`: models by {_cell(r.metric)}: " + ", ".join(
                    f"{_cell(m.get('name'))} ({_number(m.get('value'))}, ER {_number(m.get('robustness'), '+')})"
                    for m in by_value(r.models)))
            if r.status != "pass":
                lines.append(f"- `{_cell(r.file)}`: {_cell(headline(r.message))}")
            if r.left_out:
                lines.append(f"- `{_cell(r.file)}`: left out: {_cell('; '.join(r.left_out))}")
    if problems or errors:
        lines += ["", "### Failures", ""]
        for result, check in problems:
            first, *rest = check.message.splitlines()
            word = "**INCONCLUSIVE** " if check.status == "inconclusive" else ""
            lines.append(f"- {word}**{_cell(result.name)}** · `{check.layer}::{_cell(check_label(check))}`: {_cell(first)}")
            lines += [f"  - {_cell(line.strip())}" for line in rest
                      if line.strip().startswith(("required", "candidate", "why"))]
        for path, message in errors.items():
            lines.append(f"- **{_cell(Path(path).name)}**: {_cell(headline(message))}")
    if report:
        lines += ["", _link(str(report))]
    return "\n".join(lines) + "\n"
