"""Concept probing (issue 20): which concepts a representation encodes, which directions detect them.

Inputs are plain arrays: representations ``X`` [N, d] (one row per image of a concept bank), each
image's concept index ``labels`` [N] (one concept per image, indices 0..C-1, every concept present),
and for detection a [k, d] matrix of unit ``directions`` (the head's right singular vectors, sign
free; or neurons, the identity basis, sign kept).  Every number comes with its **null**, computed by
the same code on data where no concept can be present, and every threshold is **calibrated against
that null**: a fixed AUROC threshold saturates (5 images per concept and 1280 directions reach a best
AUROC of about 0.9 by chance alone).

* :func:`probe_concepts`: a concept is *encoded* when a linear probe (one-vs-rest, closed-form ridge,
  all concepts in one solve per fold) separates its images from the rest with a cross-validated
  held-out AUROC above the ``quantile`` of the same probe's AUROCs on permuted concept labels.
* :func:`detect_concepts`: direction j *detects* concept c when the AUROC of the projection
  ``X @ v_j`` (concept c's images against the rest; ``max(A, 1 - A)`` for sign-free directions)
  lies above the ``quantile`` of the per-concept best AUROC over as many random orthonormal directions.
* :func:`concept_overlap`: Jaccard of two models' concept sets, beside the Jaccard two random sets
  of the same sizes have on average.

The paper's conclusion is that these numbers do **not** track robustness: every result carries
``informational=True`` and the docs (docs/concepts.md) say so in words.  Everything is seeded.
scikit-learn provides the ridge solve and the stratified folds (imported inside the functions).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

#: the null quantile a threshold sits at unless a caller asks otherwise
DEFAULT_QUANTILE = 0.99
#: null draws are repeated until at least this many null values back the quantile
MIN_NULL_VALUES = 1000
#: ... but the random-direction null draws at most this many sets of directions unless asked for more: each
#: draw costs a k x d orthonormalisation and an N x d x k product (seconds at d = 1280), and ceil(1000 / C)
#: draws made a small bank the slowest (6 concepts: 167 draws, 479 s).  50 draws x C concepts back the
#: 0.99 quantile with >= 50 C values: at C = 6 the threshold's chance exceedance is 1% +- 0.6% (binomial
#: standard error of the empirical quantile), at C >= 20 the 1000-value default is met (docs/concepts.md#cost)
MAX_DIRECTION_DRAWS = 50
#: the highest AUROC any direction can reach (every image of the concept ranked above every other): a
#: threshold at it cannot be beaten, since a direction detects a concept only strictly above the threshold
ATTAINABLE_AUROC = 1.0
#: what an unresolvable detection means (:attr:`DirectionResult.unresolvable` gives the figures behind it)
UNRESOLVABLE = ("random directions already reach the highest attainable AUROC (1) on this bank, so no direction "
                "can detect a concept beyond chance")


@dataclass(frozen=True)
class ConceptFigure:
    """One concept metric beside its null: ``value`` on the real data, ``null`` the same statistic's mean
    over the null draws, ``threshold`` the calibrated AUROC threshold it counts with."""

    name: str
    value: float
    null: float
    threshold: float
    informational: bool = True
    note: str = ""


@dataclass(frozen=True, eq=False)
class ProbeResult:
    """Linear-probe results, one entry per concept (concept order = label index).

    ``auroc``: cross-validated held-out AUROC per concept; ``null_auroc`` [repeats, C]: the same on
    permuted labels; ``threshold``: the ``quantile`` of every null AUROC; ``encoded``: the concepts
    strictly above it.
    """

    names: tuple[str, ...]
    auroc: np.ndarray
    null_auroc: np.ndarray
    threshold: float
    quantile: float
    folds: int
    alpha: float
    seed: int
    informational: bool = True

    @property
    def encoded_mask(self) -> np.ndarray:
        return self.auroc > self.threshold

    @property
    def encoded(self) -> tuple[str, ...]:
        return tuple(n for n, hit in zip(self.names, self.encoded_mask) if hit)

    @property
    def concepts_encoded(self) -> ConceptFigure:
        null = float(np.mean((self.null_auroc > self.threshold).sum(axis=1)))
        return ConceptFigure("concepts_encoded", float(self.encoded_mask.sum()), null, self.threshold,
                             note=f"of {len(self.names)} concepts; null: the same probe on permuted concept labels "
                                  f"({self.null_auroc.shape[0]} permutations)")


@dataclass(frozen=True, eq=False)
class DirectionResult:
    """Which directions detect which concepts.

    ``auroc`` [C, k]: AUROC of each direction's projection for each concept (already ``max(A, 1-A)``
    when ``sign_free``); ``detects`` [C, k]: ``auroc > threshold``; ``null_best`` [repeats, C]: the best
    AUROC per concept over ``k`` random orthonormal directions in each null draw; ``threshold``: its
    ``quantile``; ``null_unique`` [repeats] and ``null_per_direction`` [repeats, k]: the unique-concept
    count and concepts per direction of each null draw at that threshold.
    """

    names: tuple[str, ...]
    auroc: np.ndarray
    sign_free: bool
    threshold: float
    quantile: float
    null_best: np.ndarray
    null_unique: np.ndarray
    null_per_direction: np.ndarray
    seed: int
    informational: bool = True
    #: [repeats, C] bool: concept c detected by some random direction of null draw r (for the null of a
    #: union over several sets of directions, drawn in step)
    null_hits: np.ndarray | None = None

    @property
    def detects(self) -> np.ndarray:
        return self.auroc > self.threshold

    @property
    def per_direction(self) -> np.ndarray:
        """How many concepts each direction detects [k]."""
        return self.detects.sum(axis=0)

    @property
    def unique(self) -> tuple[str, ...]:
        """Concepts detected by at least one direction."""
        return tuple(n for n, hit in zip(self.names, self.detects.any(axis=1)) if hit)

    @property
    def best_direction(self) -> np.ndarray:
        """Each concept's best direction (index into the directions) [C]."""
        return np.argmax(self.auroc, axis=1)

    @property
    def unresolvable(self) -> str:
        """Why no direction can detect any concept here ("" when one can): the threshold sits at the
        highest attainable AUROC.  Random directions already separate some concepts perfectly (a concept
        whose images cluster tightly, far from the rest: a plain colour), often enough that the ``quantile``
        of the null maxima is 1, so "strictly above the threshold" is out of reach for every direction and
        the count would read 0 whatever the representation: not a measurement (docs/concepts.md).  The
        answer says how the threshold came about; :data:`UNRESOLVABLE` is the sentence it completes."""
        if self.threshold < ATTAINABLE_AUROC:
            return ""
        at_top = self.null_best >= ATTAINABLE_AUROC
        return (f"threshold {self.threshold:.4g}, the {self.quantile:g} quantile of the best AUROC of "
                f"{self.auroc.shape[1]} random orthonormal directions per concept over {self.null_best.shape[0]} "
                f"draws, {at_top.mean():.1%} of them 1 (on {int(at_top.any(axis=0).sum())} of {len(self.names)} "
                f"concepts)")

    @property
    def unique_concepts(self) -> ConceptFigure:
        return ConceptFigure("unique_concepts", float(len(self.unique)), float(self.null_unique.mean()),
                             self.threshold,
                             note=f"of {len(self.names)} concepts, union over {self.auroc.shape[1]} directions; null: "
                                  f"as many random orthonormal directions ({len(self.null_unique)} draws)")

    @property
    def polysemanticity(self) -> Polysemanticity:
        return Polysemanticity.of(self.per_direction, self.null_per_direction, self.threshold)


