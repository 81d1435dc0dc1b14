"""The pytest side of ``validate`` and ``list`` (``cli/``): pytest's own collection of specs, its terminal off.

Collection is how a conftest.py's metrics and model sources take part, exactly as in a run; what it
found is handed back as data (:class:`Collected`) and ``cli/`` says it in its own words.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

SPEC_SUFFIXES = (".yaml", ".yml")
USAGE_ERROR = int(pytest.ExitCode.USAGE_ERROR)
#: pytest's output is ours to give: its terminal is off; its assert-rewrite warning about this package is noise
_QUIET = ["-p", "no:cacheprovider", "-p", "no:terminal", "-W", "ignore::pytest.PytestAssertRewriteWarning"]


@dataclass
class Collected:
    """What collection found: spec files that failed (node id -> pytest's text: our located problems), the
    valid ones, the specs by resolved path, the run's config (None when pytest could not start)."""

    code: int = 0
    failed: dict[str, str] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)
    specs: dict[str, Any] = field(default_factory=dict)
    config: Any = None
    #: models whose architecture could not be built (label -> why): their layers were not checked
    unknown: dict[str, str] = field(default_factory=dict)


class _Collector:
    """Records what pytest's collection found (see :class:`Collected`)."""

    def __init__(self, factories: bool):
        self.factories = factories
        self.found = Collected()

    @pytest.hookimpl(trylast=True)
    def pytest_configure(self, config: pytest.Config) -> None:
        from .state import run_state

        self.found.config = config
        state = run_state(config)
        state.architecture_build = "always"      # validate knows every model it can build
        state.call_factories = self.factories

    @pytest.hookimpl(wrapper=True)
    def pytest_make_collect_report(self, collector: pytest.Collector):
        report = yield
        path = getattr(collector, "path", None)
        if isinstance(collector, pytest.File) and path is not None and path.suffix in SPEC_SUFFIXES:
            from ..errors import display_path

            shown = display_path(path)   # a node id is empty for a file outside the rootdir: say its path
            if report.failed:
                self.found.failed[shown] = report.longreprtext.strip()
            elif shown not in self.found.files:
                self.found.files.append(shown)
        return report

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        from .state import run_state

        state = run_state(session.config)
        self.found.specs = dict(state.audit_specs)
        if state._architectures is not None:
            self.found.unknown = dict(state._architectures.unknown)


def collect_specs(paths: list[str], factories: bool = False, cache_dir: Any = None) -> Collected:
    """Collect (never run) the specs under ``paths``; ``factories``: call the specs' factories to know
    their layers; ``cache_dir``: the store whose cached architectures to read and fill."""
    collector = _Collector(factories)
    argv = ["--collect-only", "--continue-on-collection-errors", *_QUIET]
    if cache_dir is not None:
        argv += ["--audit-cache-dir", os.fspath(cache_dir)]
    for path in paths:
        argv += ["--audit", path]
    collector.found.code = int(pytest.main(argv, plugins=[collector]))
    return collector.found


def registries_here() -> Any:
    """The registries a run in this folder would have: built-ins, installed plugins and the conftest.py here
    (pytest starts and loads them; its collection is skipped)."""
    from .state import run_state

    found: list[Any] = []

    class Grab:
        @pytest.hookimpl(tryfirst=True)
        def pytest_collection(self, session: pytest.Session) -> bool:
            found.append(run_state(session.config).registries)
            session.items = []
            return True   # nothing to collect: only the registries were wanted

    pytest.main([*_QUIET, str(Path.cwd())], plugins=[Grab()])
    if found:
        return found[0]
    from ..registries import standalone

    return standalone()
