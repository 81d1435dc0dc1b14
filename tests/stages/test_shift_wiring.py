"""Shifted sets wired into audits (issue 17): the spec's `shifts`, folders scored through the store on
their class subset, accuracies given in the spec, effective robustness through the spec path,
corruption shifts dispatched to the issue-18 measurer, and located errors for bad entries.

A tiny factory model (a 6-wide representation and a 3-class classifier) on generated images in class
folders 0/1/2; the expected accuracies are numpy computations from the same stored rows."""

from __future__ import annotations

import csv
import sys
import textwrap
import types

import numpy as np
import pytest

from pytest_robustaudit.measure.activations import StoreOptions
from pytest_robustaudit.errors import AuditError, SpecError
from pytest_robustaudit.metrics.robustness import effective_robustness, shipped_accuracies_path
from pytest_robustaudit.registries import standalone
from pytest_robustaudit.audit.runner import run_audit
from pytest_robustaudit.spec import load_spec

from support import tiny_classifier_factory

FACTORY = tiny_classifier_factory()


def _images(root, labels, per_class, seed):
    from PIL import Image

    rng = np.random.default_rng(seed)
    for label in labels:
        (root / label).mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(rng.integers(0, 255, (20, 24, 3), dtype=np.uint8)).save(root / label / f"im{i}.png")


@pytest.fixture
def folder(tmp_path):
    (tmp_path / "tiny_shift_factory.py").write_text(FACTORY)
    _images(tmp_path / "images", ("0", "1", "2"), 4, 0)
    _images(tmp_path / "shifted", ("0", "1"), 6, 1)   # a user's set covering 2 of the 3 classes
    return tmp_path


def spec_of(folder, shifts, checks="kurtosis_mean: {min: 0}", layers="[representation, module:conv]", labels="auto"):
    text = textwrap.dedent(f"""\
        model: {{source: factory, factory: tiny_shift_factory.py:build}}
        data: {{path: images, batch_size: 4, labels: {labels}}}
        layers: {layers}
        device: cpu
        """) + "shifts:\n" + textwrap.indent(textwrap.dedent(shifts), "  ") + f"checks:\n  {checks}\n"
    path = folder / "spec.yaml"
    path.write_text(text)
    return load_spec(path, standalone())


def _restricted_top1(store_root, spec, shift_path, columns):
    """numpy: top-1 of the classifier on the shift's stored rows, logits restricted to ``columns``."""
    import dataclasses

    from pytest_robustaudit import data
    from pytest_robustaudit.measure.activations import measure_layers
    from pytest_robustaudit.measure.context import AuditContext
    from pytest_robustaudit.spec.schema import DataSpec

    sub = dataclasses.replace(spec, data=DataSpec(path=shift_path, batch_size=4), layers=("representation",))
    ctx = AuditContext(standalone(), "cpu", StoreOptions(root=store_root).open())
    got = measure_layers(ctx, sub, data.discover(sub.data))
    assert not got.extracted   # the audit stored them: read back, never extracted twice
    rows = np.concatenate(list(got.entries["representation"].rows("representation"))).astype(np.float64)
    module = got.model().module
    w = module.classifier.weight.detach().double().numpy()
    b = module.classifier.bias.detach().double().numpy()
    logits = (rows @ w.T + b)[:, columns]
    predicted = np.asarray(columns)[logits.argmax(axis=1)]
    truth = np.array([int(label) for label in got.row_labels])
    return float((predicted == truth).mean())


