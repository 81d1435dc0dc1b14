"""The one object that owns a pytest run's audit state, under one StashKey.

Everything the glue modules share lives here, created in ``pytest_configure`` and reachable from
any hook or fixture through :func:`run_state`: the spec roots given to ``--audit``, the registries
(filled on first use, so conftest.py files found during collection take part), the audit session,
what pytest reported about spec files, what pytest-xdist workers sent, and the outputs written at
the end.  Heavy modules are imported only when a field is first used, so loading the plugin in a
pytest run without ``--audit`` costs nothing measurable.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from ..registries import Registries
    from ..runner import AuditSession

SPEC_SUFFIXES = (".yaml", ".yml")


@dataclass
class Outputs:
    """What this run audited and wrote (for the terminal summary)."""

    results: list
    errors: dict[str, str]
    written: list[tuple[str, Path]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


class RunState:
    """The run's audit state (one per pytest run; see the module docstring)."""

    def __init__(self, config: pytest.Config):
        self.config = config
        #: resolved ``--audit`` roots; None when the run was not asked to audit
        self.audit_paths: list[Path] | None = None
        self._registries: Registries | None = None
        self._session: AuditSession | None = None
        #: spec path → pytest's text, for specs that failed collection (validation)
        self.invalid_specs: dict[str, str] = {}
        #: spec path → the first failure pytest reported for one of its items
        self.failed_items: dict[str, str] = {}
        #: exact records that pytest-xdist workers sent the controller
        self.worker_records: list[str] = []
        #: spec path → node id of the item that showed an audit's error in full
        self.errors_shown: dict[Path, str] = {}
        self.outputs: Outputs | None = None
        #: pytest's selection, as check keys (:func:`check_key`): the checks collected and kept,
        #: those deselected (-k, -m, --lf, node ids), and those whose item actually ran.  Outputs
        #: show only the checks that ran (a check never reached after -x is absent, not a verdict).
        self.selected: set[str] = set()
        self.deselected: set[str] = set()
        self.ran: set[str] = set()

    @property
    def auditing(self) -> bool:
        return self.audit_paths is not None

    @property
    def registries(self) -> Registries:
        """The registries, filled on first use so conftest.py files found during collection take part."""
        if self._registries is None:
            from ..registries import collect

            self._registries = collect(self.config.hook)
        return self._registries

    @property
    def session(self) -> AuditSession:
        """The session's runner, created on first use (after conftest.py files had their say)."""
        if self._session is None:
            from ..runner import AuditSession

            config = self.config
            device = config.getoption("audit_device") or config.getini("audit_device") or None
            self._session = AuditSession(self.registries, device=device,
                                         saving_baselines=config.getoption("audit_save_baseline"))
        return self._session

    @property
    def has_session(self) -> bool:
        return self._session is not None

    def spec_path_of(self, nodeid: str) -> str | None:
        """The spec file a node id belongs to, or None when it is not a spec's node."""
        file_part = nodeid.split("::", 1)[0]
        return os.fspath(self.config.rootpath / file_part) if Path(file_part).suffix in SPEC_SUFFIXES else None

    # pytest's reports on spec files, for audits whose outcome would otherwise be lost:
    # a spec that failed validation, and a spec whose items failed with no result reaching this
    # process (a pytest-xdist worker killed mid-extraction sends nothing).  Under pytest-xdist the
    # workers' reports reach the controller through these same hooks.
    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        path = self.spec_path_of(report.nodeid) if report.failed else None
        if path is not None:
            self.invalid_specs.setdefault(path, report.longreprtext)

    def pytest_deselected(self, items: list[pytest.Item]) -> None:
        self.deselected.update(k for k in map(item_check_key, items) if k)

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.selected.update(k for k in map(item_check_key, session.items) if k)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        path = self.spec_path_of(report.nodeid) if report.failed else None
        if path is not None:
            self.failed_items.setdefault(path, report.longreprtext.strip() or f"{report.nodeid} failed")


run_key = pytest.StashKey[RunState]()


def run_state(config: pytest.Config) -> RunState:
    """The run's :class:`RunState` (created by ``pytest_configure``; created here if a test calls
    before that, e.g. a fixture in a run where the plugin was registered late)."""
    if run_key not in config.stash:
        config.stash[run_key] = RunState(config)
    return config.stash[run_key]


def resolve_audit_paths(config: pytest.Config, requested: list[str], use_ini: str) -> list[Path]:
    """``--audit`` values → absolute paths (a bare ``--audit`` takes the ini key); usage errors say why."""
    paths: list[Path] = []
    for entry in requested:
        if entry == use_ini:
            ini_paths = config.getini("audit_paths")
            if not ini_paths:
                raise pytest.UsageError("--audit was given without a PATH and the ini key 'audit_paths' is not set; "
                                        "use --audit audits/ or set audit_paths in pytest.ini/pyproject.toml")
            paths.extend(Path(p) for p in ini_paths)
        else:
            paths.append(Path(config.invocation_params.dir, entry))
    for path in paths:
        if not path.exists():
            raise pytest.UsageError(f"--audit {path}: no such file or folder")
    return [p.resolve() for p in paths]


def spec_key(spec_path: Any) -> str:
    """One spelling of a spec's path for matching results, errors and baselines across processes."""
    return os.fspath(Path(spec_path).resolve())


def check_key(spec_path: Any, check: Any) -> str:
    """One spelling of a check (a :class:`~..spec.schema.CheckSpec`) of a spec, the same in every
    process: the spec's resolved path, the layer and the item's name (``outlier_count[factor=100]``)."""
    return f"{spec_key(spec_path)}::{check.layer}::{check.name}"


def item_check_key(item: Any) -> str | None:
    """The :func:`check_key` of an audit item, None for any other item."""
    check, spec = getattr(item, "check", None), getattr(item, "spec", None)
    if check is None or spec is None or not hasattr(check, "layer"):
        return None
    return check_key(spec.path, check)
