"""The report's concepts section (issue 20): per audit the concepts found, grouped by kind, each count
beside its null, a polysemanticity histogram against its null, and for two or more audits the
Jaccard overlap matrix of their encoded concepts.

Drawn only from what the concept metrics put in their details (so a report rebuilt from a JSON
record shows the same), inline SVG in the style of :mod:`.svg`.  The section says in words that these
numbers are informational, not robustness indicators (the paper's own conclusion), and how the
thresholds were calibrated.  Free of pytest and torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

from .svg import (BLUE, GREY, LIGHT, TEXT_GAP, Scale, _n, _open, _placeholder, _titled, _x_axis, _y_axis, esc, fit_text,
                  text_width, y_axis_left)


@dataclass(frozen=True)
class KindRow:
    """One kind of concept (colour, texture, shape, folder ...): how many the probe encodes and the
    directions detect, of how many, and which."""

    kind: str
    total: int
    encoded: tuple[str, ...]
    detected: tuple[str, ...]


@dataclass(frozen=True)
class AuditConcepts:
    """One audit's layer: its figures beside their nulls, the kinds table and the histogram."""

    key: str
    title: str
    bank: str
    figures: tuple[tuple[str, str, str, str], ...]   # (metric, value, null, how it was counted)
    kinds: tuple[KindRow, ...]
    histogram_svg: str
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class OverlapMatrix:
    layer: str
    labels: tuple[str, ...]
    svg: str


@dataclass(frozen=True)
class ConceptsView:
    audits: tuple[AuditConcepts, ...]
    matrices: tuple[OverlapMatrix, ...] = field(default_factory=tuple)


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    if float(value) == int(value) and abs(value) < 1e9:
        return str(int(value))
    return f"{float(value):.{digits}g}"


def polysemanticity_svg(histogram: Sequence[int], null: Sequence[float], title: str,
                        width: int = 380, height: int = 230) -> str:
    """Directions detecting i concepts (bars, log scale) against the null's mean count (grey ticks)."""
    cls = "plot polysemanticity-plot"
    counts = [float(v) for v in histogram]
    nulls = [float(v) for v in null]
    top = max(len(counts), len(nulls))
    if top == 0 or not any(v > 0 for v in counts + nulls):
        return _placeholder(width, 60, title, cls, "no direction probed")
    counts += [0.0] * (top - len(counts))
    nulls += [0.0] * (top - len(nulls))
    left, right, y_top, bottom = 62, width - 12, 40, height - 40   # the legend sits above the plot area
    positive = [v for v in counts + nulls if v > 0]
    hi = max(positive) * 1.5
    lo = min(0.5, min(positive) * 0.8)
    ys = Scale(lo, hi, bottom, y_top, log=True)
    left = y_axis_left(ys, left)
    xs = Scale(-0.5, top - 0.5, left, right)
    out = _open(width, height, title, cls)
    _y_axis(out, ys, left, right, "directions")
    _x_axis(out, xs, y_top, bottom, "concepts detected per direction", integer=True, width=width)
    bar = max(2.0, (right - left) / top * 0.6)
    for i, (v, nv) in enumerate(zip(counts, nulls)):
        x = xs(float(i))
        if v > 0:
            y = ys(v)
            out.append(f'<rect x="{_n(x - bar / 2)}" y="{_n(y)}" width="{_n(bar)}" height="{_n(bottom - y)}" '
                       f'fill="{BLUE}" fill-opacity="0.75"><title>{i} concept(s): {_fmt(v)} direction(s)</title></rect>')
        if nv > 0:
            y = ys(nv)
            out.append(f'<line class="null-mark" x1="{_n(x - bar / 2 - 3)}" x2="{_n(x + bar / 2 + 3)}" y1="{_n(y)}" '
                       f'y2="{_n(y)}" stroke="{GREY}" stroke-width="2.2" stroke-dasharray="3 2">'
                       f'<title>null: {nv:.3g} direction(s) detect {i} concept(s)</title></line>')
    out.append(f'<text x="{_n(right)}" y="12" text-anchor="end" fill="{BLUE}">bars: this model</text>')
    out.append(f'<text x="{_n(right)}" y="26" text-anchor="end" fill="{GREY}">'
               f'dashed: null (random orthonormal directions)</text>')
    out.append("</svg>")
    return "".join(out)


#: the longest a model's name is drawn beside and above the overlap matrix (px); longer ones are cut
MAX_LABEL_PX = 200.0