def test_user_folder_is_scored_on_its_classes_through_the_store(folder):
    spec = spec_of(folder, "- {path: shifted, name: mine}\n", "shift_accuracy: {min: 0, shift: mine}")
    assert spec.shifts[0].kind == "folder" and spec.shifts[0].path == folder / "shifted"
    store = StoreOptions(root=folder / "store")
    result = run_audit(spec, standalone(), store=store)
    rep = result.layers["representation"]
    value = rep.metrics["shift_accuracy"]
    assert value.value == _restricted_top1(folder / "store", spec, folder / "shifted", [0, 1])
    mine = value.details["shifts"]["mine"]
    assert mine["classes"] == 2 and mine["total"] == 12 and mine["from_store"] is False
    assert value.details["correct"] == round(value.value * 12)
    top1 = rep.metrics["top1_accuracy"].value
    assert rep.metrics["accuracy_drop"].value == pytest.approx(top1 - value.value)
    # intervals: Clopper-Pearson on the shift's count, a bootstrap for the drop
    assert rep.intervals["shift_accuracy"].method == "Clopper-Pearson exact"
    assert rep.intervals["accuracy_drop"].has_interval
    # no standard set: ER is not applicable, saying why; the conv layer is not the head's
    er = rep.metrics["effective_robustness"]
    assert er.undefined_reason.startswith("not applicable") and "baseline" in er.undefined_reason
    conv = result.layers["module:conv"].metrics["shift_accuracy"]
    assert conv.undefined_reason.startswith("not applicable") and "layer the head reads" in conv.undefined_reason
    assert result.check("shift_accuracy", "representation").passed
    # pruning on the shifted set: p = 0 keeps every direction (the unpruned accuracy); p = 0.5 as numpy does
    curve = rep.metrics["shift_accuracy"].details["pruning"]["mine"]
    assert curve["importance"][0] == value.value and curve["labelled"] == 12
    pruned = standalone().metrics.get("shift_accuracy_at_pruning")
    assert rep.evaluate(pruned, {"shift": "mine", "p": 0.0}).value == value.value
    assert rep.evaluate(pruned, {"shift": "mine", "p": 0.5}).value == _pruned_top1(rep.inputs, 0.5, [0, 1])
    # second run: the shift's rows come from the store
    again = run_audit(spec, standalone(), store=StoreOptions(root=folder / "store"))
    assert again.layers["representation"].metrics["shift_accuracy"].details["shifts"]["mine"]["from_store"] is True
    assert again.layers["representation"].metrics["shift_accuracy"].value == value.value


def _pruned_top1(inputs, p, columns):
    """numpy: the head pruned to its top ceil((1-p) r) importance directions, on the shift's stored rows."""
    from pytest_robustaudit.metrics.directions import directions, keep_count, pruned_logits

    score = inputs.shift_results().scores["mine"]
    found = directions(inputs)
    rows = np.concatenate(list(score.rows())).astype(np.float64)
    logits = pruned_logits(inputs.head(), rows, found, found["order"]["importance"], keep_count(p, found["r"]))
    predicted = np.asarray(columns)[logits[:, columns].argmax(axis=1)]
    return float((predicted == np.array([t[0] for t in score.targets])).mean())


def _testbed(model):
    with open(shipped_accuracies_path(), newline="") as handle:
        return next(row for row in csv.DictReader(handle) if row["model"] == model)


def test_a_truncated_shifted_set_entry_is_recomputed_and_said_like_the_probe_s(folder):
    """The store problems of every set an audit measures (not only the probe's) reach its notes."""
    spec = spec_of(folder, "- {path: shifted, name: mine}\n", "shift_accuracy: {min: 0, shift: mine}",
                   layers="[representation]")
    store = StoreOptions(root=folder / "store")
    cold = run_audit(spec, standalone(), store=store)
    probe_keys = set(cold.activations["keys"].values())
    shifted = [p for p in (folder / "store" / "entries").iterdir() if p.name not in probe_keys]
    assert len(shifted) == 1
    rows = next(shifted[0].glob("*.npy"))
    rows.write_bytes(rows.read_bytes()[:-9])
    again = run_audit(spec, standalone(), store=StoreOptions(root=folder / "store"))
    notes = [n for n in again.provenance["notes"] if shifted[0].name[:12] in n]
    assert len(notes) == 1 and "recomputed" in notes[0], again.provenance["notes"]
    assert again.layers["representation"].metrics["shift_accuracy"].value == \
        cold.layers["representation"].metrics["shift_accuracy"].value


