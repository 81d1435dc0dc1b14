"""``python -m pytest_robustaudit validate | list | cache | merge | diff | history``: tools around audit specs, the
store, records and the release history.

``validate PATH...`` checks audit specs without running them (``--plan``: and prints what each computes),
``list metrics|corruptions|layers SPEC`` says what a spec may name (``cli/``);
``cache {list,clear,prune --older-than AGE,verify} [--dir PATH]`` looks after the activation store (docs/store.md);
``merge RECORD...`` joins the records of ``--audit-shard`` runs (docs/ci.md);
``diff BEFORE.json AFTER.json`` prints each value's change between two records (``cli/diff.py``);
``history {list,prune} --dir DIR`` looks after the release history of ``--audit-history`` (``cli/history.py``).

Validation is pytest's own collection of the specs, so a conftest.py that registers metrics or model
sources is honoured exactly as in a real run; no image is decoded and no weights are loaded (models are
built without weights, ``models/architecture.py``).  Exit status 0 when every spec is valid, 1
otherwise, 2 for a usage error: fit for pre-commit.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pytest_robustaudit",
                                     description="Tools for pytest-robustaudit audit specs.")
    commands = parser.add_subparsers(dest="command", required=True)
    add_spec_commands(commands)
    merge = commands.add_parser("merge", help="join the JSON records of --audit-shard runs into one report, "
                                              "record and summary")
    merge.add_argument("records", nargs="+", metavar="RECORD")
    merge.add_argument("--report", default="robustaudit-report.html", metavar="PATH",
                       help="the HTML report (default: robustaudit-report.html; 'none' for no report)")
    merge.add_argument("--json", dest="json_path", default=None, metavar="PATH", help="the merged JSON record")
    merge.add_argument("--markdown", default=None, metavar="PATH", help="the Markdown summary")
    merge.add_argument("--csv", dest="csv_path", default=None, metavar="PATH",
                       help="the merged values as a flat CSV table (columns: docs/report.md)")
    commands.add_parser("cache", help="list, clear, prune or verify the activation store (cache --help)", add_help=False)
    commands.add_parser("history", help="list or prune the release history of --audit-history (history --help)",
                        add_help=False)
    from .cli.diff import add_diff_command

    add_diff_command(commands)
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] == "cache":
        from .store import cache_main

        return cache_main(argv[1:], default_cache_dir())
    if argv and argv[0] == "history":
        from .cli.history import history_main

        return history_main(argv[1:])
    args = parser.parse_args(argv)
    if args.command == "diff":
        from .cli.diff import diff_main

        return diff_main(args)
    if args.command == "merge":
        return merge_shards(args.records, args.report, args.json_path, args.markdown, args.csv_path)
    return run_spec_command(args)


def merge_shards(records: list[str], report: str | None, json_path: str | None, markdown: str | None,
                 csv_path: str | None = None) -> int:
    """Write the merged outputs; exit 0 when every check and relation check passed, 1 when one failed
    (a relation check judged over every shard's audits: failed, inconclusive or not measurable) or an
    audit could not run, 2 when the records are not the complete, consistent shards of one run, or an output could not be
    written (the message names what is wrong; every other output is still written)."""
    from .atomic import write_output, write_text_atomic
    from .errors import AuditError
    from .results.merge import merge_records
    from .results.record import write_record
    from .registries import standalone
    from .report import render_report, write_report
    from .report.markdown import render_markdown
    from .report.table import relation_table, terminal_table
    from .results.relations import relations_in

    try:
        run_info, results = merge_records(records)
    except AuditError as error:
        print(f"robustaudit merge: {error}", file=sys.stderr)
        return 2
    errors = {str(e.get("spec_path", "")): str(e.get("message", "")) for e in run_info["errors"]}
    metrics = standalone().metrics
    for line in terminal_table(results, errors, metrics):
        print(line)
    relations = relations_in(run_info, "the merged record")
    for line in ([""] if relations else []) + relation_table(relations):
        print(line)
    html = None if report is None or report.strip().lower() in ("", "none") else report
    written: list = []
    problems: list[str] = []
    if json_path:
        write_output("JSON record", json_path, lambda path: write_record(results, path, run_info), written, problems)
    if csv_path:
        from .results.csv_table import write_record_csv

        write_output("CSV table", csv_path, lambda path: write_record_csv(results, path, run_info, metrics),
                     written, problems)
    if html:
        write_output("report", html, lambda path: write_report(render_report(results, metrics, dict(run_info)), path),
                     written, problems)
    if markdown:
        write_output("Markdown summary", markdown,
                     lambda path: write_text_atomic(path, render_markdown(results, errors, html, metrics,
                                                                                relations=relations)),
                     written, problems)
    for what, path in written:
        print(f"robustaudit: {what}: {path}")
    for problem in problems:
        print(f"robustaudit merge: {problem}", file=sys.stderr)
    if problems:
        return 2
    failed = errors or any(not r.passed for r in results) or any(r.failed for r in relations)
    return 1 if failed else 0


def default_cache_dir():
    """The store a plain ``pytest --audit`` run in this folder uses: $ROBUSTAUDIT_CACHE_DIR, else
    pytest's cache dir here (``.pytest_cache/d/robustaudit-store``)."""
    import os
    from pathlib import Path

    from .store import default_store_dir

    env = os.environ.get("ROBUSTAUDIT_CACHE_DIR")
    return Path(env).expanduser() if env else default_store_dir(Path.cwd())


def add_spec_commands(commands: Any) -> None:
    """``validate`` and ``list``: the tools about specs (``cli/``)."""
    validate = commands.add_parser("validate", help="check audit specs (files or folders) without running them")
    validate.add_argument("paths", nargs="+", metavar="PATH")
    validate.add_argument("--plan", action="store_true",
                          help="also print each spec's plan: what it computes (and why), measures and leaves out")
    validate.add_argument("--factories", action="store_true",
                          help="also call the specs' factories (your Python) to check their layers")
    listing = commands.add_parser("list", help="list the metrics, the corruptions, or a spec's model's layers")
    listing.add_argument("what", choices=("metrics", "corruptions", "layers"))
    listing.add_argument("spec", nargs="?", metavar="SPEC", help="for `layers`: the spec whose model to list")
    listing.add_argument("--factories", action="store_true", help="for `layers`: call the spec's factory")


def run_spec_command(args: Any) -> int:
    """Run ``validate`` or ``list`` with the parsed ``args``; the exit status."""
    if args.command == "list":
        from .cli.listing import list_main

        return list_main(args.what, args.spec, factories=args.factories, cache_dir=default_cache_dir())
    from .cli.validate import validate_specs

    return validate_specs(args.paths, plan=args.plan, factories=args.factories, cache_dir=default_cache_dir())


if __name__ == "__main__":
    sys.exit(main())
