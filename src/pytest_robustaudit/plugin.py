"""pytest glue: options, collection of YAML specs as files and checks as items.

Thin by design: parsing is ``spec.py``, running is ``runner.py``, verdicts are ``checks.py``.
Collection follows pytest's "Working with non-python tests" example: ``AuditFile`` (one per
spec) → ``AuditLayer`` (one per layer) → ``AuditItem`` (one per check), so node ids read
``audits/x.yaml::representation::kurtosis_mean`` and ``-k``, ``--lf``, ``--junitxml`` just work.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from . import hookspecs
from .errors import AuditError, headline
from .registries import Registries, collect
from .runner import AuditSession
from .specmodel import AuditSpec, CheckSpec

USE_INI = "<ini audit_paths>"
SPEC_SUFFIXES = (".yaml", ".yml")

audit_paths_key = pytest.StashKey[list]()
session_key = pytest.StashKey[AuditSession]()
registries_key = pytest.StashKey[Registries]()
errors_shown_key = pytest.StashKey[dict]()


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.add_hookspecs(hookspecs)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("robustaudit", "robustness audits of vision encoders (pytest-robustaudit)")
    group.addoption(
        "--audit", action="append", nargs="?", const=USE_INI, dest="audit_paths", metavar="PATH", default=None,
        help="collect the YAML audit specs in PATH (file or folder, searched recursively; repeatable). "
             "Without a PATH: the paths of the 'audit_paths' ini key.",
    )
    group.addoption("--audit-save-baseline", action="store_true", dest="audit_save_baseline",
                    help="write each audited spec's results to its 'reference: {baseline: PATH}' file after the run "
                         "(relative checks compare with the previous baseline if there is one, else are skipped).")
    group.addoption("--audit-device", dest="audit_device", default=None, metavar="DEVICE",
                    help="run every audit on DEVICE (auto, cpu, cuda, cuda:N, mps), overriding the specs' 'device'.")
    group.addoption("--audit-report", dest="audit_report", default=None, metavar="PATH",
                    help="write the HTML report of the audits to PATH (default with --audit: robustaudit-report.html "
                         "in the current folder; 'none' turns it off).")
    group.addoption("--no-audit-report", dest="audit_report", action="store_const", const="none",
                    help="do not write the HTML report.")
    group.addoption("--audit-markdown", dest="audit_markdown", default=None, metavar="PATH",
                    help="write a Markdown summary (table of audits, each failure) to PATH, e.g. $GITHUB_STEP_SUMMARY.")
    group.addoption("--audit-json", dest="audit_json", default=None, metavar="PATH",
                    help="write the audits' results as a versioned JSON record to PATH (schema: docs/report.md).")
    parser.addini("audit_paths", type="paths", default=[],
                  help="default spec paths for a bare '--audit' (relative to the ini file)")
    parser.addini("audit_device", default="", help="default for --audit-device")


def pytest_configure(config: pytest.Config) -> None:
    from . import builtin, fixtures

    config.pluginmanager.register(builtin, "robustaudit-builtin")
    config.pluginmanager.register(fixtures, "robustaudit-fixtures")
    from . import reporting_plugin
    config.pluginmanager.register(reporting_plugin, "robustaudit-reporting")
    config.pluginmanager.register(reporting_plugin.SpecReports(config), "robustaudit-spec-reports")
    config.addinivalue_line("markers", "xdist_group(name): audit items of one spec share a worker (pytest-xdist)")
    config.addinivalue_line("markers", "audit_spec(path): the audit spec whose results the audit_run fixture gives")
    requested = config.getoption("audit_paths")
    if not requested:
        return
    paths: list[Path] = []
    for entry in requested:
        if entry == USE_INI:
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
    paths = [p.resolve() for p in paths]
    config.stash[audit_paths_key] = paths
    if config.args_source != pytest.Config.ArgsSource.ARGS:
        config.args = [str(p) for p in paths]  # `pytest --audit audits/` runs the audits only


def registries(config: pytest.Config) -> Registries:
    """The registries, filled on first use so conftest.py files found during collection take part."""
    if registries_key not in config.stash:
        config.stash[registries_key] = collect(config.hook)
    return config.stash[registries_key]


def audit_session(config: pytest.Config) -> AuditSession:
    """The session's runner, created on first use (after conftest.py files had their say)."""
    if session_key not in config.stash:
        device = config.getoption("audit_device") or config.getini("audit_device") or None
        config.stash[session_key] = AuditSession(registries(config), device=device,
                                                 saving_baselines=config.getoption("audit_save_baseline"))
    return config.stash[session_key]