def overlap_matrix_svg(labels: Sequence[str], jaccard: Sequence[Sequence[float]], nulls: Sequence[Sequence[float]],
                       title: str) -> str:
    """A k x k matrix of Jaccard overlaps, each cell with its chance value beneath.  The row labels are
    cut to their column, the column labels (rotated 30°) to :data:`MAX_LABEL_PX`, and the SVG leaves
    room above and right of the matrix for them, so no label is cut off by the SVG's edge."""
    cls = "plot overlap-plot"
    k = len(labels)
    cell = 74
    longest = min(MAX_LABEL_PX, max((text_width(s) for s in labels), default=30.0))
    label_w = int(16 + longest)
    top = int(24 + longest * 0.5 + 12)              # sin 30° of the longest, and the glyphs' height
    reach = max((label_w + j * cell + cell / 2 + min(text_width(s), longest) * 0.87 + 8 + TEXT_GAP
                 for j, s in enumerate(labels)), default=0.0)   # cos 30°: where each column's label ends
    width = int(max(label_w + k * cell + 12, reach))
    height = top + k * cell + 12
    out = _open(width, height, title, cls)
    for j, name in enumerate(labels):
        x = label_w + j * cell + cell / 2
        shown = fit_text(name, longest)
        out.append(f'<text x="{_n(x)}" y="{_n(top - 6)}" text-anchor="start" fill="{GREY}" '
                   f'transform="rotate(-30 {_n(x)} {_n(top - 6)})">{_titled(name, shown)}</text>')
    for i, name in enumerate(labels):
        y = top + i * cell
        shown = fit_text(name, label_w - 6 - TEXT_GAP)
        out.append(f'<text x="{_n(label_w - 6)}" y="{_n(y + cell / 2 + 4)}" text-anchor="end" fill="{GREY}">'
                   f'{_titled(name, shown)}</text>')
        for j in range(k):
            x = label_w + j * cell
            value, null = jaccard[i][j], nulls[i][j]
            shade = 0.08 + 0.8 * value if math.isfinite(value) else 0.0
            fill = BLUE if math.isfinite(value) else LIGHT
            out.append(f'<rect x="{_n(x + 1)}" y="{_n(y + 1)}" width="{cell - 2}" height="{cell - 2}" fill="{fill}" '
                       f'fill-opacity="{shade:.3f}" stroke="{LIGHT}"><title>{esc(labels[i])} vs {esc(labels[j])}: '
                       f'Jaccard {_fmt(value)} (chance {_fmt(null)})</title></rect>')
            colour = "#ffffff" if math.isfinite(value) and value > 0.55 else "#111827"
            out.append(f'<text x="{_n(x + cell / 2)}" y="{_n(y + cell / 2)}" text-anchor="middle" fill="{colour}" '
                       f'font-size="13">{esc(_fmt(value))}</text>')
            out.append(f'<text x="{_n(x + cell / 2)}" y="{_n(y + cell / 2 + 16)}" text-anchor="middle" '
                       f'fill="{colour}" font-size="10">chance {esc(_fmt(null, 2))}</text>')
    out.append("</svg>")
    return "".join(out)


_ONE = {"neurons": "neuron", "head": "head direction"}


def _kinds(encoded: dict[str, Any] | None, unique: dict[str, Any] | None) -> tuple[KindRow, ...]:
    by_enc = (encoded or {}).get("by_kind") or {}
    by_uni = (unique or {}).get("by_kind") or {}
    rows = []
    for kind in sorted(set(by_enc) | set(by_uni)):
        e, u = by_enc.get(kind, {}), by_uni.get(kind, {})
        rows.append(KindRow(kind, int(e.get("total", u.get("total", 0))), tuple(e.get("found", ())),
                            tuple(u.get("found", ()))))
    return tuple(rows)


#: a record written before definition version 3 counted 0 where the threshold was AUROC 1: said, not drawn
_OLD_ZERO = ("random directions already reach AUROC 1 on this bank, so no direction can beat the null and this 0 "
             "is not a measurement (recorded under definition version {version}; version 3 says not applicable)")


def _at_top(details: dict[str, Any]) -> bool:
    """Whether a recorded detection's threshold is the highest attainable AUROC (nothing can be above it)."""
    from ..metrics.concepts import ATTAINABLE_AUROC

    threshold = details.get("threshold")
    return isinstance(threshold, (int, float)) and threshold >= ATTAINABLE_AUROC