@dataclass(frozen=True)
class Polysemanticity:
    """Concepts per direction: the mean over all directions, the mean over directions that detect at
    least one concept (``mean_active``, NaN when none does), and the distribution ``histogram[i]`` =
    number of directions detecting ``i`` concepts; each beside its null (mean over the null draws)."""

    mean: float
    mean_active: float
    histogram: tuple[int, ...]
    null_mean: float
    null_mean_active: float
    null_histogram: tuple[float, ...]
    threshold: float
    informational: bool = True

    @classmethod
    def of(cls, per_direction: np.ndarray, null_per_direction: np.ndarray, threshold: float) -> Polysemanticity:
        def active_mean(counts: np.ndarray) -> float:
            active = counts[counts > 0]
            return float(active.mean()) if active.size else math.nan

        top = int(max(per_direction.max(initial=0), null_per_direction.max(initial=0)))
        hist = np.bincount(per_direction, minlength=top + 1)
        null_hist = np.mean([np.bincount(row, minlength=top + 1) for row in null_per_direction], axis=0)
        null_active = [active_mean(row) for row in null_per_direction]
        null_active = [v for v in null_active if not math.isnan(v)]
        return cls(mean=float(per_direction.mean()), mean_active=active_mean(per_direction),
                   histogram=tuple(int(v) for v in hist), null_mean=float(null_per_direction.mean()),
                   null_mean_active=float(np.mean(null_active)) if null_active else math.nan,
                   null_histogram=tuple(float(v) for v in null_hist), threshold=threshold)

    @property
    def figure(self) -> ConceptFigure:
        return ConceptFigure("polysemanticity", self.mean, self.null_mean, self.threshold,
                             note="mean concepts per direction over all probed directions")


