"""GPU path: the same numbers on CUDA as on the CPU (skipped without CUDA; CI has none)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (none on this machine)")]


def test_fp32_extraction_on_cuda_matches_the_cpu():
    import timm

    from support import summarised
    from pytest_robustaudit.models.base import LoadedModel
    from pytest_robustaudit.models.layers import adapter_for

    torch.manual_seed(0)
    module = timm.create_model("resnet10t", pretrained=False, num_classes=0).eval()
    images = [torch.randn(4, 3, 64, 64, generator=torch.Generator().manual_seed(i)) for i in range(3)]
    model = LoadedModel(module=module, preprocess=None, layers=adapter_for(module, "timm"), description="resnet10t",
                        fingerprint="test")
    cpu = summarised(model, images, ["representation"], "cpu", "fp32").layers["representation"]
    gpu = summarised(model, images, ["representation"], "cuda", "fp32").layers["representation"]
    assert torch.allclose(torch.as_tensor(cpu.kurtosis), torch.as_tensor(gpu.kurtosis), rtol=1e-5)
    assert torch.allclose(torch.as_tensor(cpu.profile), torch.as_tensor(gpu.profile), rtol=1e-5)


def test_store_path_on_cuda_pins_memory_and_matches_the_cpu(tmp_path):
    """The audit path (decode workers, pinned batches, rows into the store) gives the CPU's numbers."""
    import textwrap

    import numpy as np
    from PIL import Image

    from pytest_robustaudit.measure.activations import StoreOptions
    from pytest_robustaudit.registries import standalone
    from pytest_robustaudit.audit.runner import measure
    from pytest_robustaudit.spec import load_spec

    (tmp_path / "f.py").write_text(textwrap.dedent("""\
        import timm
        from torchvision import transforms
        def build():
            return (timm.create_model("resnet10t", pretrained=False, num_classes=0),
                    transforms.Compose([transforms.Resize(64), transforms.CenterCrop(64), transforms.ToTensor()]))
        """))
    (tmp_path / "images").mkdir()
    for i in range(10):
        Image.new("RGB", (70, 70), (20 * i, 100, 250 - 20 * i)).save(tmp_path / "images" / f"{i}.png")
    results = {}
    for device in ("cpu", "cuda"):
        spec = load_spec(tmp_path / "s.yaml", standalone(), text=textwrap.dedent(f"""\
            model: {{source: factory, factory: f.py:build}}
            data: {{path: images, batch_size: 4, workers: auto}}
            device: {device}
            checks: {{kurtosis_mean: {{min: 0}}}}
            """))
        results[device] = measure(spec, standalone(), StoreOptions(tmp_path / "store"), settings=RunSettings(device))
    assert results["cuda"].activations["extracted"] == ["representation"], "cuda is another key than cpu"
    cpu, gpu = (results[d].layers["representation"].stats for d in ("cpu", "cuda"))
    np.testing.assert_allclose(gpu.kurtosis, cpu.kurtosis, rtol=1e-4)
    # near-dead features (mean |h| around 1e-7 beside 0.04) differ by float32 rounding of cuDNN's kernels
    # vs the CPU's: relative to the layer's largest feature, not to themselves (measured on an H200: 9e-10)
    np.testing.assert_allclose(gpu.profile, cpu.profile, rtol=1e-4, atol=1e-5 * float(np.max(cpu.profile)))
