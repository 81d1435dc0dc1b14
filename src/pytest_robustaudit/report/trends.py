"""The report's trend section: each checked metric of each audit across the kept releases.

Why: a release is judged against the ones before it, and a slow drift that no single comparison
flags shows on a line.  The series come from the release history (``run.history.series``, written by
``--audit-history``): the newest kept runs in order, each point with its interval (drawn as a band),
coloured by its verdict, the current run ringed, the check's bounds as red lines.  Readable at 30
releases and 420 px: the x labels are thinned to those that fit (the first, the last and evenly
between), shortened, never rotated, and the SVG scales with its box.  Free of pytest.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

from . import svg
from .sections import PageContext, PageSection, register_section

WIDTH, HEIGHT = 560, 230
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 30, 52
#: the longest x label drawn, in characters (a long tag is shortened with an ellipsis; its full text is
#: the point's tooltip)
LABEL_CHARS = 12
_STATUS_COLOUR = {"pass": svg.GREEN, "fail": svg.RED, "inconclusive": svg.ORANGE}


def _finite(x: Any) -> bool:
    """A number a chart can place (a hand-edited 1e308 would overflow the scale's arithmetic)."""
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) and abs(x) < 1e150


def _short(label: str) -> str:
    return label if len(label) <= LABEL_CHARS else label[:LABEL_CHARS - 1] + "…"


def label_spans(xs: Sequence[float], chars: Sequence[int], width: float) -> list[tuple[float, float, str, float]]:
    """Each x label's drawn extent ``(left, right, anchor, x)``: centred under its point, or anchored at its
    start or end where centring would run past the chart's edge."""
    spans = []
    for x, n in zip(xs, chars):
        half = n * svg.CHAR_W / 2
        if x - half < 2:
            spans.append((2.0, 2.0 + 2 * half, "start", 2.0))
        elif x + half > width - 2:
            spans.append((width - 2 - 2 * half, width - 2.0, "end", width - 2.0))
        else:
            spans.append((x - half, x + half, "middle", x))
    return spans


def shown_labels(spans: Sequence[tuple[float, float, str, float]], gap: float = 8.0) -> list[int]:
    """Which labels to draw so that no two touch: the last (the current run) always, then, going left,
    each one that ends at least ``gap`` px before the last one drawn."""
    picked: list[int] = []
    for i in range(len(spans) - 1, -1, -1):
        if not picked or spans[i][1] + gap <= spans[picked[-1]][0]:
            picked.append(i)
    return sorted(picked)


