"""The HTML report: a pure function from audit results to one self-contained HTML page.

:func:`render_report` turns :class:`~.results.AuditResult` objects (plus the specs that failed to
run, and plugins' :class:`~.results.ReportSection`) into a single page: Jinja with autoescape on,
inline CSS, inline SVG plots from :mod:`.svg`, no script and no external resource, so it opens
offline, fast, and a hostile model name or path is shown as text.  What it shows: docs/report.md.
Free of pytest.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import numpy as np

from . import svg
from ..checks import Bound, describe_bounds, format_number, params_label
from ..metrics.types import NOT_APPLICABLE, Metric, MetricValue, controls_of, headline_metrics
from ..results import AuditResult, CheckOutcome, ReportSection, tally
from .directions import direction_figures

TEMPLATE = "report.html.j2"

@dataclass
class Cell:
    text: str
    raw: str = ""            # the exact number as in the JSON record ("NaN", "Infinity" for non-finite)
    title: str = ""
    cls: str = ""


@dataclass
class CheckView:
    label: str
    layer: str
    measured: Cell
    bound: str
    reference: str
    status: str                # "pass", "fail", "skip"
    message: str


@dataclass
class LayerView:
    name: str
    anchor: str
    dim: int
    n_images: int
    n_nonfinite: int
    profile_svg: Any
    kurtosis_svg: Any
    metrics: list[tuple[str, Cell, str]]   # (metric, value, check status on this layer or "")
    outliers: str
    notes: list[str]


@dataclass
class ModelView:
    index: int
    anchor: str
    name: str
    model: str
    source: str
    fingerprint: str
    spec_path: str
    data_path: str
    images: str                # "used of found, k unreadable skipped"
    used_of_found: str
    device: str
    seconds: str
    status: str
    counts: dict[str, int]
    checks: list[CheckView]
    layers: list[LayerView]
    provenance: list[tuple[str, str]]
    skipped: list[tuple[str, str]]
    skipped_more: int
    activations: str = ""      # where the activations came from ("" in records from before the store)


@dataclass
class ChartView:
    key: str
    title: str
    svg: Any


@dataclass
class MetricTable:
    layer: str
    metrics: list[str]
    rows: list[tuple[ModelView, list[Cell]]] = field(default_factory=list)


def _safe(svg_text: str) -> Any:
    """Mark an SVG built by :mod:`.svg` as safe: every text in it was escaped there."""
    from markupsafe import Markup

    return Markup(svg_text)


def _wbr(name: str) -> Any:
    """A metric name that may wrap after its underscores (narrow table headers)."""
    from markupsafe import Markup, escape

    return Markup("_<wbr>").join(escape(part) for part in str(name).split("_"))


def raw_number(value: float | None) -> str:
    """A float exactly as the JSON record writes it (shortest round-trip repr; NaN/Infinity as words)."""
    if value is None:
        return ""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return repr(float(value))


def _value_cell(mv: MetricValue) -> Cell:
    """A metric value as shown (4 significant digits), with its exact number and why it is undefined."""
    return Cell(format_number(mv.value), raw_number(mv.value), mv.undefined_reason)


def _metric_order(layer_metrics: Iterable[str], metric_names: list[str]) -> list[str]:
    """A layer's metrics in registry order, then the ones not in the registry (in computed order)."""
    present = list(layer_metrics)
    return [m for m in metric_names if m in present] + [m for m in present if m not in metric_names]


#: a metric checked several times on one layer shows its worst verdict (lowest rank)
_STATUS_RANK = {"fail": 0, "skip": 1, "pass": 2}


def _slug(text: str, index: int, prefix: str) -> str:
    return f"{prefix}{index}-" + (re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40] or "x")


def _metric_list(metrics: Any) -> list[Metric]:
    if metrics is None:
        return []
    if hasattr(metrics, "names") and hasattr(metrics, "get"):
        return [metrics.get(name) for name in metrics.names()]
    return list(metrics)


def _model_status(result: AuditResult) -> tuple[str, dict[str, int]]:
    counts = tally(result.checks)
    if counts["fail"]:
        return "fail", counts
    if counts["pass"]:
        return "pass", counts
    return "none", counts


