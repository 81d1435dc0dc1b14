"""Join the JSON records of ``--audit-shard`` runs into what one run would have written.

Each shard (a CI matrix job, a Slurm array task) audits its part of the specs and writes its record
with ``--audit-json``; :func:`merge_records` checks that the records are the shards 1..N of one split,
each exactly once, and returns the audits of all of them (in spec-path order, as one run collects
them) with the run-level facts of every shard listed under ``shards``.  The report, record and
Markdown summary are then written by the same functions a run uses.  Free of pytest.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..errors import AuditError
from . import AuditResult

#: run-level fields of a shard's record that stay per shard in the merged record
PER_SHARD = ("created", "host", "platform", "python", "pytest", "args", "invocation_dir", "exit_status",
             "interrupted", "workers")


class MergeError(AuditError):
    """The records given to ``merge`` are not the complete, distinct shards of one split."""


def _shard_of(run: dict[str, Any], path: Path) -> tuple[int, int]:
    text = str(run.get("shard") or "")
    index, sep, count = text.partition("/")
    if not sep or not index.isdigit() or not count.isdigit():
        raise MergeError(f"{path} was not written by a sharded run (its record has no 'shard')",
                         fix="merge the records of runs made with --audit-shard K/N --audit-json PATH")
    return int(index), int(count)


def merge_records(paths: list[Path | str]) -> tuple[dict[str, Any], list[AuditResult]]:
    """The merged run information and audits of the shard records at ``paths``."""
    from .record import read_record

    if not paths:
        raise MergeError("no record given", fix="python -m pytest_robustaudit merge shard-1.json shard-2.json ...")
    seen: dict[int, Path] = {}
    counts: dict[int, Path] = {}
    results: list[AuditResult] = []
    owner: dict[str, Path] = {}
    shards: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    for raw in paths:
        path = Path(raw)
        run, found = read_record(path)
        index, count = _shard_of(run, path)
        if index in seen:
            raise MergeError(f"shard {index}/{count} is given twice: {seen[index]} and {path}",
                             fix="give each shard's record once")
        seen[index] = path
        counts.setdefault(count, path)
        for result in found:
            spec = os.fspath(result.spec_path)
            if spec in owner:
                raise MergeError(f"the audit of {spec} is in two records: {owner[spec]} and {path}",
                                 fix="merge the shards of one split (the same N and the same specs)")
            owner[spec] = path
            results.append(result)
        errors.extend(e for e in run.get("errors", []) or [] if isinstance(e, dict))
        shards.append({"shard": f"{index}/{count}", "record": os.fspath(path),
                       **{k: run[k] for k in PER_SHARD if k in run}})
    if len(counts) > 1:
        described = ", ".join(f"N={n} ({p})" for n, p in sorted(counts.items()))
        raise MergeError(f"the records come from different splits: {described}",
                         fix="merge the records of one --audit-shard K/N split")
    count = next(iter(counts))
    missing = [i for i in range(1, count + 1) if i not in seen]
    if missing:
        names = ", ".join(f"{i}/{count}" for i in missing)
        raise MergeError(f"shard{'s' if len(missing) > 1 else ''} {names} {'are' if len(missing) > 1 else 'is'} "
                         f"missing (given: {', '.join(f'{i}/{count}' for i in sorted(seen))})",
                         fix="add the missing shards' records (each written with --audit-json)")
    results.sort(key=lambda r: os.fspath(r.spec_path))
    shards.sort(key=lambda s: int(s["shard"].split("/")[0]))
    exit_status = max((int(s.get("exit_status", 0) or 0) for s in shards), default=0)
    run_info = {"merged_shards": count, "exit_status": exit_status, "errors": errors, "shards": shards}
    return run_info, results
