"""Numbers that cannot be fooled (issue 11): dead units, collapsed layers, the rotation's null band,
kurtosis of the mean, float64 on devices without it, versioned definitions, the half-precision warning.

Pure: synthetic activations with known answers, and the real DINOv2 statistics of ../shared/data.
"""

from __future__ import annotations

import dataclasses
import math
import warnings

import numpy as np
import pytest
import scipy.fft
import torch

from pytest_robustaudit.errors import RobustAuditWarning
from pytest_robustaudit.metrics import BUILTIN_METRICS
from pytest_robustaudit.metrics import outlier_stats
from pytest_robustaudit.metrics.outlier_stats import (LayerAccumulator, dct_ortho, null_band, random_rotation, rotate,
                                                      row_kurtosis)
from pytest_robustaudit.metrics.outliers import dead_mask, outlier_indices, reference_scale

from support import shared_data

METRICS = {m.name: m for m in BUILTIN_METRICS}


def summarise(h, seed: int = 0):
    acc = LayerAccumulator("representation", rotation_seed=seed)
    h = torch.as_tensor(h)
    for start in range(0, len(h), 64):
        acc.update(h[start:start + 64])
    return acc.finish()


def value(stats, name, **params):
    return METRICS[name].evaluate(stats, params)


def relu_layer(n=200, d=2048, seed=0) -> np.ndarray:
    """A ReLU layer like a random-init RN50's pre-projection: 20% of units never fire, 40% almost never."""
    rng = np.random.default_rng(seed)
    h = rng.normal(size=(n, d)).astype(np.float32) + 0.3
    bias = np.zeros(d, dtype=np.float32)
    bias[: d // 5] = -50.0                      # dead: identically 0 after the ReLU
    bias[d // 5: 3 * d // 5] = -2.6             # near-dead: fire on a few images, barely
    return np.maximum(h + bias, 0.0)


# --- the reference scale and dead units -------------------------------------------------------------


def test_dead_and_near_dead_units_cannot_collapse_the_outlier_scale():
    h = relu_layer()
    profile = np.abs(h.astype(np.float64)).mean(0)
    # the old definition (τ × median over all features) is fooled: hundreds of "outliers" out of nothing
    assert (profile > 10 * np.median(profile)).sum() > 500
    stats = summarise(h)
    assert value(stats, "outlier_count").value == 0
    assert value(stats, "outlier_count", factor=100.0).value == 0
    never = int((h.max(0) == 0).sum())
    assert never >= 2048 // 5
    dead = value(stats, "dead_units")
    assert dead.value == never and dead.details["identically_zero"] == never


def test_four_features_scaled_30x_are_found_exactly_beside_dead_units():
    h = relu_layer()
    live = np.flatnonzero(h.max(0) > 0)
    rng = np.random.default_rng(1)
    dims = rng.choice(live[live >= 3 * 2048 // 5], 4, replace=False)   # among the ordinary live units
    h[:, dims] *= 30
    found = value(summarise(h), "outlier_count")
    assert sorted(found.details["indices"]) == sorted(int(i) for i in dims)
    assert found.details["dead_units"] >= int((h.max(0) == 0).sum())   # the tolerance is relative to the max


def test_one_huge_feature_does_not_mask_the_others():
    """τ × plain mean would miss the 20x feature next to a 5000x one; the scale leaves outliers out."""
    profile = np.ones(200)
    profile[[7, 9]] = [5000.0, 20.0]
    assert (profile > 10 * profile.mean()).sum() == 1
    assert list(outlier_indices(profile, 10.0)) == [7, 9]
    scale, mask = reference_scale(profile, 10.0)
    assert scale == 1.0 and mask.sum() == 2


@pytest.mark.parametrize("d, tau, k", [(16, 10.0, 1), (200, 10.0, 1), (64, 10.0, 3), (32, 100.0 / 11, 2)])
def test_the_size_condition_docs_metrics_md_states(d, tau, k):
    """docs/metrics.md: k equal features m times the other live ones are found only when
    m > tau (d - k) / (d - tau k): 25x at d = 16, tau = 10 (issue 26)."""
    from pathlib import Path

    threshold = tau * (d - k) / (d - tau * k)
    for m, found in ((threshold * 0.999, 0), (threshold * 1.001, k)):
        profile = np.ones(d)
        profile[:k] = m
        assert int(reference_scale(profile, tau)[1].sum()) == found, (d, tau, k, m)
    doc = (Path(__file__).resolve().parents[2] / "docs" / "metrics.md").read_text(encoding="utf-8")
    assert "m > τ · (d − k) / (d − τ k)" in doc and "25× at d = 16, τ = 10" in doc


def test_dead_tolerance_follows_the_input_precision():
    profile = np.array([1.0, 0.5, 0.0, 1e-8, 1e-5])
    assert list(np.flatnonzero(dead_mask(profile, float(np.finfo(np.float32).eps)))) == [2, 3]
    assert list(np.flatnonzero(dead_mask(profile, 2.0 ** -10))) == [2, 3, 4]   # float16
    assert list(np.flatnonzero(dead_mask(profile, 0.0))) == [2]


# --- collapsed layers --------------------------------------------------------------------------------


def collapsed(n=8, d=512) -> torch.Tensor:
    """float32 rows that are constant up to single-ulp noise (what a collapsed layer produces)."""
    rng = np.random.default_rng(0)
    base = np.full((n, d), 0.7310586, dtype=np.float32)
    ulp = np.spacing(np.float32(0.7310586))
    noise = (rng.random((n, d)) < 0.01).astype(np.float32) * ulp
    return torch.from_numpy(base + noise)


def test_collapsed_float32_layer_is_degenerate_not_a_huge_kurtosis():
    h = collapsed()
    # exact float64 comparison (the old behaviour) reads the rounding noise as a spiky vector
    assert float(np.nanmean(row_kurtosis(h.double(), eps=0.0).numpy())) > 50
    stats = summarise(h)
    assert stats.input_dtype == "float32" and stats.n_undefined_kurtosis == 8
    for name in ("kurtosis_mean", "rotated_kurtosis_mean", "basis_kurtosis_ratio", "profile_kurtosis",
                 "kurtosis_of_mean"):
        measured = value(stats, name)
        assert math.isnan(measured.value), name
        assert "degenerate" in measured.undefined_reason and "float32" in measured.undefined_reason, name


def test_a_spike_of_one_ulp_is_constant_but_a_real_spike_is_not():
    row = torch.full((1, 256), 2.0, dtype=torch.float32)
    row[0, 3] = torch.nextafter(torch.tensor(2.0), torch.tensor(3.0))
    assert torch.isnan(row_kurtosis(row.double(), eps=float(torch.finfo(torch.float32).eps)))
    row[0, 3] = 2.01
    assert row_kurtosis(row.double(), eps=float(torch.finfo(torch.float32).eps)).item() > 200


# --- the rotation and its null band ------------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 2, 7, 64, 1000])
def test_dct_is_scipys_orthonormal_dct(n):
    x = torch.randn(3, n, dtype=torch.float64)
    np.testing.assert_allclose(dct_ortho(x).numpy(), scipy.fft.dct(x.numpy(), type=2, norm="ortho", axis=-1),
                               atol=1e-13)


def test_structured_rotation_is_orthogonal_and_matches_its_matrix():
    q = random_rotation(300, seed=2)
    np.testing.assert_allclose((q.T @ q).numpy(), np.eye(300), atol=1e-12)
    h = torch.randn(5, 300, dtype=torch.float64)
    np.testing.assert_allclose(rotate(h, 2).numpy(), (h @ q).numpy(), atol=1e-12)


@pytest.mark.parametrize("d", [256, 2048])
def test_rotated_kurtosis_of_any_vector_falls_in_the_null_band(d):
    """Spikes (κ = d in the neuron basis) and planted outliers alike: 3 ± √(24/d) per image."""
    rng = np.random.default_rng(d)
    spikes = np.zeros((300, d))
    spikes[np.arange(300), rng.integers(0, d, 300)] = 1.0
    rotated = row_kurtosis(rotate(torch.from_numpy(spikes), seed=0)).numpy()
    sd = math.sqrt(24 / d)
    assert abs(rotated.mean() - 3) < 0.5 * sd
    assert 0.8 * sd < rotated.std() < 1.2 * sd
    lo, hi = null_band(d)
    assert (lo, hi) == pytest.approx((3 - 2 * sd, 3 + 2 * sd))
    assert np.mean((rotated > lo) & (rotated < hi)) > 0.9


def test_rotated_metrics_and_the_report_show_the_null_band():
    from pytest_robustaudit.report import svg

    stats = summarise(np.random.default_rng(0).normal(size=(100, 96)))
    band = value(stats, "rotated_kurtosis_mean").details["null_band"]
    assert band == pytest.approx(list(null_band(96)))
    plot = svg.kurtosis_hist_svg(stats.kurtosis, stats.rotated_kurtosis, "k", band=null_band(96))
    assert 'class="null-band"' in plot and f"{band[0]:.3g}" in plot


def test_rotation_has_no_width_limit():
    stats = summarise(np.random.default_rng(0).normal(size=(4, 9000)).astype(np.float32))
    assert not math.isnan(value(stats, "rotated_kurtosis_mean").value)


# --- kurtosis of the mean ----------------------------------------------------------------------------


def test_kurtosis_of_mean_differs_from_profile_kurtosis_on_signed_features():
    rng = np.random.default_rng(0)
    h = rng.normal(size=(400, 256))
    h[:, 5] = rng.choice([-80.0, 80.0], size=400)     # huge but sign-symmetric: cancels in the mean
    h[:, 9] += 40.0                                    # a massive activation with a fixed sign
    stats = summarise(h)
    of_mean, profile = value(stats, "kurtosis_of_mean").value, value(stats, "profile_kurtosis").value
    mean = h.mean(0)
    c = mean - mean.mean()
    assert of_mean == pytest.approx(float((c ** 4).mean() / (c ** 2).mean() ** 2), rel=1e-10)
    assert of_mean > 200 and profile > 100
    assert np.argmax(np.abs(mean)) == 9 and np.argmax(stats.profile) == 5


def test_kurtosis_of_mean_equals_profile_kurtosis_on_a_non_negative_layer():
    h = relu_layer(n=50, d=256)
    h[:, 300 % 256] *= 30
    stats = summarise(h)
    assert value(stats, "kurtosis_of_mean").value == pytest.approx(value(stats, "profile_kurtosis").value, rel=1e-12)


@pytest.mark.parametrize("size, d, known", [("small", 384, 287), ("base", 768, 254), ("large", 1024, 555),
                                            ("giant", 1536, 179)])
def test_kurtosis_of_mean_finds_dinov2_massive_activations(size, d, known):
    """Measured on the real DINOv2-reg statistics: κ of the mean over the 4 tokens is 12–19 at the first
    layer (before massive activations appear) and 118–983 at every later layer."""
    path = shared_data("massive-activations") / f"{size}_imagemean_bs10k_trainaug.pt"
    layers = torch.load(path, map_location="cpu")
    values = {}
    for index, means in layers.items():
        stats = summarise(means)
        assert stats.dim == d
        values[index] = value(stats, "kurtosis_of_mean").value
    assert values[0] < 25
    assert min(v for i, v in values.items() if i > 0) > 100
    last = summarise(layers[max(layers)])
    assert known in value(last, "outlier_count").details["indices"]


# --- float64 where the device has none ----------------------------------------------------------------


def test_devices_without_float64_accumulate_on_the_cpu(monkeypatch):
    h = np.random.default_rng(3).standard_t(df=5, size=(90, 40)).astype(np.float32)
    reference = summarise(h)
    monkeypatch.setattr(outlier_stats, "supports_float64", lambda device: False)
    moved = summarise(h)
    assert any("no float64" in note for note in moved.notes)
    for field in ("kurtosis", "rotated_kurtosis", "profile", "feature_mean", "feature_var"):
        np.testing.assert_array_equal(getattr(moved, field), getattr(reference, field))


def test_float64_support_is_probed_as_mps_refuses_it(monkeypatch):
    real_empty = torch.empty

    def mps_like(*args, dtype=None, **kwargs):
        if dtype == torch.float64:
            raise TypeError("Cannot convert a MPS Tensor to float64 dtype as the MPS framework doesn't support "
                            "float64. Please use float32 instead.")
        return real_empty(*args, dtype=dtype, **kwargs)

    outlier_stats._probe_float64.cache_clear()
    monkeypatch.setattr(torch, "empty", mps_like)
    try:
        assert outlier_stats.supports_float64("cpu") is False
    finally:
        outlier_stats._probe_float64.cache_clear()
    monkeypatch.undo()
    assert outlier_stats.supports_float64("cpu") is True


# --- versioned definitions -----------------------------------------------------------------------------


def test_metrics_carry_a_definition_version_and_values_record_it():
    assert METRICS["outlier_count"].version == METRICS["outlier_fraction"].version == 2
    assert METRICS["kurtosis_mean"].version == 1
    stats = summarise(np.random.default_rng(0).normal(size=(20, 32)))
    assert value(stats, "outlier_count").version == 2 and value(stats, "kurtosis_mean").version == 1


def _baseline_with(version: int):
    from builders import make_result

    result = make_result("base", checks=())
    layer = result.layers["representation"]
    layer.metrics["outlier_count"] = dataclasses.replace(layer.metrics["outlier_count"], version=version)
    return result


def test_a_baseline_under_another_definition_fails_the_check_and_says_why(tmp_path):
    from pytest_robustaudit.analyse.checks import evaluate
    from pytest_robustaudit.results.record import read_record, write_record
    from pytest_robustaudit.registries import standalone
    from pytest_robustaudit.audit.runner import Reference
    from pytest_robustaudit.spec.schema import CheckSpec

    registries = standalone()
    path = write_record([_baseline_with(1)], tmp_path / "baseline.json")
    _, (old,) = read_record(path)
    check = CheckSpec("outlier_count", "representation", max_delta=0.0)
    ref = Reference("baseline baseline.json", old).value(check, registries)
    assert math.isnan(ref.value) and "definition version 1" in ref.undefined_reason
    assert "version 2" in ref.undefined_reason and "--audit-save-baseline" in ref.undefined_reason
    measured = registries.metrics.get("outlier_count").evaluate(old.layers["representation"].stats)
    outcome = evaluate(check, measured, "ctx", ref, "baseline baseline.json")
    assert not outcome.passed and "definition version 1" in outcome.message
    # the same definition compares as before
    _, (same,) = read_record(write_record([_baseline_with(2)], tmp_path / "same.json"))
    assert Reference("baseline same.json", same).value(check, registries).value == measured.value


def test_schema_1_records_read_as_definition_1_and_float32(tmp_path):
    import json

    from pytest_robustaudit.results.record import SCHEMA_VERSION, dumps, loads

    from builders import make_result

    data = json.loads(dumps([make_result("old", checks=())]))
    assert SCHEMA_VERSION == 5 and data["audits"][0]["layers"][0]["metrics"]["outlier_count"]["version"] == 2
    data["schema_version"] = 1
    layer = data["audits"][0]["layers"][0]
    del layer["stats"]["input_dtype"]
    for metric in layer["metrics"].values():
        del metric["version"]
    _, (back,) = loads(json.dumps(data))
    assert back.layers["representation"].metrics["outlier_count"].version == 1
    assert back.layers["representation"].stats.input_dtype == "float32"


# --- half precision on a CPU ----------------------------------------------------------------------------


def test_half_precision_on_a_cpu_warns_once(monkeypatch):
    from pytest_robustaudit.measure import extract

    monkeypatch.setattr(extract, "_WARNED_HALF_ON_CPU", set())
    with pytest.warns(RobustAuditWarning, match="12x slower than fp32"):
        extract.warn_half_precision_on_cpu("cpu", "bf16")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        extract.warn_half_precision_on_cpu("cpu", "bf16")      # once
        extract.warn_half_precision_on_cpu("cuda:0", "fp16")   # GPUs are what half precision is for
        extract.warn_half_precision_on_cpu("cpu", "fp32")


# --- docs that match the product --------------------------------------------------------------------------


def test_ci_doc_installs_from_source_not_from_an_index():
    """The package is not on an index: docs/ci.md must not tell CI to `pip install pytest-robustaudit`, and
    the wheel it names is the one `pip wheel` builds for the current version."""
    import re
    import tomllib

    from support import REPO

    text = (REPO / "docs" / "ci.md").read_text(encoding="utf-8")
    version = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]
    assert not re.search(r"pip install pytest-robustaudit\s*$", text, re.M)
    assert "pip install ./pytest-robustaudit" in text and "git+https://" in text
    assert f"pytest_robustaudit-{version}-py3-none-any.whl" in text
