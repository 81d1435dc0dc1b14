"""Metrics: the types every metric shares, and one module per analysis.

* :mod:`.types`: :class:`Metric` (self-describing), :class:`MetricValue`, :class:`Param`.
* :mod:`.outlier_stats`: the streaming per-layer summary the outlier analysis reads.
* :mod:`.outliers`: the outlier-feature metrics (kurtosis, profile, outlier counts, rotation control).
"""

from __future__ import annotations

from .outliers import BUILTIN_METRICS, kurtosis, outlier_indices
from .types import (READS_OUTLIER_SUMMARY, ChartReference, Evidence, Metric, MetricValue, Param, headline_metrics,
                    unusable_reason)

__all__ = ["BUILTIN_METRICS", "READS_OUTLIER_SUMMARY", "ChartReference", "Evidence", "Metric", "MetricValue", "Param",
           "headline_metrics", "kurtosis", "outlier_indices", "unusable_reason"]
