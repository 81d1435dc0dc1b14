"""pytest glue of the release history: ``--audit-history``, ``--audit-label``, ``--audit-compare``.

The work is in ``results/history.py`` (the folder), ``analyse/compare.py`` (the changes) and
``report/changes.py`` (how they read); here we only decide, at the end of the run and in the
controller only (pytest-xdist workers never write the folder), in this order:

1. the run's label goes into the run information (every output shows it);
2. with ``--audit-compare REF``, each audit's changes from REF (compared *before* this run is kept,
   so ``last`` is never the current run);
3. with ``--audit-history DIR``, the run is kept (not a smoke run, not an interrupted one; a run whose
   checks did not all run is kept marked partial);
4. the trend series of every checked metric (the kept runs, this one marked) for the report.

docs/ci.md#release-history.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from .state import run_state

if TYPE_CHECKING:
    from ..results.history import ReleaseHistory

#: the newest kept runs a trend plot shows (``history list`` shows every one)
TREND_RUNS = 30


def add_options(group: Any, parser: pytest.Parser) -> None:
    group.addoption("--audit-history", dest="audit_history", default=None, metavar="DIR",
                    help="keep this run's record in the release history DIR (shared by CI jobs; off by default) "
                         "and plot each checked metric across the kept runs in the report (docs/ci.md).")
    group.addoption("--audit-label", dest="audit_label", default=None, metavar="TEXT",
                    help="the run's label in the history and every output (default: the git tag, else the "
                         "commit, as the CI job builds it).")
    group.addoption("--audit-compare", dest="audit_compare", default=None, metavar="REF",
                    help="put beside every value its change from REF with an interval: 'last' (the last release: "
                         "the newest complete, passed kept run of the same audit under another label), a label in "
                         "the history, or a JSON record file (*.json).")
    parser.addini("audit_history", default="", help="default for --audit-history (relative to the rootdir)")
    parser.addini("audit_label", default="", help="default for --audit-label")


def history_folder(config: pytest.Config) -> Path | None:
    option = config.getoption("audit_history", None)
    if option is not None and str(option).strip().lower() in ("", "none"):
        return None
    if option:
        return Path(config.invocation_params.dir, os.path.expanduser(str(option)))
    ini = config.getini("audit_history")
    return Path(config.rootpath, os.path.expanduser(str(ini))) if ini else None


def run_label(config: pytest.Config) -> str:
    """``--audit-label``, the ini key, else what the CI job builds (:func:`results.history.default_label`)."""
    state = run_state(config)
    if getattr(state, "label", None) is None:
        from ..results.history import default_label

        given = config.getoption("audit_label", None) or config.getini("audit_label")
        state.label = str(given) if given else default_label(config.rootpath)
    return state.label


def release_history(config: pytest.Config) -> ReleaseHistory | None:
    """The run's history (None without ``--audit-history``); a path that is a file is a usage error."""
    folder = history_folder(config)
    if folder is None:
        return None
    state = run_state(config)
    if getattr(state, "history", None) is None:
        from ..results.history import ReleaseHistory

        if folder.exists() and not folder.is_dir():
            raise pytest.UsageError(f"--audit-history {folder}: not a folder; give a folder (it is created if missing)")
        state.history = ReleaseHistory(folder, config.rootpath, lambda: run_label(config))
    return state.history


def check_options(config: pytest.Config) -> None:
    """Usage errors now rather than at the end of a long run: a history path that is a file, a compare
    reference that needs a history when none is given is fine (skipped with a reason at the end)."""
    release_history(config)
    ref = config.getoption("audit_compare", None)
    if ref is not None and not str(ref).strip():
        raise pytest.UsageError("--audit-compare needs a reference: 'last', a release label, or a JSON record file")


def partial_reason(exitstatus: int, deselected: int, not_run: int) -> str:
    """Why a run is not a whole release run ("" when it is): interrupted, or checks left out."""
    if int(exitstatus) == int(pytest.ExitCode.INTERRUPTED):
        return "interrupted"
    parts = ([f"{deselected} check(s) deselected"] if deselected else []) + \
            ([f"{not_run} check(s) not run"] if not_run else [])
    return ", ".join(parts)


def _reference_record(config: pytest.Config, ref: str) -> Path | None:
    """REF as a record file: one that exists, or any name ending in ``.json``; else REF is ``last`` or a
    label (which may hold a ``/``: ``release/1.4``)."""
    path = Path(config.invocation_params.dir, os.path.expanduser(ref))
    if path.is_file() or ref.endswith(".json"):
        return path
    return None


