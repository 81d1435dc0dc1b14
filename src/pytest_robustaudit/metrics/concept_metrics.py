"""The concept metrics (issue 20): what :mod:`.concepts` computes, registered like every other metric.

They read the concept bank's rows on the layer (``inputs.concepts``, a
:class:`~..concept_source.ConceptInputs`, present when the spec has ``concepts:``) and, for the head's
privileged directions and the overlap, the audit's head and reference.  Every value carries its
null in ``details`` (``null``: what chance gives, computed by the same code where no concept can be
present) and the calibrated threshold it counted with.  They are **informational**: the paper finds
that the number of concepts a representation encodes does not track robustness (evidence level
"informational", interval family "informational": no interval, nothing gated unless a spec writes a
check).  Per-layer results are cached in the bank's :class:`ConceptInputs`, so the four metrics
share one probe and one detection per set of directions.  numpy (and scikit-learn, scipy inside
:mod:`.concepts`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .types import CONCEPTS_PER_DIRECTION, COUNT, FRACTION, NEEDS_CONCEPTS, NEEDS_NULL, NEEDS_SUMMARY, NOT_APPLICABLE, READS_CONCEPTS, Evidence, Metric, MetricValue, NotApplicable, Param

DIRECTION_SETS = ("all", "neurons", "head")

NOT_AN_INDICATOR = ("Crabbé et al. (TMLR 2024): zero-shot CLIP encodes more unique concepts than supervised models, "
                    "but this does not track ImageNet-shift robustness (they tie it to language supervision): "
                    "not a robustness indicator.")
_EVIDENCE = Evidence("informational", NOT_AN_INDICATOR)


def _bank(inputs: Any) -> Any:
    """The layer's concept inputs, or NotApplicable with the way to get them."""
    found = getattr(inputs, "concepts", None)
    if found is None:
        raise NotApplicable("no concept bank (add `concepts: builtin` or `concepts: {path: DIR}` to the spec, "
                            "docs/concepts.md)")
    return found


def _finite(c: Any) -> tuple[np.ndarray, np.ndarray]:
    """The bank's finite rows (float64) and their concept indices (cached)."""
    def build():
        rows = np.asarray(c.rows, dtype=np.float64)
        if rows.ndim != 2 or rows.shape[0] == 0:
            raise NotApplicable(f"no image of the concept bank reached layer '{c.layer}'")
        keep = np.isfinite(rows).all(axis=1)
        return rows[keep], c.labels[keep]
    return c.cached("finite", build)


#: below this layer width the nulls' many small factorisations run on one BLAS thread: measured on the
#: project's shared 2-core machine, a 192 x 192 Cholesky took 0.6 ms on one thread and 50 ms on two
#: (threads spinning for a busy core), which made a 6-concept bank's null take minutes
SINGLE_THREAD_BELOW = 512


def _run(what: str, compute: Any, width: int) -> Any:
    """A probe or detection; its ValueError (a concept left with too few images) becomes NotApplicable."""
    import contextlib

    limit = contextlib.nullcontext()
    if width < SINGLE_THREAD_BELOW:
        from threadpoolctl import threadpool_limits   # a dependency of scikit-learn

        limit = threadpool_limits(limits=1, user_api="blas")
    try:
        with limit:
            return compute()
    except ValueError as error:
        raise NotApplicable(f"concept {what} cannot run: {error}") from None


def probe_result(inputs: Any) -> Any:
    """The layer's linear probe of every concept with its permuted-label null (cached)."""
    from .concepts import probe_concepts

    c = _bank(inputs)

    def build():
        rows, labels = _finite(c)
        s = c.settings
        return _run("probing", lambda: probe_concepts(rows, labels, c.names, folds=s["folds"], alpha=s["alpha"],
                                                      null_repeats=s["null_repeats"], quantile=s["quantile"],
                                                      seed=c.seed), rows.shape[1])
    return c.cached("probe", build)


