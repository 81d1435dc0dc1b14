"""Join the JSON records of ``--audit-shard`` runs into what one run would have written.

Each shard (a CI matrix job, a Slurm array task) audits its part of the specs and writes its record
with ``--audit-json``; :func:`merge_records` checks that the records are the shards 1..N of one split,
each exactly once, and returns the audits of all of them (in spec-path order, as one run collects
them) with the run-level facts of every shard listed under ``shards``.  The report, record and
Markdown summary are then written by the same functions a run uses.  Free of pytest.

A record is not taken at its word (docs/ci.md#what-merge-checks):

* **one run**: every shard's record carries the spec set it was split from (each spec's path
  relative to the rootdir and the sha256 of its bytes, and their fingerprint); the shards must
  share it, each shard must hold what the split rule gives it, and each audit's spec content must be
  one of its shard's specs;
* **verdicts**: every check is decided again from its recorded value, bounds, interval, difference
  and confidence by the verdict code a run uses (:func:`~..analyse.checks.settle_again`); a record
  whose verdict disagrees is refused;
* **relations**: each relation file a shard recorded (``run.relations``, deferred: a shard holds part of
  the audits) is judged over every shard's audits by the function a single run uses
  (:func:`~.relations.judge`), so the merged verdict is one process's; the shards must agree on its
  bounds and content, and its content must be the spec set's.

This is a consistency check, not authentication: a record written by hand to be consistent merges.
Records without these fields (schema 3 and older) are refused with the way out.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
import re
from pathlib import Path
from typing import Any

from ..errors import AuditError
from . import AuditResult

#: run-level fields of a shard's record that stay per shard in the merged record
PER_SHARD = ("created", "host", "platform", "python", "pytest", "args", "invocation_dir", "exit_status",
             "interrupted", "workers")
#: what every refusal of a record that cannot be checked says
RERUN = "re-run that shard with this pytest-robustaudit (--audit-shard K/N --audit-json PATH) and merge again"


class MergeError(AuditError):
    """The records given to ``merge`` are not the complete, distinct shards of one split."""


def shard_members(identities: list[str], index: int, count: int) -> list[str]:
    """The specs of shard ``index`` of ``count``: sorted by their identity (path relative to the rootdir),
    the i-th belongs to shard ``i mod count + 1``.  The one split rule of runs and of ``merge``."""
    return [name for i, name in enumerate(sorted(identities)) if i % count == index - 1]


def spec_set_of(specs: dict[str, str], index: int, count: int) -> dict[str, Any]:
    """A sharded run's ``run.spec_set``: every spec of the split (identity -> sha256 of its bytes), their
    fingerprint, and this shard's members."""
    text = json.dumps(specs, sort_keys=True, separators=(",", ":"))
    return {"fingerprint": hashlib.sha256(text.encode("utf-8")).hexdigest(), "specs": dict(sorted(specs.items())),
            "members": shard_members(list(specs), index, count)}


_SHARD = re.compile(r"([0-9]{1,9})/([0-9]{1,9})")


def _shard_of(run: dict[str, Any], path: Path) -> tuple[int, int]:
    found = _SHARD.fullmatch(str(run.get("shard") or ""))   # ASCII digits only, never a 5000-digit int()
    index, count = (int(found.group(1)), int(found.group(2))) if found else (0, 0)
    if not 1 <= index <= count:
        raise MergeError(f"{path} was not written by a sharded run (its record has no 'shard')",
                         fix="merge the records of runs made with --audit-shard K/N --audit-json PATH")
    return index, count


def _spec_set(run: dict[str, Any], path: Path, index: int, count: int) -> dict[str, Any]:
    found = run.get("spec_set")
    specs = found.get("specs") if isinstance(found, dict) else None
    if not isinstance(specs, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in specs.items()) \
            or not isinstance(found.get("fingerprint"), str):
        raise MergeError(f"{path} carries no spec set (run.spec_set: which specs the split was made of): it was "
                         f"written before record schema 4, so merge cannot check that it belongs to this run", fix=RERUN)
    expected = spec_set_of(specs, index, count)
    if found["fingerprint"] != expected["fingerprint"] or found.get("members") != expected["members"]:
        raise MergeError(f"{path}: its spec set does not agree with itself (fingerprint or shard {index}/{count}'s "
                         f"members are not what its specs give)", fix=RERUN)
    return expected


def _exit_status(run: dict[str, Any], path: Path) -> int:
    value = run.get("exit_status", 0)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 255:
        raise MergeError(f"{path}: run.exit_status is {value!r}, not an exit status (a whole number 0-255)",
                         fix=f"the record was edited or damaged: {RERUN}")
    return value


