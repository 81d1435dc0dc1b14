"""Heads wired into audits: the spec's `head`, accuracy from the stored rows in float64, not-applicable
reasons, located errors naming both sides, and a head stored on the first run and read on the second.

A tiny factory model (a conv, a 6-wide representation, and a 3-class classifier its forward does not
apply) on 9 generated images in class folders 0/1/2: the expected counts are a numpy computation
from the same stored rows."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest

from pytest_robustaudit.measure import head_source
from pytest_robustaudit.measure.activations import StoreOptions
from pytest_robustaudit.errors import AuditError, SpecError
from pytest_robustaudit.registries import standalone
from pytest_robustaudit.audit.runner import judge, measure, run_audit
from pytest_robustaudit.spec import load_spec

from support import tiny_classifier_factory

FACTORY = tiny_classifier_factory()


@pytest.fixture
def folder(tmp_path):
    from PIL import Image

    (tmp_path / "tiny_head_factory.py").write_text(FACTORY)
    rng = np.random.default_rng(0)
    for label in ("0", "1", "2"):
        (tmp_path / "images" / label).mkdir(parents=True)
        for i in range(3):
            pixels = rng.integers(0, 255, (20, 24, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(tmp_path / "images" / label / f"im{i}.png")
    return tmp_path


def spec_of(folder, checks="kurtosis_mean: {min: 0}", extra="", layers="[representation, module:conv]",
            data="images"):
    text = textwrap.dedent(f"""\
        model: {{source: factory, factory: tiny_head_factory.py:build}}
        data: {{path: {data}, batch_size: 4}}
        layers: {layers}
        device: cpu
        """) + extra + f"checks:\n  {checks}\n"
    path = folder / "spec.yaml"
    path.write_text(text)
    return load_spec(path, standalone())


def numpy_counts(spec, store):
    """(top1, labelled) recomputed with numpy from the stored rows and the model's classifier."""
    from pytest_robustaudit import data
    from pytest_robustaudit.measure.activations import measure_layers
    from pytest_robustaudit.measure.context import AuditContext

    probe = data.discover(spec.data)
    got = measure_layers(AuditContext(standalone(), "cpu", store.open()), spec, probe)
    rows = np.concatenate(list(got.entries["representation"].rows("representation"))).astype(np.float64)
    module = got.model().module
    w = module.classifier.weight.detach().double().numpy()
    b = module.classifier.bias.detach().double().numpy()
    logits = rows @ w.T + b
    truth = np.array([int(label) for label in got.row_labels])
    return int((logits.argmax(axis=1) == truth).sum()), len(truth)


def test_classifier_accuracy_from_stored_rows_equals_numpy_and_is_reused(folder):
    spec = spec_of(folder, "top1_accuracy: {min: 0, max: 1}")
    store = StoreOptions(root=folder / "store")
    built = dict(head_source.HEADS_BUILT)
    result = run_audit(spec, standalone(), store=store)
    top1, labelled = numpy_counts(spec, store)
    rep = result.layers["representation"]
    assert labelled == 9
    assert rep.metrics["top1_accuracy"].value == top1 / 9
    assert rep.metrics["top1_accuracy"].details["correct"] == top1
    assert rep.metrics["top1_accuracy"].details["labelled"] == 9
    assert rep.metrics["top5_accuracy"].value == 1.0  # 3 classes: always within the top 5
    assert result.check("top1_accuracy", "representation").passed
    assert head_source.HEADS_BUILT["classifier"] == built["classifier"] + 1
    assert result.provenance["head"]["from_store"] is False
    # the layer the head does not fit: not applicable, naming both widths
    conv = result.layers["module:conv"].metrics["top1_accuracy"]
    assert conv.undefined_reason.startswith("not applicable: ") and "width 8" in conv.undefined_reason
    assert "width 6" in conv.undefined_reason
    # second run, same store: the head is read, not built
    again = run_audit(spec, standalone(), store=StoreOptions(root=folder / "store"))
    assert head_source.HEADS_BUILT["classifier"] == built["classifier"] + 1
    assert again.provenance["head"]["from_store"] is True
    assert again.layers["representation"].metrics["top1_accuracy"].value == top1 / 9