@pytest.mark.parametrize("model, expected", [("resnet50_clip_zeroshot", 0.24), ("resnet50", -0.02)])
def test_effective_robustness_from_given_accuracies_through_the_spec(folder, model, expected):
    """open_clip RN50/openai (zero-shot) and torchvision ResNet-50, their six accuracies from the shipped
    imagenet-testbed table written into a spec: ER about +0.24 and -0.02 (the issue's reference values)."""
    row = _testbed(model)
    sets = ("imagenet-v2", "imagenet-r", "imagenet-sketch", "objectnet", "imagenet-a")
    entries = f"- {{name: imagenet, accuracy: {row['imagenet']}, source: imagenet-testbed}}\n" + "".join(
        f"- {{set: {s}, accuracy: {row[s.replace('-', '_')]}, source: imagenet-testbed {model}}}\n" for s in sets)
    spec = spec_of(folder, entries, "effective_robustness: {min: -1}")
    result = run_audit(spec, standalone())
    er = result.layers["representation"].metrics["effective_robustness"]
    assert er.value == pytest.approx(expected, abs=0.01)
    mean5 = np.mean([float(row[s.replace("-", "_")]) for s in sets])
    assert er.value == pytest.approx(float(effective_robustness(float(row["imagenet"]), mean5)), abs=1e-12)
    assert er.details["method"].startswith("against the mean5 baseline")
    assert er.details["clean_source"] == "given in the spec: imagenet-testbed"
    # all accuracies given: nothing to resample, no interval, said so
    interval = result.layers["representation"].intervals["effective_robustness"]
    assert not interval.has_interval and "no measured image to resample" in interval.note


def test_er_on_a_subset_of_the_five_is_per_shift_averaged(folder):
    spec = spec_of(folder, "- {name: imagenet, accuracy: 0.76, source: s}\n- {set: imagenet-r, accuracy: 0.36, source: s}\n"
                           "- {name: extra, accuracy: 0.5, source: s}\n")
    er = run_audit(spec, standalone()).layers["representation"].metrics["effective_robustness"]
    assert er.value == pytest.approx(float(effective_robustness(0.76, {"imagenet_r": 0.36})))
    assert er.details["method"].startswith("each shift against its own baseline")
    assert er.details["left_out"] == ["extra"]


def test_corruption_shifts_go_to_the_issue_18_measurer(folder, monkeypatch):
    """The dispatch, with a stand-in measurer: it gets the audit's probe, the head's layer, the corruption,
    severity and seed, and its rows are scored on all classes, the drop paired with the clean images."""
    from pytest_robustaudit.measure.activations import measure_layers

    calls = []

    def fake(ctx, spec, probe, *, corruption, severity, seed, layers=None, model=None):
        calls.append((tuple(layers), probe.root.name, corruption, severity, seed))
        return measure_layers(ctx, spec, probe, layers=layers)  # clean rows

    monkeypatch.setitem(sys.modules, "pytest_robustaudit.measure.corrupted", types.SimpleNamespace(measure_corrupted=fake))
    spec = spec_of(folder, "- {corruption: gaussian_noise, severity: [1, 3], seed: 7}\n")
    assert [s.name for s in spec.shifts] == ["gaussian_noise/1", "gaussian_noise/3"]
    result = run_audit(spec, standalone())
    rep = result.layers["representation"]
    assert calls == [(("representation",), "images", "gaussian_noise", 1, 7),
                     (("representation",), "images", "gaussian_noise", 3, 7)]
    top1 = rep.metrics["top1_accuracy"].value
    assert rep.metrics["corruption_accuracy"].value == top1   # the stand-in returns the clean rows
    assert rep.metrics["corruption_drop"].value == 0.0
    assert rep.evaluate(standalone().metrics.get("corruption_accuracy"), {"severity": 3}).value == top1
    # corruptions are their own quantity: no natural shift, so no shift accuracy and no ER
    assert "no shifted sets" in result.plan["left_out"]["shift_accuracy"]
    assert "no shifted sets" in result.plan["left_out"]["effective_robustness"]


def test_missing_corruption_measurer_is_a_located_error(folder, monkeypatch):
    monkeypatch.setitem(sys.modules, "pytest_robustaudit.measure.corrupted", None)   # import fails as when absent
    spec = spec_of(folder, "- {corruption: defocus_blur, severity: 2}\n")
    with pytest.raises(AuditError) as error:
        run_audit(spec, standalone())
    text = str(error.value)
    assert "no corruption measurement" in text and "fix:" in text


