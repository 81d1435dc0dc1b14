"""Metric definitions: references on random data, planted outliers, the rotation control."""

import math

import numpy as np
import pytest
import scipy.stats
import torch

from pytest_robustaudit.metrics import BUILTIN_METRICS, kurtosis, outlier_indices
from pytest_robustaudit.metrics.outlier_stats import LayerAccumulator

METRICS = {m.name: m for m in BUILTIN_METRICS}


def summarise(h: np.ndarray):
    acc = LayerAccumulator("representation", rotation_seed=0)
    for start in range(0, len(h), 64):
        acc.update(torch.from_numpy(h[start:start + 64]))
    return acc.finish()


def value(stats, name, **params):
    return METRICS[name].evaluate(stats, params)


def gaussian(n=400, d=256, seed=0):
    return np.random.default_rng(seed).normal(size=(n, d))


def planted(h: np.ndarray, dims=(3, 77, 200), scale=100.0):
    out = h.copy()
    out[:, list(dims)] *= scale
    return out


def test_metrics_match_numpy_references():
    rng = np.random.default_rng(5)
    h = rng.standard_t(df=4, size=(300, 128))
    stats = summarise(h)
    per_image = scipy.stats.kurtosis(h, axis=1, fisher=False, bias=True)
    m = np.abs(h).mean(axis=0)
    assert value(stats, "kurtosis_mean").value == pytest.approx(per_image.mean(), rel=1e-12)
    assert value(stats, "kurtosis_median").value == pytest.approx(np.median(per_image), rel=1e-12)
    assert value(stats, "profile_max_over_median").value == pytest.approx(m.max() / np.median(m), rel=1e-12)
    assert value(stats, "profile_max_over_mean").value == pytest.approx(m.max() / m.mean(), rel=1e-12)
    assert value(stats, "profile_kurtosis").value == pytest.approx(scipy.stats.kurtosis(m, fisher=False), rel=1e-10)
    assert kurtosis(m) == pytest.approx(scipy.stats.kurtosis(m, fisher=False), rel=1e-12)


def test_gaussian_representation_has_no_outliers_and_kurtosis_near_3():
    stats = summarise(gaussian())
    assert value(stats, "kurtosis_mean").value == pytest.approx(3.0, abs=0.2)
    assert value(stats, "outlier_count", factor=10.0).value == 0
    assert value(stats, "basis_kurtosis_ratio").value == pytest.approx(1.0, abs=0.1)


@pytest.mark.parametrize("scale", [10.0, 100.0, 1000.0])
def test_planted_outliers_are_flagged_exactly(scale):
    stats = summarise(planted(gaussian(), scale=scale))
    found = value(stats, "outlier_count", factor=5.0)
    assert found.value == 3
    assert sorted(found.details["indices"]) == [3, 77, 200]
    assert value(stats, "kurtosis_mean").value > 10


def test_rotation_control_drops_planted_kurtosis_to_about_3():
    stats = summarise(planted(gaussian(), scale=100.0))
    neuron = value(stats, "kurtosis_mean").value
    rotated = value(stats, "rotated_kurtosis_mean").value
    assert neuron > 50
    assert rotated == pytest.approx(3.0, abs=0.3)
    assert value(stats, "basis_kurtosis_ratio").value > 15


def test_outlier_factor_is_a_threshold_on_the_profile():
    """τ × s, s the mean of the live non-outliers, found by iteration: at τ = 10, 300 is flagged against
    the mean of all (4.43), then 45 against the mean of the rest (1.44); at τ = 50 only 300."""
    profile = np.ones(100)
    profile[[40, 7]] = [300.0, 45.0]
    assert list(outlier_indices(profile, 10.0)) == [40, 7]
    assert list(outlier_indices(profile, 50.0)) == [40]
    assert list(outlier_indices(profile, 100.0)) == []


def test_undefined_values_carry_a_reason():
    stats = summarise(np.ones((4, 1)))
    measured = value(stats, "kurtosis_mean")
    assert math.isnan(measured.value) and "d = 1" in measured.undefined_reason
    zeros = summarise(np.zeros((4, 16)))
    assert "constant" in value(zeros, "kurtosis_mean").undefined_reason
    assert "dead" in value(zeros, "outlier_count").undefined_reason
    assert "median" in value(zeros, "profile_max_over_median").undefined_reason


def test_all_nonfinite_layer_is_explained():
    h = np.full((3, 8), np.nan)
    measured = value(summarise(h), "kurtosis_mean")
    assert math.isnan(measured.value) and "NaN/Inf" in measured.undefined_reason
