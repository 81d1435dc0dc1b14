"""A Markdown summary of an audit run, for CI job pages (e.g. GitHub's ``$GITHUB_STEP_SUMMARY``).

Pure function from results to text: one table of audits, then one line per failed check with its
message, so the job page answers "what failed and by how much" without opening the HTML report.
"""

from __future__ import annotations

from pathlib import Path

from .checks import format_number
from .errors import headline
from .results import AuditResult, tally


def _cell(text: object) -> str:
    """Escape what would break a table cell or inject markup (pipes, newlines, HTML)."""
    value = str(text).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")
    return value.replace("<", "&lt;").replace(">", "&gt;")


def render_markdown(results: list[AuditResult], errors: dict[str, str] | None = None,
                    report_path: Path | None = None) -> str:
    errors = errors or {}
    problems = [(r, c) for r in results for c in r.checks if c.status == "fail"]
    failed, total = len(problems), sum(len(r.checks) for r in results)
    verdict = "✅ all checks passed" if not failed and not errors else f"❌ {failed} of {total} checks failed"
    if errors:
        verdict += f", {len(errors)} audit(s) could not run"
    lines = [f"## Robustness audit: {verdict}", "",
             "| audit | model | images | device | kurtosis_mean | outlier_count | checks |",
             "|---|---|---:|---|---:|---:|---|"]
    for result in results:
        rep = result.layers.get("representation") or next(iter(result.layers.values()), None)
        kurt = format_number(rep.metrics["kurtosis_mean"].value) if rep and "kurtosis_mean" in rep.metrics else "–"
        outl = format_number(rep.metrics["outlier_count"].value) if rep and "outlier_count" in rep.metrics else "–"
        passed = tally(result.checks)["pass"]
        mark = "✅" if result.passed else "❌"
        lines.append(f"| {_cell(result.name)} | `{_cell(result.model)}` | {result.n_images} | {_cell(result.device)} "
                     f"| {kurt} | {outl} | {mark} {passed}/{len(result.checks)} |")
    for path, message in errors.items():
        lines.append(f"| {_cell(Path(path).name)} | – | – | – | – | – | ❌ error |")
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
