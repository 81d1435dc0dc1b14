"""Small inline-SVG plots for the HTML report, built from numpy arrays (no plotting library, no JS).

Each function returns one ``<svg>`` element as a string.  Every piece of text placed in it goes
through :func:`esc`, so a model name containing markup cannot break out: the report may mark
these strings safe.  Long arrays are downsampled to a bounded number of points
(:data:`PROFILE_POINTS`), so a report of many models × layers stays small.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np


BLUE = "#2563eb"
ORANGE = "#ea580c"
RED = "#dc2626"
GREEN = "#16a34a"
GREY = "#6b7280"
LIGHT = "#e5e7eb"

#: at most this many points of a sorted activation profile are drawn (plus the outliers, ≤ 64)
PROFILE_POINTS = 160
MAX_MARKED_OUTLIERS = 64


def esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def _n(x: float) -> str:
    """A coordinate with one decimal, no trailing zeros (keeps the SVG small)."""
    s = f"{x:.1f}"
    return s[:-2] if s.endswith(".0") else s


def tick_label(v: float) -> str:
    if v == 0:
        return "0"
    a = abs(v)
    if 1e-3 <= a < 1e5:
        text = f"{v:.4g}"
        return f"{v:.0f}" if "e" in text else text   # 10000, not 1e+04
    exp = int(math.floor(math.log10(a) + 1e-9))
    mant = v / 10 ** exp
    return f"1e{exp}" if abs(mant - 1) < 1e-9 else f"{mant:.2g}e{exp}"


@dataclass
class Scale:
    """Maps data values in [lo, hi] to pixels [p0, p1], linearly or in log10."""

    lo: float
    hi: float
    p0: float
    p1: float
    log: bool = False

    def __call__(self, v: float) -> float:
        if self.log:
            v = math.log10(max(v, self.lo))
            lo, hi = math.log10(self.lo), math.log10(self.hi)
        else:
            lo, hi = self.lo, self.hi
        t = 0.5 if hi == lo else (v - lo) / (hi - lo)
        t = min(max(t, -0.02), 1.02)
        return self.p0 + t * (self.p1 - self.p0)

    def ticks(self, most: int = 6, integer: bool = False) -> list[float]:
        """Tick values: each decade on a log scale (every other one past ``most`` decades, 1-2-5
        marks within one decade); round steps on a linear one, whole numbers only if ``integer``."""
        if self.log:
            e0, e1 = math.floor(math.log10(self.lo) + 1e-9), math.ceil(math.log10(self.hi) - 1e-9)
            step = max(1, math.ceil((e1 - e0 + 1) / most))
            ticks = [10.0 ** e for e in range(e0, e1 + 1, step) if self.lo * 0.999 <= 10.0 ** e <= self.hi * 1.001]
            if len(ticks) < 3:  # about a decade or less: add 2× and 5× marks
                ticks = sorted({m * 10.0 ** e for e in range(e0 - 1, e1 + 1) for m in (1, 2, 5)
                                if self.lo * 0.999 <= m * 10.0 ** e <= self.hi * 1.001})
            return ticks
        span = self.hi - self.lo
        if span <= 0:
            return [self.lo]
        raw = span / max(most - 1, 1)
        mag = 10 ** math.floor(math.log10(raw))
        step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
        if integer:
            step = max(1, math.ceil(step))
            step = next(m for m in (1, 2, 5, 10, 20, 25, 50, 100, step) if m >= step)
        first = math.ceil(self.lo / step - 1e-9) * step
        out, v = [], first
        while v <= self.hi + 1e-9 * step:
            out.append(0.0 if abs(v) < 1e-12 * step else v)
            v += step
        return out


def _decade_range(values: np.ndarray, floor: float | None = None) -> tuple[float, float]:
    """A log axis from the decade below the smallest positive value to the decade above the largest
    (at least one decade): the same axis for the same kind of values, run after run."""
    pos = values[np.isfinite(values) & (values > 0)]
    if pos.size == 0:
        return (floor or 0.1), (floor or 0.1) * 100
    lo = 10.0 ** math.floor(math.log10(float(pos.min())) + 1e-9)
    hi = 10.0 ** math.ceil(math.log10(float(pos.max())) - 1e-9)
    if floor is not None:
        lo = max(lo, floor) if float(pos.min()) >= floor else lo
    return lo, max(hi, lo * 10)


def _log_range(values: np.ndarray, pad: float = 1.3) -> tuple[float, float]:
    pos = values[np.isfinite(values) & (values > 0)]
    if pos.size == 0:
        return 0.1, 10.0
    lo, hi = float(pos.min()) / pad, float(pos.max()) * pad
    if hi / lo < 10:
        mid = math.sqrt(lo * hi)
        lo, hi = mid / math.sqrt(10), mid * math.sqrt(10)
    return lo, hi


def _open(width: int, height: int, title: str, cls: str) -> list[str]:
    return [f'<svg class="{esc(cls)}" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
            f'width="{width}" height="{height}" role="img" aria-label="{esc(title)}" font-size="11">',
            f"<title>{esc(title)}</title>"]


#: approximate width of a character of the plots' 11 px sans-serif text (for layout, never for clipping)
CHAR_W = 6.4
#: where the rotated y-axis title's baseline stands, and how far its glyphs reach right of it (descent)
Y_TITLE_X, Y_TITLE_DESCENT = 12, 4
#: the least gap (px) kept between two texts laid out side by side, and between a text and the SVG's edge
TEXT_GAP = 3


def text_width(text: str, size: float = 11) -> float:
    """A generous estimate of ``text``'s width in px at ``size`` px (DejaVu Sans, the widest common
    sans-serif: digits 0.64 em), so a layout that fits the estimate fits the rendered text."""
    narrow, wide = ".,:;!|'()[]{} ilj", "mwMW@%"
    em = sum(0.33 if c in narrow else 0.92 if c in wide else 0.72 if c.isupper() else 0.64 for c in str(text))
    return em * size


def fit_text(text: str, room: float, size: float = 11) -> str:
    """``text``, cut at its end with ``…`` so that it fits ``room`` px (the full text goes in a ``<title>``)."""
    text = str(text)
    if text_width(text, size) <= room:
        return text
    while text and text_width(text + "…", size) > room:
        text = text[:-1]
    return text.rstrip() + "…"


def _titled(text: str, shown: str) -> str:
    """An SVG text's content: ``shown``, with the full ``text`` as a tooltip when it was cut."""
    return esc(shown) if shown == text else f"<title>{esc(text)}</title>{esc(shown)}"


