"""GPU path: the same numbers on CUDA as on the CPU (skipped without CUDA; CI has none)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (none on this machine)")]


def test_fp32_extraction_on_cuda_matches_the_cpu():
    import timm

    from pytest_robustaudit.extract import extract
    from pytest_robustaudit.models.base import LoadedModel
    from pytest_robustaudit.models.layers import adapter_for

    torch.manual_seed(0)
    module = timm.create_model("resnet10t", pretrained=False, num_classes=0).eval()
    images = [torch.randn(4, 3, 64, 64, generator=torch.Generator().manual_seed(i)) for i in range(3)]
    model = LoadedModel(module=module, preprocess=None, layers=adapter_for(module, "timm"), description="resnet10t",
                        fingerprint="test")
    cpu = extract(model, images, ["representation"], "cpu", "fp32").layers["representation"]
    gpu = extract(model, images, ["representation"], "cuda", "fp32").layers["representation"]
    assert torch.allclose(torch.as_tensor(cpu.kurtosis), torch.as_tensor(gpu.kurtosis), rtol=1e-5)
    assert torch.allclose(torch.as_tensor(cpu.profile), torch.as_tensor(gpu.profile), rtol=1e-5)
