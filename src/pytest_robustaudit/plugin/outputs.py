"""pytest glue for the outputs of a run: the HTML report, the JSON record, the CSV table and the terminal table.

Registered by ``plugin.pytest_configure``.  The work is in ``report/`` and ``results/record.py``; here we
only decide what to write where:

* ``--audit-markdown PATH``: a Markdown summary for CI job pages (``report/markdown.py``).
* ``--audit-csv PATH``: the record's values as a flat table (``results/csv_table.py``).
* ``--audit-report PATH`` (default ``robustaudit-report.html`` in the invocation folder when
  ``--audit`` is given; ``--no-audit-report`` or ``--audit-report=none`` turn it off) and
  ``--audit-json PATH`` (off by default).  Nothing is written when no audit ran.
* ``--audit-save-baseline``: each audited spec's result goes to its ``reference: {baseline: PATH}``
  file; an interrupted run saves none, and one that cannot be written fails the run.
* Under pytest-xdist each worker puts its results, serialised exactly, and its specs' baseline
  paths into ``workeroutput`` at the end of its session; the controller collects them in
  ``pytest_testnodedown`` (``xdist.py``) and is the only process that writes files, so the report
  holds every worker's results and every baseline is said in the controller's terminal.
* Run-level relation checks (``collect.RelationItem``) go to every output: a row of the terminal
  summary, the Markdown and the report, and ``run.relations`` in the record (``results/relations.py``).
* ``pytest_robustaudit_record_written(config, record, path)`` is called once per run, in the
  controller only under pytest-xdist, after the outputs are written (``path`` None without
  ``--audit-json``); an implementation that raises is said at the end, the exit status unchanged.
* pytest's selection is respected: a check deselected (``-k``, ``-m``, ``--lf``, node ids) or never
  reached (``-x``, an interrupt) is absent from every output, which says how many there were;
  ``--collect-only`` (and so ``python -m pytest_robustaudit validate``) writes no output.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import pytest

from .state import Outputs, check_key, inconclusive_policy, run_state, spec_key

if TYPE_CHECKING:
    from ..results import AuditResult, ReportSection

DEFAULT_REPORT = "robustaudit-report.html"
OFF = ("none", "")
WORKER_KEY = "robustaudit_record"


def _is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def _path_option(config: pytest.Config, name: str, default: str | None) -> Path | None:
    value = config.getoption(name, None)
    if value is None:
        value = default
    if value is None or str(value).strip().lower() in OFF:
        return None
    return Path(config.invocation_params.dir, os.path.expanduser(str(value)))


def report_path(config: pytest.Config) -> Path | None:
    """Where the HTML report goes (None: off). The default applies only to ``--audit`` runs."""
    return _path_option(config, "audit_report", DEFAULT_REPORT if run_state(config).auditing else None)


def json_path(config: pytest.Config) -> Path | None:
    return _path_option(config, "audit_json", None)


def _ran_only(result: AuditResult, checks: Any, state: Any) -> AuditResult:
    """``result`` with only the checks whose pytest item ran (``checks``: the spec's CheckSpecs, in
    the order the runner judged them).  A spec none of whose checks pytest collected (audited by the
    ``audit`` fixture) keeps its verdicts: they are what the user's own test asserted on."""
    import dataclasses

    keys = [check_key(result.spec_path, c) for c in checks]
    if len(keys) != len(result.checks) or not any(k in state.selected or k in state.deselected for k in keys):
        return result
    return dataclasses.replace(result, checks=[o for k, o in zip(keys, result.checks) if k in state.ran])


def _local(config: pytest.Config) -> tuple[list[AuditResult], dict[str, str], dict[str, str]]:
    """This process's results (only the checks that ran), errors (spec path → message) and baseline
    files (spec path → file)."""
    state = run_state(config)
    if not state.has_session:
        return [], {}, {}
    audits = state.session
    results = [_with_digest(_ran_only(r, audits.spec(r.spec_path).checks, state), state) for r in audits.results()]
    baselines = {}
    for result in results:
        reference = audits.spec(result.spec_path).reference
        if reference is not None and reference.baseline is not None:
            baselines[spec_key(result.spec_path)] = os.fspath(reference.baseline)
    return results, {os.fspath(p): m for p, m in audits.errors().items()}, baselines


def _with_digest(result: AuditResult, state: Any) -> AuditResult:
    """``result`` with the sha256 of its spec file as collected (the record's ``spec_sha256``)."""
    import dataclasses

    digest = state.spec_digests.get(spec_key(result.spec_path))
    return dataclasses.replace(result, spec_sha256=digest) if digest else result


