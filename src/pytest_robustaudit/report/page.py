"""The HTML report: a pure function from audit results to one self-contained HTML page.

:func:`render_report` turns :class:`~.results.AuditResult` objects (plus the specs that failed to
run, and plugins' :class:`~.results.ReportSection`) into a single page: Jinja with autoescape on,
inline CSS, inline SVG plots from :mod:`.svg`, no external resource, so it opens offline, fast,
and a hostile model name or path is shown as text.  One small inline script sorts and filters the
summary; the page reads fully without it.  The page is a list of sections (:mod:`.sections`):
the built-in ones are registered below, an analysis to come registers its own.  What it shows:
docs/report.md.  Free of pytest.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import numpy as np

from . import svg
from ..analyse.checks import bound_text, format_number, params_label
from ..metrics.types import NOT_APPLICABLE, Metric, MetricValue, controls_of, headline_metrics
from ..results import AuditResult, CheckOutcome, ReportSection, tally, verdict_of
from ..audit.notices import notices_of
from .provenance import readable, readable_path
from .sections import PageContext, PageSection, build_sections, register_section
from .values import check_label, check_verdict, is_default, left_out, rerun_command, uninformative_mark
from .directions import direction_figures
from . import shifts as _shifts  # noqa: F401,E402 - registers the shifts section (issue 17)
from . import relations as _relations  # noqa: F401,E402 - registers the relation checks section
from . import concepts as _concepts  # noqa: F401,E402 - registers the concepts section (issue 20)
from . import changes as _changes  # noqa: F401,E402 - registers the change-from-a-release section (issue 28)
from . import trends as _trends  # noqa: F401,E402 - registers the across-releases section (issue 28)

TEMPLATE = "report.html.j2"
MARK = {"pass": "✓", "fail": "✗", "inconclusive": "?", "skip": "–"}


@dataclass
class Cell:
    text: str
    raw: str = ""            # the exact number as in the JSON record ("NaN", "Infinity" for non-finite)
    title: str = ""
    cls: str = ""


@dataclass
class CheckView:
    """A verdict and exactly what it was computed from: ``label`` names the metric with every
    parameter (``outlier_count (factor=100)``), ``measured`` is the checked value, ``verdict`` the
    plain phrase after it (``> max 15, +37%``)."""

    label: str
    layer: str
    measured: Cell
    bound: str
    reference: str
    status: str                # "pass", "fail", "inconclusive", "skip"
    message: str
    verdict: str = ""
    why: str = ""
    params: str = ""
    nodeid: str = ""           # the pytest node id ("" when the check ran outside pytest's items)
    rerun: str = ""            # the command that re-runs it (report/values.py rerun_command)


@dataclass
class LayerRow:
    """One row of a layer's metric table: a metric at its default parameters (``checked``: the
    verdict of a check at exactly those parameters, else ""), or a check at other parameters."""

    label: str
    metric: str
    cell: Cell
    status: str = ""
    params: str = ""
    default: bool = True


@dataclass
class LayerView:
    name: str
    anchor: str
    dim: int
    n_images: int
    n_nonfinite: int
    profile_svg: Any
    kurtosis_svg: Any
    metrics: list[LayerRow]
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
    seconds_raw: float
    status: str
    counts: dict[str, int]
    checks: list[CheckView]
    layers: list[LayerView]
    provenance: list[tuple[str, str]]
    skipped: list[tuple[str, str]]
    skipped_more: int
    activations: str = ""      # where the activations came from ("" in records from before the store)
    #: metrics the audit's plan left out, each with why and how to ask ([] in records before schema 4)
    not_computed: list[tuple[str, str]] = field(default_factory=list)
    #: seconds per phase, slowest first ([] in records before schema 4)
    phases: list[tuple[str, str]] = field(default_factory=list)
    #: what the reader must know beside the numbers: random weights, a smoke run, a dropped check
    notices: list[str] = field(default_factory=list)

    @property
    def not_computed_count(self) -> int:
        return sum(len(names.split(", ")) for names, _ in self.not_computed)

    @property
    def failed_checks(self) -> list[CheckView]:
        return [c for c in self.checks if c.status in ("fail", "inconclusive")]


@dataclass
class ChartView:
    key: str
    title: str
    svg: Any


@dataclass
class MetricTable:
    layer: str
    metrics: list[str]
    labels: list[str] = field(default_factory=list)
    rows: list[tuple[ModelView, list[Cell]]] = field(default_factory=list)


@dataclass
class ComparisonView:
    charts: list[ChartView]
    tables: list[MetricTable]
    single_model: bool


@dataclass
class SummaryView:
    models: list[ModelView]


@dataclass
class TableView:
    """A plugin's :class:`~.results.ReportSection` as cells (escaped by the template)."""

    text: str
    headers: list[str]
    rows: list[list[str]]


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


