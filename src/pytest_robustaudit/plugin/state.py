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
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from ..registries import Registries
    from ..audit.runner import AuditSession

SPEC_SUFFIXES = (".yaml", ".yml")
#: the user property that marks a run-level relation check's report (its failure is a verdict on the
#: run's audits, not an audit that could not run: it never goes to ``failed_items``)
RELATION_PROPERTY = "robustaudit_relation"


@dataclass
class Outputs:
    """What this run audited and wrote (for the terminal summary)."""

    results: list
    errors: dict[str, str]
    written: list[tuple[str, Path]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    #: ``--audit-compare``: each audit's changes from the reference (analyse.compare.AuditComparison)
    comparisons: list = field(default_factory=list)
    #: the run-level relation checks' outcomes (results/relations.py)
    relations: list = field(default_factory=list)


class RunState:
    """The run's audit state (one per pytest run; see the module docstring)."""

    def __init__(self, config: pytest.Config):
        self.config = config
        #: resolved ``--audit`` roots; None when the run was not asked to audit
        self.audit_paths: list[Path] | None = None
        self._registries: Registries | None = None
        self._session: AuditSession | None = None
        self._architectures: Any = None
        #: when collection builds a model's architecture: "new" (a model this store never built) or
        #: "always" (``validate``); whether it may call a user's factory (``validate --factories``)
        self.architecture_build = "new"
        #: ``--audit-limit N`` (None: a full run)
        self.audit_limit: int | None = None
        self.call_factories = False
        #: spec path → pytest's text, for specs that failed collection (validation)
        self.invalid_specs: dict[str, str] = {}
        #: spec path → the first failure pytest reported for one of its items
        self.failed_items: dict[str, str] = {}
        #: resolved spec path → every audit spec collected in this process, in collection order: what a
        #: run-level relation check relates (collect.RelationItem)
        self.audit_specs: dict[str, Any] = {}
        #: relation file (its path relative to the rootdir) → its RelationOutcome (results/relations.py), from
        #: the relation items of this process and, in the controller, of every pytest-xdist worker
        self.relations: dict[str, Any] = {}
        #: exact records that pytest-xdist workers sent the controller
        self.worker_records: list[str] = []
        #: spec path → node id of the item that showed an audit's error in full
        self.errors_shown: dict[Path, str] = {}
        self.outputs: Outputs | None = None
        #: ``--audit-shard K/N`` as (K, N), and the specs of this shard
        self.shard: tuple[int, int] | None = None
        self.shard_specs: set[Path] | None = None
        #: with --audit-shard: every spec of the split and its content hash (the record's run.spec_set)
        self.spec_set: dict[str, Any] | None = None
        #: spec path (spec_key) → sha256 of the spec file's bytes as collected (the record's spec_sha256)
        self.spec_digests: dict[str, str] = {}
        #: when this run started (a pytest-xdist worker gets the controller's): ``--audit-cache
        #: refresh`` recomputes entries created before it, so workers refresh once, not once each
        workerinput = getattr(config, "workerinput", None)
        self.started: float = float(workerinput["robustaudit_started"]) if workerinput and \
            "robustaudit_started" in workerinput else time.time()
        self._probe: tuple[set[str], set[str]] | None = None
        #: pytest's selection, as check keys (:func:`check_key`): the checks collected and kept,
        #: those deselected (-k, -m, --lf, node ids), and those whose item actually ran.  Outputs
        #: show only the checks that ran (a check never reached after -x is absent, not a verdict).
        self.selected: set[str] = set()
        self.deselected: set[str] = set()
        self.ran: set[str] = set()
        #: the run's label (found on first use) and release history (set by ``pytest_configure``; None without
        #: ``--audit-history``): plugin/history.py
        self.label: str | None = None
        self.history: Any = None

    def limited(self, spec: Any) -> Any:
        """``spec`` as this run audits it: a smoke run's (``--audit-limit``) limits applied."""
        if self.audit_limit is None or not hasattr(spec, "data"):
            return spec
        from ..spec.smoke import with_limit

        return with_limit(spec, self.audit_limit)

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
    def architectures(self) -> Any:
        """What collection knows of each spec's model (``models/architecture.py``): read from the store,
        built on the meta device only for a model this store has never built (a warm run builds none)."""
        if self._architectures is None:
            from ..models.architecture import Architectures

            options = store_options(self.config)
            self._architectures = Architectures(self.registries.sources, options.root if options.mode != "off" else None,
                                                build=self.architecture_build, factories=self.call_factories)
        return self._architectures

    @property
    def session(self) -> AuditSession:
        """The session's runner, created on first use (after conftest.py files had their say)."""
        if self._session is None:
            from ..measure.devices import worker_index
            from ..audit.runner import AuditSession
            from .progress import TerminalProgress

            config = self.config
            device = config.getoption("audit_device") or config.getini("audit_device") or None
            workerid = getattr(config, "workerinput", {}).get("workerid")
            from ..measure.context import RunSettings

            settings = RunSettings(device, TerminalProgress(config), interval_settings(config))
            self._session = AuditSession(self.registries, settings, store=store_options(config),
                                         saving_baselines=config.getoption("audit_save_baseline"),
                                         worker=worker_index(workerid), history=self.history)
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

    def pytest_deselected(self, items: list[pytest.Item]) -> None:
        self.deselected.update(k for k in map(item_check_key, items) if k)

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.selected.update(k for k in map(item_check_key, session.items) if k)

    @pytest.hookimpl(tryfirst=True)   # before the terminal reporter writes the report's letter
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        from .progress import resume_dot_line

        resume_dot_line(self.config, report.nodeid)   # a progress line ended the letters' line: its prefix again
        path = self.spec_path_of(report.nodeid) if report.failed else None
        if path is not None and not any(key == RELATION_PROPERTY for key, _ in report.user_properties):
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


#: environment variable naming the store folder (below --audit-cache-dir and the ini key)
CACHE_DIR_ENV = "ROBUSTAUDIT_CACHE_DIR"


def user_cache_dir() -> Path:
    """The store's home when pytest's cache is disabled (``-p no:cacheprovider``): the user's cache
    folder (``$XDG_CACHE_HOME`` or ``~/.cache``; ``%LOCALAPPDATA%`` on Windows)."""
    if os.name == "nt" and os.environ.get("LOCALAPPDATA"):
        base = Path(os.environ["LOCALAPPDATA"])
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "pytest-robustaudit" / "store"


def store_dir(config: pytest.Config) -> Path:
    """The store folder: --audit-cache-dir, ini audit_cache_dir, $ROBUSTAUDIT_CACHE_DIR, pytest's cache
    dir (``.pytest_cache/d/robustaudit-store``), or the user cache dir without pytest's cache."""
    from ..store import STORE_CACHE_NAME

    option = config.getoption("audit_cache_dir", None)
    if option:
        return Path(config.invocation_params.dir, os.path.expanduser(option))
    ini = config.getini("audit_cache_dir")
    if ini:
        return Path(config.rootpath, os.path.expanduser(str(ini)))
    env = os.environ.get(CACHE_DIR_ENV)
    if env:
        return Path(os.path.expanduser(env)).absolute()
    cache = getattr(config, "cache", None)
    if cache is not None:
        try:
            return Path(cache.mkdir(STORE_CACHE_NAME))
        except OSError:   # a read-only checkout: the run falls back to a private store and says so (StoreOptions)
            return Path(getattr(cache, "_cachedir", config.rootpath / ".pytest_cache"), "d", STORE_CACHE_NAME)
    return user_cache_dir()


def store_options(config: pytest.Config):
    """The run's :class:`~pytest_robustaudit.measure.activations.StoreOptions` from the options above."""
    from ..measure.activations import StoreOptions

    mode = config.getoption("audit_cache", "on") or "on"
    if mode == "off":
        return StoreOptions(mode="off")
    return StoreOptions(root=store_dir(config), mode=mode,
                        refresh_before=run_state(config).started if mode == "refresh" else None)


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


def audit_limit_option(config: pytest.Config) -> int | None:
    """``--audit-limit N`` read and checked: a whole number of at least 1, never with ``--audit-save-baseline``
    (a smoke run's numbers must not become the reference of later runs)."""
    value = config.getoption("audit_limit", None)
    if value is None:
        return None
    try:
        limit = int(str(value).strip())
    except ValueError:
        limit = 0
    if limit < 1:
        raise pytest.UsageError(f"--audit-limit {value!r} is not a whole number of images; e.g. --audit-limit 20")
    if config.getoption("audit_save_baseline", False):
        raise pytest.UsageError("--audit-limit makes a smoke run, whose numbers must not become a baseline; "
                                "drop --audit-limit to save baselines")
    return limit


def check_device_option(value: str | None, where: str) -> None:
    """A typo in ``--audit-device`` (or the ini key) is a usage error now, not N failed checks later."""
    if not value:
        return
    from ..measure.extract import DEVICE_HELP, DEVICE_PATTERN

    if not DEVICE_PATTERN.match(value):
        raise pytest.UsageError(f"{where} {value!r} is not a device; {DEVICE_HELP}")


def spec_key(spec_path: Any) -> str:
    """One spelling of a spec's path for matching results, errors and baselines across processes."""
    return os.path.realpath(spec_path)   # never raises: a spec path may be a symlink loop


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


#: the most of pytest's failure text the record and report keep for an audit with no result
FAILURE_TEXT_LIMIT = 2000


def _kept(text: str) -> str:
    """The end of ``text`` (where the error is), at most :data:`FAILURE_TEXT_LIMIT` characters: a
    traceback of 50-150 KB must not become the record."""
    if len(text) <= FAILURE_TEXT_LIMIT:
        return text
    return "...\n" + text[-FAILURE_TEXT_LIMIT:].split("\n", 1)[-1]

def check_interval_settings(config: pytest.Config) -> None:
    """:func:`interval_settings` checked when the run starts: a bad ini key is a usage error."""
    from ..errors import AuditError

    try:
        interval_settings(config)
    except AuditError as error:
        raise pytest.UsageError(str(error)) from None


def interval_settings(config: pytest.Config) -> "IntervalSettings":
    """The ini keys ``audit_confidence``, ``audit_resamples`` and ``audit_bootstrap_method``
    (docs/intervals.md), checked."""
    from ..errors import AuditError
    from ..spec.load import BOOTSTRAP_METHODS
    from ..analyse.intervals import IntervalSettings

    confidence, resamples = config.getini("audit_confidence").strip(), config.getini("audit_resamples").strip()
    try:
        level = float(confidence) if confidence else None
        count = int(resamples) if resamples else None
    except ValueError:
        raise AuditError(f"ini key audit_confidence {confidence!r} / audit_resamples {resamples!r} is not a number",
                         fix="e.g. audit_confidence = 0.95, audit_resamples = 1000") from None
    if level is not None and not 0.5 < level < 1:
        raise AuditError(f"ini key audit_confidence must lie strictly between 0.5 and 1, got {confidence}",
                         fix="e.g. audit_confidence = 0.95")
    if count is not None and count < 50:
        raise AuditError(f"ini key audit_resamples must be at least 50, got {resamples}", fix="e.g. audit_resamples = 1000")
    from ..metrics.bootstrap import MAX_RESAMPLES

    if count is not None and count > MAX_RESAMPLES:
        raise AuditError(f"ini key audit_resamples must be at most {MAX_RESAMPLES}, got {resamples}",
                         fix="e.g. audit_resamples = 1000 (docs/intervals.md#limits)")
    method = config.getini("audit_bootstrap_method").strip() or "auto"
    if method not in BOOTSTRAP_METHODS:
        raise AuditError(f"ini key audit_bootstrap_method {method!r} is not a method",
                         fix=f"use one of {', '.join(BOOTSTRAP_METHODS)} (docs/intervals.md)")
    return IntervalSettings(confidence=level, method=method, inconclusive_policy=inconclusive_policy(config),
                            **({"resamples": count} if count else {}))


def inconclusive_policy(config: pytest.Config) -> str:
    """``--audit-inconclusive``, else the ini key ``audit_inconclusive``, else "fail" (checked)."""
    from ..errors import AuditError
    from ..results import INCONCLUSIVE_POLICIES

    given = config.getoption("audit_inconclusive", None)
    if given:
        return given
    ini = config.getini("audit_inconclusive").strip()
    if ini and ini not in INCONCLUSIVE_POLICIES:
        raise AuditError(f"ini key audit_inconclusive {ini!r} is not a policy",
                         fix=f"use one of {', '.join(INCONCLUSIVE_POLICIES)} (docs/intervals.md)")
    return ini or "fail"