def _merge(first: AuditResult, other: AuditResult) -> None:
    """Add to ``first`` the checks of ``other`` (the same spec audited on another pytest-xdist worker,
    which ran other items of it) that ``first`` lacks."""
    seen = {(c.metric, c.layer, repr(sorted(c.params.items()))) for c in first.checks}
    for check in other.checks:
        if (check.metric, check.layer, repr(sorted(check.params.items()))) not in seen:
            first.checks.append(check)


def not_shown(config: pytest.Config) -> tuple[int, int]:
    """How many checks the outputs leave out: (deselected by pytest, selected but never run)."""
    state = run_state(config)
    return len(state.deselected - state.ran), len(state.selected - state.ran - state.deselected)


def _gather(config: pytest.Config) -> tuple[list[AuditResult], dict[str, str], dict[str, str]]:
    """This process's results plus every worker's, one per spec (a spec split over workers ran on each)."""
    from ..results.record import loads

    state = run_state(config)
    results, errors, baselines = _local(config)
    errors.update(state.invalid_specs)
    for text in state.worker_records:
        run, found = loads(text, "a pytest-xdist worker's results")
        results.extend(found)
        for entry in run.get("errors", []):
            errors.setdefault(entry["spec_path"], entry["message"])
        baselines.update(run.get("baselines", {}))
        from ..results.relations import relations_in

        for outcome in relations_in(run, "a pytest-xdist worker's results"):
            state.relations.setdefault(outcome.file, outcome)
        selection = run.get("selection", {})
        state.selected.update(selection.get("selected", []))
        state.deselected.update(selection.get("deselected", []))
        state.ran.update(selection.get("ran", []))
    unique: dict[str, AuditResult] = {}
    for result in results:
        key = spec_key(result.spec_path)
        if key in unique:
            _merge(unique[key], result)
        else:
            unique[key] = result
    errors = {p: m for p, m in errors.items() if spec_key(p) not in unique}
    explained = {spec_key(p) for p in errors}
    for path, failure in state.failed_items.items():
        if spec_key(path) not in unique and spec_key(path) not in explained:  # no result came back: say what pytest saw
            lead = failure.splitlines()[-1].strip()  # xdist: "worker 'gw0' crashed while running '...'"
            errors[path] = f"{lead} (no audit result reached the report)\n{failure}"
    return list(unique.values()), errors, baselines


def _save_baselines(session: pytest.Session, outputs: Outputs, baselines: dict[str, str]) -> None:
    """``--audit-save-baseline``: never from an interrupted run; a baseline not saved fails the run."""
    from ..results.record import write_record

    if session.exitstatus == pytest.ExitCode.INTERRUPTED:
        outputs.notes.append("robustaudit: run interrupted, no baseline saved")
        return
    for result in outputs.results:
        target = baselines.get(spec_key(result.spec_path))
        if target is None:
            continue
        try:
            write_record([result], target, run_info={"purpose": "baseline"})
            outputs.notes.append(f"robustaudit: baseline saved to {target}")
        except OSError as error:
            outputs.problems.append(f"could not save the baseline {target} of {result.spec_path} "
                                    f"(key reference.baseline): {error}; point it at a writable path")
            if session.exitstatus == pytest.ExitCode.OK:
                session.exitstatus = pytest.ExitCode.TESTS_FAILED


def _error_entries(errors: dict[str, str]) -> list[dict[str, str]]:
    """The specs that could not run, as the record's ``errors`` list (and the workers' transfer)."""
    return [{"spec_path": p, "message": m} for p, m in errors.items()]


def _run_info(config: pytest.Config, errors: dict[str, str], exitstatus: int,
              relations: list | None = None) -> dict[str, Any]:
    from ..results.record import default_run_info

    info = default_run_info()
    deselected, not_run = not_shown(config)
    info.update({
        "pytest": pytest.__version__,
        "args": [str(a) for a in config.invocation_params.args],
        "invocation_dir": os.fspath(config.invocation_params.dir),
        "exit_status": int(exitstatus),
        "interrupted": int(exitstatus) == int(pytest.ExitCode.INTERRUPTED),
        "workers": len(run_state(config).worker_records),
        **({"shard": "{}/{}".format(*run_state(config).shard), "spec_set": run_state(config).spec_set}
           if run_state(config).shard else {}),
        **({"audit_limit": run_state(config).audit_limit} if run_state(config).audit_limit else {}),   # a smoke run
        "errors": _error_entries(errors),
        "inconclusive_policy": inconclusive_policy(config),   # merge decides the shards' checks with it
        "checks_deselected": deselected,   # left out of every output: deselected by -k, -m, --lf, node ids
        "checks_not_run": not_run,         # selected but never reached (-x, an interrupt)
        # the run-level relation checks (schema 5): judged here, or "deferred" under --audit-shard
        "relations": [outcome.to_dict() for outcome in relations or []],
    })
    return info