@dataclass(frozen=True)
class Overlap:
    """Jaccard overlap of two concept sets, beside the mean Jaccard of two uniformly random subsets of the
    same sizes drawn from the same ``universe`` of concepts (hypergeometric, exact).  ``jaccard`` is NaN
    (with ``undefined_reason``) when both sets are empty."""

    jaccard: float
    null: float
    intersection: int
    union: int
    sizes: tuple[int, int]
    universe: int
    undefined_reason: str = ""
    informational: bool = True


# ---------------------------------------------------------------------------------------------
# helpers


def _check(X: np.ndarray, labels: np.ndarray, names: Sequence[str] | None, min_per_concept: int
           ) -> tuple[np.ndarray, np.ndarray, tuple[str, ...], np.ndarray]:
    X = np.asarray(X, dtype=np.float64)
    labels = np.asarray(labels)
    if X.ndim != 2 or labels.shape != (X.shape[0],):
        raise ValueError(f"X must be [N, d] and labels [N], got {X.shape} and {labels.shape}")
    if not np.issubdtype(labels.dtype, np.integer) or labels.size == 0 or labels.min() < 0:
        raise ValueError("labels must be non-negative integer concept indices")
    counts = np.bincount(labels)
    n_concepts = counts.size if names is None else len(names)
    if counts.size > n_concepts:
        raise ValueError(f"a label ({counts.size - 1}) has no name ({n_concepts} names)")
    counts = np.bincount(labels, minlength=n_concepts)
    if n_concepts < 2 or counts.min() < min_per_concept:
        raise ValueError(f"need >= 2 concepts with >= {min_per_concept} images each; counts per concept: "
                         f"min {counts.min()}, concepts {n_concepts}")
    if not np.isfinite(X).all():
        raise ValueError("X holds NaN or infinite values")
    names = tuple(names) if names is not None else tuple(f"concept_{i}" for i in range(n_concepts))
    return X, labels, names, counts


def _null_repeats(n_concepts: int, repeats: int | None, cap: int | None = None) -> int:
    """``repeats`` as asked, else enough draws for MIN_NULL_VALUES null values, at most ``cap`` draws."""
    if repeats is not None:
        return max(1, repeats)
    wanted = math.ceil(MIN_NULL_VALUES / n_concepts)
    return max(1, min(wanted, cap) if cap is not None else wanted)


def rank_auroc(scores: np.ndarray, labels: np.ndarray, n_concepts: int) -> np.ndarray:
    """AUROC of every score column for every concept against the rest, [C, k], from ranks.

    Mann-Whitney: with average ranks (ties count one half) of column j, AUROC(c, j) =
    (sum of concept c's ranks - n_c (n_c + 1) / 2) / (n_c (N - n_c)); all columns and concepts in one
    ranking and one matrix product.  Equal to ``sklearn.metrics.roc_auc_score`` (tested).
    """
    from scipy.stats import rankdata

    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim == 1:
        scores = scores[:, None]
    ranks = rankdata(scores, axis=0)
    onehot = np.zeros((n_concepts, scores.shape[0]))
    onehot[labels, np.arange(scores.shape[0])] = 1.0
    counts = onehot.sum(axis=1, keepdims=True)
    rank_sums = onehot @ ranks
    return (rank_sums - counts * (counts + 1) / 2) / (counts * (scores.shape[0] - counts))


def _own_auroc(scores: np.ndarray, labels: np.ndarray, n_concepts: int) -> np.ndarray:
    """AUROC of column c of ``scores`` [N, C] for concept c only (the probe's own score), [C]."""
    from scipy.stats import rankdata

    ranks = rankdata(scores, axis=0)
    n = scores.shape[0]
    counts = np.bincount(labels, minlength=n_concepts).astype(np.float64)
    rank_sums = np.zeros(n_concepts)
    np.add.at(rank_sums, labels, ranks[np.arange(n), labels])
    return (rank_sums - counts * (counts + 1) / 2) / (counts * (n - counts))


# ---------------------------------------------------------------------------------------------
# encoded concepts: the linear probe