@pytest.mark.parametrize("entries, key, words", [
    ("- {path: nowhere}\n", "shifts[0].path", "does not exist"),
    ("- {path: shifted, set: imagenet-q}\n", "shifts[0].set", "Did you mean: imagenet-"),
    ("- {name: objectnet, accuracy: 42}\n", "shifts[0].accuracy", "looks like a percentage"),
    ("- {name: objectnet, accuracy: 0.42}\n", "shifts[0].source", "needs its `source`"),
    ("- {path: shifted}\n- {label: x}\n", "shifts[1]", "needs `path`"),
    ("- {path: shifted, colour: red}\n", "shifts[0].colour", "unknown key"),
    ("- {corruption: gausian_noise}\n", "shifts[0].corruption", "Did you mean: gaussian_noise"),
    ("- {corruption: fog, severity: 9}\n", "shifts[0].severity", "not one of 1, 2, 3, 4, 5"),
    ("- {path: shifted, name: mean}\n", "shifts[0].name", "reserved"),
    ("- {path: shifted}\n- {path: shifted}\n", "shifts", "two shifts are named 'shifted'"),
    ("{path: shifted}\n", "shifts", "expected a list"),
])
def test_bad_entries_are_located_spec_errors(folder, entries, key, words):
    with pytest.raises(SpecError) as error:
        spec_of(folder, entries)
    text = str(error.value)
    assert f"spec.yaml:" in text and f"{key}:" in text and words in text and "fix:" in text


def test_a_check_naming_an_unknown_shift_is_a_spec_error(folder):
    with pytest.raises(SpecError) as error:
        spec_of(folder, "- {path: shifted, name: mine}\n", "shift_accuracy: {min: 0, shift: mien}")
    assert "shift 'mien' is not a natural shift of this spec" in str(error.value) and "mine" in str(error.value)


def test_a_standard_set_needs_an_imagenet_head(folder):
    """A folder declared ImageNet-R on a 3-class head: the audit's error, located at the entry's path
    (labels outside the set's classes: test_standard_sets_map_their_own_folder_layouts)."""
    spec = spec_of(folder, "- {path: shifted, set: imagenet-r}\n")
    with pytest.raises(AuditError) as error:
        run_audit(spec, standalone())
    assert "shifts[0].path" in str(error.value) and "ImageNet-1k classes" in str(error.value)


def test_er_interval_propagates_the_measured_clean_accuracy(folder):
    """Clean top-1 measured on the probe, ImageNet-R given: the interval redraws the clean accuracy
    (binomial over the 12 probe images) through the logit and the baseline, the given one held fixed."""
    spec = spec_of(folder, "- {set: imagenet-r, accuracy: 0.36, source: s}\n")
    layer = run_audit(spec, standalone()).layers["representation"]
    er, interval = layer.metrics["effective_robustness"], layer.intervals["effective_robustness"]
    clean = layer.metrics["top1_accuracy"].value
    assert er.value == pytest.approx(float(effective_robustness(clean, {"imagenet_r": 0.36})))
    assert interval.has_interval and interval.low < er.value < interval.high and interval.n == 12
    assert "given accuracies held fixed (imagenet-r)" in interval.note


def test_measured_shifts_with_head_none_are_a_spec_error(folder):
    (folder / "spec.yaml").write_text(textwrap.dedent("""\
        model: {source: factory, factory: tiny_shift_factory.py:build}
        data: images
        head: none
        shifts:
          - {path: shifted}
        checks:
          kurtosis_mean: {min: 0}
        """))
    with pytest.raises(SpecError) as error:
        load_spec(folder / "spec.yaml", standalone())
    assert "shifts: shifted sets are scored with the classification head" in str(error.value)


def test_an_unlabelled_probe_still_scores_the_shifts_and_says_why_there_is_no_drop(folder):
    spec = spec_of(folder, "- {path: shifted, name: mine}\n", labels="none")
    rep = run_audit(spec, standalone()).layers["representation"]
    assert 0 <= rep.metrics["shift_accuracy"].value <= 1
    drop = rep.metrics["accuracy_drop"]
    assert drop.undefined_reason.startswith("not applicable: the clean top-1 is undefined")