def y_axis_left(scale: Scale, minimum: float, integer: bool = False) -> float:
    """The left margin a plot needs for :func:`_y_axis`: the rotated title, a gap, the widest tick label
    and 5 px to the axis; at least ``minimum``.  A plot computes its y scale first, then its left edge
    from it, so a long tick label ("0.004", "1e-05") never runs into the axis title."""
    labels = [tick_label(t) for t in scale.ticks(7, integer=integer) if not integer or t == int(t)]
    widest = max((text_width(label) for label in labels), default=0.0)
    return max(float(minimum), math.ceil(Y_TITLE_X + Y_TITLE_DESCENT + TEXT_GAP + widest + 5))


def _y_axis(out: list[str], scale: Scale, x0: float, x1: float, label: str, integer: bool = False) -> None:
    """Grid lines and tick labels (right-aligned at ``x0 - 5``), and the rotated axis title at the
    far left, clear of the widest tick label when ``x0`` came from :func:`y_axis_left`; the title is
    cut to the plot's height."""
    for t in scale.ticks(7, integer=integer):
        if integer and t != int(t):
            continue
        y = scale(t)
        out.append(f'<line x1="{_n(x0)}" x2="{_n(x1)}" y1="{_n(y)}" y2="{_n(y)}" stroke="{LIGHT}"/>')
        out.append(f'<text x="{_n(x0 - 5)}" y="{_n(y + 3.5)}" text-anchor="end" fill="{GREY}">{esc(tick_label(t))}</text>')
    mid = (scale.p0 + scale.p1) / 2
    shown = fit_text(label, abs(scale.p0 - scale.p1) + 20)
    out.append(f'<text transform="translate({Y_TITLE_X} {_n(mid)}) rotate(-90)" text-anchor="middle" fill="{GREY}">'
               f'{_titled(label, shown)}</text>')


