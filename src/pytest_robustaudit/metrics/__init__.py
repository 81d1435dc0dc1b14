"""Metrics: the types every metric shares, and one module per analysis.

* :mod:`.types`: :class:`Metric` (self-describing), :class:`MetricValue`, :class:`Param`.
* :mod:`.outlier_stats`: the streaming per-layer summary the outlier analysis reads.
* :mod:`.outliers`: the outlier-feature metrics (kurtosis, profile, outlier counts, rotation control).
* :mod:`.inputs`: :class:`LayerInputs`, what a metric may read on a layer (summary, stored rows, labels, head).
* :mod:`.head_metrics`: top-1 / top-5 accuracy of the classification head on the stored rows.
* :mod:`.directions`: the head's privileged directions (importance, effective rank, outlier alignment)
  and pruning curves.
* :mod:`.shift_metrics`: accuracy under the spec's shifted sets, drops, effective robustness
  (:mod:`.robustness`: the baselines and the rank correlation; :mod:`.relation`: across audits).
* :mod:`.concepts` (on arrays) and :mod:`.concept_metrics` (registered): concepts a layer encodes,
  the directions that detect them, polysemanticity and overlap, each with its null (informational).
"""

from __future__ import annotations

from .concept_metrics import CONCEPT_METRICS
from .directions import DIRECTION_METRICS
from .head_metrics import HEAD_METRICS
from .inputs import LayerInputs
from .outliers import BUILTIN_METRICS as OUTLIER_METRICS
from .outliers import kurtosis, outlier_indices
from .shift_metrics import SHIFT_METRICS
from .types import (NOT_APPLICABLE, READS_HEAD, READS_OUTLIER_SUMMARY, ChartReference, Evidence, Metric, MetricValue,
                    NotApplicable, Param, headline_metrics, not_applicable, unusable_reason)

#: every built-in metric: the outlier analysis, then the metrics that read the head (accuracy, directions)
BUILTIN_METRICS = OUTLIER_METRICS + HEAD_METRICS + DIRECTION_METRICS + SHIFT_METRICS + CONCEPT_METRICS

__all__ = ["BUILTIN_METRICS", "CONCEPT_METRICS", "DIRECTION_METRICS", "HEAD_METRICS", "LayerInputs", "NOT_APPLICABLE", "NotApplicable", "OUTLIER_METRICS",
           "READS_HEAD", "SHIFT_METRICS", "not_applicable", "READS_OUTLIER_SUMMARY", "ChartReference", "Evidence", "Metric", "MetricValue", "Param",
           "headline_metrics", "kurtosis", "outlier_indices", "unusable_reason"]