def test_corruptions_of_an_unlabelled_probe_are_refused_before_any_model_runs(folder, monkeypatch):
    calls = []
    monkeypatch.setitem(sys.modules, "pytest_robustaudit.measure.corrupted",
                        types.SimpleNamespace(measure_corrupted=lambda *a, **k: calls.append(k)))
    spec = spec_of(folder, "- {corruption: gaussian_noise, severity: 3}\n", labels="none")
    with pytest.raises(AuditError) as error:
        run_audit(spec, standalone())
    assert calls == []        # refused before the corrupted set is extracted
    assert error.value.where.endswith("shifts[0].corruption") and "carry no labels" in error.value.message
    assert "labels: folder" in error.value.fix


def _imagenet_head():
    from types import SimpleNamespace

    from pytest_robustaudit.metrics.robustness import imagenet1k_wnids

    return SimpleNamespace(class_ids=imagenet1k_wnids(), num_classes=1000, description="an ImageNet-1k head")


def test_standard_sets_map_their_own_folder_layouts():
    from pytest_robustaudit.metrics.robustness import objectnet_mapping, shift_class_subset
    from pytest_robustaudit.measure.shifts import ShiftError, score_rows, set_targets

    head = _imagenet_head()
    columns, accepted = set_targets("imagenet_r", ["n01443537", None], head, "spec.yaml: shifts[0].path")
    assert columns.tolist() == list(shift_class_subset("imagenet_r")) and accepted == [(1,), ()]
    _, accepted = set_targets("imagenet_v2", ["0", "999", "n01440764"], head, "w")     # V2: folders are indices
    assert accepted == [(0,), (999,), (0,)]
    clock = objectnet_mapping()["Alarm clock"]
    columns, accepted = set_targets("objectnet", [clock["folder"], "Alarm clock"], head, "w")
    assert accepted == [tuple(clock["imagenet_indices"])] * 2 and len(columns) == 125
    with pytest.raises(ShiftError) as error:
        set_targets("imagenet_a", ["n01440764"], head, "spec.yaml:7: shifts[1].path")   # tench: not an ImageNet-A class
    assert "spec.yaml:7: shifts[1].path" in str(error.value) and "not classes of imagenet_a" in str(error.value)

    # scoring: the argmax over the set's columns only; an ObjectNet image is right on any of its classes
    class Logits:
        num_classes = 1000

        def logits(self, rows, subset=None):
            full = np.asarray(rows, dtype=np.float64)
            return full if subset is None else full[:, subset]
    rows = np.zeros((1, 1000), dtype=np.float32)
    rows[0, 0] = 9.0                                # tench: outside ObjectNet's classes, ignored
    rows[0, clock["imagenet_indices"][1]] = 1.0     # digital clock
    correct, keep, excluded = score_rows([rows], Logits(), columns, [tuple(clock["imagenet_indices"])])
    assert correct.tolist() == [True] and keep.tolist() == [True] and excluded == {}


def test_corruption_shifts_with_the_real_measurer_are_stored_and_read_back(folder):
    """The issue-18 measurer itself (pytest_robustaudit.measure.corrupted): each (corruption, severity) scored on
    the 12 probe images, the drop paired with them, and the corrupted rows read from the store next time."""
    pytest.importorskip("pytest_robustaudit.measure.corrupted")
    spec = spec_of(folder, "- {corruption: gaussian_noise, severity: [1, 5]}\n")
    first = run_audit(spec, standalone(), store=StoreOptions(root=folder / "store")).layers["representation"]
    shifts = first.metrics["corruption_accuracy"].details["shifts"]
    assert sorted(shifts) == ["gaussian_noise/1", "gaussian_noise/5"]
    assert all(s["total"] == 12 and s["from_store"] is False for s in shifts.values())
    assert first.intervals["corruption_drop"].note.startswith("paired")
    again = run_audit(spec, standalone(), store=StoreOptions(root=folder / "store")).layers["representation"]
    assert all(s["from_store"] for s in again.metrics["corruption_accuracy"].details["shifts"].values())
    assert again.metrics["corruption_drop"].value == first.metrics["corruption_drop"].value