def head_directions(inputs: Any) -> tuple[np.ndarray, Any]:
    """The head's right singular vectors ``vt`` [r, d] and the head (NotApplicable when none fits)."""
    from .directions import head_svd

    head = inputs.fitting_head()
    return (inputs.head_svd() if hasattr(inputs, "head_svd") else head_svd(head))["vt"], head


#: the random stream of each kind of directions' null besides the neurons' (numpy SeedSequence entropy)
_KIND_STREAM = {"head": 1}


def detection(inputs: Any, kind: str) -> Any:
    """Which directions of ``kind`` (``neurons``: sign kept; ``head``: the head's privileged directions,
    sign-free) detect which concepts, against random orthonormal directions (cached)."""
    from .concepts import detect_concepts

    c = _bank(inputs)

    def build():
        rows, labels = _finite(c)
        s = c.settings
        if kind == "neurons":
            directions, features, sign_free = np.eye(rows.shape[1]), rows, False
        else:
            vt, head = head_directions(inputs)
            directions, features, sign_free = vt, head.features(rows), True
        # each kind draws its own random directions: with one seed the head's null would reuse the first
        # r directions of the neurons' null, and the null of their union (unique_concepts) would be low
        seed = c.seed if kind == "neurons" else [c.seed, _KIND_STREAM[kind]]
        return _run("detection", lambda: detect_concepts(features, labels, directions, c.names, sign_free=sign_free,
                                                         null_repeats=s["null_repeats"], quantile=s["quantile"],
                                                         seed=seed), rows.shape[1])
    return c.cached(f"detect:{kind}", build)


def _by_kind(c: Any, chosen: set[str]) -> dict[str, dict[str, Any]]:
    """Per kind of concept (colour, texture, shape, folder ...): the chosen concepts and how many there are."""
    out: dict[str, dict[str, Any]] = {}
    for name, kind in zip(c.names, c.kinds):
        entry = out.setdefault(kind, {"found": [], "total": 0})
        entry["total"] += 1
        if name in chosen:
            entry["found"].append(name)
    return out


def _concepts_encoded(inputs: Any) -> MetricValue:
    c = _bank(inputs)
    probe = probe_result(inputs)
    figure = probe.concepts_encoded
    encoded = list(probe.encoded)
    return MetricValue(figure.value, {
        "null": figure.null, "threshold": probe.threshold, "quantile": probe.quantile,
        "null_repeats": int(probe.null_auroc.shape[0]), "folds": probe.folds, "alpha": probe.alpha,
        "concepts": len(c.names), "encoded": encoded, "by_kind": _by_kind(c, set(encoded)),
        "auroc": {n: round(float(a), 4) for n, a in zip(c.names, probe.auroc)},
        "median_auroc": float(np.median(probe.auroc)), "null_median_auroc": float(np.median(probe.null_auroc)),
        "images": int(_finite(c)[0].shape[0]), "bank": dict(c.bank), "note": figure.note,
        "method": "one-vs-rest ridge probe, cross-validated held-out AUROC; threshold = the quantile of the same "
                  "probe's AUROCs on permuted concept labels"})


def _detected(result: Any) -> dict[str, Any]:
    """What one set of directions found: its unique concepts, each one's best direction, and the null."""
    best = result.best_direction
    found = set(result.unique)
    return {"count": len(found), "null": float(result.null_unique.mean()), "threshold": result.threshold,
            "directions": int(result.auroc.shape[1]), "sign_free": bool(result.sign_free),
            "unique": list(result.unique),
            "best": {n: [int(best[i]), round(float(result.auroc[i, best[i]]), 4)]
                     for i, n in enumerate(result.names) if n in found}}


#: the way out of an unresolvable detection, named in its reason
RESOLVE_HINT = ("a bank whose concepts random directions do not separate perfectly resolves: more images per "
                "concept (`images_per_concept`), or real images (`concepts: {path: DIR}`), "
                "docs/concepts.md#when-random-directions-already-separate-a-concept")


def unresolved_reason(clauses: dict[str, str]) -> str:
    """The not-applicable reason of a detection whose threshold sits at the highest attainable AUROC:
    what it means, the figures per set of directions, the way out."""
    from .concepts import UNRESOLVABLE

    figures = "; ".join(f"{kind}: {clause}" for kind, clause in clauses.items())
    return f"{UNRESOLVABLE} ({figures}); {RESOLVE_HINT}"


