"""Validation of ``layers`` and ``checks``: layer names in the model stage's grammar, metrics from the
registry, bounds that can be met, and one check per (metric, layer, parameters).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from ..models.layers import LAYER_NAME, LAYER_NAME_HELP, NAMED_LAYERS
from ..registry import suggest
from .schema import CheckSpec
from .validator import Validator, _kind, percentage_hint

DEFAULT_LAYERS = ("representation",)
RELATIVE_KEYS = ("min_ratio", "max_ratio", "min_delta", "max_delta")
CHECK_KEYS = ("min", "max", *RELATIVE_KEYS, "layers", "why", "confidence", "margin")


def with_ids(checks: list[CheckSpec]) -> tuple[CheckSpec, ...]:
    """Give each check its node id: the metric name while (metric, layer) is unique in the spec,
    else the metric with its parameters, as pytest writes parametrize ids (``outlier_count[factor=100]``)."""
    from ..analyse.checks import params_label

    pairs: dict[tuple[str, str], int] = {}
    for check in checks:
        pairs[(check.metric, check.layer)] = pairs.get((check.metric, check.layer), 0) + 1
    return tuple(dataclasses.replace(c, id=f"{c.metric}[{params_label(c.params).replace(', ', '-')}]")
                 if pairs[(c.metric, c.layer)] > 1 else c for c in checks)


class LayerFit:
    """Which of a spec's layers a metric applies to: a metric that reads the classification head applies
    where the layer's width is the width the head reads (the head reads the layer it was trained on,
    normally ``representation``); every other metric applies everywhere.

    ``architecture`` is the model's :class:`~..models.architecture.Architecture` (None: not known before
    the audit runs, e.g. a factory); ``head_kind`` the resolved head (``classifier``, ``zero-shot``,
    ``none``).  Where the fit is unknown, every layer is a candidate and a default layer that turns out
    not to fit is dropped at run time, with a note (``analyse/dropped.py``)."""

    def __init__(self, architecture: Any = None, head_kind: str = "none"):
        self.architecture = architecture
        self.head_width = architecture.head_width(head_kind) if architecture is not None else None
        self.head_kind = head_kind

    @staticmethod
    def reads_head(metric: Any) -> bool:
        from ..metrics.types import NEEDS_HEAD

        return NEEDS_HEAD in metric.inputs

    def misfit(self, metric: Any, layer: str) -> str:
        """Why ``metric`` cannot be computed on ``layer`` ("" when it can, or when that is not known here)."""
        if self.head_width is None or not self.reads_head(metric):
            return ""
        width = self.architecture.width(layer)
        if width is None or width == self.head_width:
            return ""
        return (f"layer '{layer}' has width {width} but the {self.head_kind} head reads width {self.head_width}, "
                f"so {metric.name} cannot be computed there")


class ChecksSection(Validator):
    def layers(self, value: Any) -> tuple[str, ...]:
        path = ("layers",)
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not value:
            self.problem(path, f"expected a non-empty list of layer names, got {_kind(value)}",
                         "e.g. layers: [representation, blocks.-1]")
            return DEFAULT_LAYERS
        seen: list[str] = []
        for i, name in enumerate(value):
            if not isinstance(name, str) or not LAYER_NAME.match(name):
                self.problem(path + (i,), f"{name!r} is not a layer name.{suggest(str(name), NAMED_LAYERS)}",
                             LAYER_NAME_HELP)
            elif name in seen:
                self.problem(path + (i,), f"layer '{name}' is listed twice", "list each layer once")
            else:
                seen.append(name)
        return tuple(seen) or DEFAULT_LAYERS

    def checks(self, value: Any, layers: tuple[str, ...], fit: LayerFit | None = None) -> tuple[CheckSpec, ...]:
        path = ("checks",)
        if not isinstance(value, dict) or not value:
            self.problem(path, f"expected a mapping of metric name → bounds, got {_kind(value)}",
                         "e.g. checks: {kurtosis_mean: {min: 5}}")
            return ()
        metrics = self.registries.metrics
        out: list[CheckSpec] = []
        taken: dict[tuple, int | None] = {}
        for metric_name, body in value.items():
            mpath = path + (metric_name,)
            if metric_name not in metrics:
                self.problem(mpath, f"unknown metric '{metric_name}'.{suggest(metric_name, metrics.names())}",
                             f"known metrics: {', '.join(metrics.names())}")
                continue
            metric = metrics.get(metric_name)
            bodies = body if isinstance(body, list) else [body]
            for j, entry in enumerate(bodies):
                epath = mpath + (j,) if isinstance(body, list) else mpath
                for check in self.check(metric, entry, epath, layers, fit or LayerFit()):
                    key = check.key
                    if key in taken:
                        self.problem(epath, f"metric '{check.metric}' on layer '{check.layer}' is checked twice "
                                            f"(first at line {taken[key]})",
                                     "merge the bounds into one check, or restrict each to other layers")
                        continue
                    taken[key] = self.doc.line(epath)
                    out.append(check)
        return with_ids(out)

    def beyond_domain(self, metric, bounds: dict[str, float], path: tuple) -> bool:
        """A ``min`` above the top of the metric's :class:`~..metrics.types.Domain` or a ``max`` below its
        bottom can never pass: a problem with the likely fix (a percentage for a fraction).  Relative
        bounds are exempt: a ratio or a difference has another range."""
        domain = getattr(metric, "domain", None)
        if domain is None:
            return False
        found = False
        for key, beyond, edge, side in (("min", bounds.get("min", -math.inf) > domain.high, domain.high, "largest"),
                                        ("max", bounds.get("max", math.inf) < domain.low, domain.low, "smallest")):
            if beyond:
                value = bounds[key]
                hint = percentage_hint(value, domain.high)
                self.problem(path + (key,), f"{key} {value:g} can never be met: the {side} value {metric.name} can "
                             f"take is {edge:g} ({domain}){hint}",
                             f"write {key}: {value / 100:g}" if hint else
                             f"set {key} to at {'most' if key == 'min' else 'least'} {edge:g}, or leave it out to leave "
                             "that side open")
                found = True
        return found

    def check(self, metric, entry: Any, path: tuple, layers: tuple[str, ...], fit: LayerFit) -> list[CheckSpec]:
        allowed = CHECK_KEYS + tuple(metric.params)
        section = self.mapping(entry, path, allowed)
        if section is None:
            return []
        bounds: dict[str, float] = {}
        for key in ("min", "max", *RELATIVE_KEYS):
            if section.get(key) is not None:
                number = self.typed(section[key], path + (key,), (int, float), "a number")
                if number is not None:   # typed() refused NaN and infinities
                    bounds[key] = float(number)
        if not any(k in section for k in ("min", "max", *RELATIVE_KEYS)):
            self.problem(path, "the check has no bound, so it could never fail",
                         "add min:, max: or both (or a relative bound: min_ratio, max_ratio, min_delta, max_delta)")
            return []
        crossed = False
        for low, high in (("min", "max"), ("min_ratio", "max_ratio"), ("min_delta", "max_delta")):
            if low in bounds and high in bounds and bounds[low] > bounds[high]:
                self.problem(path, f"{low} {bounds[low]:g} is greater than {high} {bounds[high]:g}, so no value can pass",
                             "swap or correct the bounds")
                crossed = True
        for key in ("min_ratio", "max_ratio"):
            if bounds.get(key, 1.0) < 0:
                self.problem(path + (key,), "a ratio bound must not be negative", "e.g. min_ratio: 0.8 keeps 80% of the reference")
                crossed = True
        if crossed or self.beyond_domain(metric, bounds, path):
            return []
        lo, hi = bounds.get("min"), bounds.get("max")
        confidence = self.confidence(section.get("confidence"), path + ("confidence",))
        params = {name: param.default for name, param in metric.params.items()}  # explicit in every message
        for pname, param in metric.params.items():
            if pname in section:
                kinds = (int, float) if param.type is float else (param.type,)
                got = self.typed(section[pname], path + (pname,), kinds, f"a {param.type.__name__}")
                if got is not None and param.minimum is not None and got < param.minimum:
                    self.problem(path + (pname,), f"must be at least {param.minimum}, got {got}", param.help)
                elif got is not None and param.maximum is not None and got > param.maximum:
                    self.problem(path + (pname,), f"must be at most {param.maximum:g}, got {got}"
                                 f"{percentage_hint(got, param.maximum)}", param.help)
                elif got is not None and getattr(param, "choices", None) and got not in param.choices:
                    self.problem(path + (pname,), f"{got!r} is not one of {', '.join(param.choices)}."
                                 f"{suggest(str(got), param.choices)}", param.help)
                elif got is not None and getattr(param, "check", None) and param.check(got):
                    self.problem(path + (pname,), param.check(got), param.help)
                elif got is not None:
                    params[pname] = param.type(got)
        why = ""
        if section.get("why") is not None:
            text = self.typed(section["why"], path + ("why",), (str,), "a sentence")
            why = " ".join(text.split()) if text is not None else ""
        margin = None
        if section.get("margin") is not None:
            margin = self.typed(section["margin"], path + ("margin",), (int, float), "a number (the metric's units)")
            if margin is not None and margin < 0:
                self.problem(path + ("margin",), f"must not be negative, got {margin:g}",
                             "a margin is a distance: e.g. margin: 0.01 reads changes within ±0.01 as unchanged")
                margin = None
        targets = self.check_layers(metric, section, path, layers, fit)
        return [CheckSpec(metric.name, layer, lo, hi, params, self.where(path),
                          min_ratio=bounds.get("min_ratio"), max_ratio=bounds.get("max_ratio"),
                          min_delta=bounds.get("min_delta"), max_delta=bounds.get("max_delta"), why=why,
                          confidence=confidence, default_layer="layers" not in section,
                          margin=float(margin) if margin is not None else None) for layer in targets]

    def check_layers(self, metric: Any, section: dict, path: tuple, layers: tuple[str, ...], fit: LayerFit) -> list[str]:
        """The layers a check applies to.  Its own ``layers:`` as written (each must be a layer of the spec
        and, where the model is known, one the metric can be computed on); without it, the spec's layers
        where the metric applies (:class:`LayerFit`): for a head metric, those the head fits."""
        if "layers" not in section:
            fitting = [layer for layer in layers if not fit.misfit(metric, layer)]
            if not fitting:
                widths = ", ".join(f"{layer} {fit.architecture.width(layer)}" for layer in layers)
                self.problem(path, f"{metric.name} reads the classification head, which reads width {fit.head_width}, "
                             f"and no layer of the spec has that width ({widths})",
                             "add `representation` (the layer the head reads) to the spec's `layers:`")
            return fitting
        targets = section["layers"]
        if isinstance(targets, str):
            targets = [targets]
        if not isinstance(targets, list) or not targets:
            self.problem(path + ("layers",), "expected a list of layer names", "e.g. layers: [representation]")
            return []
        out = []
        for i, layer in enumerate(targets):
            if layer not in layers:
                self.problem(path + ("layers", i),
                             f"layer {layer!r} is not among the spec's layers ({', '.join(layers)}).{suggest(str(layer), layers)}",
                             "add it to the top-level 'layers:' list")
            elif fit.misfit(metric, layer):
                fitting = [name for name in layers if not fit.misfit(metric, name)]
                self.problem(path + ("layers", i), fit.misfit(metric, layer),
                             f"leave `layers:` out: a head metric is checked on the layers the head fits"
                             f" ({', '.join(fitting) or 'none of this spec'})")
            else:
                out.append(layer)
        return out
