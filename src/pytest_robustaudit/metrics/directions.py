"""Privileged directions of the classification head and pruning curves (the paper's second finding).

Definitions (docs/metrics.md has them with the formulas):

* Thin SVD of the head's weight ``W`` (classes x d, bias excluded) in float64: ``W = U S V^T``, rank
  ``r`` (singular values above ``max(C, d) * eps * s_max``), right singular vectors ``v_k``.
* Importance of direction ``k`` on the audited images: ``I_k = s_k * mean_x |cos(v_k, h(x))|``, ``h(x)``
  the row as the head reads it (unit-normalised for a zero-shot head).  Directions are ranked by
  importance, and for comparison by singular value alone.
* Pruning at fraction ``p`` keeps the top ``k = ceil((1 - p) r)`` directions ``V_k`` of a ranking:
  ``logits = h V_k V_k^T W^T + b`` (times the logit scale of a zero-shot head); ``p = 0`` keeps all
  ``r`` and gives the unpruned logits up to float64 rounding.

Two passes over the stored rows (importance needs every image before the ranking is known), each
in chunks, so memory stays flat in the number of images; per-layer results are cached in the
layer's :class:`~.inputs.LayerInputs`.  Accuracies are exact integer counts (ties as in
:mod:`.accuracy`).  numpy only.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from .head_metrics import accuracy_counts, head_targets
from .types import EFFECTIVE_RANK, FRACTION, POSITIVE_RATIO, NEEDS_DIRECTIONS, NEEDS_OF_READS, READS_HEAD, Evidence, Metric, MetricValue, NotApplicable, Param

#: the default pruning grid (fractions of the head's directions removed)
DEFAULT_GRID = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99)
RANKINGS = ("importance", "singular_value")
#: a direction is "on the outlier features" (marked in the importance spectrum) when more than this
#: share of its squared loading sits on them
MARK_SHARE = 0.5


def head_svd(head: Any) -> dict[str, np.ndarray]:
    """Thin SVD of the head's weight in float64: ``s`` (r,), ``vt`` (r, d), ``us`` = U S (C, r)."""
    u, s, vt = np.linalg.svd(np.asarray(head.weight, dtype=np.float64), full_matrices=False)
    tol = max(head.weight.shape) * np.finfo(np.float64).eps * (s[0] if s.size else 0.0)
    r = int((s > tol).sum())
    if r == 0:
        raise NotApplicable(f"{head.description} has an all-zero weight (rank 0)")
    return {"s": s[:r], "vt": vt[:r], "us": u[:, :r] * s[:r]}


def keep_count(p: float, r: int) -> int:
    """``k = ceil((1 - p) r)`` directions kept at pruning fraction ``p`` (at least 0, at most r)."""
    return min(r, max(0, math.ceil((1.0 - float(p)) * r - 1e-9)))


def directions(inputs: Any) -> dict[str, Any]:
    """The layer's head directions on its rows (cached): SVD, importance, rankings, rank r."""
    def build():
        head = inputs.fitting_head()   # importance reads no label: unlabelled probe data is enough
        svd = inputs.head_svd() if hasattr(inputs, "head_svd") else head_svd(head)
        vt = svd["vt"]
        total = np.zeros(vt.shape[0])
        n = 0
        for rows in inputs.finite_rows():
            x = head.features(rows)
            norms = np.linalg.norm(x, axis=1)
            keep = norms > 0
            total += np.abs((x[keep] @ vt.T) / norms[keep, None]).sum(axis=0)
            n += int(keep.sum())
        if n == 0:
            raise NotApplicable(f"no non-zero finite row on layer '{inputs.layer}'")
        importance = svd["s"] * total / n
        return {**svd, "r": int(vt.shape[0]), "importance": importance, "n": n, "head": head,
                "order": {"importance": np.argsort(-importance, kind="stable"),
                          "singular_value": np.arange(vt.shape[0])}}
    return inputs.cached("directions", build)



def pruned_top1(inputs: Any, ps: Sequence[float], ranking: str = "importance") -> dict[float, int]:
    """Exact top-1 counts of the head pruned at each ``p`` of ``ps`` (labelled finite rows; cached)."""
    ps = tuple(float(p) for p in ps)
    correct = pruned_correct(inputs, ps, ranking)
    return {p: int(correct[:, i].sum()) for i, p in enumerate(ps)}


