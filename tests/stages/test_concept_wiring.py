"""The concept metrics as registered metrics (issue 20), without a model: the spec's `concepts` key and its
located errors, the four metrics on a layer's concept inputs with planted concepts (each value beside
its null), not-applicable reasons, the overlap with a reference, and the report section."""

from __future__ import annotations

import math
import textwrap

import numpy as np
import pytest
from builders import make_result, make_stats

from pytest_robustaudit.measure.concept_source import ConceptInputs, reference_lookup
from pytest_robustaudit.errors import SpecError
from pytest_robustaudit.metrics import LayerInputs
from pytest_robustaudit.metrics.concept_metrics import CONCEPT_METRICS
from pytest_robustaudit.metrics.concepts import UNRESOLVABLE, detect_concepts, random_orthonormal
from pytest_robustaudit.metrics.types import NOT_APPLICABLE
from pytest_robustaudit.models.heads import Head
from pytest_robustaudit.registries import standalone
from pytest_robustaudit.spec import load_spec

METRICS = {m.name: m for m in CONCEPT_METRICS}
C, M, D = 12, 10, 24
PLANTED = (2, 5, 7)      # concept k lifts neuron k by 6 standard deviations
HEAD_PLANTED = (9,)      # concept 9 lifts the head's first right singular vector


# ------------------------------------------------------------------ the spec key


@pytest.fixture
def folder(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    (tmp_path / "images").mkdir()
    for i in range(2):
        Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(tmp_path / "images" / f"{i}.png")
    for name, count in (("red", 5), ("blue", 5), ("few", 2)):
        (tmp_path / "bank" / name).mkdir(parents=True)
        for i in range(count):
            Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(tmp_path / "bank" / name / f"{i}.png")
    return tmp_path


def spec(folder, concepts: str, checks: str = "kurtosis_mean: {min: 0}", extra: str = ""):
    text = textwrap.dedent("""\
        model: {source: timm, name: vit_tiny_patch16_224}
        data: images
        """) + concepts + "\nchecks:\n  " + checks + "\n" + extra
    path = folder / "spec.yaml"
    path.write_text(text)
    return load_spec(path, standalone())


def test_builtin_and_folder_banks_are_read_from_the_spec(folder):
    built = spec(folder, "concepts: builtin").concepts
    assert built.builtin and built.images_per_concept == 10 and built.names is None and built.quantile == 0.99
    mapped = spec(folder, "concepts: {builtin: true, seed: 3, images_per_concept: 6, size: 32, "
                          "names: [colour-red, shape-circle], quantile: 0.95, null_repeats: 20}").concepts
    assert (mapped.bank_seed, mapped.images_per_concept, mapped.size, mapped.names, mapped.quantile,
            mapped.null_repeats) == (3, 6, 32, ("colour-red", "shape-circle"), 0.95, 20)
    (folder / "bank" / "few").rename(folder / "few")
    bank = spec(folder, "concepts: {path: bank, folds: 3, alpha: 2}").concepts
    assert bank.path == (folder / "bank").resolve() and not bank.builtin and (bank.folds, bank.alpha) == (3, 2.0)
    assert spec(folder, "concepts: bank").concepts.path == bank.path


@pytest.mark.parametrize("concepts, key, message, fix", [
    ("concepts: {path: bank}", "concepts.path", "1 concept folder(s) have fewer than 5 images: few/ (2)",
     "give every concept at least 5 images"),
    ("concepts: {path: nowhere}", "concepts.path", "'nowhere' does not exist", "fix the path"),
    ("concepts: {path: bank, builtin: true}", "concepts", "give exactly one of `path`", "concepts: {builtin: true}"),
    ("concepts: {}", "concepts", "give exactly one of `path`", "concepts: {builtin: true}"),
    ("concepts: {builtin: true, names: [colour-redd, shape-circle]}", "concepts.names",
     "'colour-redd' is not a built-in concept. Did you mean: colour-red?", "docs/concepts.md"),
    ("concepts: {builtin: true, quantile: 1.5}", "concepts.quantile", "must lie in (0.5, 1]", "0.99"),
    ("concepts: {builtin: true, images_per_concept: 1}", "concepts.images_per_concept", "at least 2", "2 or more"),
    ("concepts: {builtin: true, min_images: 3}", "concepts.min_images", "for a folder bank", "images_per_concept"),
    ("concepts: {path: bank, min_images: 2, seed: 1}", "concepts.seed", "sets the built-in bank", "builtin: true"),
    ("concepts: {builtin: true, alpha: 0}", "concepts.alpha", "must be positive", "alpha: 1.0"),
    ("concepts: {builtin: yes please}", "concepts.builtin", "expected true or false", "builtin: true"),
    ("concepts: {builtin: true, folds: 1}", "concepts.folds", "at least 2", "2 or more"),
    ("concepts: {builtin: true, quantil: 0.9}", "concepts.quantil", "unknown key 'quantil'", "allowed keys"),
])
def test_bad_concepts_are_located_spec_errors(folder, concepts, key, message, fix):
    with pytest.raises(SpecError) as raised:
        spec(folder, concepts)
    problems = raised.value.problems
    assert len(problems) == 1, problems
    problem = problems[0]
    assert problem.key == key and message in problem.message and fix in problem.fix
    assert problem.file == folder / "spec.yaml" and problem.line == 3


def test_a_concept_check_needs_a_bank_and_overlap_a_reference(folder):
    with pytest.raises(SpecError) as raised:
        spec(folder, "", checks="unique_concepts: {min: 1}")
    (problem,) = raised.value.problems
    assert problem.key == "checks.unique_concepts" and "no `concepts:`" in problem.message
    with pytest.raises(SpecError) as raised:
        spec(folder, "concepts: builtin", checks="concept_overlap: {min: 0.1}")
    (problem,) = raised.value.problems
    assert problem.key == "checks.concept_overlap" and "no `reference:`" in problem.message
    # an explicit check on an informational metric is allowed: the spec asks for it
    assert spec(folder, "concepts: builtin", checks="concepts_encoded: {min: 3}").checks[0].metric == "concepts_encoded"


# ------------------------------------------------------------------ the metrics on planted concepts


def head_and_rows():
    """Rows [C*M, D]: Gaussian, concept k of PLANTED lifted on neuron k, concept 9 along the head's top
    right singular vector (a random unit vector, so no single neuron carries it); a 4-class head."""
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(C), M)
    rows = rng.standard_normal((C * M, D))
    for k in PLANTED:
        rows[labels == k, k] += 6.0
    basis = random_orthonormal(4, D, np.random.default_rng(1))
    weight = np.diag([8.0, 4.0, 2.0, 1.0]) @ basis       # right singular vectors = basis rows
    for k in HEAD_PLANTED:
        rows[labels == k] -= 6.0 * basis[0]              # the sign is the SVD's to choose: sign-free
    head = Head(weight, None, 1.0, tuple("abcd"), None, "classifier", "test head")
    return rows.astype(np.float32), labels, head