def probe_concepts(X: np.ndarray, labels: np.ndarray, names: Sequence[str] | None = None, *, folds: int = 5,
                   alpha: float = 1.0, null_repeats: int | None = None, quantile: float = DEFAULT_QUANTILE,
                   seed: int = 0) -> ProbeResult:
    """Which concepts a linear probe on ``X`` finds, with a threshold calibrated on permuted labels.

    Probe: one-vs-rest ridge regression onto the concept's indicator (a least-squares linear
    classifier: the shrunken LDA direction for two classes), with an intercept and an isotropic
    penalty ``alpha x trace(Xc^T Xc) / d`` (``alpha`` times the mean eigenvalue of the training fold's
    scatter, so it does not depend on the features' scale).  It is rotation-invariant: ``X @ Q`` for
    an orthogonal ``Q`` gives the same AUROCs, which is why the null permutes labels instead of
    rotating.  All C concepts, and the permuted copies of the null, share one solve per fold
    (sklearn ``Ridge(solver="cholesky")``, multi-target; the dual form when N < d).

    Cross-validation: ``StratifiedKFold(min(folds, smallest concept), shuffle, seed)`` on the concept
    labels, so every concept has images in every held-out fold; a concept's AUROC is computed within
    each held-out fold (its held-out images against the fold's other images, scored by the probe that
    did not see them) and averaged over the folds.  (Pooling held-out scores across folds instead mixes
    the folds' different offsets and, with one or two positives per fold, scatters chance AUROCs
    from 0.25 to 0.95.)

    Null: the same folds and probe on ``null_repeats`` permutations of the labels (default: enough that
    C x repeats >= 1000), each permutation shuffling labels within every held-out fold so that the
    folds stay stratified; ``threshold`` = the ``quantile`` of the pooled null AUROCs.
    """
    from sklearn.linear_model import Ridge
    from sklearn.model_selection import StratifiedKFold

    X, labels, names, counts = _check(X, labels, names, min_per_concept=2)
    n, d = X.shape
    n_concepts = len(names)
    repeats = _null_repeats(n_concepts, null_repeats)
    n_splits = int(min(folds, counts.min()))
    splitter = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    test_folds = [test for _, test in splitter.split(np.zeros(n), labels)]
    # null labels: each permutation shuffles the labels within every held-out fold, so every concept keeps
    # its number of images in each fold (the folds stay stratified for the null as for the real labels)
    rng = np.random.default_rng(seed)
    label_sets = [labels]
    for _ in range(repeats):
        permuted = labels.copy()
        for test in test_folds:
            permuted[test] = labels[rng.permutation(test)]
        label_sets.append(permuted)
    targets = np.zeros((n, n_concepts * len(label_sets)))
    for r, lab in enumerate(label_sets):
        targets[np.arange(n), r * n_concepts + lab] = 1.0

    aurocs = np.zeros((len(label_sets), n_concepts))
    for test in test_folds:
        train = np.setdiff1d(np.arange(n), test)
        centred = X[train] - X[train].mean(axis=0)
        penalty = alpha * float(np.einsum("ij,ij->", centred, centred)) / d
        model = Ridge(alpha=max(penalty, 1e-12), fit_intercept=True, solver="cholesky")
        model.fit(X[train], targets[train])
        scores = model.predict(X[test])
        for r, lab in enumerate(label_sets):
            aurocs[r] += _own_auroc(scores[:, r * n_concepts:(r + 1) * n_concepts], lab[test], n_concepts)
    aurocs /= len(test_folds)
    threshold = float(np.quantile(aurocs[1:], quantile))
    return ProbeResult(names=names, auroc=aurocs[0], null_auroc=aurocs[1:], threshold=threshold, quantile=quantile,
                       folds=n_splits, alpha=alpha, seed=seed)


# ---------------------------------------------------------------------------------------------
# directions that detect concepts


def random_orthonormal(k: int, d: int, rng: np.random.Generator) -> np.ndarray:
    """``k`` random orthonormal directions of R^d, [k, d], Haar-distributed: the rows of a Gaussian matrix
    orthonormalised in order (Gram-Schmidt, i.e. QR with a positive diagonal), computed as CholeskyQR2:
    Q = L^-1 G with L L^T = G G^T, done twice so the rows are orthonormal to rounding error.  Several
    times faster than Householder QR on a shared CPU, and the same matrix in exact arithmetic."""
    from scipy.linalg import solve_triangular

    if k > d:
        raise ValueError(f"cannot draw {k} orthonormal directions in {d} dimensions")
    q = rng.standard_normal((k, d))
    for _ in range(2):
        lower = np.linalg.cholesky(q @ q.T)
        q = solve_triangular(lower, q, lower=True)
    return q


