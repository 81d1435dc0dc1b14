"""Concepts through the spec path (issue 20): `concepts: {builtin: ...}` on a tiny factory model, the bank
drawn at run time and measured through the activation store (extracted once per content), the four
concept metrics with their nulls, a check written on one, the overlap with a reference model, the JSON
record and the report section."""

from __future__ import annotations

import math
import textwrap
from xml.etree import ElementTree

import pytest
from support import PHOTOS, tiny_classifier_factory

from pytest_robustaudit.metrics.concepts import UNRESOLVABLE
from pytest_robustaudit.metrics.types import NOT_APPLICABLE

FACTORY = tiny_classifier_factory(size=32, hidden=16, width=12, classes=4)

#: 8 built-in concepts x 8 images of 32 px: four colours, two textures, two shapes
CONCEPTS = ("concepts: {builtin: true, seed: 0, images_per_concept: 8, size: 32, null_repeats: 40, names: "
            "[colour-red, colour-green, colour-blue, colour-yellow, stripes-vertical-coarse, checkers-square-coarse, "
            "shape-circle, shape-cross]}")


def spec_text(folder, name="tiny", seed=0, checks="kurtosis_mean: {min: 0}", extra=""):
    return textwrap.dedent(f"""\
        name: {name}
        model: {{source: factory, factory: {folder / 'tiny_concepts.py'}:build, options: {{seed: {seed}}}}}
        data: {{path: {PHOTOS}, batch_size: 16}}
        device: cpu
        measure: [unique_concepts, polysemanticity]
        """) + CONCEPTS + "\nchecks:\n" + textwrap.indent(checks, "  ") + "\n" + extra


@pytest.fixture
def folder(tmp_path):
    (tmp_path / "tiny_concepts.py").write_text(FACTORY)
    return tmp_path


def test_builtin_bank_through_the_store_once_per_content(folder):
    from pytest_robustaudit import load_spec, run_audit, standalone
    from pytest_robustaudit.measure.activations import StoreOptions

    registries = standalone()
    path = folder / "spec.yaml"
    path.write_text(spec_text(folder))
    spec = load_spec(path, registries)
    store = StoreOptions(folder / "store")
    first = run_audit(spec, registries, store=store)
    assert first.activations["extracted"] == ["representation"]     # the probe photos, then the bank
    bank = first.provenance["concepts"]
    assert bank["builtin"] and bank["concepts"] == 8 and bank["images"] == 64 and bank["extracted"]
    assert not list(folder.glob("robustaudit-concepts-*"))     # the drawn bank is gone after the run
    layer = first.layers["representation"]
    encoded = layer.metrics["concepts_encoded"]
    # a random conv net separates plain colours from the rest: what the probe finds, beside its null
    assert {"colour-red", "colour-green", "colour-blue"} & set(encoded.details["encoded"])
    assert encoded.value >= 2 and encoded.details["null"] < 1 and encoded.details["concepts"] == 8
    # random directions of this net already separate some of these concepts perfectly (plain colours): the
    # random-direction threshold is the highest attainable AUROC, so the direction metrics cannot resolve and
    # say so (they read 0 before, whatever the model: issue 26)
    for name in ("unique_concepts", "polysemanticity"):
        value = layer.metrics[name]
        assert math.isnan(value.value) and value.version == 3, (name, value)
        assert value.undefined_reason.startswith(NOT_APPLICABLE + UNRESOLVABLE), (name, value.undefined_reason)
        assert "concepts: {path: DIR}" in value.undefined_reason     # the way out
    unique = layer.metrics["unique_concepts"].details
    assert unique["neurons"]["directions"] == 12 and unique["head"]["directions"] == 4   # the head's 4 directions
    assert unique["neurons"]["threshold"] == unique["head"]["threshold"] == 1.0
    assert "of them 1" in unique["neurons"]["unresolved"] and "count" not in unique["neurons"]
    assert "reference" in layer.metrics["concept_overlap"].undefined_reason
    assert layer.intervals["concepts_encoded"].informational

    # a second run: the bank is drawn again byte for byte, so its keys match and the store answers
    second = run_audit(spec, registries, store=StoreOptions(folder / "store"))
    assert second.activations["extracted"] == [] and not second.provenance["concepts"]["extracted"]
    assert second.provenance["concepts"]["digest"] == bank["digest"]
    again = second.layers["representation"].metrics
    for name in ("concepts_encoded", "unique_concepts", "polysemanticity"):
        was = layer.metrics[name]      # NaN where not applicable: compared as text, with its reason
        assert str(again[name].value) == str(was.value) and again[name].details == was.details
        assert again[name].undefined_reason == was.undefined_reason


def test_pytest_run_with_a_concept_check_a_reference_and_the_report(pytester, folder):
    from pytest_robustaudit.results.record import read_record

    reference = f"reference: {{model: {{source: factory, factory: {folder / 'tiny_concepts.py'}:build, options: {{seed: 1}}}}}}\n"
    pytester.path.joinpath("spec.yaml").write_text(spec_text(
        folder, checks="kurtosis_mean: {min: 0}\nconcepts_encoded: {min: 1}\nconcept_overlap: {min: 0}\n"
                       "unique_concepts: {min: 1000, why: a bound no bank this small can meet}", extra=reference))
    result = pytester.runpytest("-p", "no:randomly", "-p", "no:cacheprovider", "--audit", "spec.yaml",
                                "--audit-json", "record.json", "--audit-report", "report.html",
                                "--audit-markdown", "summary.md", "--junitxml", "junit.xml")
    result.assert_outcomes(passed=3, failed=1)
    # a check on a metric that cannot resolve on this bank fails with the reason in every output, never as 0
    unresolved = "not applicable: " + UNRESOLVABLE
    result.stdout.fnmatch_lines(["*unique_concepts*could not be measured: " + unresolved + "*"])
    assert "unique_concepts = 0" not in result.stdout.str()
    markdown = (pytester.path / "summary.md").read_text(encoding="utf-8")
    assert unresolved in markdown
    (failure,) = ElementTree.parse(pytester.path / "junit.xml").getroot().iter("failure")
    assert unresolved in failure.get("message") and "unique_concepts" in failure.get("message")
    _, results = read_record(pytester.path / "record.json")
    (audit,) = [r for r in results if r.name == "tiny"]
    unique = audit.layers["representation"].metrics["unique_concepts"]
    assert math.isnan(unique.value) and unique.undefined_reason.startswith(unresolved) and unique.version == 3
    (check,) = [c for c in audit.checks if c.metric == "unique_concepts"]
    assert not check.passed and unresolved in check.message
    overlap = audit.layers["representation"].metrics["concept_overlap"]
    assert 0 <= overlap.value <= 1 and "null" in overlap.details and overlap.details["concepts"] == 8
    html = (pytester.path / "report.html").read_text(encoding="utf-8")
    failures = html[html.index('<section id="failures"'):html.index('<section id="summary-section"')]
    assert "undefined</b><span class=\"verdict-text\">: " + unresolved in failures     # the reason, not "undefined"
    models = html[html.index('<section id="models"'):]
    assert "could not be measured: " + unresolved in models      # the failed check's message, under its model
    section = html[html.index('<section id="concepts"'):]
    # polysemanticity cannot resolve on this bank: said in the section, and no histogram drawn for it
    assert "not robustness indicators" in section and "polysemanticity-plot" not in section
    assert "colour</td>" in section and "texture</td>" in section and "shape</td>" in section
    assert "concept_overlap</code>" in section
    assert "unique_concepts: " + unresolved in section and "polysemanticity: " + unresolved in section
