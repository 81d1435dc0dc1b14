"""Metrics that read the classification head: top-1 / top-5 accuracy on the stored rows.

Why here and not in the model: the logits are computed in float64 from the stored rows
(:func:`.accuracy.topk_counts`), so the counts are exact integers that do not depend on the
device, batch size or AMP of the run that extracted them.  Images without a label are excluded and
counted, never scored wrong; rows with NaN/Inf are excluded and counted too.  A layer the head does
not fit, a spec with ``head: none`` or a model without a head makes these metrics *not applicable*,
with the reason, rather than NaN noise.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .types import FRACTION, READS_HEAD, Evidence, Metric, MetricValue, NotApplicable

ACCURACY_KS = (1, 5)


def head_targets(inputs: Any) -> tuple[Any, np.ndarray, np.ndarray]:
    """(head, class index per row (-1 unlabelled), finite-row mask) of a layer the head fits.  A
    HeadError (labels the head does not know) becomes NotApplicable with its message, unless the
    spec asked for its head explicitly (``inputs.strict``): then it is the audit's located error."""
    from ..models.heads import HeadError

    head = inputs.fitting_head()
    try:
        targets = inputs.targets()
    except HeadError as error:
        if inputs.strict:
            raise
        raise NotApplicable(str(error)) from None
    finite = inputs.finite_mask()
    if targets.shape[0] != finite.shape[0]:
        raise NotApplicable(f"{targets.shape[0]} labels for {finite.shape[0]} stored rows on layer '{inputs.layer}'")
    return head, targets, finite


def accuracy_counts(inputs: Any) -> dict[str, int]:
    """Exact top-1/top-5 counts of the head on the layer's finite, labelled rows (cached per layer)."""
    def build():
        from .accuracy import topk_counts

        head, targets, finite = head_targets(inputs)
        usable = np.where(finite, targets, -1)
        chunks = inputs.finite_rows()
        counts = topk_counts(chunks, usable[finite], head, ks=ACCURACY_KS)
        counts["unlabelled"] = int((targets < 0).sum())
        counts["nonfinite"] = int((~finite & (targets >= 0)).sum())
        return counts
    return inputs.cached("topk_counts", build)



def _topk(k: int):
    def compute(inputs: Any) -> MetricValue:
        counts = accuracy_counts(inputs)
        labelled = counts["labelled"]
        details = {"correct": counts[f"top{k}"], "labelled": labelled, "unlabelled": counts["unlabelled"],
                   "nonfinite_excluded": counts["nonfinite"], "head": inputs.head().description}
        if labelled == 0:
            raise NotApplicable(f"no labelled image on layer '{inputs.layer}' ({counts['unlabelled']} unlabelled; "
                                "label the probe data: data.labels folder or wnid, docs/data.md)")
        return MetricValue(counts[f"top{k}"] / labelled, details)
    return compute


_ACCURACY_EVIDENCE = Evidence("informational", "In-distribution accuracy of the model's own head: what the "
                                                "representation metrics are read beside, not a robustness signal.")

HEAD_METRICS: tuple[Metric, ...] = (
    Metric("top1_accuracy", _topk(1), "Top-1 accuracy of the classification head on the labelled probe images.",
           "#{x : argmax_c logit_c(h(x)) = y(x)} / #labelled, logits = h W^T + b in float64",
           unit="fraction", domain=FRACTION, direction="neutral", reads=READS_HEAD, evidence=_ACCURACY_EVIDENCE, headline="top-1",
           interval="binomial", default=True),
    Metric("top5_accuracy", _topk(5), "Top-5 accuracy of the classification head on the labelled probe images.",
           "#{x : y(x) among the 5 largest logits} / #labelled", unit="fraction", domain=FRACTION, direction="neutral",
           reads=READS_HEAD, evidence=_ACCURACY_EVIDENCE, interval="binomial", default=True),
)