def compare_with(config: pytest.Config, results: list, metrics: Any, ref: str, history: Any, problems: list[str]) -> list:
    """Each audit's :class:`~.analyse.compare.AuditComparison` with ``ref`` (skipped ones say why)."""
    from ..analyse.compare import AuditComparison, compare_audits, interval_level
    from ..errors import AuditError
    from ..results.history import key_for

    out = []
    record = _reference_record(config, ref)
    in_record: dict[str, Any] = {}
    shown = ref
    if record is not None:
        from ..results.record import read_record

        try:
            _, audits = read_record(record)
        except AuditError as error:
            problems.append(f"--audit-compare {ref}: {error}")
            return []
        in_record = {r.name: r for r in audits}
        shown = f"record {record.name}"
    for result in results:
        key = key_for(result.spec_path, result.name, config.rootpath)
        if record is not None:
            reference = in_record.get(result.name)
            if reference is None:
                out.append(AuditComparison(result.name, key, shown, skipped=f"{record} holds no audit named "
                                           f"'{result.name}' (it has: {', '.join(in_record) or 'none'})"))
                continue
            label = shown
        elif history is None:
            out.append(AuditComparison(result.name, key, ref, skipped="no release history to find it in: give "
                                       "--audit-history DIR (or the ini key audit_history), or a record file"))
            continue
        else:
            try:
                found = history.reference_audit(result.spec_path, result.name, ref)
            except AuditError as error:
                out.append(AuditComparison(result.name, key, ref, skipped=str(error)))
                continue
            if found is None:
                what = "no earlier release (a complete, passed run under another label)" if ref == "last" \
                    else f"no run labelled {ref}"
                out.append(AuditComparison(result.name, key, ref, skipped=f"{what} of this audit in the history "
                                           f"{history.folder.folder} yet (as with a baseline not saved yet)"))
                continue
            entry, reference = found
            label = entry.shown
        recorded = as_recorded(result)
        try:
            out.append(compare_audits(recorded, reference, metrics, key=key, reference_label=label,
                                      level=interval_level(recorded)))
        except (ValueError, ArithmeticError, KeyError, TypeError) as error:   # a damaged reference record
            out.append(AuditComparison(result.name, key, label, skipped=f"the reference could not be compared: "
                                       f"{type(error).__name__}: {error}"))
    return out


def as_recorded(result: Any) -> Any:
    """``result`` as its record holds it (arrays at the record's digits): the comparison is computed from the
    values as recorded, so ``diff`` of the two records gives the very same numbers."""
    from ..results.record import result_from_dict, result_to_dict

    return result_from_dict(result_to_dict(result))


def trend_series(history: Any, results: list, current_id: str) -> list[dict[str, Any]]:
    """Per audit and checked metric, the newest :data:`TREND_RUNS` kept runs' values (the current marked)."""
    from ..results.history import key_for

    entries = [e for e in history.folder.entries() if not e.partial or e.id == current_id]
    series = []
    for result in results:
        key = key_for(result.spec_path, result.name, history.rootdir)
        mine = [e for e in entries if e.audit(key) is not None][-TREND_RUNS:]
        for check in result.checks:
            points = []
            for entry in mine:
                for point in entry.audit(key).checks:
                    if (point.metric, point.layer, point.params) == (check.metric, check.layer, dict(check.params)):
                        points.append({"entry": entry.id, "label": entry.label or entry.created[:10],
                                       "created": entry.created, "value": point.value, "low": point.low,
                                       "high": point.high, "status": point.status, "current": entry.id == current_id})
            if points:
                series.append({"audit": result.name, "key": key, "metric": check.metric, "layer": check.layer,
                               "params": dict(check.params), "min": check.min, "max": check.max, "points": points})
    return series


def before_outputs(config: pytest.Config, results: list, run_info: dict[str, Any], outputs: Any, metrics: Any,
                   partial: str) -> None:
    """Label, compare, keep and trace the run (see the module docstring); problems are reported, never raised."""
    from ..analyse.compare import comparison_to_json
    from ..errors import AuditError

    run_info["label"] = run_label(config)
    history = release_history(config)
    ref = config.getoption("audit_compare", None)
    if ref and results:
        comparisons = compare_with(config, results, metrics, str(ref).strip(), history, outputs.problems)
        outputs.comparisons = comparisons
        run_info["comparison"] = {"reference": str(ref), "audits": [comparison_to_json(c) for c in comparisons]}
    if history is None or not results:
        return
    state = run_state(config)
    if state.audit_limit is not None:
        outputs.notes.append(f"robustaudit: history: this run is not kept in {history.folder.folder} (a smoke run, "
                             f"--audit-limit {state.audit_limit}: its numbers are not a release's)")
        return
    if partial == "interrupted":
        outputs.notes.append("robustaudit: history: an interrupted run is not kept")
        return
    try:
        entry = history.folder.write(results, run_info, config.rootpath, label=history.label, partial=partial)
        run_info["history_entry"] = entry.id
        outputs.notes.append(f"robustaudit: history: kept as {entry.shown} in {history.folder.folder}"
                             + (f" (partial: {partial})" if partial else ""))
        run_info["history"] = {"folder": os.fspath(history.folder.folder), "entry": entry.id,
                               "series": trend_series(history, results, entry.id)}
    except AuditError as error:
        outputs.problems.append(f"history: {error}")
    for path, why in history.folder.problems:
        outputs.problems.append(f"history: skipped {path}: {why}")
