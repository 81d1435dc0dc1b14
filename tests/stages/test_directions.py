"""Privileged directions and pruning on known answers: synthetic rows and heads through LayerInputs.

* p = 0 keeps every direction: the pruned logits equal the unpruned ones to float64 rounding;
* the importance, top share, effective rank and pruning counts equal a direct numpy computation;
* planted: a head whose top directions are built on the layer's outlier features aligns far above
  chance; a random head sits about at chance (1); a layer without outlier features says why not.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from pytest_robustaudit.metrics import BUILTIN_METRICS, LayerInputs
from pytest_robustaudit.metrics.directions import DEFAULT_GRID, directions, head_svd, keep_count, pruned_logits
from pytest_robustaudit.models.heads import Head

METRICS = {m.name: m for m in BUILTIN_METRICS}
OUTLIERS = (3, 17, 40)
D, N, C = 64, 300, 10


def stats_of(rows):
    import torch

    from pytest_robustaudit.metrics.outlier_stats import LayerAccumulator

    acc = LayerAccumulator("representation")
    acc.update(torch.from_numpy(rows))
    return acc.finish()


def rows_with_outliers(seed=0, planted=True):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(N, D))
    if planted:
        x[:, list(OUTLIERS)] *= 60.0
    return x.astype(np.float32)


def inputs_of(rows, head, labels):
    return LayerInputs(stats_of(rows), "representation", lambda: iter(np.array_split(rows, 4)), labels, lambda: head)


def classifier(weight, bias=None):
    return Head(weight=weight, bias=bias, logit_scale=1.0, class_names=[str(i) for i in range(weight.shape[0])],
                class_ids=None, kind="classifier", description="test head")


def labels_from(head, rows, noise_seed=1):
    """Labels the head mostly gets right (its argmax, 20% replaced at random), as strings."""
    rng = np.random.default_rng(noise_seed)
    y = head.logits(rows).argmax(axis=1)
    flip = rng.random(len(y)) < 0.2
    y[flip] = rng.integers(0, C, flip.sum())
    return [str(v) for v in y]


def test_p0_logits_equal_unpruned_and_metrics_equal_numpy():
    rows = rows_with_outliers()
    rng = np.random.default_rng(5)
    head = classifier(rng.normal(size=(C, D)), rng.normal(size=C))
    inputs = inputs_of(rows, head, labels_from(head, rows))
    svd = head_svd(head)
    found = directions(inputs)
    r = found["r"]
    assert r == C
    full = pruned_logits(head, rows, svd, found["order"]["importance"], keep_count(0.0, r))
    np.testing.assert_allclose(full, head.logits(rows), rtol=1e-12, atol=1e-12)

    # numpy, from scratch
    x = rows.astype(np.float64)
    _, s, vt = np.linalg.svd(head.weight, full_matrices=False)
    cos = np.abs(x @ vt.T) / np.linalg.norm(x, axis=1, keepdims=True)
    importance = s * cos.mean(axis=0)
    np.testing.assert_allclose(found["importance"], importance, rtol=1e-12)
    order = np.argsort(-importance, kind="stable")
    share = METRICS["importance_top_share"].evaluate(inputs, {"fraction": 0.2})
    assert share.value == pytest.approx(importance[order[:2]].sum() / importance.sum(), rel=1e-12)
    p = s / s.sum()
    assert METRICS["head_effective_rank"].evaluate(inputs).value == pytest.approx(np.exp(-(p * np.log(p)).sum()))
    y = np.array([int(v) for v in inputs.labels])
    for prune in (0.0, 0.5, 0.9):
        k = keep_count(prune, r)
        assert k == math.ceil((1 - prune) * r)
        vk = vt[order[:k]]
        logits = x @ vk.T @ vk @ head.weight.T + head.bias
        expected = int((logits.argmax(axis=1) == y).sum())
        got = METRICS["accuracy_at_pruning"].evaluate(inputs, {"p": prune})
        assert got.details["correct"] == expected and got.value == expected / N
    top1 = METRICS["top1_accuracy"].evaluate(inputs)
    assert METRICS["accuracy_at_pruning"].evaluate(inputs, {"p": 0.0}).details["correct"] == top1.details["correct"]
    prunable = METRICS["prunable_fraction"].evaluate(inputs)
    curve = prunable.details["curve"]
    assert curve["grid"] == list(DEFAULT_GRID) and curve["importance_correct"][0] == top1.details["correct"]
    ok = [acc >= top1.value - 0.01 for acc in curve["importance"]]
    expected_p = 0.0
    for grid_p, fine in zip(DEFAULT_GRID, ok):
        if not fine:
            break
        expected_p = grid_p
    assert prunable.value == expected_p
    assert METRICS["prunable_fraction"].evaluate(inputs, {"grid": "0, 0.5", "tolerance": 1.0}).value == 0.5


def planted_head(rng):
    """Top singular directions on the outlier features, the rest on the others."""
    basis = np.zeros((C, D))
    for k, feature in enumerate(OUTLIERS):
        basis[k, feature] = 1.0
    others = [i for i in range(D) if i not in OUTLIERS]
    q, _ = np.linalg.qr(rng.normal(size=(len(others), C - len(OUTLIERS))))
    basis[len(OUTLIERS):, others] = q.T
    u, _ = np.linalg.qr(rng.normal(size=(C, C)))
    s = np.array([10.0, 9.0, 8.0] + [1.0] * (C - 3))
    return classifier(u @ np.diag(s) @ basis)


def test_planted_alignment_far_above_chance_random_about_chance():
    rows = rows_with_outliers()
    rng = np.random.default_rng(7)
    planted = planted_head(rng)
    aligned = METRICS["direction_outlier_alignment"].evaluate(inputs_of(rows, planted, None), {"fraction": 0.3})
    assert sorted(aligned.details["outlier_features"]) == list(OUTLIERS)
    assert aligned.value == pytest.approx(D / len(OUTLIERS), rel=1e-9)  # every top loading on them: d / |O|
    def random_heads(ranking):
        return float(np.mean([METRICS["direction_outlier_alignment"].evaluate(
            inputs_of(rows, classifier(np.random.default_rng(seed).normal(size=(D, D))), None),
            {"ranking": ranking}).value for seed in range(10)]))
    # a random head: at chance when its top directions are chosen by singular value; chosen by
    # importance about 2x (measured 1.99): importance itself favours the directions that see the
    # outlier features' large values, a selection effect an order of magnitude below a planted head
    assert 0.7 < random_heads("singular_value") < 1.3
    assert 1.0 < random_heads("importance") < 3.0
    spectrum = METRICS["importance_top_share"].evaluate(inputs_of(rows, planted, None))
    assert set(spectrum.details["outlier_directions"]) == {0, 1, 2}


def test_no_outlier_feature_is_not_applicable_with_the_reason():
    rows = rows_with_outliers(planted=False)
    head = classifier(np.random.default_rng(3).normal(size=(C, D)))
    value = METRICS["direction_outlier_alignment"].evaluate(inputs_of(rows, head, None))
    assert math.isnan(value.value)
    assert value.undefined_reason.startswith("not applicable: ") and "no outlier feature" in value.undefined_reason
    assert not math.isnan(METRICS["importance_top_share"].evaluate(inputs_of(rows, head, None)).value)
    assert METRICS["accuracy_at_pruning"].evaluate(inputs_of(rows, head, None)).undefined_reason.startswith(
        "not applicable: the probe labels are not at hand")
