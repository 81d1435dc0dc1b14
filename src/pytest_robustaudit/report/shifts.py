"""The report's shifts section: accuracy per shift, the effective-robustness scatter, the correlation panel.

Drawn from what the shift metrics put in their details (so a report rebuilt from a JSON record draws
the same figures): ``shift_accuracy``'s and ``corruption_accuracy``'s ``shifts`` (each set's accuracy,
count, classes, source) beside the clean top-1, and ``effective_robustness``'s clean and mean shifted
accuracy.  The scatter is in logit space (where standard ImageNet models lie on a line, Taori et al.
2020): the shipped mean-of-five baseline, imagenet-testbed's standard models as grey dots, and every
audit of the run.  With two or more audits, the correlation panel gives Spearman's rho between each
outlier metric and ER (:mod:`..metrics.relation`) beside a scatter of kurtosis against ER.  Inline SVG
in the style of :mod:`.svg`; registered as a page section (order 36).  Free of pytest and torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

from .sections import PageContext, PageSection, register_section
from .svg import (BLUE, GREY, LIGHT, ORANGE, TEXT_GAP, PointLabels, Scale, _n, _open, _placeholder, _x_axis, _y_axis, esc,
                  text_width, tick_label, x_tick_positions, y_axis_left)

#: accuracy ticks of the logit axes
LOGIT_TICKS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99)
#: the palette audits cycle through in the scatters
PALETTE = ("#2563eb", "#ea580c", "#16a34a", "#9333ea", "#dc2626", "#0891b2", "#ca8a04", "#db2777")


@dataclass
class ShiftTable:
    """One audit's accuracies per shift on one layer: rows of (shift, kind, accuracy, n, clean, drop, source)."""

    audit: str
    layer: str
    clean: float
    clean_source: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    er: float | None = None
    er_interval: str = ""
    er_method: str = ""


@dataclass
class ShiftsView:
    tables: list[ShiftTable]
    scatter: str = ""
    #: said under the scatter when an audit's ER is not its distance to the dashed mean-of-five line
    scatter_note: str = ""
    relations: list[dict[str, Any]] = field(default_factory=list)
    relation_scatter: str = ""
    note: str = ""
    pruning: list[dict[str, Any]] = field(default_factory=list)


def _logit(p: float) -> float:
    p = min(max(p, 1e-4), 1 - 1e-4)
    return math.log(p) - math.log1p(-p)


def _defined(value: Any) -> bool:
    return value is not None and not value.undefined_reason and math.isfinite(value.value)


def _fmt(x: Any) -> str:
    return "n/a" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:.3f}"


def shift_tables(results: Sequence[Any]) -> list[ShiftTable]:
    """Per audit and layer with a shift metric defined: its shifts, clean beside each."""
    tables = []
    for result in results:
        for name, layer in result.layers.items():
            natural = layer.metrics.get("shift_accuracy")
            corrupt = layer.metrics.get("corruption_accuracy")
            drop = layer.metrics.get("corruption_drop")
            found = [v for v in (natural, corrupt) if _defined(v)]
            if not found:
                continue
            clean = float(found[0].details.get("clean", math.nan))
            table = ShiftTable(result.name, name, clean, str(found[0].details.get("clean_source", "")))
            for value, kind_clean in ((natural, clean), (corrupt, drop.details.get("clean") if _defined(drop) else None)):
                if not _defined(value):
                    continue
                for shift, info in (value.details.get("shifts") or {}).items():
                    accuracy = float(info.get("accuracy", math.nan))
                    reference = kind_clean if kind_clean is not None else clean
                    n = f"{info['correct']}/{info['total']}" if "total" in info else "given"
                    classes = info.get("classes")
                    table.rows.append({"shift": shift, "kind": info.get("kind", ""), "set": info.get("set", ""),
                                       "accuracy": _fmt(accuracy), "n": n, "clean": _fmt(reference),
                                       "drop": _fmt(reference - accuracy),
                                       "classes": str(classes) if classes else "all",
                                       "source": info.get("source", "") or
                                       ("store" if info.get("from_store") else "extracted" if "total" in info else "")})
            er = layer.metrics.get("effective_robustness")
            if _defined(er):
                table.er, table.er_method = er.value, str(er.details.get("method", ""))
                interval = layer.intervals.get("effective_robustness") if layer.intervals else None
                if interval is not None and getattr(interval, "has_interval", False):
                    table.er_interval = f"[{interval.low:+.3f}, {interval.high:+.3f}] ({interval.level:.0%})"
            tables.append(table)
    return tables