def pruned_correct(inputs: Any, ps: Sequence[float], ranking: str = "importance") -> np.ndarray:
    """Per image, whether the head pruned at each ``p`` of ``ps`` classifies it right: bool
    ``[labelled finite rows, len(ps)]`` in row order (cached; what the pruning bootstrap resamples)."""
    from .accuracy import true_class_rank

    if ranking not in RANKINGS:
        raise NotApplicable(f"unknown ranking {ranking!r}; use one of {', '.join(RANKINGS)}")
    ps = tuple(float(p) for p in ps)
    bad = [p for p in ps if not 0.0 <= p < 1.0]
    if bad:
        raise NotApplicable(f"pruning fractions must lie in [0, 1), got {bad}")

    def build():
        found = directions(inputs)
        head, targets, finite = head_targets(inputs)
        order = found["order"][ranking]
        vt, us = found["vt"][order], found["us"][:, order]
        ks = [keep_count(p, found["r"]) for p in ps]
        blocks = []
        labels = targets[finite]
        offset = 0
        for rows in inputs.finite_rows():
            y = labels[offset:offset + rows.shape[0]]
            offset += rows.shape[0]
            keep = y >= 0
            if not keep.any():
                continue
            proj = head.features(rows[keep]) @ vt.T          # h V  (n, r), directions in ranking order
            block = np.zeros((int(keep.sum()), len(ps)), dtype=bool)
            for i, k in enumerate(ks):
                logits = proj[:, :k] @ us[:, :k].T               # h V_k V_k^T W^T = (h V_k)(U_k S_k)^T
                if head.logit_scale != 1.0:
                    logits *= head.logit_scale
                if head.bias is not None:
                    logits += head.bias
                block[:, i] = true_class_rank(logits, y[keep]) < 1
            blocks.append(block)
        return np.concatenate(blocks) if blocks else np.zeros((0, len(ps)), dtype=bool)
    return inputs.cached(f"pruned:{ranking}:{ps!r}", build)


def pruned_logits(head: Any, rows: np.ndarray, svd: dict[str, np.ndarray], order: np.ndarray, k: int) -> np.ndarray:
    """``h V_k V_k^T W^T + b`` for the first ``k`` directions of ``order`` (for tests and users)."""
    vt, us = svd["vt"][order[:k]], svd["us"][:, order[:k]]
    logits = (head.features(rows) @ vt.T) @ us.T
    if head.logit_scale != 1.0:
        logits *= head.logit_scale
    if head.bias is not None:
        logits += head.bias
    return logits


def parse_grid(text: Any) -> tuple[float, ...]:
    """A pruning grid from a metric parameter: ``"0, 0.1, 0.5"`` (or a list of numbers)."""
    items = text if isinstance(text, (list, tuple)) else str(text).replace(";", ",").split(",")
    try:
        grid = tuple(sorted({float(v) for v in items if str(v).strip()}))
    except ValueError:
        raise NotApplicable(f"grid {text!r} is not a comma-separated list of fractions") from None
    if not grid or grid[0] < 0 or grid[-1] >= 1:
        raise NotApplicable(f"grid {text!r} must hold fractions in [0, 1)")
    return grid


def _labelled(inputs: Any) -> int:
    counts = accuracy_counts(inputs)
    if counts["labelled"] == 0:
        raise NotApplicable(f"no labelled image on layer '{inputs.layer}' ({counts['unlabelled']} unlabelled)")
    return counts["labelled"]


def grid_problem(text: Any) -> str:
    """Why ``text`` cannot be a pruning grid ("" when it can): what the spec validator says of ``grid:``."""
    try:
        parse_grid(text)
    except NotApplicable as why:
        return str(why)
    return ""


def pruning_curve(inputs: Any, grid: Sequence[float]) -> dict[str, Any]:
    """Accuracy at each grid point for both rankings (fractions and counts), for the report."""
    labelled = _labelled(inputs)
    curve: dict[str, Any] = {"grid": [float(p) for p in grid], "labelled": labelled}
    for ranking in RANKINGS:
        counts = pruned_top1(inputs, grid, ranking)
        curve[ranking] = [counts[float(p)] / labelled for p in grid]
        curve[f"{ranking}_correct"] = [counts[float(p)] for p in grid]
    return curve