def _value_cell(mv: MetricValue, interval: Any = None) -> Cell:
    """A metric value as shown (4 significant digits), with its exact number and why it is undefined;
    with its interval as ``value [low, high]`` when it has one (docs/intervals.md)."""
    return Cell(with_interval(mv.value, interval), raw_number(mv.value), mv.undefined_reason)


def with_interval(value: float, interval: Any = None) -> str:
    """``20.59 [18.1, 23.4]``: the value and its interval's ends (the value alone when it has none)."""
    shown = format_number(value)
    if interval is not None and getattr(interval, "has_interval", False) and math.isfinite(value):
        return f"{shown} [{format_number(interval.low)}, {format_number(interval.high)}]{uninformative_mark(interval)}"
    return shown


def _metric_order(layer_metrics: Iterable[str], metric_names: list[str]) -> list[str]:
    """A layer's metrics in registry order, then the ones not in the registry (in computed order)."""
    present = list(layer_metrics)
    return [m for m in metric_names if m in present] + [m for m in present if m not in metric_names]


#: a metric checked several times on one layer shows its worst verdict (lowest rank)
_STATUS_RANK = {"fail": 0, "inconclusive": 1, "skip": 2, "pass": 3}
#: the summary lists failures first
_MODEL_RANK = {"fail": 0, "inconclusive": 1, "none": 2, "pass": 3}


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
    status = verdict_of(counts)
    return ("none" if status == "skip" else status), counts


def _label_with_defaults(name: str, declared: Metric | None) -> str:
    """A metric's name with its default parameters, as the per-layer tables compute it."""
    params = params_label(declared.defaults()) if declared is not None else ""
    return name + (f" ({params})" if params else "")


def _check_view(c: CheckOutcome) -> CheckView:
    verdict = check_verdict(c)
    shown = format_number(c.value) if not c.skip_reason else "not run"
    rest = verdict[len(shown):] if verdict.startswith(shown) else ""
    return CheckView(label=check_label(c), layer=c.layer, measured=Cell(with_interval(c.value, c.interval) if not c.skip_reason else shown,
                                                                  raw_number(c.value)),
                     bound=bound_text(c.min, c.max),
                     reference=format_number(c.reference) if c.reference is not None else "",
                     status=c.status, message=c.skip_reason or c.message, verdict=rest, why=c.why,
                     params=params_label(c.params), nodeid=c.nodeid, rerun=rerun_command(c.nodeid))


def _layer_rows(result: AuditResult, name: str, metric_names: list[str], by_name: dict[str, Metric]) -> list[LayerRow]:
    """Every metric at its default parameters (a mark only when a check ran at exactly those), then
    each check of this layer at other parameters, with the value it checked."""
    layer = result.layers[name]
    checks = [c for c in result.checks if c.layer == name and not c.skip_reason]
    rows = []
    for metric in _metric_order(layer.metrics, metric_names):
        declared = by_name.get(metric)
        status = ""
        for c in checks:
            if c.metric == metric and is_default(c, declared) and (
                    not status or _STATUS_RANK[c.status] < _STATUS_RANK[status]):
                status = c.status
        rows.append(LayerRow(_label_with_defaults(metric, declared), metric,
                             _value_cell(layer.metrics[metric], layer.intervals.get(metric)),
                             status, params_label(declared.defaults()) if declared else ""))
        for c in checks:
            if c.metric == metric and not is_default(c, declared):
                rows.append(LayerRow(check_label(c), metric, Cell(format_number(c.value), raw_number(c.value)),
                                     c.status, params_label(c.params), default=False))
    return rows