def _testbed_points() -> list[tuple[float, float]]:
    """(ImageNet top-1, mean of the five shifts) of imagenet-testbed's standard models (shipped table)."""
    import csv

    from ..metrics.robustness import SHIFTS, shipped_accuracies_path

    points = []
    with open(shipped_accuracies_path(), newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(line for line in handle if not line.startswith("#")):
            if row.get("type") != "STANDARD" or not all(row.get(s) for s in SHIFTS):
                continue
            points.append((float(row["imagenet"]), sum(float(row[s]) for s in SHIFTS) / len(SHIFTS)))
    return points


def _logit_axes(out: list[str], xs: Scale, ys: Scale, left: float, right: float, top: float, bottom: float,
                x_label: str, y_label: str) -> None:
    x_ticks = []
    last_y = math.inf
    for p in LOGIT_TICKS:
        lx, ly = _logit(p), _logit(p)
        if xs.lo <= lx <= xs.hi:
            x = xs(lx)
            out.append(f'<line x1="{_n(x)}" x2="{_n(x)}" y1="{_n(top)}" y2="{_n(bottom)}" stroke="{LIGHT}"/>')
            x_ticks.append((x, tick_label(p)))
        if ys.lo <= ly <= ys.hi:
            y = ys(ly)
            out.append(f'<line x1="{_n(left)}" x2="{_n(right)}" y1="{_n(y)}" y2="{_n(y)}" stroke="{LIGHT}"/>')
            if last_y - y >= 13 + 1:   # a label only where it clears the one below (the grid line stays)
                out.append(f'<text x="{_n(left - 5)}" y="{_n(y + 3.5)}" text-anchor="end" fill="{GREY}">{esc(tick_label(p))}</text>')
                last_y = y
    for x, anchor, text in x_tick_positions(xs, x_ticks, right + 14):
        out.append(f'<text x="{_n(x)}" y="{_n(bottom + 13)}" text-anchor="{anchor}" fill="{GREY}">{esc(text)}</text>')
    out.append(f'<text x="{_n((left + right) / 2)}" y="{_n(bottom + 27)}" text-anchor="middle" fill="{GREY}">'
               f'{esc(x_label)}</text>')
    out.append(f'<text transform="translate(12 {_n((top + bottom) / 2)}) rotate(-90)" text-anchor="middle" '
               f'fill="{GREY}">{esc(y_label)}</text>')


def er_scatter_svg(points: Sequence[tuple[str, float, float]], title: str, width: int = 460, height: int = 320) -> str:
    """ImageNet accuracy (x) against mean shifted accuracy (y) on logit axes: the shipped mean-of-five
    baseline (dashed), imagenet-testbed's standard models (grey) and ``points`` (label, x, y), one colour each."""
    from ..metrics.robustness import MEAN5, shipped_baseline

    cls = "plot er-scatter"
    ours = [(label, x, y) for label, x, y in points if math.isfinite(x) and math.isfinite(y)]
    if not ours:
        return _placeholder(width, 60, title, cls, "no effective robustness to draw")
    testbed = _testbed_points()
    line = shipped_baseline(MEAN5)
    all_x = [_logit(x) for _, x, _ in ours] + [_logit(x) for x, _ in testbed]
    all_y = [_logit(y) for _, _, y in ours] + [_logit(y) for _, y in testbed]
    lo_x, hi_x = min(all_x) - 0.3, max(all_x) + 0.3
    lo_y, hi_y = min(all_y) - 0.3, max(all_y) + 0.3
    left, right, top, bottom = 56, width - 14, 24, height - 44
    xs, ys = Scale(lo_x, hi_x, left, right), Scale(lo_y, hi_y, bottom, top)
    out = _open(width, height, title, cls)
    _logit_axes(out, xs, ys, left, right, top, bottom, "ImageNet top-1 (logit axis)",
                "mean top-1 under shift (logit axis)")
    y0, y1 = line.b1 * lo_x + line.b0, line.b1 * hi_x + line.b0
    out.append(f'<line class="baseline" x1="{_n(xs(lo_x))}" y1="{_n(ys(y0))}" x2="{_n(xs(hi_x))}" y2="{_n(ys(y1))}" '
               f'stroke="{GREY}" stroke-dasharray="5 3"><title>baseline: logit(y) = {line.b1:.4f} logit(x) '
               f'{line.b0:+.4f} ({line.n_models} standard models)</title></line>')
    for x, y in testbed:
        out.append(f'<circle cx="{_n(xs(_logit(x)))}" cy="{_n(ys(_logit(y)))}" r="2" fill="{GREY}" fill-opacity="0.45"/>')
    caption = "grey: imagenet-testbed standard models; dashed: their line"
    labels = PointLabels((left, TEXT_GAP, width - TEXT_GAP, bottom))
    labels.reserve(left + 6, top, left + 6 + text_width(caption), top + 13)
    for i, (label, x, y) in enumerate(ours):
        colour = PALETTE[i % len(PALETTE)]
        cx, cy = xs(_logit(x)), ys(_logit(y))
        out.append(f'<circle class="audit" cx="{_n(cx)}" cy="{_n(cy)}" r="5" fill="{colour}"><title>{esc(label)}: '
                   f'ImageNet {x:.3f}, shifted {y:.3f}</title></circle>')
        labels.place(out, cx, cy, label, colour)
    out.append(f'<text x="{_n(left + 6)}" y="{_n(top + 10)}" fill="{GREY}">{esc(caption)}</text>')
    out.append("</svg>")
    return "".join(out)


def relation_scatter_svg(relation: Any, title: str, width: int = 420, height: int = 280) -> str:
    """An outlier metric (x, log axis when positive and spanning a decade) against ER (y), one dot per audit."""
    cls = "plot relation-scatter"
    if len(relation.x) < 2:
        return _placeholder(width, 60, title, cls, "fewer than 2 audits with both values")
    left, right, top, bottom = 56, width - 14, 24, height - 44
    xs_values = [float(v) for v in relation.x]
    log = min(xs_values) > 0 and max(xs_values) / min(xs_values) > 10
    lo_x, hi_x = (min(xs_values) / 1.5, max(xs_values) * 1.5) if log else \
        (min(xs_values) - 0.1 * (abs(min(xs_values)) or 1), max(xs_values) + 0.1 * (abs(max(xs_values)) or 1))
    lo_y, hi_y = min(relation.y), max(relation.y)
    pad = (hi_y - lo_y) * 0.1 or 0.05
    ys = Scale(lo_y - pad, hi_y + pad, bottom, top)
    left = y_axis_left(ys, left)
    xs = Scale(lo_x, hi_x, left, right, log=log)
    out = _open(width, height, title, cls)
    _y_axis(out, ys, left, right, "effective robustness")
    _x_axis(out, xs, top, bottom, relation.metric + (" (log)" if log else ""), width=width)
    labels = PointLabels((left, TEXT_GAP, width - TEXT_GAP, bottom))
    for i, (label, x, y) in enumerate(zip(relation.models, relation.x, relation.y)):
        colour = PALETTE[i % len(PALETTE)]
        out.append(f'<circle cx="{_n(xs(x))}" cy="{_n(ys(y))}" r="5" fill="{colour}"><title>{esc(label)}: '
                   f'{relation.metric} {x:.4g}, ER {y:+.3f}</title></circle>')
        labels.place(out, xs(x), ys(y), label, colour)
    out.append("</svg>")
    return "".join(out)


def _relation_row(relation: Any) -> dict[str, Any]:
    s = relation.spearman
    rho = "n/a" if s.rho is None else f"{s.rho:+.2f}"
    interval = f"[{s.low:+.2f}, {s.high:+.2f}]" if s.low is not None and s.high is not None else "n/a"
    return {"metric": relation.metric, "rho": rho, "interval": interval, "n": s.n, "level": f"{s.level:.0%}",
            "why": s.reason, "left_out": "; ".join(relation.left_out)}


def shift_pruning_figures(results: Sequence[Any]) -> list[dict[str, Any]]:
    """Per audit, layer and measured natural shift: the head's pruning curve on that set (importance
    ranking from the probe), the unpruned top-1 on the set dashed."""
    from .directions import pruning_curve_svg

    figures = []
    for i, result in enumerate(results):
        for j, (name, layer) in enumerate(result.layers.items()):
            value = layer.metrics.get("shift_accuracy")
            curves = (value.details or {}).get("pruning") if _defined(value) else None
            for k, (shift, curve) in enumerate((curves or {}).items()):
                title = f"{result.name}: pruning curve on {shift}, layer '{name}'"
                figures.append({"key": f"shift-prune-{i}-{j}-{k}", "title": title,
                                "svg": pruning_curve_svg(curve, f"Pruning curve on {shift}: {result.name}",
                                                         curve.get("unpruned"))})
    return figures


def shifts_view(results: Sequence[Any]) -> ShiftsView | None:
    """The section's data, or None when no audit of the run has a shift metric."""
    from ..metrics.relation import outlier_robustness_correlation, relations
    from ..metrics.robustness import SPEARMAN_METHOD

    tables = shift_tables(results)
    if not tables:
        return None
    points = [(f"{t.audit}" + (f" ({t.layer})" if t.layer != "representation" else ""), t.clean,
               _er_shifted(results, t)) for t in tables if t.er is not None]
    view = ShiftsView(tables, scatter=er_scatter_svg(points, "Effective robustness: ImageNet vs shifted accuracy")
                      if points else "", pruning=shift_pruning_figures(results))
    averaged = [t.audit for t in tables if t.er is not None and t.er_method.startswith("each shift")]
    if averaged:
        view.scatter_note = (f"The dashed line is the mean-of-five baseline. {', '.join(dict.fromkeys(averaged))}: "
                             "fewer than the five standard sets, so the ER in the table compares each set with "
                             "its own baseline and averages; it is not the point's height above this line.")
    if len(results) >= 2 and points:
        found = relations(results)
        view.relations = [_relation_row(r) for r in found]
        kurtosis = outlier_robustness_correlation(results, "kurtosis_mean")
        view.relation_scatter = relation_scatter_svg(kurtosis, "kurtosis_mean vs effective robustness")
        view.note = (f"Spearman's rank correlation across the run's audits; interval: {SPEARMAN_METHOD}. "
                     "With a handful of models it is wide: that is the honest answer.")
    return view


def _er_shifted(results: Sequence[Any], table: ShiftTable) -> float:
    for result in results:
        if result.name == table.audit:
            er = result.layers[table.layer].metrics.get("effective_robustness")
            return float(er.details.get("shift_accuracy", math.nan)) if _defined(er) else math.nan
    return math.nan


def _shifts_section(ctx: PageContext) -> list[PageSection]:
    """Shifted sets and effective robustness (issue 17)."""
    from markupsafe import Markup as _safe   # our own SVG: already escaped where it holds text

    view = shifts_view(ctx.results)
    if view is None:
        return []
    view.scatter = _safe(view.scatter) if view.scatter else ""
    view.relation_scatter = _safe(view.relation_scatter) if view.relation_scatter else ""
    for figure in view.pruning:
        figure["svg"] = _safe(figure["svg"])
    return [PageSection("shifts", "Shifted sets and effective robustness", "sections/shifts.html.j2", view, 36)]


register_section("shifts", _shifts_section)