def _check_view(c: CheckOutcome) -> CheckView:
    params = params_label(c.params)
    bound = describe_bounds(Bound(c.min, "") if c.min is not None else None,
                            Bound(c.max, "") if c.max is not None else None)
    measured = Cell(format_number(c.value) if not c.skip_reason else "not run", raw_number(c.value))
    return CheckView(label=c.metric + (f" ({params})" if params else ""), layer=c.layer, measured=measured,
                     bound=bound, reference=format_number(c.reference) if c.reference is not None else "",
                     status=c.status, message=c.skip_reason or c.message)


def _layer_view(result: AuditResult, index: int, position: int, name: str, metric_names: list[str]) -> LayerView:
    from ..metrics import outlier_indices

    layer = result.layers[name]
    stats = layer.stats
    title = f"{result.name} / {name}"
    outlier = layer.metrics.get("outlier_count")
    factor = float(outlier.details.get("factor", 10.0)) if outlier else 10.0
    statuses: dict[str, str] = {}
    for c in result.checks:
        if c.layer == name and (c.metric not in statuses
                                or _STATUS_RANK[c.status] < _STATUS_RANK[statuses[c.metric]]):
            statuses[c.metric] = c.status
    rows = [(metric, _value_cell(layer.metrics[metric]), statuses.get(metric, ""))
            for metric in _metric_order(layer.metrics, metric_names)]
    outliers = ""
    if stats.profile.size and np.isfinite(stats.profile).all() and float(np.median(stats.profile)) > 0:
        idx = outlier_indices(stats.profile, factor)
        shown = ", ".join(str(int(i)) for i in idx[:12])
        outliers = (f"{idx.size} feature{'s' if idx.size != 1 else ''} above {factor:g} × median"
                    + (f": {shown}" + (f" (+{idx.size - 12} more)" if idx.size > 12 else "") if idx.size else ""))
    return LayerView(
        name=name, anchor=_slug(result.name, index, "m") + _slug(name, position, "-l"),
        dim=stats.dim, n_images=stats.n_images, n_nonfinite=stats.n_nonfinite,
        profile_svg=_safe(svg.profile_svg(stats.profile, factor, f"Activation profile, {title}")),
        kurtosis_svg=_safe(svg.kurtosis_hist_svg(stats.kurtosis, stats.rotated_kurtosis, f"Per-image kurtosis, {title}")),
        metrics=rows, outliers=outliers, notes=list(stats.notes))


def activations_line(result: AuditResult) -> str:
    """Where an audit's activations came from, one line ("" for records written before the store):
    ``read from the activation store PATH; entries: representation 3f9c0a1b2c4d`` or
    ``extracted (representation) in 24.8 s, kept in the activation store PATH; entries: ...``."""
    info = result.activations
    if not info:
        return ""
    keys = info.get("keys") or {}
    entries = ", ".join(f"{layer} {key[:12]}" for layer, key in keys.items())
    where = f"; entries: {entries}" if entries else ""
    store = str(info.get("store", ""))
    if info.get("from_store"):
        return f"read from the activation store {store}{where}"
    extracted = ", ".join(info.get("extracted") or [])
    kept = "not kept (--audit-cache off)" if store.startswith("off") else f"kept in the activation store {store}"
    return f"extracted ({extracted}) in {result.extraction_s:.1f} s, {kept}{where}"


def _model_view(result: AuditResult, index: int, metric_names: list[str]) -> ModelView:
    status, counts = _model_status(result)
    skipped = f", {len(result.skipped)} unreadable skipped" if result.skipped else ""
    provenance = [(str(k), v if isinstance(v, str) else repr(v)) for k, v in result.provenance.items()]
    return ModelView(
        index=index, anchor=_slug(result.name, index, "m"), name=result.name, model=result.model,
        source=result.source, fingerprint=result.fingerprint, spec_path=os.fspath(result.spec_path),
        data_path=os.fspath(result.data_path), images=f"{result.n_images} of {result.n_found}{skipped}",
        used_of_found=f"{result.n_images} of {result.n_found}",
        device=f"{result.device}, {result.precision}" + (f", batch {result.batch_size}" if result.batch_size else ""),
        seconds=f"{result.seconds:.1f} s", status=status, counts=counts,
        checks=[_check_view(c) for c in result.checks],
        layers=[_layer_view(result, index, j, name, metric_names) for j, name in enumerate(result.layers)],
        provenance=provenance,
        skipped=[(os.fspath(s.path), s.reason) for s in result.skipped[:20]],
        skipped_more=max(len(result.skipped) - 20, 0), activations=activations_line(result))


