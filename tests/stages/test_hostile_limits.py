"""Unbounded inputs meet documented limits (issue 25): resamples, the bootstrap's memory, concept banks,
JSON nesting; and an informational metric that fails never takes the audit's other verdicts with it."""

from __future__ import annotations

import json
import textwrap

import numpy as np
import pytest

from pytest_robustaudit.errors import AuditError, SpecError
from pytest_robustaudit.metrics import bootstrap as bs
from pytest_robustaudit.registries import standalone
from pytest_robustaudit.spec import load_spec

from support import tiny_classifier_factory


# ---- resamples ---------------------------------------------------------------------------------------


@pytest.fixture
def folder(tmp_path):
    from PIL import Image

    (tmp_path / "tiny_limits_factory.py").write_text(tiny_classifier_factory())
    rng = np.random.default_rng(0)
    for where, count in (("images", 6), ("bank/red", 3), ("bank/blue", 3)):
        (tmp_path / where).mkdir(parents=True)
        for i in range(count):
            Image.fromarray(rng.integers(0, 255, (20, 20, 3), dtype=np.uint8)).save(tmp_path / where / f"{i}.png")
    return tmp_path


def spec_of(folder, extra: str = "", checks: str = "kurtosis_mean: {min: 0}"):
    text = textwrap.dedent("""\
        model: {source: factory, factory: tiny_limits_factory.py:build}
        data: {path: images, batch_size: 4}
        device: cpu
        """) + extra + "checks:\n  " + checks + "\n"
    (folder / "spec.yaml").write_text(text)
    return load_spec(folder / "spec.yaml", standalone())


def test_resamples_beyond_the_limit_are_a_located_spec_error(folder):
    with pytest.raises(SpecError) as caught:
        spec_of(folder, "resamples: 100000000\n")
    assert "spec.yaml:4: resamples: must be at most 100000, got 100000000" in str(caught.value)
    assert spec_of(folder, "resamples: 100000\n").resamples == bs.MAX_RESAMPLES


def test_weights_drawn_in_blocks_are_the_same_numbers(monkeypatch):
    whole = bs.resample_weights(37, 501, seed=4)
    monkeypatch.setattr(bs, "WEIGHT_BLOCK_BYTES", 8 * 37 * 10)     # blocks of 10 resamples
    assert np.array_equal(np.concatenate(list(bs.resample_weight_blocks(37, 501, seed=4))), whole)
    assert np.array_equal(bs.resample_weights(37, 501, seed=4), whole)
    values = np.random.default_rng(0).normal(size=37)
    blocked = bs.per_image_interval(values, "mean", seed=1, resamples=501)
    monkeypatch.setattr(bs, "WEIGHT_BLOCK_BYTES", 32 << 20)
    np.testing.assert_allclose([blocked.low, blocked.high],
                               [(iv := bs.per_image_interval(values, "mean", seed=1, resamples=501)).low, iv.high],
                               rtol=1e-12)


def test_an_unaffordable_bootstrap_is_a_clear_error_before_anything_is_allocated(monkeypatch):
    from pytest_robustaudit.analyse.intervals import sample_layer

    monkeypatch.setattr(bs, "available_memory", lambda: 50 << 20)
    rows = np.random.default_rng(0).normal(size=(200, 16)).astype(np.float32)
    with pytest.raises(AuditError) as caught:
        sample_layer("audit", "representation", [f"{i:064x}" for i in range(200)], lambda: iter([rows]),
                     resamples=100_000)
    text = str(caught.value)
    assert text.startswith("resamples: the intervals of layer 'representation' (100000 resamples of 200 images, "
                           "16 features) need about") and "lower `resamples`" in text
    with pytest.raises(AuditError, match="the resampling weights"):
        bs.resample_weights(200, 100_000, seed=0)
    assert sample_layer("audit", "representation", [f"{i:064x}" for i in range(200)], lambda: iter([rows]),
                        resamples=200) is not None


# ---- concept banks -----------------------------------------------------------------------------------


def test_a_bank_of_too_many_concepts_or_images_is_refused_at_its_key(folder, monkeypatch):
    from pytest_robustaudit.data import concept_bank

    for i in range(concept_bank.MAX_CONCEPTS + 1):
        (folder / "big" / f"c{i:04d}").mkdir(parents=True)
    with pytest.raises(SpecError) as caught:
        spec_of(folder, "concepts: {path: big}\n")
    assert "concepts.path: " in str(caught.value) and "holds 1001 concept folders, more than the 1000" in str(caught.value)
    monkeypatch.setattr(concept_bank, "MAX_BANK_IMAGES", 5)
    with pytest.raises(SpecError, match="the bank holds 6 images, more than the 5"):
        spec_of(folder, "concepts: {path: bank, min_images: 2}\n")
    with pytest.raises(SpecError, match=r"concepts.images_per_concept: 10000 images for each of 35 concepts"):
        spec_of(folder, "concepts: {builtin: true, images_per_concept: 10000}\n")


def test_a_bank_json_nested_100000_deep_is_a_located_error(folder):
    (folder / "bank" / "bank.json").write_text('{"concepts": ' + "[" * 100_000 + "]" * 100_000 + "}")
    with pytest.raises(SpecError) as caught:
        spec_of(folder, "concepts: {path: bank, min_images: 2}\n")
    assert "unreadable concept manifest (nests arrays or objects deeper than 64 levels)" in str(caught.value)
    (folder / "bank" / "bank.json").write_text(json.dumps({"concepts": [["red"]]}))
    with pytest.raises(SpecError, match="unreadable concept manifest"):
        spec_of(folder, "concepts: {path: bank, min_images: 2}\n")


# ---- an informational metric that fails --------------------------------------------------------------


@pytest.mark.parametrize("where", ["metric", "bank"])
def test_a_failing_informational_metric_keeps_the_audit_s_other_verdicts(folder, monkeypatch, where):
    from pytest_robustaudit.audit.runner import run_audit
    from pytest_robustaudit.measure import concept_source
    from pytest_robustaudit.metrics import concepts

    def out_of_memory(*args, **kwargs):
        raise MemoryError("a 10000 x 20000 matrix")
    if where == "metric":
        monkeypatch.setattr(concepts, "probe_concepts", out_of_memory)
    else:
        monkeypatch.setattr(concept_source, "measure_concepts", out_of_memory)
    spec = spec_of(folder, "concepts: {path: bank, min_images: 2}\n",
                   checks="kurtosis_mean: {min: 0}\n  concepts_encoded: {min: 0}")
    result = run_audit(spec, standalone())
    gating = result.check("kurtosis_mean", "representation")
    assert gating.passed and gating.basis == "value"
    concept = result.check("concepts_encoded", "representation")
    assert not concept.passed and "could not be computed: " in concept.message
    assert "MemoryError: a 10000 x 20000 matrix" in concept.message
    encoded = result.layers["representation"].metrics["concepts_encoded"]
    assert encoded.undefined_reason.startswith("could not be computed")
    if where == "bank":
        assert result.provenance["concepts"] == {"error": "MemoryError: a 10000 x 20000 matrix"}