def outlier_features(inputs: Any, factor: float) -> np.ndarray:
    """The outlier features of the same layer (the outlier analysis's indices at ``factor``)."""
    return _outliers_of(inputs.stats.profile, factor)


def _outliers_of(profile: np.ndarray, factor: float) -> np.ndarray:
    """``outlier_count``'s outlier features (definition 2: above τ × the live features' reference
    scale, so a sparse layer whose median is 0 still has its outliers)."""
    from .outliers import outlier_indices

    return outlier_indices(profile, factor)


# -- intervals: each metric resamples the images itself (Metric.interval == "resampled") -----------------
#: said beside every direction interval: what is held fixed across resamples
CONDITIONAL_NOTE = "resamples the images; the head (its SVD) is fixed"


def _direction_resamples(inputs: Any, seed: int, resamples: int, fewer: bool = False) -> dict[str, np.ndarray]:
    """One pass over the finite rows with multinomial weights ``W [B, n]``: each resample's mean
    |cos(v_k, h(x))| per direction (hence its importance) and its activation profile (hence its
    outlier features), both under the same weights (cached per seed).  ``fewer``: resamples of
    m = ceil(n^0.8) images instead (importance only; ``m`` in the result)."""
    from .bootstrap import resample_weights
    from .bootstrap_profiles import default_m

    def build():
        found = directions(inputs)
        head, vt = found["head"], found["vt"]
        finite = inputs.finite_mask()
        n = int(finite.sum())
        m = default_m(n) if fewer else n
        w = resample_weights(n, resamples, seed, m=m if fewer else None)
        cos_sum = np.zeros((resamples, vt.shape[0]))
        counted = np.zeros(resamples)
        profile = None if fewer else np.zeros((resamples, int(inputs.stats.dim)))
        offset = 0
        for rows in inputs.finite_rows():
            part = w[:, offset:offset + rows.shape[0]]
            offset += rows.shape[0]
            x = head.features(rows)
            norms = np.linalg.norm(x, axis=1)
            keep = norms > 0
            cos = np.zeros((rows.shape[0], vt.shape[0]))
            cos[keep] = np.abs((x[keep] @ vt.T) / norms[keep, None])
            cos_sum += part @ cos
            counted += part @ keep.astype(np.float64)
            if profile is not None:
                profile += part @ np.abs(np.asarray(rows, dtype=np.float64))
        with np.errstate(invalid="ignore", divide="ignore"):
            importance = found["s"] * cos_sum / counted[:, None]
        return {"importance": importance, "profile": None if profile is None else profile / n, "n": n, "m": m}
    return inputs.cached(f"direction-resamples:{seed}:{resamples}:{fewer}", build)


def _top_count(fraction: float, r: int) -> int:
    return max(1, math.ceil(fraction * r - 1e-9))


def _top_share_resamples(inputs: Any, seed: int, resamples: int, fraction: float):
    """Each resample re-ranks its own importances and sums the top ones: a winner's curse (the top-k
    sum of noisy importances is convex in them, so both the estimate and every resample sit above
    what they estimate, by about the same amount).  The percentile interval added that bias a second
    time (70.5% coverage at 100 real Lite0 images, every miss above the truth); the basic interval
    reflects the replicates about the estimate and so subtracts it, and the m-out-of-n basic interval
    joins it for directions tied at the cut, where the ordinary bootstrap is inconsistent
    (:class:`~.bootstrap.Replicates`)."""
    from .bootstrap import Replicates

    def shares(boot):
        imp = boot["importance"]
        top = _top_count(fraction, imp.shape[1])
        ranked = -np.sort(-imp, axis=1)             # each resample re-ranks its directions
        with np.errstate(invalid="ignore", divide="ignore"):
            return ranked[:, :top].sum(axis=1) / imp.sum(axis=1)

    full = _direction_resamples(inputs, seed, resamples)
    fewer = _direction_resamples(inputs, seed, resamples, fewer=True)
    n, m = full["n"], fewer["m"]
    return Replicates(shares(full), "basic", fewer=(shares(fewer), math.sqrt(m / n))), n, \
        (f"{CONDITIONAL_NOTE}; each resample re-ranks the directions (basic intervals of {n} and of m = {m} images "
         f"per resample joined: the re-ranking's upward bias reflected away)")