def _unresolved(result: Any) -> dict[str, Any]:
    """What one unresolvable set of directions recorded: its threshold and why there is no count (no
    count and no null: at a threshold of 1 both are 0 by construction, not by measurement)."""
    return {"directions": int(result.auroc.shape[1]), "sign_free": bool(result.sign_free),
            "threshold": result.threshold, "quantile": result.quantile, "unresolved": result.unresolvable}


def _unique_concepts(inputs: Any, directions: str) -> MetricValue:
    if directions not in DIRECTION_SETS:
        raise NotApplicable(f"unknown directions {directions!r}; use one of {', '.join(DIRECTION_SETS)}")
    c = _bank(inputs)
    details: dict[str, Any] = {"directions": directions, "concepts": len(c.names), "bank": dict(c.bank)}
    results, unresolved = {}, {}
    for kind in (("neurons", "head") if directions == "all" else (directions,)):
        try:
            result = detection(inputs, kind)
        except NotApplicable as why:
            if directions == kind:
                raise
            details[f"{kind}_note"] = f"not probed: {why}"
            continue
        if result.unresolvable:
            # its threshold is the highest attainable AUROC: it can find nothing, so it adds nothing to the
            # union, and when no set of directions resolves the count is not applicable, not 0
            unresolved[kind] = result.unresolvable
            details[kind] = _unresolved(result)
            details[f"{kind}_note"] = f"cannot resolve: {result.unresolvable}"
            continue
        results[kind] = result
        details[kind] = _detected(result)
    if not results:
        if unresolved:
            return MetricValue(math.nan, details, undefined_reason=NOT_APPLICABLE + unresolved_reason(unresolved))
        raise NotApplicable("; ".join(details[k] for k in details if k.endswith("_note")))
    hits = np.zeros(len(c.names), dtype=bool)
    for result in results.values():
        hits |= result.detects.any(axis=1)
    # the null of the union: draw r of every set of directions, united concept by concept
    nulls = [r.null_hits for r in results.values()]
    draws = min(n.shape[0] for n in nulls)
    null_union = np.zeros((draws, len(c.names)), dtype=bool)
    for n in nulls:
        null_union |= n[:draws]
    unique = [n for n, hit in zip(c.names, hits) if hit]
    details.update({"null": float(null_union.sum(axis=1).mean()), "unique": unique,
                    "by_kind": _by_kind(c, set(unique)),
                    "thresholds": {k: r.threshold for k, r in results.items()},
                    "note": "null: as many random orthonormal directions of the same layer, per set of directions"})
    return MetricValue(float(hits.sum()), details)


def _polysemanticity(inputs: Any, directions: str) -> MetricValue:
    if directions not in ("neurons", "head"):
        raise NotApplicable(f"unknown directions {directions!r}; use neurons or head")
    result = detection(inputs, directions)
    if result.unresolvable:
        details = {**_unresolved(result), "directions": directions, "count": int(result.auroc.shape[1])}
        return MetricValue(math.nan, details,
                           undefined_reason=NOT_APPLICABLE + unresolved_reason({directions: result.unresolvable}))
    poly = result.polysemanticity
    active = int((result.per_direction > 0).sum())
    return MetricValue(poly.mean, {
        "null": poly.null_mean, "directions": directions, "count": int(result.auroc.shape[1]),
        "active": active, "mean_active": None if math.isnan(poly.mean_active) else poly.mean_active,
        "null_mean_active": None if math.isnan(poly.null_mean_active) else poly.null_mean_active,
        "histogram": list(poly.histogram), "null_histogram": [round(v, 3) for v in poly.null_histogram],
        "threshold": result.threshold, "quantile": result.quantile,
        "note": "concepts per direction, mean over every probed direction; histogram[i] = directions detecting i "
                "concepts; null: random orthonormal directions of the same layer"})


