"""Collection of YAML specs as files and checks as items.

Thin by design: parsing is ``spec/``, running is ``runner.py``, verdicts are ``checks.py``.
Collection follows pytest's "Working with non-python tests" example: ``AuditFile`` (one per
spec) → ``AuditLayer`` (one per layer) → ``AuditItem`` (one per check), so node ids read
``audits/x.yaml::representation::kurtosis_mean`` and ``-k``, ``--lf``, ``--junitxml`` just work.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from ..errors import AuditError, headline
from .state import SPEC_SUFFIXES, check_key, run_state

if TYPE_CHECKING:
    from ..spec.schema import AuditSpec, CheckSpec


def _is_audit_spec(config: pytest.Config, file_path: Path) -> bool:
    roots = run_state(config).audit_paths
    if file_path.suffix not in SPEC_SUFFIXES or roots is None:
        return False
    resolved = file_path.resolve()
    for root in roots:
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
        from ..spec import load_spec

        self.spec = load_spec(self.path, run_state(self.config).registries)
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
        state = run_state(self.config)
        state.ran.add(check_key(self.spec.path, self.check))  # the outputs show only checks that ran
        result = state.session.result(self.spec)
        outcome = result.check(self.check.metric, self.check.layer, self.check.params)
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
            first = run_state(self.config).errors_shown.setdefault(self.spec.path, self.nodeid)
            if first != self.nodeid:
                return f"{self.spec.name}: {headline(excinfo.value)}\n  (the full message is under {first})"
            return f"{self.spec.name}: {excinfo.value}"
        return super().repr_failure(excinfo, style)

    def reportinfo(self):
        line = self.check.where.line if self.check.where and self.check.where.line else 1
        return self.path, line - 1, f"{self.spec.name}::{self.check.layer}::{self.check.name}"


class CheckFailed(AssertionError):
    """A check's value is outside its bounds (the message is the whole explanation)."""