def inputs_for(rows, labels, head=None, reference=None, kinds=None):
    names = tuple(f"c{i:02d}" for i in range(C))
    bank = {"bank": "test bank", "digest": "d1", "concepts": C}
    concepts = ConceptInputs("representation", rows, labels, names, kinds or ("colour",) * 6 + ("shape",) * 6,
                             {"quantile": 0.99, "null_repeats": 40, "folds": 5, "alpha": 1.0}, 0, bank, reference)

    def head_source():
        if head is None:
            from pytest_robustaudit.metrics import NotApplicable
            raise NotApplicable("no classification head (test)")
        return head
    return LayerInputs(make_stats("representation", d=D), "representation", None, None, head_source,
                       concepts=concepts)


def test_planted_concepts_are_found_by_the_probe_the_neurons_and_the_head_directions():
    rows, labels, head = head_and_rows()
    inputs = inputs_for(rows, labels, head)
    encoded = METRICS["concepts_encoded"].evaluate(inputs)
    found = set(encoded.details["encoded"])
    assert {"c02", "c05", "c07", "c09"} <= found and encoded.value == len(found) <= 4 + 2   # chance adds a few
    assert encoded.details["null"] < 1 and encoded.details["threshold"] < 0.9   # the null beside the value
    assert encoded.details["by_kind"]["colour"] == {"found": sorted(n for n in found if n < "c06"), "total": 6}
    unique = METRICS["unique_concepts"].evaluate(inputs)
    assert unique.details["neurons"]["unique"] == ["c02", "c05", "c07"]
    assert {n: b[0] for n, b in unique.details["neurons"]["best"].items()} == {"c02": 2, "c05": 5, "c07": 7}
    assert unique.details["head"]["unique"] == ["c09"] and unique.details["head"]["best"]["c09"][0] == 0
    assert unique.value == 4 and unique.details["unique"] == ["c02", "c05", "c07", "c09"]
    assert unique.details["null"] < 0.5 and unique.details["head"]["sign_free"] and not unique.details["neurons"]["sign_free"]
    neurons_only = METRICS["unique_concepts"].evaluate(inputs, {"directions": "neurons"})
    assert neurons_only.value == 3 and "head" not in neurons_only.details
    poly = METRICS["polysemanticity"].evaluate(inputs)
    assert poly.details["histogram"] == [D - 3, 3] and poly.value == pytest.approx(3 / D)
    assert poly.details["null"] < poly.value and poly.details["mean_active"] == 1.0
    head_poly = METRICS["polysemanticity"].evaluate(inputs, {"directions": "head"})
    assert head_poly.details["histogram"] == [3, 1] and head_poly.details["count"] == 4


