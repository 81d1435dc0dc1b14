"""The relation file kind: a YAML file whose top level is ``relation:`` (and no ``model:``).

Why a file kind of its own: the rank correlation between an outlier metric and effective
robustness is a property of the run's *set* of audits, not of one model, so it cannot be a key of
one audit spec.  The file is validated like a spec (every problem located, with the way out) and
becomes one run-level item; see docs/spec.md#relation-checks.
"""

from __future__ import annotations

from typing import Any

from .schema import RelationSpec
from .validator import Validator

RELATION_TOP_KEYS = ("relation",)
RELATION_KEYS = ("metric", "layer", "min_rho", "max_rho", "confidence")
#: metrics.relation.ROBUSTNESS (kept numpy-free here)
ROBUSTNESS = "effective_robustness"


def is_relation_doc(data: Any) -> bool:
    """A document is a relation check when its top level has ``relation:`` and no ``model:``."""
    return isinstance(data, dict) and "relation" in data and "model" not in data


class RelationSection(Validator):
    """Validates ``relation:``: a registered metric, an optional layer name, bounds in [-1, 1]."""

    def relation_spec(self) -> RelationSpec | None:
        top = self.mapping(self.doc.data, (), RELATION_TOP_KEYS, required=("relation",))
        if top is None:
            return None
        path = ("relation",)
        section = self.mapping(top.get("relation"), path, RELATION_KEYS)
        if section is None:
            return None
        metric = section.get("metric", "kurtosis_mean")
        names = tuple(self.registries.metrics.names())
        if not isinstance(metric, str) or metric not in names:
            from ..registry import suggest

            self.problem(path + ("metric",), f"{metric!r} is not a registered metric.{suggest(str(metric), names)}",
                         "name a metric of docs/metrics.md (e.g. kurtosis_mean, outlier_count) or one a plugin registers")
            metric = None
        elif metric == ROBUSTNESS:
            self.problem(path + ("metric",), "effective_robustness related to itself is always 1",
                         "name an outlier metric, e.g. kurtosis_mean")
            metric = None
        layer = section.get("layer")
        if layer is not None:
            layer = self.typed(layer, path + ("layer",), (str,), "a layer name such as representation")
        bounds = {}
        for key in ("min_rho", "max_rho"):
            value = section.get(key)
            if value is None:
                continue
            number = self.typed(value, path + (key,), (int, float), "a correlation between -1 and 1")
            if number is not None and not -1 <= float(number) <= 1:
                self.problem(path + (key,), f"must lie in [-1, 1] (a rank correlation), got {number}",
                             f"set relation.{key} to a number between -1 and 1")
                number = None
            bounds[key] = None if number is None else float(number)
        if "min_rho" not in section and "max_rho" not in section:
            self.problem(path, "no bound: give min_rho and/or max_rho", "e.g. add 'min_rho: 0.3' under relation")
        elif bounds.get("min_rho") is not None and bounds.get("max_rho") is not None \
                and bounds["min_rho"] > bounds["max_rho"]:
            self.problem(path + ("min_rho",), f"min_rho {bounds['min_rho']} is above max_rho {bounds['max_rho']}",
                         "swap them, or drop one")
        confidence = self.confidence(section.get("confidence"), path + ("confidence",))
        if self.problems or metric is None:
            return None
        return RelationSpec(path=self.file, metric=metric, layer=layer, min_rho=bounds.get("min_rho"),
                            max_rho=bounds.get("max_rho"), confidence=confidence, where=self.where(path))