def _audit_concepts(i: int, j: int, result: Any, layer_name: str, layer: Any) -> AuditConcepts | None:
    encoded = layer.metrics.get("concepts_encoded")
    if encoded is None or encoded.undefined_reason:
        return None
    e = encoded.details or {}
    figures = [("concepts_encoded", f"{_fmt(encoded.value)} of {e.get('concepts', '?')}", _fmt(e.get("null")),
                f"linear probe, held-out AUROC > {_fmt(e.get('threshold'))} (the {_fmt(e.get('quantile'))} quantile of "
                f"{e.get('null_repeats', '?')} label permutations)")]
    notes = []
    unique = layer.metrics.get("unique_concepts")
    u = None
    if unique is not None and not unique.undefined_reason:
        u = unique.details or {}
        parts = []
        for kind, label in (("neurons", "neurons, sign kept"), ("head", "head's privileged directions, sign-free")):
            d = u.get(kind)
            if d and not d.get("unresolved") and not _at_top(d):
                parts.append(f"{d.get('directions')} {label}: {d.get('count')} (null {_fmt(d.get('null'))}, AUROC > "
                             f"{_fmt(d.get('threshold'))})")
            elif d and not d.get("unresolved"):
                notes.append(f"{label.split(',')[0]}: {_OLD_ZERO.format(version=unique.version)}")
            elif u.get(f"{kind}_note"):
                notes.append(f"{label.split(',')[0]}: {u[f'{kind}_note']}")
        figures.append(("unique_concepts", _fmt(unique.value), _fmt(u.get("null")), "; ".join(parts)))
    elif unique is not None:
        notes.append(f"unique_concepts: {unique.undefined_reason}")
    poly = layer.metrics.get("polysemanticity")
    svg_text = ""
    if poly is not None and poly.undefined_reason:
        notes.append(f"polysemanticity: {poly.undefined_reason}")
    elif poly is not None and _at_top(poly.details or {}):
        notes.append(f"polysemanticity: {_OLD_ZERO.format(version=poly.version)}")
    elif poly is not None:
        p = poly.details or {}
        figures.append(("polysemanticity", _fmt(poly.value), _fmt(p.get("null")),
                        f"concepts per {_ONE.get(p.get('directions'), 'direction')}, mean over {p.get('count')}; "
                        f"over the {p.get('active')} that detect any: "
                        f"{_fmt(p.get('mean_active'))} (null {_fmt(p.get('null_mean_active'))})"))
        svg_text = polysemanticity_svg(p.get("histogram") or [], p.get("null_histogram") or [],
                                       f"Polysemanticity: {result.name}, {layer_name}")
    overlap = layer.metrics.get("concept_overlap")
    if overlap is not None and not overlap.undefined_reason:
        o = overlap.details or {}
        figures.append(("concept_overlap", _fmt(overlap.value), _fmt(o.get("null")),
                        f"Jaccard with the reference: {o.get('intersection')} shared of {o.get('union')}"))
    elif overlap is not None:
        notes.append(f"concept_overlap: {overlap.undefined_reason}")
    bank = (e.get("bank") or {}).get("bank", "")
    return AuditConcepts(f"concepts-{i}-{j}", f"{result.name}: layer '{layer_name}'", str(bank), tuple(figures),
                         _kinds(e, u), svg_text, tuple(notes))


def _matrices(results: Sequence[Any]) -> list[OverlapMatrix]:
    """For every layer and bank that two or more audits probed: the Jaccard matrix of their encoded sets."""
    from ..metrics.concepts import concept_overlap

    groups: dict[tuple[str, str], list[tuple[str, set[str], int]]] = {}
    for result in results:
        for name, layer in result.layers.items():
            value = layer.metrics.get("concepts_encoded")
            if value is None or value.undefined_reason:
                continue
            d = value.details or {}
            digest = (d.get("bank") or {}).get("digest", "")
            groups.setdefault((name, digest), []).append((result.name, set(d.get("encoded", ())),
                                                          int(d.get("concepts", 0))))
    out = []
    for (layer, _), members in groups.items():
        if len(members) < 2:
            continue
        labels = tuple(m[0] for m in members)
        jac, nul = [], []
        for _, a, universe in members:
            row_j, row_n = [], []
            for _, b, _ in members:
                o = concept_overlap(a, b, universe)
                row_j.append(o.jaccard)
                row_n.append(o.null)
            jac.append(row_j)
            nul.append(row_n)
        out.append(OverlapMatrix(layer, labels, overlap_matrix_svg(labels, jac, nul,
                                                                   f"Concept overlap (Jaccard), layer '{layer}'")))
    return out


def concepts_view(results: Sequence[Any]) -> ConceptsView | None:
    """The section's view, or None when no audit probed a concept bank."""
    audits = []
    for i, result in enumerate(results):
        for j, (name, layer) in enumerate(result.layers.items()):
            found = _audit_concepts(i, j, result, name, layer)
            if found is not None:
                audits.append(found)
    if not audits:
        return None
    return ConceptsView(tuple(audits), tuple(_matrices(results)))


def concepts_section(ctx: Any) -> list[Any]:
    """The registered builder: one section when some audit probed a concept bank (order 36, after the
    privileged directions)."""
    from markupsafe import Markup

    from .sections import PageSection

    view = concepts_view(ctx.results)
    if view is None:
        return []
    safe = ConceptsView(  # every text inside the SVGs was escaped where they were built
        tuple(AuditConcepts(a.key, a.title, a.bank, a.figures, a.kinds, Markup(a.histogram_svg), a.notes)
              for a in view.audits),
        tuple(OverlapMatrix(m.layer, m.labels, Markup(m.svg)) for m in view.matrices))
    return [PageSection("concepts", "Concepts (informational)", "sections/concepts.html.j2", safe, 36)]


def _register() -> None:
    from .sections import register_section

    register_section("concepts", concepts_section)


_register()
