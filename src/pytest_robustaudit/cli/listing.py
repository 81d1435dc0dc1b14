"""``python -m pytest_robustaudit list metrics|corruptions|layers SPEC``: what a spec may name.

So nobody learns the metric list from an error message: ``metrics`` lists every registered metric (a
conftest.py's too, as in a run) with its domain, unit, parameters and what it reads; ``corruptions``
the ImageNet-C corruptions and their groups; ``layers SPEC`` the layers of the spec's model with their
widths and the layers its head fits, from the architecture built without weights
(``models/architecture.py``; a factory is called only with ``--factories``).  Exit status 0, 1 when the
spec or its model cannot be read, 2 for a usage error.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, TextIO

PREFIX = "robustaudit list:"


def list_main(what: str, spec: str | None = None, factories: bool = False, cache_dir: Any = None,
              out: TextIO | None = None, err: TextIO | None = None) -> int:
    out, err = out or sys.stdout, err or sys.stderr
    if what == "layers" and not spec:
        print(f"{PREFIX} `list layers` needs a spec: python -m pytest_robustaudit list layers audits/x.yaml", file=err)
        return 2
    if what != "layers" and spec:
        print(f"{PREFIX} `list {what}` takes no spec (only `list layers SPEC` does)", file=err)
        return 2
    from ..plugin.validate import registries_here

    registries = registries_here()
    if what == "metrics":
        lines = metric_lines(registries.metrics)
    elif what == "corruptions":
        lines = corruption_lines()
    else:
        try:
            lines = layer_lines(Path(spec), registries, factories, cache_dir)
        except Exception as error:   # noqa: BLE001 - our errors carry the way out; say any other plainly
            from ..errors import describe_error

            print(f"{PREFIX} {describe_error(error)}", file=err)
            return 1 if Path(spec).is_file() else 2
    for line in lines:
        print(line, file=out)
    return 0


def metric_lines(metrics: Any) -> list[str]:
    """One paragraph per metric: name, domain, unit, direction and reads; its parameters; its description."""
    lines = []
    for name in metrics.names():
        metric = metrics.get(name)
        domain = f"{metric.domain}" if metric.domain is not None else "domain not declared"
        unit = f", unit {metric.unit}" if metric.unit else ""
        lines.append(f"{name}: {domain}{unit}; robust side: {metric.direction}; reads {', '.join(sorted(metric.inputs))}")
        for pname, param in metric.params.items():
            span = ""
            if param.minimum is not None or param.maximum is not None:
                low = "" if param.minimum is None else f"{param.minimum:g}"
                high = "" if param.maximum is None else f"{param.maximum:g}"
                span = f" in [{low or '-∞'}, {high or '∞'}]"
            if getattr(param, "choices", None):
                span = f" (one of {', '.join(param.choices)})"
            lines.append(f"    {pname} = {param.default}{span}: {param.help}")
        lines.append(f"    {metric.description}")
    return lines


def corruption_lines() -> list[str]:
    """The corruptions by group, with their severities (docs/corruptions.md)."""
    from ..data.corruptions import CORRUPTIONS, EXTRA_CORRUPTIONS, OTHER_CORRUPTIONS, REGISTRY

    lines = []
    for title, names in (("ImageNet-C (`corruption: all`)", CORRUPTIONS),
                         ("ImageNet-C extra (`corruption: extra`)", EXTRA_CORRUPTIONS),
                         ("other", OTHER_CORRUPTIONS)):
        lines.append(f"{title}:")
        for name in names:
            found = REGISTRY[name]
            lines.append(f"    {name} ({found.family}; severity {found.severities[0]}-{found.severities[-1]})")
    return lines


def layer_lines(path: Path, registries: Any, factories: bool, cache_dir: Any) -> list[str]:
    """The layers of the model of the spec at ``path``: name, width, whether the head reads it, and which of
    them the spec lists."""
    from ..models.architecture import Architectures
    from ..spec import load_spec
    from ..spec.checks_section import LayerFit

    spec = load_spec(path, registries)
    found = Architectures(registries.sources, cache_dir, build="always", factories=factories)(spec.model)
    label = spec.model.describe()
    if found is None:
        why = ("its factory is called only when asked: add --factories" if spec.model.source == "factory"
               else f"source '{spec.model.source}' cannot build its model without weights")
        return [f"{label}: layers unknown before the audit runs ({why})"]
    kind = spec.head.kind if spec.head.kind != "auto" else ("zero-shot" if spec.model.source == "open_clip"
                                                             else "classifier")
    head = LayerFit(found, kind).head_width
    lines = [f"{label}: {found.catalogue.summary()}"]
    if head is not None:
        lines.append(f"the {kind} head reads width {head}: head metrics are computed on the layers marked 'head'")
    elif found.classifier_problem and kind == "classifier":
        lines.append(f"no head: {found.classifier_problem}")
    listed = {found.catalogue.canonical(layer) for layer in spec.layers}
    for name in found.catalogue.available():
        width = found.width(name)
        marks = [m for m, on in (("head", head is not None and width == head), ("in the spec", name in listed)) if on]
        lines.append(f"    {name:<16} {'?' if width is None else width:>6}" + (f"   ({', '.join(marks)})" if marks else ""))
    if found.widths_problem:
        lines.append(f"widths unknown: {found.widths_problem}")
    return lines
