"""pytest glue for the outputs of a run: the HTML report, the JSON record and the terminal table.

Registered by ``plugin.pytest_configure``.  The work is in ``report.py``, ``record.py`` and
``summary.py``; here we only decide what to write where:

* ``--audit-markdown PATH``: a Markdown summary for CI job pages (``markdown.py``).
* ``--audit-report PATH`` (default ``robustaudit-report.html`` in the invocation folder when
  ``--audit`` is given; ``--no-audit-report`` or ``--audit-report=none`` turn it off) and
  ``--audit-json PATH`` (off by default).  Nothing is written when no audit ran.
* ``--audit-save-baseline``: each audited spec's result goes to its ``reference: {baseline: PATH}``
  file; an interrupted run saves none, and one that cannot be written fails the run.
* Under pytest-xdist each worker puts its results, serialised exactly, and its specs' baseline
  paths into ``workeroutput`` at the end of its session; the controller collects them in
  ``pytest_testnodedown`` and is the only process that writes files, so the report holds every
  worker's results and every baseline is said in the controller's terminal.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pytest

from .errors import AuditError
from .results import AuditResult, ReportSection

DEFAULT_REPORT = "robustaudit-report.html"
OFF = ("none", "")
WORKER_KEY = "robustaudit_record"

worker_records_key = pytest.StashKey[list]()
invalid_specs_key = pytest.StashKey[dict]()
failed_items_key = pytest.StashKey[dict]()
outputs_key = pytest.StashKey["Outputs"]()


@dataclass
class Outputs:
    """What this run audited and wrote (for the terminal summary)."""

    results: list[AuditResult]
    errors: dict[str, str]
    written: list[tuple[str, Path]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


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
    from .plugin import audit_paths_key

    return _path_option(config, "audit_report", DEFAULT_REPORT if audit_paths_key in config.stash else None)


def json_path(config: pytest.Config) -> Path | None:
    return _path_option(config, "audit_json", None)


def _key(spec_path: Any) -> str:
    return os.fspath(Path(spec_path).resolve())


def _local(config: pytest.Config) -> tuple[list[AuditResult], dict[str, str], dict[str, str]]:
    """This process's results, errors (spec path → message) and baseline files (spec path → file)."""
    from .plugin import session_key

    if session_key not in config.stash:
        return [], {}, {}
    audits = config.stash[session_key]
    results = audits.results()
    baselines = {}
    for result in results:
        reference = audits.spec(result.spec_path).reference
        if reference is not None and reference.baseline is not None:
            baselines[_key(result.spec_path)] = os.fspath(reference.baseline)
    return results, {os.fspath(p): m for p, m in audits.errors().items()}, baselines


class SpecReports:
    """Watches pytest's own reports on spec files, for audits whose outcome would otherwise be lost:

    * a spec that failed validation (a collection error);
    * a spec whose items failed without any audit result or error reaching this process: a
      pytest-xdist worker killed mid-extraction (out of memory, a segfault) sends nothing, and xdist
      reports its running item as crashed.

    Both are listed by the report and summary with the audits that could not run.  Under
    pytest-xdist the workers' reports reach the controller through these same hooks.  (A class,
    because these hooks get no config.)
    """

    def __init__(self, config: pytest.Config):
        self.config = config

    def _spec_path(self, nodeid: str) -> str | None:
        from .plugin import SPEC_SUFFIXES

        file_part = nodeid.split("::", 1)[0]
        return os.fspath(self.config.rootpath / file_part) if Path(file_part).suffix in SPEC_SUFFIXES else None

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        path = self._spec_path(report.nodeid) if report.failed else None
        if path is not None:
            self.config.stash.setdefault(invalid_specs_key, {}).setdefault(path, report.longreprtext)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        path = self._spec_path(report.nodeid) if report.failed else None
        if path is not None:
            self.config.stash.setdefault(failed_items_key, {}).setdefault(
                path, report.longreprtext.strip() or f"{report.nodeid} failed")


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error) -> None:
    """pytest-xdist (controller): keep the results a finished worker sent."""
    text = getattr(node, "workeroutput", {}).get(WORKER_KEY)
    if text:
        node.config.stash.setdefault(worker_records_key, []).append(text)


