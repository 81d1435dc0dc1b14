"""Extraction: batch-size independence, out-of-memory backoff, precision handling."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pytest_robustaudit.measure.extract import numerics, resolve_device

from support import summarised
from pytest_robustaudit.models.base import LoadedModel


class Linear:
    """A LayerAdapter over a fixed random projection; optionally 'runs out of memory' above a batch size."""

    def __init__(self, module, oom_above=None):
        self.module = module
        self.oom_above = oom_above
        self.seen = []

    def available(self):
        return ["representation"]

    def check(self, names):
        pass

    def forward(self, images, names):
        self.seen.append(images.shape[0])
        if self.oom_above is not None and images.shape[0] > self.oom_above:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return {"representation": self.module(images.flatten(1))}


def loaded(oom_above=None):
    torch.manual_seed(0)
    module = torch.nn.Linear(3 * 4 * 4, 24)
    return LoadedModel(module, preprocess=None, layers=Linear(module, oom_above), description="linear",
                       fingerprint="sha256:0")


def batches(size, total=20):
    gen = torch.Generator().manual_seed(1)
    images = torch.randn(total, 3, 4, 4, generator=gen)
    return [images[i:i + size] for i in range(0, total, size)]


def test_batch_size_does_not_change_results():
    small = summarised(loaded(), batches(1), ["representation"], "cpu", "fp32").layers["representation"]
    large = summarised(loaded(), batches(20), ["representation"], "cpu", "fp32").layers["representation"]
    np.testing.assert_allclose(small.kurtosis, large.kurtosis, rtol=1e-5)
    np.testing.assert_allclose(small.profile, large.profile, rtol=1e-5)


def test_out_of_memory_halves_the_batch_and_remembers():
    model = loaded(oom_above=3)
    result = summarised(model, batches(8), ["representation"], "cpu", "fp32")
    assert result.layers["representation"].n_images == 20
    assert result.batch_size == 2
    assert max(model.layers.seen[-3:]) <= 2          # later batches go straight to the size that fits
    assert any("batch split to 2" in note for note in result.notes)
    reference = summarised(loaded(), batches(8), ["representation"], "cpu", "fp32").layers["representation"]
    np.testing.assert_allclose(result.layers["representation"].kurtosis, reference.kurtosis, rtol=1e-5)


def test_other_errors_are_explained_not_swallowed():
    from pytest_robustaudit.errors import AuditError

    model = loaded()

    def broken(images, names):
        raise ValueError("shape mismatch in user model")

    model.layers.forward = broken
    with pytest.raises(AuditError, match=r"forward pass of linear failed on a batch of shape \[4, 3, 4, 4\]: "
                                         r"ValueError: shape mismatch in user model \(raised at .*test_extract.py") as raised:
        summarised(model, batches(4), ["representation"], "cpu", "fp32")
    assert isinstance(raised.value.__cause__, ValueError)


def test_bf16_runs_under_autocast_and_fp32_keeps_tf32_off():
    with numerics("cpu", "bf16"):
        out = torch.nn.Linear(8, 8)(torch.randn(2, 8))
    assert out.dtype == torch.bfloat16
    before = torch.backends.cuda.matmul.allow_tf32
    with numerics("cpu", "fp32"):
        assert torch.backends.cuda.matmul.allow_tf32 is False
    assert torch.backends.cuda.matmul.allow_tf32 == before


def test_device_resolution_without_cuda():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert resolve_device("auto") in ("cpu", "mps")
    from pytest_robustaudit.errors import AuditError

    with pytest.raises(AuditError, match="CUDA is not available"):
        resolve_device("cuda")
