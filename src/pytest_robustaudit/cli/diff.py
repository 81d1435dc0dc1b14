"""``python -m pytest_robustaudit diff BEFORE.json AFTER.json``: how each value moved between two records.

The same comparison ``--audit-compare`` puts into a run's outputs (``analyse/compare.py``, worded by
``report/changes.py``), for two records already on disk: a release candidate's against the last
release's, two CI artefacts, two merged sharded runs.  Audits are matched by name.  Exit status: 0 no
checked metric regressed, 1 at least one regressed, 2 a record that cannot be read or two records with
no audit in common (a mismatch: nothing was compared).  ``--markdown`` and ``--csv`` write the same
comparison for a CI page or pandas.  docs/ci.md#release-history.
"""

from __future__ import annotations

import sys
from typing import Any

#: the columns of ``diff --csv`` (one row per compared value; ``params`` as JSON, numbers that round-trip)
DIFF_COLUMNS = ("audit", "layer", "metric", "params", "checked", "before_label", "after_label", "before", "after",
                "change", "change_low", "change_high", "level", "basis", "margin", "bound", "verdict",
                "before_fingerprint", "after_fingerprint")


def add_diff_command(commands: Any) -> None:
    diff = commands.add_parser("diff", help="compare two JSON records: each value's change with an interval; "
                                            "exit 1 when a checked metric regressed")
    diff.add_argument("before", metavar="BEFORE.json", help="the reference record (e.g. the last release's)")
    diff.add_argument("after", metavar="AFTER.json", help="the record judged against it")
    diff.add_argument("--markdown", default=None, metavar="PATH", help="also write the comparison as Markdown")
    diff.add_argument("--csv", dest="csv_path", default=None, metavar="PATH",
                      help="also write every compared value as a CSV table")
    diff.add_argument("--all", action="store_true", help="print every unchecked value too (exploratory)")


def _label(run: dict[str, Any], path: str) -> str:
    label = str(run.get("label") or "")
    created = str(run.get("created") or "")
    return f"{label} ({created})" if label and created else label or created or path


def diff_rows(comparisons: list, before: tuple[str, dict], after: tuple[str, dict]) -> list[dict[str, Any]]:
    """The comparison as CSV rows (:data:`DIFF_COLUMNS`)."""
    from ..results.csv_table import params_json

    rows = []
    for comp in comparisons:
        for c in comp.changes:
            iv = c.interval
            has = iv is not None and iv.has_interval
            rows.append({"audit": comp.audit, "layer": c.layer, "metric": c.metric, "params": params_json(c.params),
                         "checked": c.checked, "before_label": before[0], "after_label": after[0],
                         "before": c.reference, "after": c.value, "change": c.delta,
                         "change_low": iv.low if has else None, "change_high": iv.high if has else None,
                         "level": iv.level if has else None, "basis": c.basis,
                         "margin": c.margin if c.checked else None, "bound": c.bound, "verdict": c.verdict,
                         "before_fingerprint": before[1].get(comp.audit, ""),
                         "after_fingerprint": after[1].get(comp.audit, "")})
    return rows


def diff_main(args: Any) -> int:
    from ..analyse.compare import any_regression, compare_runs
    from ..atomic import write_output, write_text_atomic
    from ..registries import standalone
    from ..report.changes import change_lines, changes_markdown
    from ..results.record import RecordError, read_record

    try:
        before_run, before = read_record(args.before)
        after_run, after = read_record(args.after)
    except RecordError as error:
        print(f"robustaudit diff: {error}", file=sys.stderr)
        return 2
    common = {r.name for r in after} & {r.name for r in before}
    if not common:
        print(f"robustaudit diff: {args.before} and {args.after} hold no audit of the same name (before: "
              f"{', '.join(r.name for r in before) or 'none'}; after: {', '.join(r.name for r in after) or 'none'}); "
              "compare records of the same audits", file=sys.stderr)
        return 2
    before_label = _label(before_run, args.before)
    comparisons = compare_runs(after, before, standalone().metrics, reference_label=before_label)
    print(f"robustaudit diff: {_label(after_run, args.after)} against {before_label}")
    for line in change_lines(comparisons, exploratory=args.all):
        print(line)
    regressed = any_regression(comparisons)
    written: list = []
    problems: list[str] = []
    if args.markdown:
        write_output("Markdown comparison", args.markdown,
                     lambda path: write_text_atomic(path, changes_markdown(comparisons)), written, problems)
    if args.csv_path:
        from ..results.csv_table import write_table

        rows = diff_rows(comparisons, (str(before_run.get("label") or ""), {r.name: r.fingerprint for r in before}),
                         (str(after_run.get("label") or ""), {r.name: r.fingerprint for r in after}))
        write_output("CSV table", args.csv_path, lambda path: write_table(path, DIFF_COLUMNS, rows), written, problems)
    for what, path in written:
        print(f"robustaudit: {what}: {path}")
    for problem in problems:
        print(f"robustaudit diff: {problem}", file=sys.stderr)
    print(f"robustaudit diff: {'a checked metric regressed' if regressed else 'no checked metric regressed'}")
    if regressed:
        return 1          # a regression is the answer, whatever output could not be written beside it
    return 2 if problems else 0