def _mean_extremes(per_feature: np.ndarray, sure: np.ndarray, undecided: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row of ``per_feature`` ``[B, d]``: the least and the greatest mean over a set O of features with
    ``sure`` ⊆ O ⊆ ``sure`` ∪ ``undecided``, O not empty.  Exact: the mean is lowest (highest) when the
    undecided features are added smallest (largest) first, so the extremes lie among those prefixes."""
    base = per_feature[:, sure].sum(axis=1)
    counts = sure.size + np.arange(undecided.size + 1)
    out = []
    for largest_first in (False, True):
        part = np.sort(per_feature[:, undecided], axis=1)
        if largest_first:
            part = part[:, ::-1]
        sums = base[:, None] + np.concatenate([np.zeros((part.shape[0], 1)), np.cumsum(part, axis=1)], axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            means = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
        out.append(np.nanmax(means, axis=1) if largest_first else np.nanmin(means, axis=1))
    return out[0], out[1]


def _alignment_resamples(inputs: Any, seed: int, resamples: int, fraction: float, factor: float, ranking: str):
    """Two selections make the alignment: the top directions (each resample re-ranks them, as before)
    and the outlier features, a threshold.  A feature near its threshold may be an outlier of the
    truth and not of the sample (or the other way round); resamples of the sample then select what
    the sample selected, so re-finding the outliers per resample cannot see it, and the percentile
    interval missed the truth (88–91% at τ = 3 on the real Lite0, every miss on one side).  Instead
    the outlier features are split as ``outlier_count``'s interval splits them (surely over, surely
    under, undecided: :func:`~.bootstrap_profiles.exceedance_scores` on the same resamples), and each
    resample's value ranges over every outlier set the undecided features allow; the interval is
    the percentile hull of those ranges (:class:`~.bootstrap.Replicates` ``"hull"``).  The score is a
    loading, not the importance that ranks the directions, so re-ranking adds no bias of its own in
    the score's direction: measured, the percentile of the ranking part covers (docs/intervals.md)."""
    from .bootstrap import Replicates
    from .bootstrap_profiles import exceedance_scores
    from .outliers import _outlier_margins

    if ranking not in RANKINGS:
        raise NotApplicable(f"unknown ranking {ranking!r}; use one of {', '.join(RANKINGS)}")
    found = directions(inputs)
    boot = _direction_resamples(inputs, seed, resamples)
    imp, profiles = boot["importance"], boot["profile"]
    r, d = found["vt"].shape
    top = _top_count(fraction, r)
    if ranking == "importance":
        chosen = np.argsort(-imp, axis=1, kind="stable")[:, :top]     # each resample re-ranks its directions
    else:
        chosen = np.broadcast_to(np.arange(top), (resamples, top))
    picked = np.zeros((resamples, r))
    np.put_along_axis(picked, chosen, 1.0, axis=1)
    loadings = found["vt"] ** 2                         # (r, d)
    on_feature = picked @ loadings                      # (B, d): the top directions' loading on each feature
    scale = d / (picked @ loadings.sum(axis=1))         # value = d · mean_{i ∈ O} loading_i / Σ_top ‖v_k‖²
    margins = _outlier_margins(factor)
    observed = np.asarray(margins(np.asarray(inputs.stats.profile, dtype=np.float64)[None, :]), dtype=np.float64)[0]
    with np.errstate(invalid="ignore", divide="ignore"):
        replicated = np.asarray(margins(profiles), dtype=np.float64)
    chosen_now = np.flatnonzero(observed > 0)            # the sample's own outlier features
    values = scale * on_feature[:, chosen_now].mean(axis=1) if chosen_now.size else np.full(resamples, np.nan)

    def envelope(tails: tuple[float, float]):
        z, c_low, c_high = exceedance_scores(observed, replicated, 1.0, tails)
        sure, undecided = np.flatnonzero(z > c_low), np.flatnonzero((z <= c_low) & (z > -c_high))
        lows, highs = _mean_extremes(on_feature, sure, undecided)
        return scale * lows, scale * highs, (f"outlier features: {sure.size} sure, {undecided.size} undecided at "
                                             f"this level, every set they allow taken")
    return Replicates(values, "hull", envelope), boot["n"], f"{CONDITIONAL_NOTE}; each resample re-ranks the directions"


