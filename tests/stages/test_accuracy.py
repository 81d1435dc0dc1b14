"""Top-k counts from stored rows: known answers, unlabelled rows, class subsets and ties."""

from __future__ import annotations

import numpy as np
import pytest

from pytest_robustaudit.models.heads import Head

from pytest_robustaudit.metrics.accuracy import AccuracyError, topk_counts, true_class_rank


def identity_head(num_classes: int, bias=None) -> Head:
    """logits == rows (plus bias): the test chooses the logits directly."""
    return Head(weight=np.eye(num_classes), bias=bias, logit_scale=1.0,
                class_names=tuple(f"c{i}" for i in range(num_classes)), class_ids=None,
                kind="classifier", description="identity head")


def brute_force(logits: np.ndarray, labels: np.ndarray, ks=(1, 5)) -> dict[str, int]:
    """The documented rule spelled out: stable argsort of -logits, rank of the label."""
    out = {f"top{k}": 0 for k in ks}
    for row, label in zip(logits, labels):
        if label < 0:
            continue
        rank = int(np.flatnonzero(np.argsort(-row, kind="stable") == label)[0])
        for k in ks:
            out[f"top{k}"] += rank < k
    out["labelled"] = int((labels >= 0).sum())
    out["unlabelled"] = int((labels < 0).sum())
    return out


def chunks(rows: np.ndarray, size: int):
    for start in range(0, len(rows), size):
        yield rows[start:start + size].astype(np.float32)


def test_known_answer_with_unlabelled_rows():
    # 8 classes; each row's label sits at a chosen rank (0 = best).  Ranks 0,0,1,4,5,7 labelled,
    # plus two unlabelled rows (one full of NaN: never scored, so never an error).
    rng = np.random.default_rng(0)
    wanted_ranks = [0, 0, 1, 4, 5, 7]
    rows, labels = [], []
    for rank in wanted_ranks:
        order = rng.permutation(8)  # order[r] is the class at rank r
        row = np.empty(8)
        row[order] = np.arange(8, 0, -1, dtype=float)  # distinct logits
        rows.append(row)
        labels.append(int(order[rank]))
    rows += [rng.normal(size=8), np.full(8, np.nan)]
    labels += [-1, -1]
    counts = topk_counts(chunks(np.array(rows), 3), labels, identity_head(8))
    assert counts == {"top1": 2, "top5": 4, "labelled": 6, "unlabelled": 2}


@pytest.mark.parametrize("size", [1, 4, 7, 1000])
def test_counts_match_the_documented_rule_and_do_not_depend_on_chunking(size):
    rng = np.random.default_rng(1)
    logits = rng.integers(0, 4, size=(120, 10)).astype(float)  # many exact ties
    labels = rng.integers(-1, 10, size=120)
    expected = brute_force(logits, labels, ks=(1, 2, 5))
    assert topk_counts(chunks(logits, size), labels, identity_head(10), ks=(1, 2, 5)) == expected


def test_rank_equals_position_in_stable_argsort():
    rng = np.random.default_rng(2)
    logits = rng.integers(0, 3, size=(200, 7)).astype(float)
    targets = rng.integers(0, 7, size=200)
    stable = np.argsort(-logits, axis=1, kind="stable")
    expected = np.array([np.flatnonzero(s == t)[0] for s, t in zip(stable, targets)])
    assert np.array_equal(true_class_rank(logits, targets), expected)


def test_ties_go_to_the_lower_class_index():
    rows = np.zeros((7, 7))  # all logits equal
    labels = np.arange(7)
    counts = topk_counts([rows], labels, identity_head(7), ks=(1, 5, 7, 50))
    assert counts == {"top1": 1, "top5": 5, "top7": 7, "top50": 7, "labelled": 7, "unlabelled": 0}


def test_bias_is_applied():
    head = identity_head(3, bias=np.array([0.0, 0.0, 10.0]))
    rows = np.array([[5.0, 0.0, 0.0], [0.0, 5.0, 0.0]])
    assert topk_counts([rows], [0, 1], head, ks=(1,))["top1"] == 0  # class 2 wins through its bias
    assert topk_counts([rows], [2, 2], head, ks=(1,))["top1"] == 2