def _concept_overlap(inputs: Any) -> MetricValue:
    from .concepts import concept_overlap

    c = _bank(inputs)
    if c.reference is None:
        raise NotApplicable("no reference: concept_overlap compares the encoded concepts with the spec's "
                            "`reference:` (a model or a baseline) on the same concept bank")
    found = c.reference(c.layer)
    if isinstance(found, str):
        raise NotApplicable(found)
    theirs, bank = found
    if bank.get("digest") != c.bank.get("digest"):
        raise NotApplicable("the reference probed another concept bank (other concepts or images), so its "
                            "concepts cannot be compared")
    probe = probe_result(inputs)
    ours = set(probe.encoded)
    overlap = concept_overlap(ours, theirs, len(c.names))
    details = {"null": overlap.null, "intersection": overlap.intersection, "union": overlap.union,
               "sizes": list(overlap.sizes), "concepts": overlap.universe,
               "shared": sorted(ours & set(theirs)), "only_this": sorted(ours - set(theirs)),
               "only_reference": sorted(set(theirs) - ours),
               "note": "Jaccard of the encoded concept sets; null: the mean Jaccard of two random sets of the same "
                       "sizes (hypergeometric, exact)"}
    if overlap.undefined_reason:
        return MetricValue(math.nan, details, undefined_reason=overlap.undefined_reason)
    return MetricValue(overlap.jaccard, details)


#: the probe with its permuted-label null is part of what a spec with `concepts:` asks for (default); the
#: random-direction nulls of unique_concepts and polysemanticity cost far more and run only when a check
#: or `measure:` asks (docs/concepts.md#cost)
_BANK = (NEEDS_SUMMARY, NEEDS_CONCEPTS)

CONCEPT_METRICS: tuple[Metric, ...] = (
    Metric("concepts_encoded", _concepts_encoded, "Concepts of the bank a linear probe on the layer separates from "
           "the rest (held-out AUROC above the permuted-label null's quantile).",
           "#{c : AUROC_cv(ridge probe, c vs rest) > q-quantile of the same on permuted labels}", unit="concepts",
           domain=COUNT, reads=READS_CONCEPTS, needs=_BANK, default=True, evidence=_EVIDENCE, integer=True, interval="informational"),
    Metric("unique_concepts", _unique_concepts, "Concepts detected by at least one probed direction (neurons, sign "
           "kept; the head's privileged directions, sign-free), against random orthonormal directions.",
           "#{c : max_j AUROC(X v_j, c vs rest) > q-quantile of the best AUROC of random orthonormal directions}",
           unit="concepts", params={"directions": Param(str, "all", choices=("all", "neurons", "head"), help="all (neurons and the head's directions), "
                                                                   "neurons, or head")},
           domain=COUNT, reads=READS_CONCEPTS, needs=_BANK + (NEEDS_NULL,), default=False, evidence=_EVIDENCE, integer=True, interval="informational",
           version=3),   # 2: the null draws at most 50 sets (MAX_DIRECTION_DRAWS); 3: not applicable, not 0, when
                         # the null's threshold is the highest attainable AUROC (docs/metrics.md#definition-versions)
    Metric("polysemanticity", _polysemanticity, "Concepts per direction: the mean over every probed direction "
           "(distribution and null in the details and the report).",
           "mean_j #{c : AUROC(X v_j, c) > threshold}", unit="concepts per direction",
           params={"directions": Param(str, "neurons", "neurons or head", choices=("neurons", "head"))},
           domain=CONCEPTS_PER_DIRECTION, reads=READS_CONCEPTS, needs=_BANK + (NEEDS_NULL,), default=False, evidence=_EVIDENCE, interval="informational", version=3),   # as unique_concepts
    Metric("concept_overlap", _concept_overlap, "Jaccard overlap of the concepts this model encodes with those "
           "the reference encodes on the same bank.", "|A ∩ B| / |A ∪ B|", unit="Jaccard",
           domain=FRACTION, reads=READS_CONCEPTS, needs=_BANK, default=True, evidence=_EVIDENCE, interval="informational"),
)
