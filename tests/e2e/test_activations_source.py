"""Features from elsewhere: ``source: activations`` audits stored arrays without a model."""

from __future__ import annotations

import json

import numpy as np
import pytest

from support import shared_data


def _kurtosis_rows(h: np.ndarray) -> np.ndarray:
    c = h - h.mean(axis=1, keepdims=True)
    return (c ** 4).mean(axis=1) / ((c ** 2).mean(axis=1)) ** 2


def _dinov2(size: str) -> dict[int, np.ndarray]:
    import torch

    layers = torch.load(shared_data("massive-activations") / f"{size}_imagemean_bs10k_trainaug.pt",
                        map_location="cpu", weights_only=True)
    return {int(k): v.double().numpy() for k, v in layers.items()}


SPEC = """\
model:
  source: activations
  name: dinov2-{size} mean token features
  arrays:
    blocks.-1: last.npy
    blocks.{middle}: middle.safetensors
checks:
  kurtosis_mean: {{min: 100, layers: [blocks.-1]}}
  rotated_kurtosis_mean: {{min: 2.5, max: 3.5, layers: [blocks.-1]}}
  outlier_count: {{min: 1, max: 8, factor: 10, layers: [blocks.-1]}}
"""


@pytest.mark.parametrize("size", ["small", "base"])
def test_dinov2_statistics_audited_as_activations_reproduce_their_kurtoses(pytester, size):
    """The DINOv2-reg mean token features of "Massive Activations" (4 tokens per layer, as 4 rows):
    the audit's kurtosis equals the float64 kurtosis of those rows, with massive activations found."""
    from safetensors.numpy import save_file

    layers = _dinov2(size)
    last, middle = max(layers), len(layers) // 2
    np.save(pytester.path / "last.npy", layers[last].astype(np.float32))
    save_file({f"blocks.{middle}": layers[middle].astype(np.float32)}, str(pytester.path / "middle.safetensors"))
    pytester.makefile(".yaml", features=SPEC.format(size=size, middle=middle))
    result = pytester.runpytest("--audit", "features.yaml", "--audit-json", "record.json", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=3)
    audit = json.loads((pytester.path / "record.json").read_text())["audits"][0]
    measured = {layer["name"]: layer["metrics"]["kurtosis_mean"]["value"] for layer in audit["layers"]}
    expected = float(_kurtosis_rows(layers[last].astype(np.float32).astype(np.float64)).mean())
    assert measured["blocks.-1"] == pytest.approx(expected, rel=1e-9)
    assert measured[f"blocks.{middle}"] == pytest.approx(
        float(_kurtosis_rows(layers[middle].astype(np.float32).astype(np.float64)).mean()), rel=1e-9)
    assert audit["n_images"] == 4 and audit["model"] == f"activations:dinov2-{size} mean token features"


def test_layer_stats_is_the_audit_s_summary_from_an_array():
    """The documented function gives the statistics the fixtures expose, from any [N, d] array."""
    from pytest_robustaudit import layer_stats
    from pytest_robustaudit.metrics import BUILTIN_METRICS

    rng = np.random.default_rng(0)
    h = rng.normal(size=(50, 64))
    h[:, 5] *= 40
    stats = layer_stats(h, layer="representation", chunk_rows=7)
    metrics = {m.name: m for m in BUILTIN_METRICS}
    assert stats.n_images == 50 and stats.dim == 64
    assert metrics["kurtosis_mean"].evaluate(stats).value == pytest.approx(float(_kurtosis_rows(h).mean()), rel=1e-12)
    assert 5 in metrics["outlier_count"].evaluate(stats).details["indices"]
    with pytest.raises(ValueError, match=r"expected an \[images, features\] array, got shape \(2, 3, 4\)"):
        layer_stats(np.zeros((2, 3, 4)))


def test_bad_arrays_and_model_needs_say_what_and_where(pytester):
    np.save(pytester.path / "cube.npy", np.zeros((2, 3, 4), dtype=np.float32))
    pytester.makefile(".yaml", cube="model: {source: activations, arrays: {representation: cube.npy}}\n"
                                    "checks: {kurtosis_mean: {min: 1}}\n")
    (pytester.path / "notes.txt").write_text("x")
    pytester.makefile(".yaml", wrong="model: {source: activations, arrays: {representation: notes.txt}}\n"
                                     "checks: {kurtosis_mean: {min: 1}}\n")
    np.save(pytester.path / "flat.npy", np.ones((3, 8), dtype=np.float32))
    pytester.makefile(".yaml", missing="model: {source: activations, arrays: {representation: flat.npy}}\n"
                                       "layers: [representation, blocks.-1]\n"
                                       "checks: {kurtosis_mean: {min: 1}}\n")
    result = pytester.runpytest("--audit", "cube.yaml", "--audit", "wrong.yaml", "--audit", "missing.yaml",
                                "--continue-on-collection-errors", "-p", "no:cacheprovider")
    out = result.stdout.str()
    assert "cube.npy has shape (2, 3, 4); an [images, features] array is expected" in out
    assert "model.arrays.representation: 'notes.txt' is not an array file" in out
    assert "layer 'blocks.-1' has no array under model.arrays" in out
    assert "Traceback" not in out
