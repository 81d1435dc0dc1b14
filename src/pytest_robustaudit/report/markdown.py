"""A Markdown summary of an audit run, for CI job pages (e.g. GitHub's ``$GITHUB_STEP_SUMMARY``).

Pure function from results to text: one table of audits, then one line per failed check with its
message, so the job page answers "what failed and by how much" without opening the HTML report.
"""

from __future__ import annotations

from pathlib import Path

from typing import Any

from ..checks import format_number
from ..errors import headline
from ..metrics.types import NOT_APPLICABLE, controls_of, headline_metrics
from ..results import AuditResult, tally


def _cell(text: object) -> str:
    """Escape what would break a table cell or inject markup (pipes, newlines, HTML)."""
    value = str(text).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")
    return value.replace("<", "&lt;").replace(">", "&gt;")


def render_markdown(results: list[AuditResult], errors: dict[str, str] | None = None,
                    report_path: Path | None = None, metrics: Any = None) -> str:
    """``metrics``: the registry (or metrics) whose headline declarations make the value columns
    (default: the built-ins); controls are left to the HTML report."""
    if metrics is None:
        from ..metrics import BUILTIN_METRICS

        metrics = BUILTIN_METRICS
    found = headline_metrics(metrics)
    shown = [m.name for m in found if m.name not in controls_of(found)]
    errors = errors or {}
    problems = [(r, c) for r in results for c in r.checks if c.status == "fail"]
    failed, total = len(problems), sum(len(r.checks) for r in results)
    verdict = "✅ all checks passed" if not failed and not errors else f"❌ {failed} of {total} checks failed"
    if errors:
        verdict += f", {len(errors)} audit(s) could not run"
    lines = [f"## Robustness audit: {verdict}", "",
             "| audit | model | images | device | " + "".join(f"{name} | " for name in shown) + "checks |",
             "|---|---|---:|---|" + "---:|" * len(shown) + "---|"]
    for result in results:
        rep = result.layers.get("representation") or next(iter(result.layers.values()), None)
        values = [("n/a" if rep.metrics[name].undefined_reason.startswith(NOT_APPLICABLE)
                   else format_number(rep.metrics[name].value)) if rep and name in rep.metrics else "–" for name in shown]
        passed = tally(result.checks)["pass"]
        mark = "✅" if result.passed else "❌"
        lines.append(f"| {_cell(result.name)} | `{_cell(result.model)}` | {result.n_images} | {_cell(result.device)} "
                     f"| " + "".join(f"{v} | " for v in values) + f"{mark} {passed}/{len(result.checks)} |")
    for path, message in errors.items():
        lines.append(f"| {_cell(Path(path).name)} | – | – | – | " + "– | " * len(shown) + "❌ error |")
    if problems or errors:
        lines += ["", "### Failures", ""]
        for result, check in problems:
            first, *rest = check.message.splitlines()
            lines.append(f"- **{_cell(result.name)}** · `{check.layer}::{check.metric}`: {_cell(first)}")
            lines += [f"  {_cell(line.strip())}" for line in rest if line.strip().startswith(("required", "candidate"))]
        for path, message in errors.items():
            lines.append(f"- **{_cell(Path(path).name)}**: {_cell(headline(message))}")
    if report_path is not None:
        lines += ["", f"Full report: `{_cell(report_path)}`"]
    return "\n".join(lines) + "\n"