def trend_svg(series: dict[str, Any], title: str, width: int = WIDTH, height: int = HEIGHT) -> str:
    """One checked metric across the kept runs (see the module docstring)."""
    cls = "plot trend-plot"
    points = [p for p in series.get("points", []) if isinstance(p, dict)]
    values = [v for p in points for v in (p.get("value"), p.get("low"), p.get("high")) if _finite(v)]
    bounds = [b for b in (series.get("min"), series.get("max")) if _finite(b)]
    if not values:
        return svg._placeholder(width, 60, title, cls, "no defined value in the kept runs")
    lo, hi = min(values + bounds), max(values + bounds)
    pad = (hi - lo) * 0.08 or (abs(hi) * 0.1 or 1.0)
    ys = svg.Scale(lo - pad, hi + pad, height - BOTTOM, TOP)
    n = len(points)
    x0, x1 = LEFT + 10, width - RIGHT - 10
    xs = (lambda i: (x0 + x1) / 2) if n == 1 else (lambda i: x0 + (x1 - x0) * i / (n - 1))
    out = svg._open(width, height, title, cls)
    svg._y_axis(out, ys, LEFT, width - RIGHT, str(series.get("metric", "")))
    # the interval band: one polygon along the points that have both ends
    upper = [(xs(i), ys(p["high"])) for i, p in enumerate(points) if _finite(p.get("low")) and _finite(p.get("high"))]
    lower = [(xs(i), ys(p["low"])) for i, p in enumerate(points) if _finite(p.get("low")) and _finite(p.get("high"))]
    if len(upper) >= 2:
        ring = upper + lower[::-1]
        out.append(f'<polygon class="band" points="{" ".join(f"{svg._n(x)},{svg._n(y)}" for x, y in ring)}" '
                   f'fill="{svg.BLUE}" fill-opacity="0.12" stroke="none"/>')
    for bound in bounds:
        y = ys(bound)
        out.append(f'<line class="bound" x1="{LEFT}" x2="{width - RIGHT}" y1="{svg._n(y)}" y2="{svg._n(y)}" '
                   f'stroke="{svg.RED}" stroke-dasharray="5 3"/>')
    line = [(xs(i), ys(p["value"])) for i, p in enumerate(points) if _finite(p.get("value"))]
    if len(line) >= 2:
        out.append(f'<polyline points="{" ".join(f"{svg._n(x)},{svg._n(y)}" for x, y in line)}" fill="none" '
                   f'stroke="{svg.GREY}" stroke-width="1.2"/>')
    for i, p in enumerate(points):
        x = xs(i)
        tip = f"{p.get('label', '')} ({p.get('created', '')}): {p.get('value')}"
        if _finite(p.get("low")) and _finite(p.get("high")):
            tip += f" [{p['low']:.4g}, {p['high']:.4g}]"
            out.append(f'<line class="error-bar" x1="{svg._n(x)}" x2="{svg._n(x)}" y1="{svg._n(ys(p["low"]))}" '
                       f'y2="{svg._n(ys(p["high"]))}" stroke="{svg.GREY}" stroke-width="1"/>')
        if not _finite(p.get("value")):
            continue
        colour = _STATUS_COLOUR.get(str(p.get("status")), svg.BLUE)
        y = ys(p["value"])
        if p.get("current"):
            out.append(f'<circle class="current" cx="{svg._n(x)}" cy="{svg._n(y)}" r="7.5" fill="none" '
                       f'stroke="{svg.GREY}" stroke-width="1.5"/>')
        out.append(f'<circle class="value" cx="{svg._n(x)}" cy="{svg._n(y)}" r="4" fill="{colour}">'
                   f'<title>{svg.esc(tip)}</title></circle>')
    labels = [_short(str(p.get("label", ""))) for p in points]
    spans = label_spans([xs(i) for i in range(n)], [len(text) for text in labels], width)
    for i in shown_labels(spans):
        weight = ' font-weight="bold"' if points[i].get("current") else ""
        _, _, anchor, x = spans[i]
        out.append(f'<text class="x-label" x="{svg._n(x)}" y="{height - BOTTOM + 16}" text-anchor="{anchor}" '
                   f'fill="{svg.GREY}"{weight}>{svg.esc(labels[i])}</text>')
    legend = f"{n} kept run{'s' if n != 1 else ''}, oldest left; ring: this run"
    if bounds:
        legend += "; red: the bound"
    out.append(f'<text x="{LEFT}" y="{height - 12}" fill="{svg.GREY}">{svg.esc(legend)}</text>')
    out.append("</svg>")
    return "".join(out)


@dataclass
class TrendFigure:
    key: str
    title: str
    svg: Any


def trend_figures(run_info: dict[str, Any]) -> list[TrendFigure]:
    from markupsafe import Markup

    history = run_info.get("history")
    if not isinstance(history, dict):
        return []
    out = []
    found = history.get("series")
    for i, series in enumerate(found if isinstance(found, list) else []):
        if not isinstance(series, dict) or not isinstance(series.get("points"), list):
            continue
        params = series.get("params") if isinstance(series.get("params"), dict) else {}
        label = ", ".join(f"{k}={v}" for k, v in params.items())
        metric = f"{series.get('metric', '')}" + (f" ({label})" if label else "")
        title = f"{series.get('audit', '')} · {metric} · {series.get('layer', '')}"
        try:
            drawn = trend_svg(series, title)
        except (ValueError, TypeError, ArithmeticError):       # a hand-edited record's series
            drawn = svg._placeholder(WIDTH, 60, title, "plot trend-plot", "this series cannot be drawn")
        out.append(TrendFigure(f"trend-{i}", title, Markup(drawn)))
    return out


def _trends_section(ctx: PageContext) -> list[PageSection]:
    figures = trend_figures(ctx.run_info)
    if not figures:
        return []
    return [PageSection("trends", "Across releases", "sections/trends.html.j2", figures, 26)]


register_section("trends", _trends_section)
