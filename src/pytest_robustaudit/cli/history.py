"""``python -m pytest_robustaudit history {list,prune} --dir DIR``: look after a release history folder.

``list`` shows every kept run (id, time, label, marks, audits); ``prune`` removes runs: all but the
newest ``--keep N`` of each audit, those ``--older-than AGE``, or the ones named by ``--id``.  The
folder is the one given to ``--audit-history`` (``results/history.py``).  Exit status 0, 2 for a usage
error or a folder that cannot be used (the message says which and what to do).
"""

from __future__ import annotations

import argparse
import os
import sys


def history_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m pytest_robustaudit history",
                                     description="List or prune the release history kept by --audit-history.")
    where = "the history folder (what --audit-history was given; default: $ROBUSTAUDIT_HISTORY_DIR)"
    parser.add_argument("--dir", default=None, help=where)
    commands = parser.add_subparsers(dest="command", required=True)
    after = argparse.ArgumentParser(add_help=False)
    after.add_argument("--dir", default=argparse.SUPPRESS, help=where)
    listing = commands.add_parser("list", parents=[after], help="show every kept run")
    listing.add_argument("--audit", default=None, metavar="KEY", help="only the runs of this audit key")
    prune = commands.add_parser("prune", parents=[after], help="remove kept runs")
    prune.add_argument("--keep", type=int, default=None, metavar="N", help="keep the newest N runs of each audit")
    prune.add_argument("--older-than", default=None, metavar="AGE", help="remove runs older than AGE (7d, 12h, 2w)")
    prune.add_argument("--id", dest="ids", action="append", default=[], metavar="ID", help="remove this run (repeatable)")
    args = parser.parse_args(argv)
    folder = args.dir or os.environ.get("ROBUSTAUDIT_HISTORY_DIR")
    if not folder:
        print("robustaudit history: no folder: give --dir DIR (the folder given to --audit-history)", file=sys.stderr)
        return 2
    from ..errors import AuditError
    from ..results.history import History

    history = History(folder)
    try:
        if not history.folder.exists():
            raise AuditError(f"no history folder at {history.folder}: check --dir (a run with --audit-history "
                             f"{history.folder} creates it)")
        if args.command == "list":
            return _list(history, args.audit)
        if args.keep is None and args.older_than is None and not args.ids:
            print("robustaudit history prune: say what to remove: --keep N, --older-than AGE or --id ID",
                  file=sys.stderr)
            return 2
        if args.keep is not None and args.keep < 1:
            print("robustaudit history prune: --keep must be at least 1 (to empty the folder, delete it)",
                  file=sys.stderr)
            return 2
        from ..store.manage import parse_age

        removed = history.prune(keep=args.keep, older_than=parse_age(args.older_than) if args.older_than else None,
                                ids=args.ids)
        print(f"removed {len(removed)} kept run{'s' if len(removed) != 1 else ''} from {history.folder}")
        for entry in removed:
            print(f"  {entry.id}  {entry.shown}")
    except AuditError as error:
        print(f"robustaudit history: {error}", file=sys.stderr)
        return 2
    except OSError as error:        # a file of the folder that cannot be removed (permissions, a read-only disk)
        print(f"robustaudit history: cannot change {history.folder}: {error.strerror or error} "
              f"({error.filename}); check the folder's permissions", file=sys.stderr)
        return 2
    return 0


def _list(history, audit: str | None) -> int:
    entries = history.entries()
    if audit:
        entries = [e for e in entries if e.audit(audit) is not None]
    print(f"release history: {history.folder} ({len(entries)} kept run{'s' if len(entries) != 1 else ''})")
    for entry in entries:
        marks = f"  [partial: {entry.partial}]" if entry.partial else ""
        print(f"{entry.id}  {entry.created}  {entry.label or '(no label)'}{marks}")
        for a in entry.audits:
            if audit and a.key != audit:
                continue
            counts: dict[str, int] = {}
            for c in a.checks:
                counts[c.status] = counts.get(c.status, 0) + 1
            said = ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "no check"
            print(f"    {a.key}  {a.model}  ({a.fingerprint[:19]})  {said}")
    for path, why in history.problems:
        print(f"skipped {path}: {why}", file=sys.stderr)
    return 0
