"""Reference values behind docs/metrics.md: the outlier scale on dead units, and basis_kurtosis_ratio
per model family at random init.

For each model (random weights, no download) it runs 200 images of ../shared/data/imagenet-samples
(a fixed subset, seed 0) through the layers named below, fp32 on the CPU, and prints

* dead units, and the number of "outliers" at τ = 10 over four reference scales: the median over all
  features (definition version 1), the median over features that are not identically zero, the plain
  mean, and version 2's mean over live non-outliers;
* kurtosis_mean and basis_kurtosis_ratio, mean ± sd over 10 rotation seeds (the rotated value is
  about one draw from the null band, so the ratio moves with the seed).

Not part of the test suite (minutes on a CPU): ``python benchmarks/measure_outlier_references.py [--models rn50 resnet18]``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

import pytest_robustaudit
from pytest_robustaudit import data
from pytest_robustaudit.metrics import BUILTIN_METRICS
from pytest_robustaudit.metrics.outlier_stats import LayerAccumulator
from pytest_robustaudit.metrics.outliers import reference_scale
from pytest_robustaudit.models import load_model
from pytest_robustaudit.spec.schema import DataSpec, ModelSpec

IMAGES = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "imagenet-samples"
MODELS = {
    "rn50": (ModelSpec("open_clip", name="RN50"), ["pre_projection", "representation"]),
    "vitb32": (ModelSpec("open_clip", name="ViT-B-32"), ["pre_projection", "representation"]),
    "resnet18": (ModelSpec("timm", name="resnet18"), ["representation"]),
    "vit_small": (ModelSpec("timm", name="vit_small_patch16_224"), ["representation"]),
}
METRICS = {m.name: m for m in BUILTIN_METRICS}


def activations(key: str, images: int) -> dict[str, torch.Tensor]:
    spec, layers = MODELS[key]
    torch.manual_seed(0)
    model = load_model(spec, pytest_robustaudit.standalone().sources)
    probe = data.discover(DataSpec(IMAGES, limit=images, seed=0))
    out: dict[str, list[torch.Tensor]] = {name: [] for name in layers}
    with torch.inference_mode():
        for batch, _ in data.iter_batches(probe, model.preprocess, 50, 0, []):
            found = model.layers.forward(batch, layers)
            for name in layers:
                out[name].append(found[name].float())
    return {name: torch.cat(parts) for name, parts in out.items()}


def report(label: str, h: torch.Tensor) -> None:
    m = h.double().abs().mean(0).numpy()
    never = h.abs().amax(0).numpy() > 0
    counts = {
        "median (v1)": int((m > 10 * np.median(m)).sum()),
        "median of non-zero": int((m > 10 * np.median(m[never])).sum()),
        "mean": int((m > 10 * m.mean()).sum()),
        "live non-outliers (v2)": int(reference_scale(m, 10.0)[1].sum()),
    }
    ratios, kurt, dead = [], 0.0, 0
    for seed in range(10):
        acc = LayerAccumulator(label, rotation_seed=seed)
        acc.update(h)
        stats = acc.finish()
        ratios.append(METRICS["basis_kurtosis_ratio"].evaluate(stats).value)
        kurt = METRICS["kurtosis_mean"].evaluate(stats).value
        dead = int(METRICS["dead_units"].evaluate(stats).value)
    print(f"{label:28s} d={h.shape[1]:5d} dead={dead:4d} (zero {int((~never).sum())})  outliers at τ=10: "
          + ", ".join(f"{k} {v}" for k, v in counts.items())
          + f"  kurtosis_mean {kurt:.3g}  basis_kurtosis_ratio {np.mean(ratios):.3f} ± {np.std(ratios):.3f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--images", type=int, default=200)
    args = parser.parse_args()
    for key in args.models:
        for layer, h in activations(key, args.images).items():
            report(f"{key} {layer}", h)


if __name__ == "__main__":
    main()
