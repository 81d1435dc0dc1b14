"""pytest-robustaudit: audit pretrained vision encoders for the signals that predict ImageNet-shift robustness.

The public API, for conftest.py files and scripts::

    from pytest_robustaudit import Metric, MetricValue, LayerStats, load_spec, run_audit, standalone

Names are imported on first use (PEP 562), so that pytest loading the plugin in a run without
``--audit`` imports none of numpy, yaml or the model libraries.
"""

from __future__ import annotations

import importlib
from typing import Any

#: public name → the module that defines it
_EXPORTS = {
    "AuditError": "errors", "CheckpointError": "errors", "DataError": "errors", "LayerError": "errors",
    "ModelLoadError": "errors", "SpecError": "errors", "RobustAuditWarning": "errors",
    "Metric": "metrics.types", "MetricValue": "metrics.types", "Param": "metrics.types",
    "Evidence": "metrics.types", "ChartReference": "metrics.types",
    "LoadedModel": "models.base", "ImageSetKind": "measure.image_sets",
    "Registries": "registries", "standalone": "registries",
    "AuditResult": "results", "CheckOutcome": "results", "LayerResult": "results", "ReportSection": "results",
    "AuditSession": "audit.runner", "run_audit": "audit.runner", "StoreOptions": "measure.activations",
    "load_spec": "spec.load",
    "LayerStats": "metrics.outlier_stats", "layer_stats": "metrics.from_arrays",
    "effective_robustness": "metrics.robustness", "spearman_with_interval": "metrics.robustness",
    "outlier_robustness_correlation": "metrics.relation",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'pytest_robustaudit' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