def x_tick_positions(scale: Scale, ticks: Sequence[tuple[float, str]], width: float) -> list[tuple[float, str, str]]:
    """Where each x tick label goes: ``(x, anchor, text)``, centred on its tick, but moved inside the SVG
    (``width`` px) where it would run past an edge, and thinned to every second, third, ... tick until
    no two labels (as wide as :func:`text_width` says) come closer than :data:`TEXT_GAP`."""
    ticks = list(ticks)
    for step in range(1, max(len(ticks), 1) + 1):
        kept = list(range(0, len(ticks), step))
        placed = []
        for i in kept:
            x, text = ticks[i]
            w = text_width(text)
            lo = min(max(x - w / 2, TEXT_GAP), width - TEXT_GAP - w)
            placed.append((lo, lo + w, text))
        if all(b[0] - a[1] >= TEXT_GAP for a, b in zip(placed, placed[1:])):
            return [((lo + hi) / 2, "middle", text) for lo, hi, text in placed]
    return []


def _x_axis(out: list[str], scale: Scale, y0: float, y1: float, label: str, integer: bool = False,
            width: float | None = None) -> None:
    """Grid lines at every tick, tick labels where they fit (:func:`x_tick_positions`, inside ``width``:
    the SVG's width, default the plot's right edge plus 10 px), and the axis title under them, cut to
    the width."""
    width = scale.p1 + 10 if width is None else width
    ticks = [(scale(t), tick_label(t)) for t in scale.ticks(6, integer=integer)]
    for x, _ in ticks:
        out.append(f'<line x1="{_n(x)}" x2="{_n(x)}" y1="{_n(y0)}" y2="{_n(y1)}" stroke="{LIGHT}"/>')
    for x, anchor, text in x_tick_positions(scale, ticks, width):
        out.append(f'<text x="{_n(x)}" y="{_n(y1 + 13)}" text-anchor="{anchor}" fill="{GREY}">{esc(text)}</text>')
    room = width - 2 * TEXT_GAP
    shown = fit_text(label, room)
    centre = min(max((scale.p0 + scale.p1) / 2, TEXT_GAP + text_width(shown) / 2), width - TEXT_GAP - text_width(shown) / 2)
    out.append(f'<text x="{_n(centre)}" y="{_n(y1 + 27)}" text-anchor="middle" fill="{GREY}">'
               f'{_titled(label, shown)}</text>')


class PointLabels:
    """The labels of a scatter's points, placed so that none overlaps another (or a text reserved with
    :meth:`reserve`) and none leaves ``bounds`` (x0, y0, x1, y1: the room free of axes and ticks).  Each
    label tries beside its point, right then left, above then below, whole before cut with ``…``; a
    label with no room anywhere is left out (the point keeps its name as a tooltip, the tables list it)."""

    #: an 11 px text's box around its baseline: 10 px above, 3 px below
    ASCENT, DESCENT = 10.0, 3.0

    def __init__(self, bounds: tuple[float, float, float, float]):
        self.bounds = bounds
        self.taken: list[tuple[float, float, float, float]] = []

    def reserve(self, x0: float, y0: float, x1: float, y1: float) -> None:
        self.taken.append((x0, y0, x1, y1))

    def _free(self, box: tuple[float, float, float, float]) -> bool:
        bx0, by0, bx1, by1 = self.bounds
        x0, y0, x1, y1 = box
        if x0 < bx0 or x1 > bx1 or y0 < by0 or y1 > by1:
            return False
        return all(x1 + TEXT_GAP <= a0 or a1 + TEXT_GAP <= x0 or y1 + 1 <= b0 or b1 + 1 <= y0
                   for a0, b0, a1, b1 in self.taken)

    def place(self, out: list[str], cx: float, cy: float, label: str, colour: str) -> bool:
        """Write ``label`` beside the point (cx, cy); False when it had no room."""
        spots = [(side, dy) for dy in (-6.0, 15.0) for side in (1, -1)]
        for whole in (True, False):
            for side, dy in spots:
                x = cx + 7 * side
                room = (self.bounds[2] - x) if side > 0 else (x - self.bounds[0])
                shown = label if whole else fit_text(label, room)
                if not whole and (shown == label or len(shown) < 4):
                    continue
                w = text_width(shown)
                box = (x, cy + dy - self.ASCENT, x + w, cy + dy + self.DESCENT) if side > 0 else \
                    (x - w, cy + dy - self.ASCENT, x, cy + dy + self.DESCENT)
                if self._free(box):
                    self.taken.append(box)
                    anchor = "start" if side > 0 else "end"
                    out.append(f'<text x="{_n(x)}" y="{_n(cy + dy)}" text-anchor="{anchor}" fill="{colour}">'
                               f'{_titled(label, shown)}</text>')
                    return True
        return False


