"""How much do the streaming statistics cost next to the forward pass itself?

Measures, side by side in one run on the same images (the shipped photos, repeated) and the same
model (timm efficientnet_lite0, random weights, CPU):

* the bare forward pass (what any tool must pay),
* our extraction (forward + float64 streaming moments + the rotation control),
* our extraction with channels_last switched off (why extract.py turns it on),

and prints the ratios.  Not part of the test suite: ``python benchmarks/bench_extract.py``.
"""

from __future__ import annotations

import time
from pathlib import Path
from unittest import mock

import torch

from pytest_robustaudit import data
from pytest_robustaudit.measure.extract import extract
from pytest_robustaudit.models.base import LoadedModel
from pytest_robustaudit.models.layers import adapter_for
from pytest_robustaudit.spec.schema import DataSpec

PHOTOS = Path(__file__).resolve().parents[1] / "audits" / "photos"
REPEAT = 6
LAYERS = ["representation", "blocks.-1"]


def best_of(fn, runs=3):
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    import timm
    from timm.data import create_transform, resolve_data_config

    torch.manual_seed(0)
    module = timm.create_model("efficientnet_lite0").eval()
    preprocess = create_transform(**resolve_data_config({}, model=module))
    probe = data.discover(DataSpec(path=PHOTOS))
    batch = torch.cat([images for images, _ in data.iter_batches(probe, preprocess, 64, 0, [])])
    batches = [batch.repeat(REPEAT, 1, 1, 1)[i:i + 32] for i in range(0, batch.shape[0] * REPEAT, 32)]
    n = sum(b.shape[0] for b in batches)
    loaded = LoadedModel(module, preprocess, adapter_for(module, "efficientnet_lite0"), "lite0", "sha256:-")

    def bare():
        fast = module.to(memory_format=torch.channels_last)
        with torch.inference_mode():
            for b in batches:
                fast(b.contiguous(memory_format=torch.channels_last))

    def ours():
        extract(loaded, batches, LAYERS, "cpu", "fp32")

    def ours_nchw():
        with mock.patch.object(torch, "channels_last", torch.contiguous_format):
            extract(loaded, batches, LAYERS, "cpu", "fp32")

    t_bare, t_ours, t_nchw = best_of(bare), best_of(ours), best_of(ours_nchw)
    print(f"images: {n}, threads: {torch.get_num_threads()}")
    print(f"bare forward (channels_last) : {t_bare:7.2f} s  {n / t_bare:6.1f} img/s")
    print(f"extraction, 2 layers          : {t_ours:7.2f} s  {n / t_ours:6.1f} img/s")
    print(f"extraction, NCHW              : {t_nchw:7.2f} s  {n / t_nchw:6.1f} img/s")
    print(f"ratio extraction / bare forward: {t_ours / t_bare:.2f}x")
    print(f"ratio NCHW / channels_last     : {t_nchw / t_ours:.2f}x")


if __name__ == "__main__":
    main()