def _policy(run: dict[str, Any], path: Path) -> str:
    """The shard's inconclusive policy (run.inconclusive_policy; "fail" in records that predate it)."""
    from . import INCONCLUSIVE_POLICIES

    value = run.get("inconclusive_policy", "fail")
    if value not in INCONCLUSIVE_POLICIES:
        raise MergeError(f"{path}: run.inconclusive_policy is {value!r}, not one of {', '.join(INCONCLUSIVE_POLICIES)}",
                         fix=f"the record was edited or damaged: {RERUN}")
    return value


def _check_verdicts(result: AuditResult, where: str, policy: str = "fail") -> None:
    """Decide every check of ``result`` again from what its record says, under the run's inconclusive
    ``policy``; refuse one that disagrees."""
    from ..analyse.checks import BASES, bound_text, counts_as_passed, format_number, settle_again

    for j, check in enumerate(result.checks):
        if check.skip_reason:
            continue
        at = f"{where}.checks[{j}] ({check.metric} on layer '{check.layer}')"
        if check.basis not in BASES:
            raise MergeError(f"{at} does not say what its verdict was read from (checks[].basis, record schema 4)",
                             fix=RERUN)
        outcome = settle_again(check)
        claimed = "inconclusive" if check.inconclusive else "pass" if check.passed else "fail"
        if (counts_as_passed(outcome, policy), outcome == "inconclusive") != (check.passed, check.inconclusive):
            value = format_number(check.value) if not math.isnan(check.value) else "undefined"
            raise MergeError(f"{at} says {claimed}, but its recorded value {value} against "
                             f"{bound_text(check.min, check.max)} (read from its {check.basis}) gives {outcome}"
                             + (f" (which passes: the run's inconclusive policy is {policy})"
                                if outcome == "inconclusive" and check.passed != counts_as_passed(outcome, policy) else ""),
                             fix=f"the record was edited or damaged: {RERUN} (merge checks that a record agrees with "
                                 f"itself; it does not authenticate it)")


def merge_records(paths: list[Path | str]) -> tuple[dict[str, Any], list[AuditResult]]:
    """The merged run information and audits of the shard records at ``paths``."""
    from .record import read_record

    if not paths:
        raise MergeError("no record given", fix="python -m pytest_robustaudit merge shard-1.json shard-2.json ...")
    seen: dict[int, Path] = {}
    counts: dict[int, Path] = {}
    first_set: tuple[Path, dict[str, Any]] | None = None
    results: list[AuditResult] = []
    owner: dict[str, Path] = {}
    shards: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    spec_set: dict[str, Any] = {}
    policies: dict[str, Path] = {}
    relations: dict[str, tuple[Any, Path]] = {}
    for raw in paths:
        path = Path(raw)
        run, found = read_record(path)
        index, count = _shard_of(run, path)
        policy = _policy(run, path)
        policies.setdefault(policy, path)
        if index in seen:
            raise MergeError(f"shard {index}/{count} is given twice: {seen[index]} and {path}",
                             fix="give each shard's record once")
        seen[index] = path
        counts.setdefault(count, path)
        spec_set = _spec_set(run, path, index, count)
        first_set = first_set or (path, spec_set)
        if spec_set["fingerprint"] != first_set[1]["fingerprint"]:
            raise MergeError(_other_specs(path, spec_set["specs"], *first_set),
                             fix="merge the shards of one run: the same specs, with the same content, in every shard")
        mine = {spec_set["specs"][name] for name in spec_set["members"]}
        for i, result in enumerate(found):
            where = f"{path}: audits[{i}]"
            if result.spec_sha256 not in mine:
                raise MergeError(f"{where} ({result.name}) audited a spec that is not one of shard {index}/{count}'s "
                                 f"specs (its content sha256 {result.spec_sha256[:12] or 'is not recorded'})",
                                 fix=f"merge the shards of one run; {RERUN}")
            _check_verdicts(result, where, policy)
            spec = os.fspath(result.spec_path)
            if spec in owner:
                raise MergeError(f"the audit of {spec} is in two records: {owner[spec]} and {path}",
                                 fix="merge the shards of one split (the same N and the same specs)")
            owner[spec] = path
            results.append(result)
        _collect_relations(run, path, relations)
        listed = run.get("errors")
        errors.extend(e for e in (listed if isinstance(listed, list) else []) if isinstance(e, dict))
        shards.append({"shard": f"{index}/{count}", "record": os.fspath(path), "exit_status": _exit_status(run, path),
                       **{k: run[k] for k in PER_SHARD if k in run and k != "exit_status"}})
    if len(policies) > 1:
        described = ", ".join(f"{p} ({path})" for p, path in sorted(policies.items()))
        raise MergeError(f"the shards were run with different inconclusive policies: {described}",
                         fix="run every shard with the same --audit-inconclusive (or ini audit_inconclusive)")
    if len(counts) > 1:
        described = ", ".join(f"N={n} ({p})" for n, p in sorted(counts.items()))
        raise MergeError(f"the records come from different splits: {described}",
                         fix="merge the records of one --audit-shard K/N split")
    count = next(iter(counts))
    if len(seen) < count:   # name the first few missing shards: a record claiming N = 10**9 must not take 10**9 steps
        first = list(itertools.islice((i for i in range(1, count + 1) if i not in seen), 10))
        more = count - len(seen) - len(first)
        names = ", ".join(f"{i}/{count}" for i in first) + (f" and {more} more" if more else "")
        plural = count - len(seen) > 1
        raise MergeError(f"shard{'s' if plural else ''} {names} {'are' if plural else 'is'} missing "
                         f"(given: {', '.join(f'{i}/{count}' for i in sorted(seen)[:10])})",
                         fix="add the missing shards' records (each written with --audit-json)")
    results.sort(key=lambda r: os.fspath(r.spec_path))
    shards.sort(key=lambda s: int(s["shard"].split("/")[0]))
    exit_status = max((s["exit_status"] for s in shards), default=0)
    run_info = {"merged_shards": count, "exit_status": exit_status, "inconclusive_policy": next(iter(policies)), "errors": errors, "shards": shards,
                "spec_set": {k: spec_set[k] for k in ("fingerprint", "specs")},
                "relations": [r.to_dict() for r in _judge_relations(relations, spec_set, results, errors)]}
    return run_info, results


