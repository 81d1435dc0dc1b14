"""The report's privileged-directions section: a pruning curve and an importance spectrum per audit.

Drawn from what the direction metrics put in their details (so a report rebuilt from a JSON record
draws the same figures): ``prunable_fraction``'s ``curve`` (top-1 at each grid p, ranked by
importance and by singular value) and ``importance_top_share``'s ``importance`` (sorted, largest
first) with the directions that sit on the layer's outlier features marked.  Inline SVG in the
style of :mod:`.svg`; the cross-model comparison of these metrics is the page's comparison charts
(their headline declarations).  Free of pytest and torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from .svg import BLUE, GREY, ORANGE, RED, Scale, _log_range, _n, _open, _placeholder, _x_axis, _y_axis, esc, y_axis_left


@dataclass(frozen=True)
class DirectionFigure:
    key: str
    title: str
    svg: str


def pruning_curve_svg(curve: dict[str, Any], title: str, unpruned: float | None = None,
                      width: int = 380, height: int = 240) -> str:
    """Top-1 against the pruned fraction p, one line per ranking (importance, singular value)."""
    cls = "plot pruning-plot"
    grid = [float(p) for p in curve.get("grid", [])]
    lines = [(name, curve.get(name) or [], colour) for name, colour in
             (("importance", BLUE), ("singular_value", ORANGE))]
    values = [v for _, ys, _ in lines for v in ys if v is not None and math.isfinite(v)]
    if not grid or not values:
        return _placeholder(width, 60, title, cls, "no pruning curve")
    right, top, bottom = width - 12, 24, height - 40
    ys = Scale(0.0, max(1e-9, max(values)) * 1.05, bottom, top)
    left = y_axis_left(ys, 46)
    xs = Scale(0.0, 1.0, left, right)
    out = _open(width, height, title, cls)
    _y_axis(out, ys, left, right, "top-1 accuracy")
    _x_axis(out, xs, top, bottom, "fraction of head directions pruned (p)", width=width)
    if unpruned is not None and math.isfinite(unpruned):
        out.append(f'<line x1="{_n(left)}" x2="{_n(right)}" y1="{_n(ys(unpruned))}" y2="{_n(ys(unpruned))}" '
                   f'stroke="{GREY}" stroke-dasharray="4 3"/>')
    for i, (name, series, colour) in enumerate(lines):
        points = [(xs(p), ys(v)) for p, v in zip(grid, series) if v is not None and math.isfinite(v)]
        if not points:
            continue
        path = " ".join(f"{_n(x)},{_n(y)}" for x, y in points)
        out.append(f'<polyline class="curve-{esc(name)}" points="{path}" fill="none" stroke="{colour}" stroke-width="1.8"/>')
        for (x, y), p, v in zip(points, grid, series):
            out.append(f'<circle cx="{_n(x)}" cy="{_n(y)}" r="2.6" fill="{colour}"><title>{esc(name)} p={p:g}: '
                       f'{v:.4g}</title></circle>')
        label = "ranked by importance" if name == "importance" else "ranked by singular value"
        out.append(f'<text x="{_n(left + 8)}" y="{_n(bottom - 10 - 14 * i)}" fill="{colour}">{esc(label)}</text>')
    out.append("</svg>")
    return "".join(out)


def importance_spectrum_svg(importance: Sequence[float], marked: Sequence[int], title: str,
                            width: int = 380, height: int = 240) -> str:
    """Direction importance by rank (log scale), directions on the outlier features in red."""
    cls = "plot importance-plot"
    values = np.asarray(importance, dtype=np.float64)
    if values.size == 0 or not np.isfinite(values).any():
        return _placeholder(width, 60, title, cls, "no importance")
    right, top, bottom = width - 12, 24, height - 40
    lo, hi = _log_range(values)
    ys = Scale(lo, hi, bottom, top, log=True)
    left = y_axis_left(ys, 52)
    xs = Scale(1.0, max(2.0, float(values.size)), left, right, log=values.size > 20)
    out = _open(width, height, title, cls)
    _y_axis(out, ys, left, right, "importance I_k")
    _x_axis(out, xs, top, bottom, "direction rank (by importance)", width=width)
    step = max(1, values.size // 400)   # at most ~400 dots; marked ones always drawn
    hot = set(int(i) for i in marked)
    for k in range(values.size):
        if (k % step and k not in hot) or not values[k] > 0:
            continue
        colour, r = (RED, 3.2) if k in hot else (BLUE, 1.8)
        out.append(f'<circle cx="{_n(xs(k + 1.0))}" cy="{_n(ys(values[k]))}" r="{r}" fill="{colour}"/>')
    if hot:
        out.append(f'<text x="{_n(right - 4)}" y="{_n(top + 10)}" text-anchor="end" fill="{RED}">'
                   f'{len(hot)} on outlier features</text>')
    out.append("</svg>")
    return "".join(out)


def direction_figures(results: Sequence[Any]) -> list[DirectionFigure]:
    """Per audit and layer with direction metrics: its pruning curve and importance spectrum."""
    figures: list[DirectionFigure] = []
    for i, result in enumerate(results):
        for j, (name, layer) in enumerate(result.layers.items()):
            prunable = layer.metrics.get("prunable_fraction")
            share = layer.metrics.get("importance_top_share")
            curve = (prunable.details or {}).get("curve") if prunable is not None else None
            if curve:
                figures.append(DirectionFigure(
                    f"prune-{i}-{j}", f"{result.name}: pruning curve, layer '{name}'",
                    pruning_curve_svg(curve, f"Pruning curve: {result.name}, {name}",
                                      (prunable.details or {}).get("unpruned"))))
            details = share.details if share is not None else None
            if details and details.get("importance"):
                figures.append(DirectionFigure(
                    f"importance-{i}-{j}", f"{result.name}: importance spectrum, layer '{name}'",
                    importance_spectrum_svg(details["importance"], details.get("outlier_directions", []),
                                            f"Importance spectrum: {result.name}, {name}")))
    return figures