def _prunable_resamples(inputs: Any, seed: int, resamples: int, tolerance: float, grid: str):
    from .bootstrap import resample_weights

    points = parse_grid(grid)
    ps = tuple(sorted(set(points) | {0.0}))
    correct = pruned_correct(inputs, ps, "importance").astype(np.float64)   # (labelled, len(ps))
    n = correct.shape[0]
    if n == 0:
        raise NotApplicable(f"no labelled image on layer '{inputs.layer}'")
    w = resample_weights(n, resamples, seed)
    acc = (w @ correct) / n                                   # (B, len(ps))
    unpruned = acc[:, ps.index(0.0)]
    at = acc[:, [ps.index(p) for p in points]]
    within = np.cumprod(at >= unpruned[:, None] - tolerance - _ROUNDING, axis=1)   # every grid point up to here holds
    held = within.sum(axis=1).astype(int)
    value = np.where(held > 0, np.asarray(points)[np.maximum(held - 1, 0)], 0.0)
    return value, n, f"{CONDITIONAL_NOTE}, and so is the importance ranking of the full probe set"


# -- the metrics ---------------------------------------------------------------------------------
def _top_share(inputs: Any, fraction: float) -> MetricValue:
    found = directions(inputs)
    imp = found["importance"]
    order = found["order"]["importance"]
    top = _top_count(fraction, found["r"])
    share = float(imp[order[:top]].sum() / imp.sum())
    outliers = outlier_features(inputs, 10.0)
    marked = []
    if outliers.size:
        load = (found["vt"][order] ** 2)[:, outliers].sum(axis=1)
        marked = [int(i) for i in np.flatnonzero(load > MARK_SHARE)]
    return MetricValue(share, {"fraction": fraction, "top": top, "rank": found["r"],
                               "importance": [float(v) for v in imp[order]],
                               "singular_values": [float(v) for v in found["s"][order]],
                               "outlier_directions": marked, "outlier_features": [int(i) for i in outliers],
                               "head": found["head"].description})


def _effective_rank(inputs: Any) -> MetricValue:
    found = directions(inputs)
    p = found["s"] / found["s"].sum()
    p = p[p > 0]
    return MetricValue(float(np.exp(-(p * np.log(p)).sum())), {"rank": found["r"]})


def _alignment(inputs: Any, fraction: float, factor: float, ranking: str) -> MetricValue:
    found = directions(inputs)
    outliers = outlier_features(inputs, factor)
    if outliers.size == 0:
        raise NotApplicable(f"layer '{inputs.layer}' has no outlier feature (none above {factor:g} x the reference "
                            "scale of the live features, as outlier_count counts them), so no direction can align "
                            "with one")
    d = found["vt"].shape[1]
    top = _top_count(fraction, found["r"])
    if ranking not in RANKINGS:
        raise NotApplicable(f"unknown ranking {ranking!r}; use one of {', '.join(RANKINGS)}")
    loadings = found["vt"][found["order"][ranking][:top]] ** 2
    share = float(loadings[:, outliers].sum() / loadings.sum())
    chance = outliers.size / d
    return MetricValue(share / chance, {"share": share, "chance": chance, "top": top, "outlier_features":
                                        [int(i) for i in outliers], "factor": factor, "ranking": ranking})


def _accuracy_at(inputs: Any, p: float, ranking: str) -> MetricValue:
    labelled = _labelled(inputs)
    correct = pruned_top1(inputs, (float(p),), ranking)[float(p)]
    found = directions(inputs)
    return MetricValue(correct / labelled, {"correct": correct, "labelled": labelled, "p": p, "ranking": ranking,
                                            "kept": keep_count(p, found["r"]), "rank": found["r"]})


#: accuracies are ratios of counts: 0.69 - 0.01 is not 0.68 in floating point, and a drop of exactly the
#: tolerance must count as within it (far below one image in 10^9)
_ROUNDING = 1e-12