def test_class_subset_restricts_the_competition():
    rows = np.array([
        [9.0, 1.0, 5.0, 0.0],  # label 2: 2nd over all classes, 1st among {1, 2, 3}
        [0.0, 3.0, 3.0, 1.0],  # label 2: tie with 1; in subset order [2, 1, 3] class 2 comes first
        [0.0, 3.0, 3.0, 1.0],  # label 1: same logits, now loses the tie
        [5.0, 0.0, 0.0, 0.0],  # unlabelled
    ])
    labels = [2, 2, 1, -1]
    full = topk_counts([rows], labels, identity_head(4), ks=(1,))
    assert full == {"top1": 1, "labelled": 3, "unlabelled": 1}  # row 2 ties 1 vs 2: 1 wins (lower index)
    sub = topk_counts([rows], labels, identity_head(4), ks=(1, 2), class_subset=[2, 1, 3])
    assert sub == {"top1": 2, "top2": 3, "labelled": 3, "unlabelled": 1}
    restricted = rows[:, [2, 1, 3]]
    mapped = np.array([0, 0, 1, -1])
    assert sub == brute_force(restricted, mapped, ks=(1, 2))


def test_zero_shot_head_uses_scaled_cosine():
    weight = np.array([[1.0, 0.0], [0.0, 1.0]])
    head = Head(weight=weight, bias=None, logit_scale=100.0, class_names=("a", "b"), class_ids=None,
                kind="zero-shot", description="toy zero-shot")
    rows = np.array([[3.0, 4.0], [0.0, 0.0]])
    logits = head.logits(rows)
    assert np.allclose(logits[0], [60.0, 80.0]) and np.array_equal(logits[1], [0.0, 0.0])
    # the cosine does not care about the row's norm: scaling a row never changes the counts
    assert topk_counts([rows[:1] * 1e-3], [1], head, ks=(1,))["top1"] == 1


@pytest.mark.parametrize("labels, message", [
    ([0, 1], "more rows than labels"),
    ([0, 1, 2, 0], "fewer rows than labels"),
    ([0, 5, 1], "outside the head's classes"),
    ([0, -2, 1], "outside the head's classes"),
    ([0.5, 1, 2], "integer class indices"),
])
def test_labels_that_do_not_fit_are_errors(labels, message):
    rows = np.zeros((3, 3))
    with pytest.raises(AccuracyError, match=message):
        topk_counts([rows], labels, identity_head(3))


def test_subset_missing_a_label_and_bad_k_are_errors():
    rows = np.zeros((2, 3))
    with pytest.raises(AccuracyError, match="not in class_subset"):
        topk_counts([rows], [0, 2], identity_head(3), class_subset=[0, 1])
    with pytest.raises(AccuracyError, match="distinct"):
        topk_counts([rows], [0, 1], identity_head(3), class_subset=[0, 0])
    with pytest.raises(AccuracyError, match="k >= 1"):
        topk_counts([rows], [0, 1], identity_head(3), ks=(0,))


def test_non_finite_logits_of_a_labelled_row_are_an_error():
    rows = np.array([[1.0, 0.0], [np.nan, 0.0]])
    with pytest.raises(AccuracyError, match="image 1"):
        topk_counts([rows], [0, 1], identity_head(2))


def test_logits_are_float64_from_float32_rows():
    # two classes whose logits differ by less than float32 can resolve in the product:
    # computed in float64 from the float32 row the counts are exact and reproducible
    row = np.array([[1.0, 1.0]], dtype=np.float32)
    head = Head(weight=np.array([[1.0, 1e-9], [1.0, 0.0]]), bias=None, logit_scale=1.0,
                class_names=("a", "b"), class_ids=None, kind="classifier", description="near tie")
    assert head.logits(row).dtype == np.float64
    assert topk_counts([row], [0], head, ks=(1,))["top1"] == 1
    assert topk_counts([row], [1], head, ks=(1,))["top1"] == 0