def _sections(config: pytest.Config, results: list[AuditResult], problems: list[str]) -> list[ReportSection]:
    from ..results import ReportSection

    sections: list[ReportSection] = []
    for returned in config.hook.pytest_robustaudit_report_sections(results=results):
        for item in returned or []:
            if isinstance(item, ReportSection):
                sections.append(item)
            else:
                problems.append(f"a pytest_robustaudit_report_sections hook returned {type(item).__name__}, "
                                f"not a ReportSection; it is left out of the report")
    return sections


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    if _is_worker(config):
        from ..results.record import dumps

        results, errors, baselines = _local(config)
        state = run_state(config)
        if results or errors or state.selected or state.deselected or state.relations:
            run = {"errors": _error_entries(errors), "baselines": baselines,
                   "relations": [outcome.to_dict() for outcome in state.relations.values()],
                   "selection": {"selected": sorted(state.selected), "deselected": sorted(state.deselected),
                                 "ran": sorted(state.ran)}}
            from ..atomic import escape_surrogates

            # exact, for the controller; non-UTF-8 file names escaped (execnet sends UTF-8)
            config.workeroutput[WORKER_KEY] = escape_surrogates(dumps(results, run, array_digits=None))
        return
    if config.getoption("collectonly", False):
        return  # --collect-only and `validate` only look: no report, record or summary
    results, errors, baselines = _gather(config)
    relations = list(run_state(config).relations.values())
    saving = config.getoption("audit_save_baseline", False)
    empty = _empty_shard(session)
    if not results and not errors and not relations and not saving and not empty:
        return
    outputs = Outputs(results, errors, notes=[empty] if empty else [], relations=relations)
    run_state(config).outputs = outputs
    if saving:
        _save_baselines(session, outputs, baselines)
    if not results and not errors and not relations and not empty:
        return
    run_info = _run_info(config, errors, session.exitstatus, relations)
    from .history import before_outputs, partial_reason

    before_outputs(config, results, run_info, outputs, _metrics(config),
                   partial_reason(session.exitstatus, *not_shown(config)))
    html_path, record_path = report_path(config), json_path(config)
    markdown_path = _path_option(config, "audit_markdown", None)
    csv_path = _path_option(config, "audit_csv", None)
    hooked = bool(config.hook.pytest_robustaudit_record_written.get_hookimpls())
    record = _RecordData(results, run_info)
    if record_path is not None:
        from ..results.record import write_record_data

        _write(outputs, "JSON record", record_path, lambda path: write_record_data(record.data(), path))
    if csv_path is not None:
        from ..results.csv_table import write_record_csv

        _write(outputs, "CSV table", csv_path, lambda path: write_record_csv(results, path, run_info, _metrics(config)))
    if html_path is not None:
        from ..report import render_report, write_report

        def html(path: Path) -> None:
            sections = _sections(config, results, outputs.problems)
            write_report(render_report(results, _metrics(config), run_info, sections=sections), path)

        _write(outputs, "report", html_path, html)
    if markdown_path is not None:
        from ..atomic import write_text_atomic
        from ..report.markdown import render_markdown

        from ..report.changes import changes_markdown

        page = render_markdown(results, errors, report_link(config, html_path), _metrics(config),
                               not_shown=not_shown(config), relations=relations) + changes_markdown(outputs.comparisons)
        _write(outputs, "Markdown summary", markdown_path, lambda path: write_text_atomic(path, page))
    if hooked:
        written = record_path if record_path is not None and ("JSON record", record_path) in outputs.written else None
        _record_written(config, record, written, outputs)


class _RecordData:
    """The run's record as plain data (:func:`~..results.record.record_to_dict`), made once for the file
    and the ``pytest_robustaudit_record_written`` hook."""

    def __init__(self, results: list, run_info: dict[str, Any]):
        self.results, self.run_info, self._data = results, run_info, None

    def data(self) -> dict[str, Any]:
        if self._data is None:
            from ..results.record import record_to_dict

            self._data = record_to_dict(self.results, self.run_info)
        return self._data


