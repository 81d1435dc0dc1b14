"""The plan (issue 24): what an audit computes is derived from the checks, `measure:`, the defaults whose
inputs the spec declares, and requests from outside the spec; only that is measured and computed.

Pure stage tests of `plan.build_plan` on loaded specs, and audits of a tiny factory classifier (a conv, a
6-wide representation, a 3-class head) on 9 generated labelled images, run without pytest."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest

from pytest_robustaudit.audit.runner import AuditSession, run_audit
from pytest_robustaudit.errors import SpecError
from pytest_robustaudit.measure.activations import StoreOptions
from pytest_robustaudit.metrics import BUILTIN_METRICS
from pytest_robustaudit.plan.plan import Request, build_plan
from pytest_robustaudit.registries import standalone
from pytest_robustaudit.spec import load_spec

from support import tiny_classifier_factory

OUTLIER_FAMILY = [m.name for m in BUILTIN_METRICS if m.reads == "outlier summary"]
DIRECTIONS = ["importance_top_share", "head_effective_rank", "direction_outlier_alignment", "accuracy_at_pruning",
              "prunable_fraction"]


@pytest.fixture
def folder(tmp_path):
    from PIL import Image

    (tmp_path / "tiny_head_factory.py").write_text(tiny_classifier_factory())
    rng = np.random.default_rng(0)
    for label in ("0", "1", "2"):
        (tmp_path / "images" / label).mkdir(parents=True)
        (tmp_path / "shifted" / label).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(rng.integers(0, 255, (20, 24, 3), dtype=np.uint8)).save(tmp_path / "images" / label / f"{i}.png")
            Image.fromarray(rng.integers(0, 255, (20, 24, 3), dtype=np.uint8)).save(tmp_path / "shifted" / label / f"{i}.png")
    return tmp_path


def spec_of(folder, checks="kurtosis_mean: {min: 0}", extra="", data="images", model=None, name="spec.yaml"):
    model = model or "{source: factory, factory: tiny_head_factory.py:build}"
    text = textwrap.dedent(f"""\
        model: {model}
        data: {{path: {data}, batch_size: 4}}
        layers: [representation, module:conv]
        device: cpu
        """) + extra + f"checks:\n  {checks}\n"
    path = folder / name
    path.write_text(text)
    return load_spec(path, standalone())


def test_the_default_plan_is_the_outlier_family_and_accuracy_where_labelled(folder):
    plan = build_plan(spec_of(folder), standalone(), labelled=True)
    assert list(plan.planned) == OUTLIER_FAMILY + ["top1_accuracy", "top5_accuracy"]
    assert plan.planned["kurtosis_mean"].why == ("default", "check")
    assert plan.planned["kurtosis_mean"].layers == ("representation", "module:conv")
    assert set(DIRECTIONS) <= set(plan.left_out) and "not asked for" in plan.left_out["prunable_fraction"]
    assert plan.inputs == {"summary", "rows", "labels", "head"}
    unlabelled = build_plan(spec_of(folder), standalone(), labelled=False)
    assert "top1_accuracy" not in unlabelled.planned and "carry no labels" in unlabelled.left_out["top1_accuracy"]
    assert unlabelled.inputs == {"summary"}     # nothing but the summaries is read


def test_checks_measure_and_requests_add_to_the_plan_with_their_reasons(folder):
    spec = spec_of(folder, "prunable_fraction: {min: 0, layers: [representation]}",
                   extra="measure: [importance_top_share]\n")
    plan = build_plan(spec, standalone(), [Request("head_effective_rank", "reference of cand", ("representation",))],
                      labelled=True)
    assert plan.planned["prunable_fraction"].layers == ("representation",)
    assert plan.planned["prunable_fraction"].why == ("check",)
    assert plan.planned["importance_top_share"].why == ("measure",)
    assert plan.planned["head_effective_rank"].why == ("reference of cand",)
    assert "directions" in plan.inputs and "head" in plan.inputs
    everything = build_plan(spec_of(folder, extra="measure: all\n"), standalone(), labelled=True)
    assert set(everything.planned) == {m.name for m in BUILTIN_METRICS} and not everything.left_out


def test_shifts_and_concepts_plan_their_cheap_metrics_only(folder):
    spec = spec_of(folder, extra="shifts:\n  - {path: shifted, labels: folder}\nconcepts: builtin\n")
    plan = build_plan(spec, standalone(), labelled=True)
    assert {"shift_accuracy", "accuracy_drop", "effective_robustness", "concepts_encoded"} <= set(plan.planned)
    for costly in ("shift_accuracy_at_pruning", "unique_concepts", "polysemanticity", "corruption_accuracy"):
        assert costly not in plan.planned
    assert "no corruptions" in plan.left_out["corruption_accuracy"]
    assert {"shifted sets", "concept bank"} <= plan.inputs and "corrupted sets" not in plan.inputs


def test_an_open_clip_zero_shot_head_is_only_planned_when_asked_for(folder):
    model = "{source: open_clip, name: RN50, pretrained: false}"
    plan = build_plan(spec_of(folder, model=model), standalone(), labelled=True)
    assert "top1_accuracy" not in plan.planned and "zero-shot head is built only when" in plan.left_out["top1_accuracy"]
    plan = build_plan(spec_of(folder, model=model, extra="head: zero-shot\n"), standalone(), labelled=True)
    assert "top1_accuracy" in plan.planned


@pytest.mark.parametrize("value, message", [
    ("[kurtosis_men]", "unknown metric 'kurtosis_men'. Did you mean: kurtosis_mean?"),
    ("[all]", "`all` stands alone"),
    ("{a: 1}", "expected a list of metric names or `all`"),
    ("[5]", "measure[0]: expected a metric name, got an integer"),
    ("ALL", "'ALL' is not a metric. Did you mean: all?"),
])
def test_measure_key_errors_are_located(folder, value, message):
    with pytest.raises(SpecError) as error:
        spec_of(folder, extra=f"measure: {value}\n")
    assert message in str(error.value) and "spec.yaml" in str(error.value) and "measure" in str(error.value)


def test_an_audit_computes_and_intervals_only_the_planned_metrics(folder):
    result = run_audit(spec_of(folder), standalone())
    layer = result.layers["representation"]
    assert list(layer.metrics) == OUTLIER_FAMILY + ["top1_accuracy", "top5_accuracy"]
    assert set(layer.intervals) == set(layer.metrics)
    assert result.plan["left_out"]["prunable_fraction"].startswith("not asked for")
    assert result.provenance["head"]["kind"] == "classifier"            # the default accuracy read it
    # every phase is timed, and the phases add up to no more than the audit's time
    assert {"plan", "hashing", "model build", "extraction: probe", "summary", "analysis: outliers",
            "analysis: accuracy", "head"} <= set(result.phases)
    assert sum(result.phases.values()) <= result.seconds + 0.01


def test_what_no_planned_metric_reads_is_neither_built_nor_measured(folder, monkeypatch):
    from pytest_robustaudit.measure import concept_source, shifts

    monkeypatch.setattr(shifts.ShiftSource, "__call__", lambda *a, **k: pytest.fail("shifts measured"))
    monkeypatch.setattr(concept_source, "measure_concepts", lambda *a, **k: pytest.fail("bank measured"))
    result = run_audit(spec_of(folder, data="images, labels: none"), standalone())
    assert result.provenance["head"]["status"].startswith("not built")        # no planned metric read it
    assert "head" not in result.phases and "analysis: accuracy" not in result.phases
    assert list(result.layers["representation"].metrics) == OUTLIER_FAMILY


def test_the_head_svd_is_stored_and_read_back(folder, tmp_path):
    from pytest_robustaudit.measure import head_source

    store = StoreOptions(tmp_path / "store")
    spec = spec_of(folder, "importance_top_share: {min: 0, layers: [representation]}")
    first = run_audit(spec, standalone(), store=store)
    files = list((tmp_path / "store" / "heads").glob("svd-*.npz"))
    assert len(files) == 1 and "head SVD" in first.phases
    computed = []
    real = head_source.stored_svd.__globals__["_write_npz"]
    monkeypatch_target = head_source.__dict__
    monkeypatch_target["_write_npz"] = lambda *a, **k: computed.append(a)
    try:
        second = run_audit(spec, standalone(), store=store)
    finally:
        monkeypatch_target["_write_npz"] = real
    assert computed == []          # read, not recomputed and rewritten
    assert second.layers["representation"].metrics["importance_top_share"].value == \
        first.layers["representation"].metrics["importance_top_share"].value
    files[0].write_bytes(b"not an archive")        # a damaged file is recomputed, never trusted
    third = run_audit(spec, standalone(), store=store)
    assert third.layers["representation"].metrics["importance_top_share"].value == \
        first.layers["representation"].metrics["importance_top_share"].value


def test_summaries_are_kept_and_a_warm_run_reads_them(folder, tmp_path, monkeypatch):
    from pytest_robustaudit.metrics import from_arrays

    store = StoreOptions(tmp_path / "store")
    spec = spec_of(folder)
    first = run_audit(spec, standalone(), store=store)
    assert len(list((tmp_path / "store" / "summaries").glob("*.npz"))) == 2     # one per layer
    monkeypatch.setattr(from_arrays, "stats_from_chunks", lambda *a, **k: pytest.fail("summarised again"))
    second = run_audit(spec, standalone(), store=store)
    for name, layer in first.layers.items():
        assert second.layers[name].metrics["kurtosis_mean"].value == layer.metrics["kurtosis_mean"].value
        np.testing.assert_array_equal(second.layers[name].stats.profile, layer.stats.profile)


def test_on_demand_a_metric_out_of_the_plan_is_computed_from_the_layer_inputs(folder):
    spec = spec_of(folder)
    session = AuditSession(standalone())
    result = session.result(spec)
    assert "prunable_fraction" not in result.layers["representation"].metrics
    again = session.on_demand(spec, "prunable_fraction", "representation")
    assert again is result and 0 <= again.layers["representation"].metrics["prunable_fraction"].value <= 1


def test_on_demand_a_metric_of_another_image_set_plans_the_audit_again(folder):
    spec = spec_of(folder, extra="shifts:\n  - {path: shifted, labels: folder, name: mine}\n", name="shifted.yaml")
    session = AuditSession(standalone())
    result = session.result(spec)
    assert "shift_accuracy_at_pruning" not in result.layers["representation"].metrics
    again = session.on_demand(spec, "shift_accuracy_at_pruning", "representation")
    value = again.layers["representation"].metrics["shift_accuracy_at_pruning"]
    assert 0 <= value.value <= 1
    assert "asked on demand (run.value)" in again.plan["planned"]["shift_accuracy_at_pruning"]["why"]


def test_analysis_phases_are_told_to_the_progress_reporter(folder):
    from pytest_robustaudit.measure.activations import Progress
    from pytest_robustaudit.measure.context import RunSettings

    class Recording(Progress):
        def __init__(self):
            self.phases = []

        def phase(self, label, name, seconds):
            self.phases.append((label, name, seconds is None))

    progress = Recording()
    spec = spec_of(folder, "importance_top_share: {min: 0, layers: [representation]}")
    run_audit(spec, standalone(), settings=RunSettings(progress=progress))
    started = [name for _, name, start in progress.phases if start]
    ended = [name for _, name, start in progress.phases if not start]
    assert "analysis: directions" in started and sorted(started) == sorted(ended)
    assert not any(name.startswith("extraction") for name in started)   # the extraction has its own line


def test_the_model_is_built_once_for_every_image_set_of_an_audit(folder, monkeypatch):
    from pytest_robustaudit import models

    built = []
    real = models.load_model
    monkeypatch.setattr(models, "load_model", lambda *a, **k: built.append(1) or real(*a, **k))
    spec = spec_of(folder, extra="shifts:\n  - {path: shifted, labels: folder, name: mine}\n"
                                 "  - {corruption: gaussian_noise, severity: 1}\n")
    result = run_audit(spec, standalone())
    assert {"extraction: probe", "extraction: shift mine", "extraction: gaussian_noise severity 1"} <= set(result.phases)
    assert len(built) == 1          # the probe, the shifted folder and the corrupted set: one model


def test_a_kept_interval_changed_on_disk_is_recomputed_not_trusted(folder, tmp_path):
    import json as jsonlib

    store = StoreOptions(tmp_path / "store")
    spec = spec_of(folder)
    first = run_audit(spec, standalone(), store=store)
    for path in (tmp_path / "store" / "intervals").glob("*.json"):
        kept = jsonlib.loads(path.read_text())
        kept["intervals"]["kurtosis_mean"]["low"] = -123.0          # a flipped digit, still valid JSON
        path.write_text(jsonlib.dumps(kept))
    again = run_audit(spec, standalone(), store=store)
    for name, layer in first.layers.items():
        assert again.layers[name].intervals["kurtosis_mean"].low == layer.intervals["kurtosis_mean"].low != -123.0
