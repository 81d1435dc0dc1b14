"""Hand-built results for the record and report tests and benchmarks/bench_report.py: no model, no image."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from pytest_robustaudit.analyse.checks import evaluate
from pytest_robustaudit.data import SkippedImage
from pytest_robustaudit.metrics.outlier_stats import LayerStats
from pytest_robustaudit.registries import standalone
from pytest_robustaudit.results import AuditResult, LayerResult
from pytest_robustaudit.spec.schema import CheckSpec

REGISTRIES = standalone()

#: the checks make_result gives every layer: (metric, bounds, params)
DEFAULT_CHECKS = (("kurtosis_mean", {"min": 5.0}, {}), ("outlier_count", {"max": 1.0}, {"factor": 10.0}))


def kurtosis_rows(h: np.ndarray) -> np.ndarray:
    c = h - h.mean(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):  # a constant row (d = 1) has no kurtosis: NaN
        return (c ** 4).mean(axis=1) / ((c ** 2).mean(axis=1)) ** 2


def make_stats(layer: str, d: int = 64, n: int = 40, outliers=(3, 17), scale: float = 100.0, seed: int = 0) -> LayerStats:
    """LayerStats of Gaussian activations [n, d] with ``outliers`` features scaled by ``scale``."""
    rng = np.random.default_rng(seed)
    h = rng.normal(size=(n, d))
    h[:, list(outliers)] *= scale
    q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    return LayerStats(layer, d, n, 0, kurtosis_rows(h), kurtosis_rows(h @ q), np.abs(h).mean(0), h.mean(0), h.var(0),
                      seed, [])


def make_result(name: str = "clip-a", layers=("representation",), d: int = 64, n: int = 40, outliers=(3, 17),
                seed: int = 0, model: str | None = None, checks=DEFAULT_CHECKS, path: str | None = None) -> AuditResult:
    """A hand-built AuditResult: every registered metric on every layer, ``checks`` judged as the runner does."""
    layer_results = {}
    for i, layer in enumerate(layers):
        stats = make_stats(layer, d, n, outliers, seed=seed + i)
        layer_results[layer] = LayerResult(layer, stats, {m: REGISTRIES.metrics.get(m).evaluate(stats)
                                                          for m in REGISTRIES.metrics.names()})
    result = AuditResult(
        spec_path=Path(path or f"/audits/{name}.yaml"), name=name, model=model or f"open_clip:ViT-B-32 [{name}.pt]",
        source="open_clip", fingerprint="sha256:" + f"{seed:04x}ab12" * 8, device="cpu", precision="fp32",
        data_path=Path("/data/probe"), n_images=n, n_found=n + 1,
        skipped=[SkippedImage(Path("/data/probe/broken.jpg"), "cannot identify image file")],
        seconds=12.5 + seed, layers=layer_results, checks=[], batch_size=8,
        provenance={"library": "open_clip 3.3.0", "pretrained": name, "classes": 10},
        spec_sha256=hashlib.sha256(f"spec of {name}".encode()).hexdigest())
    for metric, bounds, params in checks:
        for layer in layers:
            spec = CheckSpec(metric, layer, bounds.get("min"), bounds.get("max"), params=dict(params))
            measured = REGISTRIES.metrics.get(metric).evaluate(layer_results[layer].stats, params)
            result.checks.append(evaluate(spec, measured, f"model: {result.model}"))
    return result