def _layer_view(result: AuditResult, index: int, position: int, name: str, metric_names: list[str],
                by_name: dict[str, Metric]) -> LayerView:
    from ..metrics import outlier_indices
    from ..metrics.outlier_stats import null_band

    layer = result.layers[name]
    stats = layer.stats
    title = f"{result.name} / {name}"
    outlier = layer.metrics.get("outlier_count")
    factor = float(outlier.details.get("factor", 10.0)) if outlier else 10.0
    checked = [c for c in result.checks if c.metric == "outlier_count" and c.layer == name and "factor" in c.params]
    if checked:   # draw the threshold the check judged (factor 100, say), not the default's
        factor = float(checked[0].params["factor"])
    outliers = ""
    if stats.profile.size and np.isfinite(stats.profile).all() and float(np.max(stats.profile)) > 0:
        idx = outlier_indices(stats.profile, factor, stats.eps)
        shown = ", ".join(str(int(i)) for i in idx[:12])
        outliers = (f"{idx.size} feature{'s' if idx.size != 1 else ''} above {factor:g} × the mean of the live non-outliers"
                    + (f": {shown}" + (f" (+{idx.size - 12} more)" if idx.size > 12 else "") if idx.size else ""))
    return LayerView(
        name=name, anchor=_slug(result.name, index, "m") + _slug(name, position, "-l"),
        dim=stats.dim, n_images=stats.n_images, n_nonfinite=stats.n_nonfinite,
        profile_svg=_safe(svg.profile_svg(stats.profile, factor, f"Activation profile, {title}", eps=stats.eps)),
        kurtosis_svg=_safe(svg.kurtosis_hist_svg(stats.kurtosis, stats.rotated_kurtosis, f"Per-image kurtosis, {title}",
                                                 band=null_band(stats.dim) if stats.dim > 1 else None)),
        metrics=_layer_rows(result, name, metric_names, by_name), outliers=outliers, notes=list(stats.notes))


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



def _model_view(result: AuditResult, index: int, metric_names: list[str], by_name: dict[str, Metric],
                base: str = "") -> ModelView:
    status, counts = _model_status(result)
    skipped = f", {len(result.skipped)} unreadable skipped" if result.skipped else ""
    return ModelView(
        index=index, anchor=_slug(result.name, index, "m"), name=result.name, model=result.model,
        source=result.source, fingerprint=result.fingerprint,
        spec_path=readable_path(os.fspath(result.spec_path), base),
        data_path=readable_path(os.fspath(result.data_path), base),
        images=f"{result.n_images} of {result.n_found}{skipped}",
        used_of_found=f"{result.n_images} of {result.n_found}",
        device=f"{result.device}, {result.precision}" + (f", batch {result.batch_size}" if result.batch_size else ""),
        seconds=_duration(result.seconds), seconds_raw=float(result.seconds), status=status, counts=counts,
        checks=[_check_view(c) for c in result.checks],
        layers=[_layer_view(result, index, j, name, metric_names, by_name) for j, name in enumerate(result.layers)],
        provenance=readable(result.provenance, base),
        skipped=[(readable_path(os.fspath(s.path), base), s.reason) for s in result.skipped[:20]],
        skipped_more=max(len(result.skipped) - 20, 0), activations=activations_line(result),
        not_computed=not_computed(result), phases=phase_rows(result), notices=notices_of(result))


def not_computed(result: AuditResult) -> list[tuple[str, str]]:
    """The metrics the audit's plan left out, with why and how to ask for them (grouped by reason)."""
    left_out = (result.plan or {}).get("left_out") or {}
    grouped: dict[str, list[str]] = {}
    for name, why in left_out.items():
        grouped.setdefault(str(why), []).append(str(name))
    return [(", ".join(names), why) for why, names in grouped.items()]


def phase_rows(result: AuditResult) -> list[tuple[str, str]]:
    """The audit's seconds per phase, slowest first, as (phase, "1.23 s (45%)")."""
    phases = {k: float(v) for k, v in (result.phases or {}).items() if isinstance(v, (int, float))}
    total = sum(phases.values())
    return [(name, f"{s:.2f} s" + (f" ({100 * s / total:.0f}%)" if total > 0 else ""))
            for name, s in sorted(phases.items(), key=lambda kv: -kv[1])]


def _duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(int(round(seconds)), 60)
    return f"{minutes} min {rest:02d} s" if minutes < 60 else f"{minutes // 60} h {minutes % 60:02d} min"


def _comparisons(results: Sequence[AuditResult], metrics: dict[str, Metric]) -> list[ChartView]:
    """One chart per (layer, metric, params): the headline metrics always, plus every checked one."""

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
                iv = check.interval if check.interval is not None and check.interval.sided == "two-sided" \
                    else result.layers[layer].intervals.get(metric) if not check.params else None
                rows.append(svg.Row(result.name, check.value, control, check.min, check.max, check.passed,
                                    *_ends(iv)))
            elif metric in result.layers[layer].metrics and key == key_of(metric, layer, {}):
                rows.append(svg.Row(result.name, result.layers[layer].metrics[metric].value, control,
                                    err_low=_ends(result.layers[layer].intervals.get(metric))[0],
                                    err_high=_ends(result.layers[layer].intervals.get(metric))[1]))
        if not rows:
            continue
        label = metric + (f" ({params_label(dict(params))})" if params else "")
        title = f"{label} on layer '{layer}'"
        line = declared.chart_reference if declared is not None else None
        controlled = declared is not None and bool(declared.control)
        charts.append(ChartView(f"c{n}", title, _safe(svg.comparison_svg(
            rows, f"Comparison: {title}", label, reference=line.value if line else None,
            reference_label=line.label if line else "",
            control_label=f"{metrics[declared.control].headline or declared.control} (control)"
            if controlled and declared.control in metrics else "",
            scale=declared.chart_scale if declared is not None else "",
            integer=bool(declared.integer) if declared is not None else False))))
    return charts


