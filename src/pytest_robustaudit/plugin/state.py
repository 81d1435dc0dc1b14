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
        #: ``--audit-shard K/N`` as (K, N), and the specs of this shard
        self.shard: tuple[int, int] | None = None
        self.shard_specs: set[Path] | None = None
        self._probe: tuple[set[str], set[str]] | None = None

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
            from ..devices import worker_index

            workerid = getattr(config, "workerinput", {}).get("workerid")
            self._session = AuditSession(self.registries, device=device,
                                         saving_baselines=config.getoption("audit_save_baseline"),
                                         worker=worker_index(workerid))
        return self._session

    def probe_folders(self) -> tuple[set[str], set[str]]:
        """The probe-data folders named by the specs under the audit paths, and the folders holding
        specs (``walk.probe_folders``), found once per run."""
        if self._probe is None:
            from .walk import probe_folders

            self._probe = probe_folders(self.audit_paths or [])
        return self._probe

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

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        path = self.spec_path_of(report.nodeid) if report.failed else None
        if path is not None:
            self.failed_items.setdefault(path, _kept(report.longreprtext.strip()) or f"{report.nodeid} failed")


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
            if path.is_symlink():
                raise pytest.UsageError(f"--audit {path}: a symbolic link that leads nowhere (a loop, or its target "
                                        f"is missing); give the real path")
            raise pytest.UsageError(f"--audit {path}: no such file or folder")
    return [p.resolve() for p in paths]


def uncovered_roots(config: pytest.Config, roots: list[Path]) -> list[Path]:
    """The audit roots that no positional argument already selects in or above (or below: a node id
    or a file inside a root selects as pytest selects, so that root is not added whole)."""
    args = []
    for arg in config.args:
        try:
            args.append(Path(config.invocation_params.dir, arg.split("::")[0]).resolve())
        except (OSError, RuntimeError, ValueError):
            continue
    return [r for r in roots if not any(a == r or a in r.parents or r in a.parents for a in args)]


def check_device_option(value: str | None, where: str) -> None:
    """A typo in ``--audit-device`` (or the ini key) is a usage error now, not N failed checks later."""
    if not value:
        return
    from ..extract import DEVICE_HELP, DEVICE_PATTERN

    if not DEVICE_PATTERN.match(value):
        raise pytest.UsageError(f"{where} {value!r} is not a device; {DEVICE_HELP}")


def spec_key(spec_path: Any) -> str:
    """One spelling of a spec's path for matching results, errors and baselines across processes."""
    return os.path.realpath(spec_path)   # never raises: a spec path may be a symlink loop


#: the most of pytest's failure text the record and report keep for an audit with no result
FAILURE_TEXT_LIMIT = 2000


def _kept(text: str) -> str:
    """The end of ``text`` (where the error is), at most :data:`FAILURE_TEXT_LIMIT` characters: a
    traceback of 50-150 KB must not become the record."""
    if len(text) <= FAILURE_TEXT_LIMIT:
        return text
    return "...\n" + text[-FAILURE_TEXT_LIMIT:].split("\n", 1)[-1]