def test_random_features_give_the_nulls_numbers():
    rng = np.random.default_rng(5)
    labels = np.repeat(np.arange(C), M)
    inputs = inputs_for(rng.standard_normal((C * M, D)).astype(np.float32), labels)
    encoded = METRICS["concepts_encoded"].evaluate(inputs)
    unique = METRICS["unique_concepts"].evaluate(inputs)
    assert encoded.value <= 2 and encoded.details["null"] == pytest.approx(0.01 * C, abs=0.1)
    assert unique.value <= 2 and unique.details["null"] <= 1
    assert "not probed" in unique.details["head_note"] and "no classification head" in unique.details["head_note"]
    head_only = METRICS["unique_concepts"].evaluate(inputs, {"directions": "head"})
    assert head_only.undefined_reason == NOT_APPLICABLE + "no classification head (test)"


def clustered_rows() -> tuple[np.ndarray, np.ndarray]:
    """Every concept a tight cluster far from the rest (a plain colour in a net's features): random directions
    separate concepts perfectly, so the random-direction threshold is AUROC 1 (issue 26)."""
    rng = np.random.default_rng(3)
    labels = np.repeat(np.arange(C), M)
    rows = 10.0 * rng.standard_normal((C, D))[labels] + 0.01 * rng.standard_normal((C * M, D))
    return rows.astype(np.float32), labels


def test_direction_metrics_that_cannot_resolve_are_not_applicable_with_the_reason_not_zero():
    rows, labels = clustered_rows()
    _, _, head = head_and_rows()
    inputs = inputs_for(rows, labels, head)
    unique = METRICS["unique_concepts"].evaluate(inputs)
    assert math.isnan(unique.value) and unique.version == 3
    reason = unique.undefined_reason
    assert reason.startswith(NOT_APPLICABLE + UNRESOLVABLE) and "(neurons: threshold 1, " in reason
    assert "; head: threshold 1, " in reason and "concepts: {path: DIR}" in reason      # both sets, the way out
    # the thresholds stay in the details, with why no count
    for kind, width in (("neurons", D), ("head", 4)):
        d = unique.details[kind]
        assert d["threshold"] == 1.0 and d["directions"] == width and "count" not in d and d["unresolved"]
    for directions in ("neurons", "head"):
        poly = METRICS["polysemanticity"].evaluate(inputs, {"directions": directions})
        assert math.isnan(poly.value) and poly.version == 3 and poly.details["threshold"] == 1.0
        assert poly.undefined_reason.startswith(NOT_APPLICABLE + UNRESOLVABLE + f" ({directions}: threshold 1, ")
    # the probe is not affected: it separates these concepts, against its permuted-label null
    assert METRICS["concepts_encoded"].evaluate(inputs).value == C


def test_a_set_of_directions_that_cannot_resolve_adds_nothing_to_the_union_and_says_so():
    rows, labels, head = head_and_rows()
    inputs = inputs_for(rows, labels, head)
    # the head's detection cannot resolve (its threshold is AUROC 1): the union counts the neurons' only
    names = inputs.concepts.names
    clustered, _ = clustered_rows()
    stuck = detect_concepts(clustered, labels, random_orthonormal(4, D, np.random.default_rng(2)), names,
                            sign_free=True, null_repeats=10)
    assert stuck.threshold == 1.0
    inputs.concepts.cache["detect:head"] = stuck
    unique = METRICS["unique_concepts"].evaluate(inputs)
    assert unique.value == 3 and unique.details["unique"] == ["c02", "c05", "c07"]      # the planted neurons
    assert unique.details["head_note"].startswith("cannot resolve: threshold 1, ")
    assert list(unique.details["thresholds"]) == ["neurons"] and "count" not in unique.details["head"]
    head_only = METRICS["unique_concepts"].evaluate(inputs, {"directions": "head"})
    assert head_only.undefined_reason.startswith(NOT_APPLICABLE + UNRESOLVABLE + " (head: threshold 1, ")


