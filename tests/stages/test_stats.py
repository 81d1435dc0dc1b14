"""Streaming statistics against numpy/scipy references computed on the full matrix."""

import numpy as np
import pytest
import scipy.stats
import torch

from pytest_robustaudit.metrics.outlier_stats import LayerAccumulator, random_rotation, row_kurtosis


def accumulate(h: np.ndarray, batch: int, seed: int = 0):
    acc = LayerAccumulator("representation", rotation_seed=seed)
    for start in range(0, len(h), batch):
        acc.update(torch.from_numpy(h[start:start + batch]))
    return acc.finish()


@pytest.fixture
def heavy():
    rng = np.random.default_rng(0)
    return rng.standard_t(df=5, size=(257, 64)) * rng.uniform(0.5, 3.0, size=64) + rng.normal(size=64)


def test_row_kurtosis_matches_scipy(heavy):
    ours = row_kurtosis(torch.from_numpy(heavy)).numpy()
    ref = scipy.stats.kurtosis(heavy, axis=1, fisher=False, bias=True)
    np.testing.assert_allclose(ours, ref, rtol=1e-12)


def test_profile_mean_and_variance_match_numpy(heavy):
    stats = accumulate(heavy, batch=10)
    np.testing.assert_allclose(stats.profile, np.abs(heavy).mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(stats.feature_mean, heavy.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(stats.feature_var, heavy.var(axis=0), rtol=1e-10)
    assert stats.n_images == 257 and stats.dim == 64


def test_results_do_not_depend_on_batch_size(heavy):
    one, many = accumulate(heavy, batch=1), accumulate(heavy, batch=100)
    np.testing.assert_allclose(one.kurtosis, many.kurtosis, rtol=1e-13)
    np.testing.assert_allclose(one.rotated_kurtosis, many.rotated_kurtosis, rtol=1e-12)
    np.testing.assert_allclose(one.profile, many.profile, rtol=1e-13)
    np.testing.assert_allclose(one.feature_var, many.feature_var, rtol=1e-11)


def test_rotation_is_orthogonal_and_fixed():
    q = random_rotation(50, seed=3)
    np.testing.assert_allclose((q.T @ q).numpy(), np.eye(50), atol=1e-12)
    assert torch.equal(q, random_rotation(50, seed=3))
    assert not torch.equal(q, random_rotation(50, seed=4))


def test_rotated_kurtosis_is_kurtosis_of_rotated_rows(heavy):
    stats = accumulate(heavy, batch=32, seed=7)
    rotated = heavy @ random_rotation(64, seed=7).numpy()
    ref = scipy.stats.kurtosis(rotated, axis=1, fisher=False, bias=True)
    np.testing.assert_allclose(stats.rotated_kurtosis, ref, rtol=1e-10)


def test_nonfinite_images_are_excluded_and_counted(heavy):
    bad = heavy.copy()
    bad[3, 5] = np.nan
    bad[10, 0] = np.inf
    stats = accumulate(bad, batch=16)
    clean = np.delete(heavy, [3, 10], axis=0)
    assert stats.n_nonfinite == 2 and stats.n_images == 255
    np.testing.assert_allclose(stats.profile, np.abs(clean).mean(axis=0), rtol=1e-12)


def test_constant_rows_have_undefined_kurtosis_and_constant_features_are_counted():
    h = np.random.default_rng(1).normal(size=(6, 8))
    h[:, 5] = 0.1       # a constant feature
    h[2] = 0.1          # a constant image vector
    stats = accumulate(h, batch=4)
    assert np.isnan(stats.kurtosis[2]) and stats.n_undefined_kurtosis == 1
    assert stats.constant_features == 1


def test_single_feature_layer_has_undefined_kurtosis():
    stats = accumulate(np.arange(5, dtype=np.float64).reshape(5, 1), batch=2)
    assert stats.dim == 1 and stats.n_undefined_kurtosis == 5


def test_memory_does_not_grow_with_images():
    """The per-feature state is O(d); the only per-image state is two float64 scalars."""
    acc = LayerAccumulator("representation")
    for _ in range(20):
        acc.update(torch.randn(50, 32))
    stats = acc.finish()
    assert stats.profile.shape == (32,)
    assert stats.kurtosis.nbytes == 1000 * 8 and stats.rotated_kurtosis.nbytes == 1000 * 8
