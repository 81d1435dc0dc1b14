"""pytest-robustaudit: audit pretrained vision encoders for the signals that predict ImageNet-shift robustness.

The public API, for conftest.py files and scripts (heavy libraries load only when used)::

    from pytest_robustaudit import Metric, MetricValue, LayerStats, load_spec, run_audit, standalone
"""

from .errors import AuditError, CheckpointError, DataError, LayerError, ModelLoadError, SpecError
from .metrics import Metric, MetricValue, Param
from .models.base import LoadedModel
from .registries import Registries, standalone
from .results import AuditResult, CheckOutcome, LayerResult, ReportSection
from .runner import AuditSession, run_audit
from .spec import load_spec
from .stats import LayerStats

__all__ = [
    "AuditError", "AuditResult", "AuditSession", "CheckOutcome", "CheckpointError", "DataError", "LayerError",
    "LayerResult", "LayerStats", "LoadedModel", "Metric", "MetricValue", "ModelLoadError", "Param", "Registries",
    "ReportSection", "SpecError", "load_spec", "run_audit", "standalone",
]