def _direction_auroc(X: np.ndarray, directions: np.ndarray, labels: np.ndarray, n_concepts: int,
                     sign_free: bool) -> np.ndarray:
    auroc = rank_auroc(X @ directions.T, labels, n_concepts)
    return np.maximum(auroc, 1.0 - auroc) if sign_free else auroc


def detect_concepts(X: np.ndarray, labels: np.ndarray, directions: np.ndarray, names: Sequence[str] | None = None,
                    *, sign_free: bool, null_repeats: int | None = None, quantile: float = DEFAULT_QUANTILE,
                    seed: int | Sequence[int] = 0) -> DirectionResult:
    """Which of ``directions`` [k, d] (unit rows) detect which concepts, against random directions.

    AUROC(c, j) ranks the projections ``X @ v_j``: concept c's images against all the others; for
    ``sign_free`` directions (SVD: the sign of a singular vector is arbitrary) ``max(A, 1 - A)``, for
    neurons (``np.eye(d)``, sign kept) ``A`` itself.  Null: ``null_repeats`` draws (default: C x draws
    >= 1000) of ``k`` random orthonormal directions of R^d, scored the same way; per draw and concept,
    the best AUROC over the directions; ``threshold`` = the ``quantile`` of those maxima, so that by
    chance a concept is detected by *some* direction with probability ``1 - quantile``.
    """
    X, labels, names, _ = _check(X, labels, names, min_per_concept=1)
    directions = np.asarray(directions, dtype=np.float64)
    if directions.ndim != 2 or directions.shape[1] != X.shape[1]:
        raise ValueError(f"directions must be [k, {X.shape[1]}], got {directions.shape}")
    norms = np.linalg.norm(directions, axis=1)
    if not np.allclose(norms, 1.0, atol=1e-6):
        raise ValueError(f"directions must be unit vectors (norms {norms.min():.6g} to {norms.max():.6g})")
    n_concepts = len(names)
    k, d = directions.shape
    auroc = _direction_auroc(X, directions, labels, n_concepts, sign_free)

    rng = np.random.default_rng(seed)
    repeats = _null_repeats(n_concepts, null_repeats, cap=MAX_DIRECTION_DRAWS)
    null_aurocs = [_direction_auroc(X, random_orthonormal(k, d, rng), labels, n_concepts, sign_free)
                   for _ in range(repeats)]
    null_best = np.stack([a.max(axis=1) for a in null_aurocs])
    threshold = float(np.quantile(null_best, quantile))
    null_hits = np.stack([(a > threshold).any(axis=1) for a in null_aurocs])
    null_unique = null_hits.sum(axis=1)
    null_per_direction = np.stack([(a > threshold).sum(axis=0) for a in null_aurocs])
    return DirectionResult(names=names, auroc=auroc, sign_free=sign_free, threshold=threshold, quantile=quantile,
                           null_best=null_best, null_unique=null_unique, null_per_direction=null_per_direction,
                           seed=seed, null_hits=null_hits)


# ---------------------------------------------------------------------------------------------
# overlap between models


def expected_random_jaccard(size_a: int, size_b: int, universe: int) -> float:
    """Mean Jaccard of two independent uniformly random subsets of sizes ``size_a`` and ``size_b`` of a set
    of ``universe`` elements: the intersection is hypergeometric, J = i / (a + b - i)."""
    if not 0 <= size_a <= universe or not 0 <= size_b <= universe:
        raise ValueError(f"set sizes {size_a}, {size_b} must lie in 0..{universe}")
    if size_a == 0 and size_b == 0:
        return math.nan
    total = math.comb(universe, size_b)
    mean = 0.0
    for i in range(max(0, size_a + size_b - universe), min(size_a, size_b) + 1):
        p = math.comb(size_a, i) * math.comb(universe - size_a, size_b - i) / total
        mean += p * i / (size_a + size_b - i)
    return mean


def concept_overlap(a: Iterable[str], b: Iterable[str], universe: int | Iterable[str]) -> Overlap:
    """Jaccard of two models' concept sets (encoded, or detected), with its chance value from
    :func:`expected_random_jaccard`.  ``universe``: the bank's concepts (or their number)."""
    set_a, set_b = set(a), set(b)
    size = universe if isinstance(universe, int) else len(set(universe))
    union = len(set_a | set_b)
    inter = len(set_a & set_b)
    null = expected_random_jaccard(len(set_a), len(set_b), size)
    if union == 0:
        return Overlap(math.nan, null, 0, 0, (0, 0), size, undefined_reason="neither model has any concept")
    return Overlap(inter / union, null, inter, union, (len(set_a), len(set_b)), size)