def _comparisons(results: Sequence[AuditResult], metrics: dict[str, Metric]) -> list[ChartView]:
    """One chart per (layer, metric, params): kurtosis_mean and outlier_count always, plus every checked one."""

    def key_of(metric: str, layer: str, params: dict[str, Any]) -> tuple:
        merged = {n: p.default for n, p in metrics[metric].params.items()} if metric in metrics else {}
        merged.update(params)
        return layer, metric, tuple(sorted(merged.items()))

    always = [m.name for m in headline_metrics(metrics.values()) if m.name not in controls_of(metrics.values())]
    keys: dict[tuple, None] = {}
    for result in results:
        for layer in result.layers:
            for metric in always:  # a headline that does not apply to the layer (accuracy off the head) gets no chart
                found = result.layers[layer].metrics.get(metric)
                if found is not None and not found.undefined_reason.startswith(NOT_APPLICABLE):
                    keys.setdefault(key_of(metric, layer, {}), None)
        for c in result.checks:
            if not c.skip_reason and c.layer in result.layers:
                keys.setdefault(key_of(c.metric, c.layer, c.params), None)
    layer_order = {name: i for i, name in enumerate(dict.fromkeys(k[0] for k in keys))}
    charts = []
    def referenced_first(key: tuple) -> tuple:  # charts with a reference line (kurtosis: 3 = Gaussian) lead
        declared = metrics.get(key[1])
        return layer_order[key[0]], declared is None or declared.chart_reference is None, key[1], key[2]

    for n, key in enumerate(sorted(keys, key=referenced_first)):
        layer, metric, params = key
        declared = metrics.get(metric)
        rows = []
        for result in results:
            if layer not in result.layers:
                continue
            check = next((c for c in result.checks if not c.skip_reason
                          and key_of(c.metric, c.layer, c.params) == key), None)
            control = None
            if declared is not None and declared.control in result.layers[layer].metrics:
                control = result.layers[layer].metrics[declared.control].value
            if check is not None:
                rows.append(svg.Row(result.name, check.value, control, check.min, check.max, check.passed))
            elif metric in result.layers[layer].metrics and key == key_of(metric, layer, {}):
                rows.append(svg.Row(result.name, result.layers[layer].metrics[metric].value, control))
        if not rows:
            continue
        label = metric + (f" ({params_label(dict(params))})" if params else "")
        title = f"{label} on layer '{layer}'"
        line = declared.chart_reference if declared is not None else None
        controlled = declared is not None and bool(declared.control)
        charts.append(ChartView(f"c{n}", title, _safe(svg.comparison_svg(
            rows, f"Comparison: {title}", label, reference=line.value if line else None,
            reference_label=line.label if line else "",
            control_label=f"{metrics[declared.control].headline} control" if controlled and declared.control in metrics
            else ""))))
    return charts


def _metric_tables(results: Sequence[AuditResult], views: list[ModelView], metric_names: list[str]) -> list[MetricTable]:
    tables: dict[str, MetricTable] = {}
    for result, view in zip(results, views):
        for name, layer in result.layers.items():
            if name not in tables:
                tables[name] = MetricTable(name, _metric_order(layer.metrics, metric_names))
    for result, view in zip(results, views):
        for name, table in tables.items():
            layer = result.layers.get(name)
            if layer is None:
                continue
            cells = [_value_cell(layer.metrics[m]) if m in layer.metrics else Cell("—") for m in table.metrics]
            table.rows.append((view, cells))
    return list(tables.values())