def test_private_store_keeps_rows_for_checks_at_other_parameters(folder):
    spec = spec_of(folder, "top1_accuracy: {min: 0}")
    result = measure(spec, standalone())  # private store, removed when measure returns
    judge(spec, result, standalone(), None)
    assert result.check("top1_accuracy", "representation").passed
    layer = result.layers["representation"]
    top5 = standalone().metrics.get("top5_accuracy")
    assert layer.evaluate(top5).value == 1.0


def test_head_none_makes_head_metrics_not_applicable_and_checks_of_them_a_spec_error(folder):
    spec = spec_of(folder, extra="head: none\n")
    result = run_audit(spec, standalone())
    assert "top1_accuracy" not in result.layers["representation"].metrics     # the plan leaves it out, and says why
    assert "the spec sets `head: none`" in result.plan["left_out"]["top1_accuracy"]
    assert not np.isnan(result.layers["representation"].value("kurtosis_mean"))
    with pytest.raises(SpecError) as error:
        spec_of(folder, "top1_accuracy: {min: 0.5}", extra="head: none\n")
    assert "top1_accuracy reads the classification head" in str(error.value) and "head: none" in str(error.value)


def test_labels_the_head_does_not_know_name_both_sides(folder):
    (folder / "images" / "0").rename(folder / "images" / "cat")
    spec = spec_of(folder, "top1_accuracy: {min: 0}")
    result = run_audit(spec, standalone())
    outcome = result.check("top1_accuracy", "representation")
    assert not outcome.passed
    assert "cat" in outcome.message and "3 class names" in outcome.message  # the data's label, the head's classes
    # explicitly asked for: a located error for the whole audit
    spec = spec_of(folder, "top1_accuracy: {min: 0}", extra="head: classifier\n")
    with pytest.raises(AuditError) as error:
        run_audit(spec, standalone())
    assert "spec.yaml" in str(error.value) and "cat" in str(error.value)


def test_unlabelled_images_are_counted_not_scored(folder):
    spec = spec_of(folder, data="images, labels: none")
    result = run_audit(spec, standalone())
    assert "carry no labels" in result.plan["left_out"]["top1_accuracy"]     # not planned: nothing to score
    value = result.layers["representation"].evaluate(standalone().metrics.get("top1_accuracy"))   # asked anyway
    assert value.undefined_reason.startswith("not applicable: no labelled image") and "9 unlabelled" in value.undefined_reason


def test_head_spec_validation(folder):
    with pytest.raises(SpecError) as error:
        spec_of(folder, extra="head: {kind: zero-shot}\n")
    assert "open_clip" in str(error.value)
    with pytest.raises(SpecError) as error:
        spec_of(folder, extra="head: {classes: [a, b]}\n")
    assert "zero-shot" in str(error.value)
    with pytest.raises(SpecError) as error:
        spec_of(folder, extra="head: sometimes\n")
    assert "auto, none, classifier, zero-shot" in str(error.value)


def test_the_head_is_wanted_by_a_concept_check_on_its_directions():
    """An open_clip zero-shot head costs minutes: built when a check reads it, including a concept check
    whose directions include the head's (default `all`), not for a neuron-only one."""
    from types import SimpleNamespace

    from pytest_robustaudit.measure.head_source import head_wanted
    from pytest_robustaudit.registries import standalone
    from pytest_robustaudit.spec.schema import HeadSpec

    def spec(*checks):
        return SimpleNamespace(head=HeadSpec(), shifts=(), checks=[SimpleNamespace(metric=m, params=p) for m, p in checks])

    registries = standalone()
    assert not head_wanted(spec(("kurtosis_mean", {})), registries)
    assert head_wanted(spec(("unique_concepts", {})), registries)
    assert head_wanted(spec(("polysemanticity", {"directions": "head"})), registries)
    assert not head_wanted(spec(("unique_concepts", {"directions": "neurons"})), registries)
    assert head_wanted(spec(("top1_accuracy", {})), registries)