def test_two_specs_sharing_a_reference_model_each_get_it_audited_on_their_own_shifts(folder):
    """The reference model is audited once per probe setup AND per shifts/head: a second spec with other
    shifts must not be compared with the reference's values on the first spec's shifts."""
    from pytest_robustaudit.audit.runner import AuditSession

    reference = "reference: {model: {source: factory, factory: tiny_shift_factory.py:build}}\n"
    session = AuditSession(standalone())
    values = []
    for accuracy in (0.3, 0.5):
        spec_of(folder, f"- {{set: imagenet-r, accuracy: {accuracy}, source: trial}}\n",
                "shift_accuracy: {max_delta: 1, shift: imagenet-r}\n" + reference, layers="[representation]")
        own = folder / f"spec_{accuracy}.yaml"      # two spec files, as two specs of a run are
        own.write_text((folder / "spec.yaml").read_text())
        check = session.result(load_spec(own, standalone())).checks[0]
        values.append(check.reference)
    assert values == [0.3, 0.5]


def test_a_mean_over_sets_carries_a_resampled_interval(folder, monkeypatch):
    """One set: Clopper-Pearson on its count; a mean over sets (no single count): resampled, the given
    accuracies held fixed and named, the corrupted sets resampled jointly (the same images)."""
    from pytest_robustaudit.measure.activations import measure_layers

    def fake(ctx, spec, probe, layers=None, **_):
        return measure_layers(ctx, spec, probe, layers=layers)

    monkeypatch.setitem(sys.modules, "pytest_robustaudit.measure.corrupted", types.SimpleNamespace(measure_corrupted=fake))
    spec = spec_of(folder, "- {path: shifted, name: mine}\n- {name: objectnet, accuracy: 0.4, source: trial}\n"
                           "- {corruption: gaussian_noise, severity: [1, 3]}\n")
    rep = run_audit(spec, standalone()).layers["representation"]
    for name in ("shift_accuracy", "corruption_accuracy"):
        value, iv = rep.metrics[name].value, rep.intervals[name]
        assert iv.method == "percentile bootstrap" and iv.low <= value <= iv.high and iv.high > iv.low, (name, iv)
    assert "objectnet" in rep.intervals["shift_accuracy"].note and rep.intervals["shift_accuracy"].n == 12
    assert "same probe images" in rep.intervals["corruption_accuracy"].note
    one = rep.evaluate(standalone().metrics.get("shift_accuracy"), {"shift": "mine"})
    assert one.details["correct"] is not None     # a single set keeps its count (Clopper-Pearson)


def test_with_a_private_store_a_check_at_another_p_reads_the_shift_rows_kept_in_memory(folder):
    """--audit-cache off: the temporary store is gone after the audit, yet pruning on the shift at a
    p other than the default is computed (its rows were kept), equal to a run with a kept store."""
    spec = spec_of(folder, "- {path: shifted, name: mine}\n")
    metric = standalone().metrics.get("shift_accuracy_at_pruning")
    private = run_audit(spec, standalone()).layers["representation"]            # store=None: private, removed
    kept = run_audit(spec, standalone(), store=StoreOptions(root=folder / "store")).layers["representation"]
    for p in (0.3, 0.6):
        value = private.evaluate(metric, {"shift": "mine", "p": p})
        assert not value.undefined_reason, value
        assert value.value == kept.evaluate(metric, {"shift": "mine", "p": p}).value


def test_corrupted_and_clean_images_pair_by_row_not_by_count():
    """Row 1 is NaN in the clean set and row 3 in the corrupted one: both sets score 3 images, but only
    rows 0 and 2 are a pair (pairing by count would set image 3 against image 2)."""
    from types import SimpleNamespace

    from pytest_robustaudit.metrics.shift_metrics import _corruption_matrix

    results = SimpleNamespace(clean_correct=np.array([True, True, False]),
                              clean_keep=np.array([True, False, True, True]))
    score = SimpleNamespace(correct=np.array([False, False, True]), keep=np.array([True, True, True, False]), n=3)
    np.testing.assert_array_equal(_corruption_matrix(results, [score]), [1.0, 0.0])   # rows 0 and 2


def test_given_accuracies_are_reported_when_no_audited_layer_fits_the_head(folder):
    spec = spec_of(folder, "- {set: imagenet-r, accuracy: 0.3, source: trial}\n"
                           "- {name: imagenet, accuracy: 0.7, source: trial}\n", layers="[module:conv]")
    layer = run_audit(spec, standalone()).layers["module:conv"]       # 8 wide; the head reads 6
    assert layer.metrics["shift_accuracy"].value == 0.3
    assert np.isfinite(layer.metrics["effective_robustness"].value)
