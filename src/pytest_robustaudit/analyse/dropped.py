"""A check's default layer that its metric cannot be computed on, found only when the audit runs.

Why: a check without its own ``layers:`` applies to the spec's layers where its metric applies
(docs/spec.md#checks); for a head metric, the layers whose width the head reads.  Validation knows
that from the model's architecture for timm and open_clip models; for a factory's model or imported
activations it is known only once the head is at hand.  Such a layer is then *dropped*: the check is
not judged there (a skipped item, its reason in every output and a notice in the record) instead of
failing on a layer the spec never meant it for.  An explicitly listed layer is never dropped: it fails
with the reason, as the spec asked for it.
"""

from __future__ import annotations

import math
from typing import Any

from ..metrics.types import NEEDS_HEAD, NotApplicable
from ..results import CheckOutcome

#: how a dropped check's reason begins (its ``skip_reason``)
DROPPED = "dropped: "


def drop_reason(check: Any, metric: Any, layer: Any) -> str:
    """Why ``check`` is dropped on its (default) layer ``layer`` (a LayerResult); "" when it is judged."""
    if not getattr(check, "default_layer", False) or NEEDS_HEAD not in metric.inputs or layer.inputs is None:
        return ""
    try:
        head = layer.inputs.head()
    except NotApplicable:   # no head at all is not a misfit: the check says why it cannot be computed
        return ""
    if int(layer.stats.dim) == int(head.width):
        return ""
    return (f"{DROPPED}{check.metric} is not checked on layer '{check.layer}': it reads the classification head, "
            f"which reads width {head.width}, and the layer has width {layer.stats.dim} (a default layer of the "
            f"spec; name the layers with the check's own `layers:` to check it elsewhere)")


def dropped_outcome(check: Any, reason: str) -> CheckOutcome:
    """The verdict of a dropped check: skipped, with the reason."""
    return CheckOutcome(check.metric, check.layer, math.nan, check.min, check.max, True, reason, dict(check.params),
                        skip_reason=reason, why=check.why)