def _prunable(inputs: Any, tolerance: float, grid: str) -> MetricValue:
    points = parse_grid(grid)
    labelled = _labelled(inputs)
    unpruned = accuracy_counts(inputs)["top1"] / labelled
    curve = pruning_curve(inputs, points)
    best = 0.0
    for p, acc in zip(points, curve["importance"]):
        if acc < unpruned - tolerance - _ROUNDING:     # a loss of exactly the tolerance is kept
            break
        best = p
    return MetricValue(best, {"tolerance": tolerance, "unpruned": unpruned, "curve": curve})


_FRACTION = Param(float, 0.1, "share of the head's r directions counted as its top directions", minimum=0.0,
                  maximum=1.0)
_DIRECTION_EVIDENCE = Evidence("indicator", "Crabbé et al. (TMLR 2024): in robust zero-shot CLIP the outlier "
                                            "features induce a few privileged head directions and the rest can be "
                                            "pruned without losing accuracy; a supervised CNN loses accuracy.")
GRID_TEXT = ", ".join(f"{p:g}" for p in DEFAULT_GRID)

#: what every direction metric reads: the head's rows, labels and head, and the head's SVD (stored)
_NEEDS = NEEDS_OF_READS[READS_HEAD] + (NEEDS_DIRECTIONS,)

DIRECTION_METRICS: tuple[Metric, ...] = (
    Metric("importance_top_share", _top_share, "Share of the total direction importance held by the head's top "
           "directions (ranked by importance).", "Σ_{k ≤ ceil(f r)} I_(k) / Σ_k I_k, I_k = s_k mean_x |cos(v_k, h(x))|",
           unit="fraction", domain=FRACTION, direction="higher", params={"fraction": _FRACTION}, reads=READS_HEAD, needs=_NEEDS,
           evidence=_DIRECTION_EVIDENCE, interval="resampled", interval_input=_top_share_resamples),
    Metric("head_effective_rank", _effective_rank, "Effective rank of the head's weight (Roy & Vetterli 2007).",
           "exp(−Σ_k p_k log p_k), p_k = s_k / Σ s", unit="directions", domain=EFFECTIVE_RANK, direction="neutral", reads=READS_HEAD, needs=_NEEDS,
           evidence=Evidence("informational", "How many directions the head spreads its singular values over."),
           interval="exact"),
    Metric("direction_outlier_alignment", _alignment, "How much the top head directions load on the layer's outlier "
           "features, relative to chance (1 = chance).",
           "(Σ_{k top} Σ_{i ∈ O} v_ki² / Σ_{k top} ‖v_k‖²) / (|O| / d)", unit="× chance", domain=POSITIVE_RATIO, direction="higher",
           params={"fraction": _FRACTION, "factor": Param(float, 10.0, "τ of the outlier analysis (outlier_count)",
                                                           minimum=1.0),
                   "ranking": Param(str, "importance", "which top directions: importance or singular_value",
                                    choices=RANKINGS)},
           reads=READS_HEAD, needs=_NEEDS, evidence=_DIRECTION_EVIDENCE, interval="resampled", interval_input=_alignment_resamples),
    Metric("accuracy_at_pruning", _accuracy_at, "Top-1 accuracy of the head pruned to its top ceil((1−p) r) "
           "directions.", "acc(h V_k V_k^T W^T + b), k = ceil((1 − p) r)", unit="fraction", domain=FRACTION, direction="higher",
           params={"p": Param(float, 0.5, "fraction of the directions removed, in [0, 1]", minimum=0.0, maximum=1.0),
                   "ranking": Param(str, "importance", "importance or singular_value", choices=RANKINGS)},
           reads=READS_HEAD, needs=_NEEDS, evidence=_DIRECTION_EVIDENCE, interval="binomial"),
    Metric("prunable_fraction", _prunable, "Largest grid p such that pruning up to p keeps top-1 within the "
           "tolerance of the unpruned head.", "max{p ∈ grid : acc(q) ≥ acc(0) − tol for every grid q ≤ p}",
           unit="fraction", domain=FRACTION, direction="higher",
           params={"tolerance": Param(float, 0.01, "accuracy points (fraction) one may lose", minimum=0.0,
                                        maximum=1.0),
                   "grid": Param(str, GRID_TEXT, "pruning fractions, comma-separated", check=grid_problem)},
           reads=READS_HEAD, needs=_NEEDS, evidence=_DIRECTION_EVIDENCE, headline="prunable", interval="resampled",
           interval_input=_prunable_resamples),
)
