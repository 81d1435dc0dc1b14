"""Fixtures for writing your own audit assertions in ordinary test functions.

``audit(spec)`` runs (once per session) a spec file or an inline spec and returns an
:class:`AuditRun`; ``audit_run`` does the same for the spec named by the test's
``@pytest.mark.audit_spec(path)`` marker.  Both share the session's cache with the YAML items, so
a spec that is also collected from ``--audit`` runs once.  Examples: docs/extending.md.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from .state import run_state

if TYPE_CHECKING:
    from ..results import AuditResult, LayerResult
    from ..spec.schema import AuditSpec


@dataclass
class AuditRun:
    """An audited spec: its results, and the model and probe data behind them when a test needs more."""

    spec: AuditSpec
    result: AuditResult
    _registries: Any = field(repr=False, default=None)
    _model: Any = field(repr=False, default=None)
    _session: Any = field(repr=False, default=None)

    def layer(self, name: str = "representation") -> LayerResult:
        try:
            return self.result.layers[name]
        except KeyError:
            raise KeyError(f"layer {name!r} was not audited; the spec's layers are {list(self.result.layers)}") from None

    def value(self, metric: str, layer: str = "representation", **params: Any) -> float:
        """The metric on ``layer``; with ``params`` (e.g. ``factor=100``) it is recomputed from the
        layer's inputs (the summary, or the stored rows and head for the head metrics)."""
        found = self.layer(layer)
        if metric not in found.metrics and self._session is not None:
            # not in the audit's plan (no check, no `measure:`): computed now (docs/extending.md#on-demand)
            self.result = self._session.on_demand(self.spec, metric, layer)
            found = self.layer(layer)
        if not params and metric in found.metrics:
            return found.metrics[metric].value
        return found.evaluate(self._registries.metrics.get(metric), params).value

    def stats(self, layer: str = "representation"):
        """The streaming summary (:class:`~pytest_robustaudit.metrics.outlier_stats.LayerStats`) of ``layer``."""
        return self.layer(layer).stats

    @property
    def model(self):
        """The :class:`~pytest_robustaudit.models.base.LoadedModel` (loaded again on first access)."""
        if self._model is None:
            from ..models import load_model

            self._model = load_model(self.spec.model, self._registries.sources)
        return self._model

    @property
    def probe(self):
        """The :class:`~pytest_robustaudit.data.ProbeSet`: the selected image files and labels."""
        from ..data import discover

        return discover(self.spec.data)

    @property
    def passed(self) -> bool:
        return self.result.passed


class Auditor:
    """``audit(spec)``: a spec path (relative to the test file's folder, else the rootdir), a YAML
    string or a dict.  Inline specs resolve their relative paths against the test file's folder."""

    def __init__(self, config: pytest.Config, base: Path):
        self.config = config
        self.base = base

    def __call__(self, spec: str | Path | dict) -> AuditRun:
        from ..errors import AuditError
        from ..spec import load_spec

        state = run_state(self.config)
        found = state.registries
        try:
            if isinstance(spec, dict) or (isinstance(spec, str) and "\n" in spec):
                import yaml

                text = spec if isinstance(spec, str) else yaml.safe_dump(spec, sort_keys=False)
                digest = hashlib.sha256(text.encode()).hexdigest()[:12]
                loaded = load_spec(self.base / f"inline-spec-{digest}.yaml", found, text=text)
            else:
                loaded = load_spec(self._resolve(Path(spec)), found)
            loaded = state.limited(loaded)   # --audit-limit
            return AuditRun(loaded, state.session.result(loaded), found, _session=state.session)
        except AuditError as error:  # the message is the whole explanation: no traceback into our code
            pytest.fail(str(error), pytrace=False)

    def _resolve(self, path: Path) -> Path:  # type: ignore[return]
        for base in (self.base, self.config.rootpath, self.config.invocation_params.dir):
            if (base / path).exists():
                return (base / path).resolve()
        pytest.fail(f"audit spec {path} not found next to the test ({self.base}) nor under the rootdir "
                    f"({self.config.rootpath}); give a path relative to one of them", pytrace=False)


@pytest.fixture
def audit(request: pytest.FixtureRequest) -> Auditor:
    """Run an audit spec (path, YAML text or dict) and get an :class:`AuditRun`."""
    return Auditor(request.config, Path(request.path).parent)


@pytest.fixture
def audit_run(request: pytest.FixtureRequest, audit: Auditor) -> AuditRun:
    """The :class:`AuditRun` of the spec named by ``@pytest.mark.audit_spec("path/to/spec.yaml")``."""
    marker = request.node.get_closest_marker("audit_spec")
    if marker is None or not marker.args:
        raise pytest.UsageError(f"{request.node.nodeid}: the audit_run fixture needs "
                                f"@pytest.mark.audit_spec('path/to/spec.yaml') on the test")
    return audit(marker.args[0])