def _is_audit_spec(config: pytest.Config, file_path: Path) -> bool:
    if file_path.suffix not in SPEC_SUFFIXES or audit_paths_key not in config.stash:
        return False
    resolved = file_path.resolve()
    for root in config.stash[audit_paths_key]:
        if resolved == root or root in resolved.parents:
            return True
    explicit = {Path(config.invocation_params.dir, arg.split("::")[0]).resolve() for arg in config.args}
    return resolved in explicit


def pytest_collect_file(file_path: Path, parent: pytest.Collector):
    if _is_audit_spec(parent.config, file_path):
        return AuditFile.from_parent(parent, path=file_path)
    return None


class AuditFile(pytest.File):
    """One YAML spec: validated at collection, so a broken spec is a collection error, never skipped."""

    spec: AuditSpec

    def collect(self):
        from .spec import load_spec

        self.spec = load_spec(self.path, registries(self.config))
        for layer in self.spec.layers:
            checks = [c for c in self.spec.checks if c.layer == layer]
            if checks:
                yield AuditLayer.from_parent(self, name=layer, checks=checks)

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, AuditError):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style)


class AuditLayer(pytest.Collector):
    """The checks of one layer of one spec."""

    def __init__(self, *, checks: list[CheckSpec], **kwargs):
        super().__init__(**kwargs)
        self.checks = checks

    def collect(self):
        for check in self.checks:
            yield AuditItem.from_parent(self, name=check.name, check=check)


class AuditItem(pytest.Item):
    """One check: passes or fails with a few plain lines (metric, layer, value, bound, model, images)."""

    def __init__(self, *, check: CheckSpec, **kwargs):
        super().__init__(**kwargs)
        self.check = check
        self.spec: AuditSpec = self.parent.parent.spec
        self.add_marker(pytest.mark.xdist_group(name=str(self.spec.path)))

    def runtest(self) -> None:
        result = audit_session(self.config).result(self.spec)
        outcome = result.check(self.check.metric, self.check.layer)
        if outcome.skip_reason:
            pytest.skip(outcome.skip_reason)
        self.user_properties.append(("value", outcome.value))
        self.user_properties.append(("bounds", f"min={outcome.min} max={outcome.max}"))
        if not outcome.passed:
            raise CheckFailed(outcome.message)

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, CheckFailed):
            return f"{self.spec.name}: {excinfo.value}"
        if isinstance(excinfo.value, AuditError):
            # the audit could not run: every item of the spec fails with it; say it in full once
            shown = self.config.stash.setdefault(errors_shown_key, {})
            first = shown.setdefault(self.spec.path, self.nodeid)
            if first != self.nodeid:
                return f"{self.spec.name}: {headline(excinfo.value)}\n  (the full message is under {first})"
            return f"{self.spec.name}: {excinfo.value}"
        return super().repr_failure(excinfo, style)

    def reportinfo(self):
        line = self.check.where.line if self.check.where and self.check.where.line else 1
        return self.path, line - 1, f"{self.spec.name}::{self.check.layer}::{self.check.metric}"


class CheckFailed(AssertionError):
    """A check's value is outside its bounds (the message is the whole explanation)."""