def _reference_line(out: list[str], x: float, y0: float, y1: float, label: str, label_y: float,
                    room: float, right: float) -> None:
    """A dashed vertical line at ``x`` with its label beside it, on the left when it would run past
    ``right`` (less than ``room`` pixels left)."""
    out.append(f'<line x1="{_n(x)}" x2="{_n(x)}" y1="{y0}" y2="{y1}" stroke="{GREY}" stroke-dasharray="4 3"/>')
    anchor, tx = ("end", x - 3) if x > right - room else ("start", x + 3)
    out.append(f'<text x="{_n(tx)}" y="{label_y}" text-anchor="{anchor}" fill="{GREY}">{esc(label)}</text>')


def _placeholder(width: int, height: int, title: str, cls: str, message: str) -> str:
    out = _open(width, height, title, cls)
    out.append(f'<rect x="0.5" y="0.5" width="{width - 1}" height="{height - 1}" fill="none" stroke="{LIGHT}"/>')
    out.append(f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle" fill="{GREY}">{esc(message)}</text>')
    out.append("</svg>")
    return "".join(out)


def profile_ranks(d: int, n_keep: int, points: int = PROFILE_POINTS) -> np.ndarray:
    """0-based ranks of a sorted profile to draw: the first ``n_keep`` (≥ 32), then log-spaced to the end."""
    head = min(d, max(32, n_keep))
    if d <= points:
        return np.arange(d)
    tail = np.unique(np.round(np.geomspace(head + 1, d, num=max(points - head, 2))).astype(int) - 1)
    return np.unique(np.concatenate([np.arange(head), tail, [d - 1]]))


def profile_svg(profile: np.ndarray, factor: float, title: str, width: int = 380, height: int = 230,
                eps: float = float(np.finfo(np.float32).eps)) -> str:
    """Features sorted by mean |activation| (log-log), outliers (m > factor × s, s the mean of the
    live non-outlier features: the metric's reference scale) in red, with s and the outlier
    threshold as dashed lines."""
    from ..metrics.outliers import reference_scale

    cls = "plot profile-plot"
    profile = np.asarray(profile, dtype=np.float64)
    finite = profile[np.isfinite(profile)]
    if finite.size == 0:
        return _placeholder(width, height, title, cls, "no activation profile (no usable image)")
    order = np.sort(finite)[::-1]
    d = order.size
    scale, mask = reference_scale(order, factor, eps)  # the metric's own definition
    median = scale if scale == scale else 0.0          # NaN (every feature dead): no threshold
    threshold = factor * median
    n_out = int(mask.sum())
    ranks = profile_ranks(d, min(n_out, MAX_MARKED_OUTLIERS))
    right, top, bottom = width - 10, 22, height - 36
    lo, hi = _log_range(np.concatenate([order, [median, threshold] if median > 0 else []]))
    ys = Scale(lo, hi, bottom, top, log=True)
    left = y_axis_left(ys, 62)
    xs = Scale(1, max(d, 10), left, right, log=True)
    out = _open(width, height, title, cls)
    _y_axis(out, ys, left, right, "mean |activation|")
    _x_axis(out, xs, top, bottom, f"feature rank (log), d = {d}", width=width)
    pts = " ".join(f"{_n(xs(r + 1))},{_n(ys(order[r]))}" for r in ranks)
    out.append(f'<polyline points="{pts}" fill="none" stroke="{BLUE}" stroke-width="1.6"/>')
    if median > 0:
        for value, colour, name in ((median, GREY, "scale s"), (threshold, RED, f"{factor:g}× s")):
            y = ys(value)
            out.append(f'<line x1="{left}" x2="{right}" y1="{_n(y)}" y2="{_n(y)}" stroke="{colour}" '
                       f'stroke-dasharray="4 3"/>')
            out.append(f'<text x="{right - 2}" y="{_n(y - 3)}" text-anchor="end" fill="{colour}">{esc(name)}</text>')
    for r in range(min(n_out, MAX_MARKED_OUTLIERS)):
        out.append(f'<circle class="outlier" cx="{_n(xs(r + 1))}" cy="{_n(ys(order[r]))}" r="3" fill="{RED}"/>')
    caption = (f"{n_out} outlier feature{'s' if n_out != 1 else ''}" if median > 0
               else "every feature is dead: no outlier threshold")
    out.append(f'<text x="{left}" y="14" fill="{RED if n_out else GREY}">{esc(caption)}</text>')
    out.append("</svg>")
    return "".join(out)


#: histogram bins per decade of kurtosis (the axis itself spans whole decades from 1)
BINS_PER_DECADE = 12


def kurtosis_hist_svg(kurtosis: np.ndarray, rotated: np.ndarray, title: str, bins: int = BINS_PER_DECADE,
                      width: int = 380, height: int = 250, band: tuple[float, float] | None = None) -> str:
    """Histogram of per-image kurtosis, neuron basis in blue and the rotated control in orange, with
    the Gaussian value 3 and each series' mean marked, and ``band`` (the rotation control's null band
    3 ± 2√(24/d), where the rotated values of any representation fall) shaded.  The x axis is log and
    spans whole decades from 1 (the least a kurtosis can be), so two reports share it; ``bins`` per
    decade.  The legend and the "3 = Gaussian" label sit in a band above the bars, never over one."""
    cls = "plot kurtosis-plot"
    k = np.asarray(kurtosis, dtype=np.float64)
    r = np.asarray(rotated, dtype=np.float64)
    k = k[np.isfinite(k) & (k > 0)]
    r = r[np.isfinite(r) & (r > 0)]
    if k.size == 0 and r.size == 0:
        return _placeholder(width, height, title, cls, "per-image kurtosis undefined for every image")
    lo, hi = _decade_range(np.concatenate([k, r, [3.0], [x for x in band or () if x > 0]]), floor=1.0)
    decades = max(1, round(math.log10(hi / lo)))
    edges = np.geomspace(lo, hi, bins * decades + 1)
    hk = np.histogram(np.clip(k, lo, hi), edges)[0]
    hr = np.histogram(np.clip(r, lo, hi), edges)[0]
    right, top, bottom = width - 10, 48, height - 36
    ys = Scale(0, max(int(hk.max(initial=0)), int(hr.max(initial=0)), 1), bottom, top)
    left = y_axis_left(ys, 62, integer=True)
    xs = Scale(lo, hi, left, right, log=True)
    out = _open(width, height, title, cls)
    _y_axis(out, ys, left, right, "images", integer=True)
    _x_axis(out, xs, top, bottom, "per-image kurtosis (log)", width=width)
    for counts, colour, opacity in ((hk, BLUE, 0.75), (hr, ORANGE, 0.55)):
        for i, c in enumerate(counts):
            if c:
                x0, x1, y = xs(edges[i]), xs(edges[i + 1]), ys(c)
                out.append(f'<rect x="{_n(x0)}" y="{_n(y)}" width="{_n(max(x1 - x0 - 0.6, 0.6))}" '
                           f'height="{_n(bottom - y)}" fill="{colour}" fill-opacity="{opacity}"/>')
    if band is not None:
        b0, b1 = xs(max(band[0], lo)), xs(min(band[1], hi))
        out.append(f'<rect class="null-band" x="{_n(b0)}" y="{top}" width="{_n(max(b1 - b0, 0.6))}" '
                   f'height="{bottom - top}" fill="{ORANGE}" fill-opacity="0.12"><title>'
                   f'{esc(f"null band of the rotated kurtosis: {band[0]:.3g} to {band[1]:.3g}")}</title></rect>')
    _reference_line(out, xs(3.0), top - 14, bottom, "3 = Gaussian", top - 5, 80, right)
    legend = [(BLUE, f"neuron basis, mean {k.mean():.4g}" if k.size else "neuron basis: undefined"),
              (ORANGE, f"rotated, mean {r.mean():.4g}" if r.size else "rotated: not available")]
    for i, (colour, text) in enumerate(legend):
        y = 4 + 14 * i
        out.append(f'<rect x="{left}" y="{y}" width="10" height="10" fill="{colour}" fill-opacity="0.75"/>')
        out.append(f'<text x="{left + 14}" y="{y + 9}">{esc(text)}</text>')
    for values, colour in ((k, BLUE), (r, ORANGE)):
        if values.size:
            x = xs(float(values.mean()))
            out.append(f'<path d="M{_n(x - 4)},{bottom + 7}L{_n(x + 4)},{bottom + 7}L{_n(x)},{bottom}Z" fill="{colour}"/>')
    out.append("</svg>")
    return "".join(out)


@dataclass
class Row:
    """One model in a comparison chart."""

    label: str
    value: float
    control: float | None = None     # e.g. the rotated kurtosis, drawn as a hollow dot
    low: float | None = None         # the check's bounds, if the model has a check on this metric
    high: float | None = None
    passed: bool | None = None       # colour of the dot: None = not checked
    err_low: float | None = None     # the value's confidence interval, drawn as an error bar (docs/intervals.md)
    err_high: float | None = None


def comparison_svg(rows: Sequence[Row], title: str, axis_label: str, reference: float | None = None,
                   reference_label: str = "", control_label: str = "", width: int = 480,
                   scale: str = "", integer: bool = False) -> str:
    """Models sorted by value (largest first), one strip each with the model's full name above it,
    as dots on a shared axis, each with its bounds: the allowed band in green, the bound itself as
    a red tick; hollow dots for a control value.  ``scale`` ``"log"``/``"linear"`` fixes the axis
    (the metric's declaration; log axes span whole decades), ``""`` picks log when the values are
    positive and span more than a decade.  ``integer``: ticks at whole numbers only (counts)."""
    cls = "plot comparison-plot"
    rows = sorted(rows, key=lambda r: (-r.value if math.isfinite(r.value) else math.inf, r.label))
    row_h, top = 30, 40
    values = [v for r in rows for v in (r.value, r.control, r.low, r.high, r.err_low, r.err_high, reference)
              if v is not None and math.isfinite(v)]
    if not values:
        return _placeholder(width, 60, title, cls, "no defined value to compare")
    arr = np.array(values, dtype=np.float64)
    positive = bool((arr > 0).all())
    log = positive and (scale == "log" or (not scale and float(arr.max()) / float(arr.min()) > 10))
    if log:
        lo, hi = _decade_range(arr) if scale == "log" else _log_range(arr, pad=1.25)
    else:
        lo, hi = min(0.0, float(arr.min())), float(arr.max())
        pad = (hi - lo) * 0.06 or 1.0
        lo, hi = (lo - pad if lo < 0 else lo), hi + pad
        if integer:
            hi = max(hi, lo + 2)
    left, right = 12, width - 14
    bottom = top + row_h * len(rows)
    height = bottom + 40
    max_chars = int((width - 8) / CHAR_W)
    xs = Scale(lo, hi, left, right, log=log)
    out = _open(width, height, title, cls)
    _x_axis(out, xs, top - 4, bottom + 2, axis_label + (" (log)" if log else ""), integer=integer and not log,
            width=width)
    if control_label:
        out.append(f'<circle cx="8" cy="10" r="4" fill="none" stroke="{ORANGE}" stroke-width="1.6"/>'
                   f'<text x="16" y="14" fill="{ORANGE}">{esc(control_label)}</text>')
    if reference is not None:
        _reference_line(out, xs(reference), top - 14, bottom + 2, reference_label, top - 8, 90, right)
    for i, row in enumerate(rows):
        y_top = top + row_h * i
        yc = y_top + 21
        if i % 2:
            out.append(f'<rect x="0" y="{_n(y_top)}" width="{width}" height="{row_h}" fill="#f8fafc"/>')
        shown = f"{row.value:.4g}" if math.isfinite(row.value) else ""
        room = max_chars - (len(shown) + 2 if shown else 0)   # the value sits at the strip's right end
        label = row.label if len(row.label) <= room else row.label[:max(room - 1, 1)] + "…"
        out.append(f'<text class="row-label" x="4" y="{_n(y_top + 11)}"><title>{esc(row.label)}</title>'
                   f'{esc(label)}</text>')
        if shown:
            out.append(f'<text class="row-value" x="{_n(width - 4)}" y="{_n(y_top + 11)}" text-anchor="end">'
                       f'{esc(shown)}</text>')
        if row.low is not None or row.high is not None:
            x0 = xs(row.low) if row.low is not None else left
            x1 = xs(row.high) if row.high is not None else right
            out.append(f'<rect x="{_n(min(x0, x1))}" y="{_n(yc - 5)}" width="{_n(abs(x1 - x0))}" height="10" '
                       f'fill="{GREEN}" fill-opacity="0.13"/>')
            for bound in (row.low, row.high):
                if bound is not None:
                    xb = xs(bound)
                    out.append(f'<line class="bound" x1="{_n(xb)}" x2="{_n(xb)}" y1="{_n(yc - 6)}" y2="{_n(yc + 6)}" '
                               f'stroke="{RED}" stroke-width="2"/>')
        if row.control is not None and math.isfinite(row.control):
            out.append(f'<circle cx="{_n(xs(row.control))}" cy="{_n(yc)}" r="4" fill="none" stroke="{ORANGE}" '
                       f'stroke-width="1.6"/>')
        if row.err_low is not None and row.err_high is not None and math.isfinite(row.err_low) \
                and math.isfinite(row.err_high) and (not log or row.err_low > 0):
            xl, xh = xs(row.err_low), xs(row.err_high)
            out.append(f'<line class="error-bar" x1="{_n(xl)}" x2="{_n(xh)}" y1="{_n(yc)}" y2="{_n(yc)}" '
                       f'stroke="{GREY}" stroke-width="1.5"><title>{esc(row.label)}: interval '
                       f'[{esc(f"{row.err_low:.4g}")}, {esc(f"{row.err_high:.4g}")}]</title></line>')
            for xe in (xl, xh):
                out.append(f'<line x1="{_n(xe)}" x2="{_n(xe)}" y1="{_n(yc - 4)}" y2="{_n(yc + 4)}" stroke="{GREY}" '
                           f'stroke-width="1.5"/>')
        if math.isfinite(row.value):
            colour = BLUE if row.passed is None else (GREEN if row.passed else RED)
            out.append(f'<circle class="value" cx="{_n(xs(row.value))}" cy="{_n(yc)}" r="4.5" fill="{colour}">'
                       f'<title>{esc(row.label)}: {esc(f"{row.value:.4g}")}</title></circle>')
        else:
            out.append(f'<text x="{left + 4}" y="{_n(yc + 4)}" fill="{GREY}">undefined</text>')
    out.append("</svg>")
    return "".join(out)