def _ends(interval: Any) -> tuple[float | None, float | None]:
    """An interval's ends for an error bar, or (None, None) when it has none."""
    if interval is None or not getattr(interval, "has_interval", False):
        return None, None
    return float(interval.low), float(interval.high)


def _metric_tables(results: Sequence[AuditResult], views: list[ModelView], metric_names: list[str],
                   by_name: dict[str, Metric]) -> list[MetricTable]:
    tables: dict[str, MetricTable] = {}
    for result, view in zip(results, views):
        for name, layer in result.layers.items():
            if name not in tables:
                order = _metric_order(layer.metrics, metric_names)
                tables[name] = MetricTable(name, order, [_label_with_defaults(m, by_name.get(m)) for m in order])
    for result, view in zip(results, views):
        for name, table in tables.items():
            layer = result.layers.get(name)
            if layer is None:
                continue
            cells = [_value_cell(layer.metrics[m], layer.intervals.get(m)) if m in layer.metrics else Cell("—") for m in table.metrics]
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
                        "direction": {"higher": "higher is the robust models' side",
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


def _run_items(run_info: dict[str, Any]) -> list[tuple[str, str]]:
    from .provenance import readable_value

    base = str(run_info.get("invocation_dir", ""))
    # shown in their own sections (errors, change from a release, across releases, relation checks)
    hidden = {"errors", "checks_deselected", "checks_not_run", "comparison", "history", "relations"}
    return [(str(k).replace("_", " "), readable_value(v, "") if k == "invocation_dir" else
             (" ".join(map(str, v)) if isinstance(v, (list, tuple)) else readable_value(v, base)))
            for k, v in run_info.items() if k not in hidden and readable_value(v, base) != ""]


# --------------------------------------------------------------------------------------------
# the built-in sections (order: errors 5, failures 10, summary 20, comparison 30, models 40,
# plugin tables 70, glossary 80, run 90); an analysis to come registers its own the same way
# --------------------------------------------------------------------------------------------


def _errors_section(ctx: PageContext) -> list[PageSection]:
    if not ctx.failed_specs:
        return []
    return [PageSection("errors", "Audits that could not run", "sections/errors.html.j2", ctx.failed_specs, 5)]


def _failures_section(ctx: PageContext) -> list[PageSection]:
    failing = [m for m in ctx.models if m.failed_checks]
    if not failing:
        return []
    return [PageSection("failures", "Failures", "sections/failures.html.j2", failing, 10)]


def _summary_section(ctx: PageContext) -> list[PageSection]:
    if not ctx.models:
        return []
    ordered = sorted(ctx.models, key=lambda m: (_MODEL_RANK[m.status], m.index))
    return [PageSection("summary-section", "Summary", "sections/summary.html.j2", SummaryView(ordered), 20)]


def _comparison_section(ctx: PageContext) -> list[PageSection]:
    if not ctx.results:
        return []
    names = [m.name for m in ctx.metrics]
    charts = _comparisons(ctx.results, ctx.by_name) if len(ctx.results) > 1 else []
    view = ComparisonView(charts, _metric_tables(ctx.results, ctx.models, names, ctx.by_name), len(ctx.results) == 1)
    return [PageSection("comparison", "Comparison across models" if len(ctx.results) > 1 else "All metrics",
                        "sections/comparison.html.j2", view, 30)]


def _models_section(ctx: PageContext) -> list[PageSection]:
    if not ctx.models:
        return []
    return [PageSection("models", "Models", "sections/models.html.j2", ctx.models, 40)]


def _directions_section(ctx: PageContext) -> list[PageSection]:
    """Privileged directions and pruning (issue 16): per audit, the pruning curves and the importance spectrum."""
    figures = [{"key": f.key, "title": f.title, "svg": _safe(f.svg)} for f in direction_figures(ctx.results)]
    return [PageSection("directions", "Privileged directions and pruning", "sections/directions.html.j2",
                        figures, 35)] if figures else []


def _plugin_sections(ctx: PageContext) -> list[PageSection]:
    return [PageSection(f"plugin-{i}", s.title, "sections/table.html.j2",
                        TableView(s.text, [str(h) for h in s.headers],
                                  [[_section_cell(c) for c in row] for row in s.rows]), 70 + i / 1000)
            for i, s in enumerate(ctx.plugin_sections)]


def _glossary_section(ctx: PageContext) -> list[PageSection]:
    used = {m for r in ctx.results for layer in r.layers.values() for m in layer.metrics}
    return [PageSection("metrics-explained", "What these metrics mean", "sections/glossary.html.j2",
                        _glossary(ctx.metrics, used), 80)]


def _run_section(ctx: PageContext) -> list[PageSection]:
    items = _run_items(ctx.run_info)
    return [PageSection("run", "Run", "sections/run.html.j2", items, 90)] if items else []


for _name, _builder in (("errors", _errors_section), ("failures", _failures_section), ("summary", _summary_section),
                        ("comparison", _comparison_section), ("directions", _directions_section),
                        ("models", _models_section),
                        ("plugin-sections", _plugin_sections), ("glossary", _glossary_section),
                        ("run", _run_section)):
    register_section(_name, _builder)


def render_report(results: Iterable[AuditResult], metrics: Any = None, run_info: dict[str, Any] | None = None,
                  sections: Iterable[ReportSection] = (), errors: dict[Any, str] | None = None,
                  builders: Iterable[Any] = ()) -> str:
    """The report page for ``results``.

    ``metrics``: a metric registry or a list of :class:`~.metrics.Metric` (for the explanations);
    ``run_info``: the run's information (as in the JSON record; its ``errors`` list, if any, names
    specs that failed to run; ``checks_deselected``/``checks_not_run`` are said in the header);
    ``errors``: more failed specs, ``{spec_path: message}``; ``sections``: plugins' sections;
    ``builders``: more section builders for this page only (see :mod:`.sections`).  Returns the HTML.
    """
    import jinja2

    results = list(results)
    run_info = dict(run_info or {})
    base = str(run_info.get("invocation_dir", ""))
    failed_specs = [(readable_path(os.fspath(e.get("spec_path", "")), base), str(e.get("message", "")))
                    for e in run_info.get("errors", []) or [] if isinstance(e, dict)]
    failed_specs += [(readable_path(os.fspath(p), base), str(m)) for p, m in (errors or {}).items()]
    metric_objs = _metric_list(metrics)
    by_name = {m.name: m for m in metric_objs}
    metric_names = [m.name for m in metric_objs]
    views = [_model_view(r, i, metric_names, by_name, base) for i, r in enumerate(results)]
    # collected = audited + could not run; audited = passed + failed + inconclusive + without checks
    totals = {"models": len(results), "errors": len(failed_specs), "collected": len(results) + len(failed_specs),
              "none": sum(v.status == "none" for v in views),
              "pass": sum(v.status == "pass" for v in views), "fail": sum(v.status == "fail" for v in views),
              "inconclusive": sum(v.status == "inconclusive" for v in views),
              "checks_failed": sum(v.counts["fail"] for v in views),
              "checks_inconclusive": sum(v.counts["inconclusive"] for v in views),
              "checks": sum(sum(v.counts.values()) for v in views),
              "seconds": _duration(sum(r.seconds for r in results))}
    overall = "fail" if totals["fail"] or failed_specs else \
        ("inconclusive" if totals["inconclusive"] else "pass" if totals["pass"] else "none")
    overall = _relations.overall_with_relations(overall, run_info)   # a failed relation check fails the page
    context = PageContext(results, metric_objs, run_info, views, failed_specs, list(sections))
    page_sections = build_sections(context, builders)
    env = jinja2.Environment(loader=jinja2.PackageLoader("pytest_robustaudit.report", "templates"),
                             autoescape=True, undefined=jinja2.StrictUndefined,
                             trim_blocks=True, lstrip_blocks=True)
    env.filters["wbr"] = _wbr
    env.globals["MARK"] = MARK
    template = env.get_template(TEMPLATE)
    return template.render(
        sections=page_sections, models=views, totals=totals, overall=overall,
        interrupted=run_info.get("interrupted", False),
        left_out=left_out(int(run_info.get("checks_deselected", 0) or 0), int(run_info.get("checks_not_run", 0) or 0)),
        created=str(run_info.get("created", "")), version=str(run_info.get("robustaudit_version", "")),
    )


def write_report(html_text: str, path: os.PathLike | str) -> None:
    """Write the page atomically (parents created), so a browser never sees half a report."""
    from ..atomic import write_text_atomic

    write_text_atomic(path, html_text)