def _gather(config: pytest.Config) -> tuple[list[AuditResult], dict[str, str], dict[str, str]]:
    """This process's results plus every worker's, one per spec (a spec split over workers ran on each)."""
    from .record import loads

    results, errors, baselines = _local(config)
    errors.update(config.stash.get(invalid_specs_key, {}))
    for text in config.stash.get(worker_records_key, []):
        run, found = loads(text, "a pytest-xdist worker's results")
        results.extend(found)
        for entry in run.get("errors", []):
            errors.setdefault(entry["spec_path"], entry["message"])
        baselines.update(run.get("baselines", {}))
    unique: dict[str, AuditResult] = {}
    for result in results:
        unique.setdefault(_key(result.spec_path), result)
    errors = {p: m for p, m in errors.items() if _key(p) not in unique}
    explained = {_key(p) for p in errors}
    for path, failure in config.stash.get(failed_items_key, {}).items():
        if _key(path) not in unique and _key(path) not in explained:  # no result came back: say what pytest saw
            lead = failure.splitlines()[-1].strip()  # xdist: "worker 'gw0' crashed while running '...'"
            errors[path] = f"{lead} (no audit result reached the report)\n{failure}"
    return list(unique.values()), errors, baselines


def _save_baselines(session: pytest.Session, outputs: Outputs, baselines: dict[str, str]) -> None:
    """``--audit-save-baseline``: never from an interrupted run; a baseline not saved fails the run."""
    from .record import write_record

    if session.exitstatus == pytest.ExitCode.INTERRUPTED:
        outputs.notes.append("robustaudit: run interrupted, no baseline saved")
        return
    for result in outputs.results:
        target = baselines.get(_key(result.spec_path))
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


def _run_info(config: pytest.Config, errors: dict[str, str], exitstatus: int) -> dict[str, Any]:
    from .record import default_run_info

    info = default_run_info()
    info.update({
        "pytest": pytest.__version__,
        "args": [str(a) for a in config.invocation_params.args],
        "invocation_dir": os.fspath(config.invocation_params.dir),
        "exit_status": int(exitstatus),
        "interrupted": int(exitstatus) == int(pytest.ExitCode.INTERRUPTED),
        "workers": len(config.stash.get(worker_records_key, [])),
        "errors": _error_entries(errors),
    })
    return info


def _sections(config: pytest.Config, results: list[AuditResult], problems: list[str]) -> list[ReportSection]:
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
        from .record import dumps

        results, errors, baselines = _local(config)
        if results or errors:
            run = {"errors": _error_entries(errors), "baselines": baselines}
            config.workeroutput[WORKER_KEY] = dumps(results, run, array_digits=None)  # exact, for the controller
        return
    results, errors, baselines = _gather(config)
    saving = config.getoption("audit_save_baseline", False)
    if not results and not errors and not saving:
        return
    outputs = Outputs(results, errors)
    config.stash[outputs_key] = outputs
    if saving:
        _save_baselines(session, outputs, baselines)
    if not results and not errors:
        return
    html_path, record_path = report_path(config), json_path(config)
    markdown_path = _path_option(config, "audit_markdown", None)
    if html_path is None and record_path is None and markdown_path is None:
        return
    run_info = _run_info(config, errors, session.exitstatus)
    if record_path is not None:
        from .record import write_record

        _write(outputs, "JSON record", record_path, lambda path: write_record(results, path, run_info))
    if html_path is not None:
        from .plugin import registries
        from .report import render_report, write_report

        try:
            metrics = registries(config).metrics
        except AuditError:  # e.g. a metric registered twice: already a collection error, listed in the report
            metrics = None
        sections = _sections(config, results, outputs.problems)
        page = render_report(results, metrics, run_info, sections=sections)
        _write(outputs, "report", html_path, lambda path: write_report(page, path))
    if markdown_path is not None:
        from .atomic import write_text_atomic
        from .markdown import render_markdown

        page = render_markdown(results, errors, html_path)
        _write(outputs, "Markdown summary", markdown_path, lambda path: write_text_atomic(path, page))


def _write(outputs: Outputs, what: str, path: Path, write: Callable[[Path], object]) -> None:
    """Write one output; a path that cannot be written is reported at the end, never raised."""
    try:
        write(path)
        outputs.written.append((what, path))
    except OSError as error:
        outputs.problems.append(f"could not write the {what} to {path}: {error}")


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    outputs = config.stash.get(outputs_key, None)
    if outputs is None:
        return
    from .summary import terminal_table

    if outputs.results or outputs.errors:
        terminalreporter.write_sep("=", "robustaudit summary")
        for line in terminal_table(outputs.results, outputs.errors):
            terminalreporter.write_line(line)
    for note in outputs.notes:
        terminalreporter.write_line(note)
    for what, path in outputs.written:
        terminalreporter.write_line(f"robustaudit: {what}: {path}")
    for problem in outputs.problems:
        terminalreporter.write_line(f"robustaudit: {problem}", yellow=True)