def _collect_relations(run: dict[str, Any], path: Path, found: dict[str, tuple[Any, Path]]) -> None:
    """Add the relation files ``path``'s record holds to ``found`` (file → (bounds, first record)); every
    shard records each relation file: the copies must agree (bounds, metric, layer, content)."""
    from .relations import RelationRecordError, relations_in

    try:
        outcomes = relations_in(run, os.fspath(path))
    except RelationRecordError as error:
        raise MergeError(str(error), fix=f"the record was edited or damaged: {RERUN}") from None
    for outcome in outcomes:
        key = (outcome.metric, outcome.layer, outcome.min_rho, outcome.max_rho, outcome.confidence, outcome.sha256)
        if outcome.file in found:
            first, where = found[outcome.file]
            if key != (first.metric, first.layer, first.min_rho, first.max_rho, first.confidence, first.sha256):
                raise MergeError(f"the relation {outcome.file} differs between {where} and {path} (metric, layer, "
                                 f"bounds or content)",
                                 fix="merge the shards of one run: the same relation file in every shard")
            continue
        found[outcome.file] = (outcome, path)


def _judge_relations(found: dict[str, tuple[Any, Path]], spec_set: dict[str, Any], results: list[AuditResult],
                     errors: list[dict[str, Any]]) -> list[Any]:
    """Each relation file judged over every shard's audits, as one process judges it."""
    from dataclasses import replace

    from .relations import error_entries, judge

    specs = spec_set.get("specs", {})
    judged = []
    for file, (outcome, path) in sorted(found.items()):
        if file in specs and outcome.sha256 and specs[file] != outcome.sha256:
            raise MergeError(f"{path}: the relation {file} recorded content sha256 {outcome.sha256[:12]}, but the "
                             f"spec set has {specs[file][:12]}", fix=f"the record was edited or damaged: {RERUN}")
        blank = replace(outcome, status="deferred", rho=None, low=None, high=None, level=None, n=0, models=(),
                        left_out=(), message="")
        judged.append(judge(blank, results, error_entries(errors)))
    return judged


def _other_specs(path: Path, ours: dict[str, str], first: Path, first_set: dict[str, Any]) -> str:
    """What differs between ``path``'s spec set and the first record's, in words."""
    theirs = first_set["specs"]
    only_ours = sorted(set(ours) - set(theirs))
    only_theirs = sorted(set(theirs) - set(ours))
    changed = sorted(name for name in set(ours) & set(theirs) if ours[name] != theirs[name])
    parts = [f"only in {path}: {', '.join(only_ours[:5])}" if only_ours else "",
             f"only in {first}: {', '.join(only_theirs[:5])}" if only_theirs else "",
             f"with other content: {', '.join(changed[:5])}" if changed else ""]
    return f"{path} and {first} were split from different sets of specs ({'; '.join(p for p in parts if p)})"