def _record_written(config: pytest.Config, record: _RecordData, path: Path | None, outputs: Outputs) -> None:
    """Call ``pytest_robustaudit_record_written`` (the controller only: workers returned before); a hook
    that raises is said at the end of the run and costs nothing else (the gate is the audit's verdict)."""
    from ..errors import describe_error

    try:
        config.hook.pytest_robustaudit_record_written(config=config, record=record.data(), path=path)
    except Exception as error:  # noqa: BLE001 - e.g. a tracker that cannot be reached
        outputs.problems.append(f"a pytest_robustaudit_record_written hook raised: {describe_error(error)} "
                                f"(the outputs are written; the exit status is the audit's)")


def _empty_shard(session: pytest.Session) -> str:
    """With ``--audit-shard K/N``, a shard the split gave no spec (N wider than the number of specs) is a
    success, not pytest's "no tests collected" (5): its record is written empty, so ``merge`` finds every
    shard of a CI matrix.  Returns the note said about it ("" for any other run; a run with no spec at
    all stays 5)."""
    state = run_state(session.config)
    if state.shard is None or state.shard_specs or not (state.spec_set or {}).get("specs"):
        return ""
    if session.exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED:
        session.exitstatus = pytest.ExitCode.OK
    index, count = state.shard
    return (f"robustaudit: shard {index}/{count} holds none of the {len(state.spec_set['specs'])} specs "
            f"(more shards than specs): its record is empty and merges with the others")


def report_link(config: pytest.Config, html_path: Path | None) -> str:
    """What the Markdown summary says about the HTML report: ``--audit-report-link`` (a URL, an
    artefact name, or ``none``), else the report's path relative to the invocation folder (an
    absolute local path means nothing on a CI job page)."""
    value = config.getoption("audit_report_link", None) or config.getini("audit_report_link") or ""
    if str(value).strip().lower() == "none" or (not value and html_path is None):
        return ""
    if value:
        return str(value)
    try:
        return os.path.relpath(html_path, config.invocation_params.dir)
    except ValueError:  # another drive (Windows)
        return html_path.name


def _metrics(config: pytest.Config) -> Any:
    """The run's metric registry (its declarations shape every output), or None when it is broken."""
    try:
        return run_state(config).registries.metrics
    except Exception:  # noqa: BLE001 - a metric registered twice, a registering hook that raises: already a
        return None    # collection error, listed in the report; the outputs must still be written


def _write(outputs: Outputs, what: str, path: Path, write: Callable[[Path], object]) -> None:
    """Render and write one output; a failure is reported at the end, never raised (atomic.write_output)."""
    from ..atomic import write_output

    write_output(what, path, write, outputs.written, outputs.problems)


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    outputs = run_state(config).outputs
    if outputs is None:
        return
    from ..atomic import escape_surrogates as escaped   # a non-UTF-8 file name is shown as pytest shows node ids
    from ..report.table import WIDTH, terminal_table

    if outputs.results or outputs.errors:
        terminalreporter.write_sep("=", "robustaudit summary")
        verbose = config.get_verbosity() > 0   # -v: intervals in the cells, and the table as wide as they make it
        for line in terminal_table(outputs.results, outputs.errors, _metrics(config),
                                   intervals=verbose, width=None if verbose else WIDTH):
            terminalreporter.write_line(escaped(line))
        deselected, not_run = not_shown(config)
        if deselected or not_run:
            from ..report.values import left_out

            terminalreporter.write_line(f"robustaudit: {left_out(deselected, not_run)}: left out of every output")
        from ..audit.notices import notices_of

        for result in outputs.results:   # random weights, a smoke run, a dropped check (audit/notices.py)
            for notice in notices_of(result):
                terminalreporter.write_line(escaped(f"robustaudit: notice: {result.name}: {notice}"), yellow=True)
    if outputs.relations:
        from ..report.table import relation_table

        if not (outputs.results or outputs.errors):
            terminalreporter.write_sep("=", "robustaudit summary")
        terminalreporter.write_line("")
        for line in relation_table(outputs.relations):
            terminalreporter.write_line(escaped(line), red=line.endswith(("FAIL", "ERROR", "INCONCLUSIVE")))
    if outputs.comparisons:
        from ..report.changes import change_lines

        terminalreporter.write_sep("-", "robustaudit: change from " + str(config.getoption("audit_compare")))
        for line in change_lines(outputs.comparisons, exploratory=config.get_verbosity() > 0):
            terminalreporter.write_line(escaped(line))
    for note in outputs.notes:
        terminalreporter.write_line(escaped(note))
    for what, path in outputs.written:
        terminalreporter.write_line(escaped(f"robustaudit: {what}: {path}"))
    for problem in outputs.problems:
        terminalreporter.write_line(escaped(f"robustaudit: {problem}"), yellow=True)
