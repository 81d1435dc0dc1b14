"""Top-k accuracy of a head on stored representation rows, as exact integer counts.

Why counts and float64: an accuracy is a ratio of two integers, and both must be the same on every
run and machine, so logits are computed in float64 from the stored float32 rows (never by the
model in float32 or AMP, whose rounding can swap two close classes) and what comes back are the
integers; the fraction is ``topk / labelled``.  Unlabelled images (label ``-1``) are excluded and
counted, never scored as wrong.

Ties: the rank of the true class is its position in a *stable* argsort of ``-logits``, i.e. the
number of classes with a strictly larger logit plus the number of classes with an equal logit and
a smaller column index.  An image is top-k correct when that rank is below ``k``.  So among equal
logits the lower class index wins (with ``class_subset``, the earlier position in the subset),
which is what ``numpy.argsort(-logits, kind="stable")`` and ``torch.topk`` on the CPU report for
exact ties; a constant head therefore scores class 0 only.
"""

from __future__ import annotations

from typing import Any, Iterable, Sequence

import numpy as np

from ..errors import AuditError

__all__ = ["AccuracyError", "true_class_rank", "topk_counts"]


class AccuracyError(AuditError):
    """Labels and rows do not fit each other or the head (lengths, ranges, non-finite logits)."""


def true_class_rank(logits: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Rank (0 = best) of each row's target column in a stable argsort of ``-logits``."""
    rows = np.arange(logits.shape[0])
    own = logits[rows, targets][:, None]
    columns = np.arange(logits.shape[1])[None, :]
    higher = (logits > own).sum(axis=1)
    tied_before = ((logits == own) & (columns < targets[:, None])).sum(axis=1)
    return higher + tied_before


def topk_counts(
    row_chunks: Iterable[Any],
    labels: Sequence[int] | np.ndarray,
    head: Any,
    ks: Sequence[int] = (1, 5),
    class_subset: Sequence[int] | None = None,
) -> dict[str, int]:
    """Exact top-k counts of ``head`` on rows streamed in image order.

    ``row_chunks``: ``[n, d]`` arrays (float32 as stored), concatenated in the same order as
    ``labels``.  ``labels``: one class index of ``head`` per image, ``-1`` for unlabelled.
    ``class_subset``: distinct class indices; logits are restricted to those columns (a shifted
    set with 200 of the 1000 classes), and every labelled image must belong to one of them.
    ``head``: anything with ``num_classes`` and ``logits(rows, class_subset)`` (a
    :class:`~pytest_robustaudit.models.heads.Head`).

    Returns ``{"top1": int, "top5": int, ..., "labelled": int, "unlabelled": int}`` (one
    ``top{k}`` per ``k`` in ``ks``; ``k`` above the number of classes counts every labelled image).
    """
    ks = tuple(int(k) for k in ks)
    if not ks or any(k < 1 for k in ks):
        raise AccuracyError(f"top-k needs k >= 1, got {ks}")
    targets = np.asarray(labels)
    if targets.ndim != 1 or (targets.size and not np.issubdtype(targets.dtype, np.integer)):
        raise AccuracyError(f"labels must be a 1-D sequence of integer class indices (-1 = unlabelled), "
                            f"got {targets.dtype} of shape {targets.shape}")
    targets = targets.astype(np.int64, copy=False)
    num_classes = int(head.num_classes)
    if targets.size and (targets.min() < -1 or targets.max() >= num_classes):
        bad = sorted(set(targets[(targets < -1) | (targets >= num_classes)].tolist()))[:5]
        raise AccuracyError(f"labels {bad} are outside the head's classes 0..{num_classes - 1} "
                            f"(-1 marks an unlabelled image)")

    position = None  # class index -> column in the subset, -1 when outside it
    if class_subset is not None:
        subset = np.asarray(class_subset, dtype=np.int64)
        if subset.ndim != 1 or subset.size == 0 or len(set(subset.tolist())) != subset.size:
            raise AccuracyError("class_subset must be a non-empty list of distinct class indices")
        if subset.min() < 0 or subset.max() >= num_classes:
            raise AccuracyError(f"class_subset holds indices outside the head's classes 0..{num_classes - 1}")
        position = np.full(num_classes, -1, dtype=np.int64)
        position[subset] = np.arange(subset.size)
        labelled = targets[targets >= 0]
        outside = sorted(set(labelled[position[labelled] < 0].tolist()))
        if outside:
            raise AccuracyError(f"{len(outside)} label(s) are not in class_subset (e.g. {outside[:5]}): "
                                "such images could never be classified correctly")
        class_subset = subset.tolist()

    counts = {f"top{k}": 0 for k in ks}
    offset = 0
    for chunk in row_chunks:
        rows = np.asarray(chunk)
        if rows.ndim != 2:
            raise AccuracyError(f"row chunk at image {offset} has shape {rows.shape}, expected [n, d]")
        n = rows.shape[0]
        if offset + n > targets.size:
            raise AccuracyError(f"more rows than labels: chunk at image {offset} brings {n} rows, "
                                f"but there are {targets.size} labels")
        chunk_targets = targets[offset:offset + n]
        keep = chunk_targets >= 0
        if keep.any():
            logits = np.asarray(head.logits(rows[keep], class_subset), dtype=np.float64)
            if not np.all(np.isfinite(logits)):
                bad = offset + int(np.flatnonzero(keep)[np.flatnonzero(~np.isfinite(logits).all(axis=1))[0]])
                raise AccuracyError(f"non-finite logits for image {bad} (its stored row holds NaN or inf)")
            columns = chunk_targets[keep] if position is None else position[chunk_targets[keep]]
            rank = true_class_rank(logits, columns)
            for k in ks:
                counts[f"top{k}"] += int((rank < k).sum())
        offset += n
    if offset != targets.size:
        raise AccuracyError(f"fewer rows than labels: {offset} rows for {targets.size} labels")
    labelled_count = int((targets >= 0).sum())
    counts["labelled"] = labelled_count
    counts["unlabelled"] = int(targets.size - labelled_count)
    return counts