def test_report_says_why_a_direction_metric_has_no_number_and_flags_an_older_records_zero():
    from pytest_robustaudit.report import render_report

    rows, labels = clustered_rows()
    _, _, head = head_and_rows()
    result = make_result("stuck", d=D)
    layer = result.layers["representation"]
    for metric in CONCEPT_METRICS:
        layer.metrics[metric.name] = metric.evaluate(inputs_for(rows, labels, head))
    section = render_report([result], standalone().metrics)
    section = section[section.index('id="concepts"'):]
    assert "unique_concepts: not applicable: random directions already reach the highest attainable AUROC" in section
    assert "polysemanticity: not applicable: random directions already reach" in section
    assert "polysemanticity-plot" not in section
    # a record of definition version 2 counted 0 at a threshold of 1: shown as no measurement, not as a count
    MetricValue = type(layer.metrics["unique_concepts"])
    layer.metrics["unique_concepts"] = MetricValue(0.0, {"null": 0.0, "neurons": {
        "count": 0, "null": 0.0, "threshold": 1.0, "directions": D, "sign_free": False, "unique": [], "best": {}}},
        version=2)
    layer.metrics["polysemanticity"] = MetricValue(0.0, {"null": 0.0, "threshold": 1.0, "directions": "neurons",
                                                         "count": D, "histogram": [D], "null_histogram": [D]},
                                                   version=2)
    section = render_report([result], standalone().metrics)
    section = section[section.index('id="concepts"'):]
    assert section.count("this 0 is not a measurement (recorded under definition version 2") == 2
    assert "AUROC &gt; 1)" not in section and "polysemanticity-plot" not in section


def test_without_a_bank_every_concept_metric_says_how_to_get_one():
    inputs = LayerInputs(make_stats("representation", d=D), "representation")
    for metric in CONCEPT_METRICS:
        value = metric.evaluate(inputs)
        assert math.isnan(value.value) and value.undefined_reason.startswith(NOT_APPLICABLE + "no concept bank")
        assert metric.interval == "informational" and metric.evidence.level == "informational"
        assert "not a robustness indicator" in metric.evidence.why


def test_overlap_compares_with_the_references_recorded_concepts():
    rows, labels, head = head_and_rows()
    inputs = inputs_for(rows, labels, head)
    assert "no reference" in METRICS["concept_overlap"].evaluate(inputs).undefined_reason
    ours = METRICS["concepts_encoded"].evaluate(inputs)

    class Reference:
        label = "reference model x"
        skip_reason = ""
        result = make_result("ref", d=D)

    Reference.result.layers["representation"].metrics["concepts_encoded"] = \
        type(ours)(2.0, {"encoded": ["c02", "c11"], "bank": {"digest": "d1"}})
    inputs = inputs_for(rows, labels, head, reference_lookup(Reference))
    overlap = METRICS["concept_overlap"].evaluate(inputs)
    a, b = set(ours.details["encoded"]), {"c02", "c11"}
    assert overlap.value == pytest.approx(len(a & b) / len(a | b)) and overlap.details["shared"] == ["c02"]
    from pytest_robustaudit.metrics.concepts import expected_random_jaccard
    assert overlap.details["null"] == pytest.approx(expected_random_jaccard(len(a), 2, C))
    Reference.result.layers["representation"].metrics["concepts_encoded"] = \
        type(ours)(2.0, {"encoded": ["c02"], "bank": {"digest": "other"}})
    assert "another concept bank" in METRICS["concept_overlap"].evaluate(
        inputs_for(rows, labels, head, reference_lookup(Reference))).undefined_reason
    Reference.result.layers.clear()
    assert "has no layer 'representation'" in METRICS["concept_overlap"].evaluate(
        inputs_for(rows, labels, head, reference_lookup(Reference))).undefined_reason


def test_report_section_shows_the_concepts_by_kind_the_histogram_and_the_overlap_matrix():
    from pytest_robustaudit.report import render_report

    rows, labels, head = head_and_rows()
    results = []
    for name, shift in (("model-a", 0), ("model-b", 3)):
        result = make_result(name, d=D)
        inputs = inputs_for(np.roll(rows, shift, axis=1), labels, head)
        layer = result.layers["representation"]
        for metric in CONCEPT_METRICS:
            layer.metrics[metric.name] = metric.evaluate(inputs)
        results.append(result)
    html = render_report(results, standalone().metrics)
    assert html.count('class="concepts-audit"') == 2 and "not robustness indicators" in html
    assert html.count("polysemanticity-plot") == 2 and html.count("overlap-plot") == 1
    assert "random orthonormal directions" in html and "label permutations" in html
    section = html[html.index('id="concepts"'):]
    assert "colour</td>" in section and "shape</td>" in section
    assert "model-a vs model-b: Jaccard" in section
    # one audit: no matrix
    assert "overlap-plot" not in render_report(results[:1], standalone().metrics)


def test_a_concept_left_with_one_image_cannot_be_probed_but_directions_still_rank_it():
    rows, labels, head = head_and_rows()
    rows[np.flatnonzero(labels == 3)[1:]] = np.nan          # NaN rows are left out: concept 3 keeps one image
    inputs = inputs_for(rows, labels, head)
    reason = METRICS["concepts_encoded"].evaluate(inputs).undefined_reason
    assert reason.startswith(NOT_APPLICABLE + "concept probing cannot run") and "2 images" in reason
    unique = METRICS["unique_concepts"].evaluate(inputs)      # an AUROC needs one positive only
    assert not unique.undefined_reason and "null" in unique.details