def _glossary(metrics: list[Metric], used: set[str]) -> list[dict[str, str]]:
    entries = []
    names = [m.name for m in metrics]
    for metric in metrics:
        declared = (metric.evidence.level, metric.evidence.why) if metric.evidence else None
        strength, evidence = declared or (
            ("informational", "Declared neutral by its author: informational, no robustness claim.")
            if metric.direction == "neutral" else
            ("not assessed", "A metric registered by a plugin; pytest-robustaudit makes no claim about its evidence."))
        entries.append({"name": metric.name, "description": metric.description, "formula": metric.formula,
                        "direction": {"higher": "higher = more outlier features (the robust models' side)",
                                      "lower": "lower is the robust models' side"}.get(metric.direction,
                                                                                      "neutral (control / informational)"),
                        "strength": strength, "evidence": evidence, "used": metric.name in used})
    for name in sorted(used - set(names)):
        entries.append({"name": name, "description": "(not registered in this session)", "formula": "",
                        "direction": "", "strength": "not assessed", "evidence": "", "used": True})
    return entries


def _section_cell(value: Any) -> str:
    if isinstance(value, float):
        return format_number(value)
    return str(value)


def render_report(results: Iterable[AuditResult], metrics: Any = None, run_info: dict[str, Any] | None = None,
                  sections: Iterable[ReportSection] = (), errors: dict[Any, str] | None = None) -> str:
    """The report page for ``results``.

    ``metrics``: a metric registry or a list of :class:`~.metrics.Metric` (for the explanations);
    ``run_info``: the run's information (as in the JSON record; its ``errors`` list, if any, names
    specs that failed to run); ``errors``: more failed specs, ``{spec_path: message}``;
    ``sections``: plugins' sections.  Returns the HTML text.
    """
    import jinja2

    results = list(results)
    run_info = dict(run_info or {})
    failed_specs = [(os.fspath(e.get("spec_path", "")), str(e.get("message", "")))
                    for e in run_info.pop("errors", []) or [] if isinstance(e, dict)]
    failed_specs += [(os.fspath(p), str(m)) for p, m in (errors or {}).items()]
    metric_objs = _metric_list(metrics)
    by_name = {m.name: m for m in metric_objs}
    metric_names = [m.name for m in metric_objs]
    views = [_model_view(r, i, metric_names) for i, r in enumerate(results)]
    used = {m for r in results for layer in r.layers.values() for m in layer.metrics}
    totals = {"models": len(results), "errors": len(failed_specs),
              "pass": sum(v.status == "pass" for v in views), "fail": sum(v.status == "fail" for v in views),
              "checks_failed": sum(v.counts["fail"] for v in views),
              "checks": sum(sum(v.counts.values()) for v in views)}
    overall = "fail" if totals["fail"] or failed_specs else ("pass" if totals["pass"] else "none")
    env = jinja2.Environment(loader=jinja2.PackageLoader("pytest_robustaudit.report", "templates"),
                             autoescape=True, undefined=jinja2.StrictUndefined,
                             trim_blocks=True, lstrip_blocks=True)
    env.filters["wbr"] = _wbr
    template = env.get_template(TEMPLATE)
    run_items = [(str(k), v if isinstance(v, str) else (" ".join(map(str, v)) if isinstance(v, (list, tuple)) else repr(v)))
                 for k, v in run_info.items()]
    return template.render(
        models=views, errors=failed_specs, totals=totals, overall=overall, run_items=run_items,
        interrupted=run_info.get("interrupted", False),
        created=str(run_info.get("created", "")), version=str(run_info.get("robustaudit_version", "")),
        charts=_comparisons(results, by_name), tables=_metric_tables(results, views, metric_names),
        directions=[{"key": f.key, "title": f.title, "svg": _safe(f.svg)} for f in direction_figures(results)],
        glossary=_glossary(metric_objs, used),
        sections=[{"title": s.title, "text": s.text, "headers": [str(h) for h in s.headers],
                   "rows": [[_section_cell(c) for c in row] for row in s.rows]} for s in sections],
    )



def write_report(html_text: str, path: os.PathLike | str) -> None:
    """Write the page atomically (parents created), so a browser never sees half a report."""
    from ..atomic import write_text_atomic

    write_text_atomic(path, html_text)
