"""Features from elsewhere: the statistics the fixtures expose, computed from an array you already have.

A researcher with features extracted on a cluster, or published ones (the DINOv2 statistics of
"Massive Activations"), gets the same :class:`~.outlier_stats.LayerStats` an audit computes from
live activations, and every metric evaluates on it::

    from pytest_robustaudit import layer_stats
    stats = layer_stats(features, layer="blocks.-1")          # [N, d]: one row per image
    Metric = ...; metric.evaluate(stats)

Rows are fed in chunks (a memory-mapped ``.npy`` of any size stays on disk), in float64, through the
same accumulator an extraction uses, so the numbers are those an audit would report.
"""

from __future__ import annotations

from typing import Any, Iterable


def layer_stats(array: Any, layer: str = "representation", seed: int = 0, chunk_rows: int = 4096):
    """:class:`~.outlier_stats.LayerStats` of ``array`` ([N, d]: numpy array, memmap or torch tensor).

    ``seed`` fixes the rotation control (the spec's ``seed``).  A 1-D array is one image; anything
    else that is not 2-D is a ValueError naming the shape.
    """
    import numpy as np
    import torch

    if isinstance(array, torch.Tensor):
        array = array.detach().cpu().numpy()
    data = np.asarray(array) if not isinstance(array, np.ndarray) else array
    if data.ndim == 1:
        data = data[None, :]
    if data.ndim != 2:
        raise ValueError(f"layer {layer!r}: expected an [images, features] array, got shape {tuple(data.shape)}")
    step = max(1, int(chunk_rows))
    chunks = (np.asarray(data[start:start + step], dtype=np.float64) for start in range(0, data.shape[0], step))
    return stats_from_chunks(chunks, layer, seed)


def stats_from_chunks(chunks: Iterable[Any], layer: str, seed: int = 0):
    """Feed ``[n, d]`` row chunks (numpy, in image order) to the accumulator an extraction uses: the one
    place that turns rows into :class:`~.outlier_stats.LayerStats` (stored rows and arrays alike).
    The chunks keep their dtype, so the collapse tolerance is that of the precision the rows came in."""
    import numpy as np
    import torch

    from .outlier_stats import LayerAccumulator

    accumulator = LayerAccumulator(layer, rotation_seed=seed)
    for chunk in chunks:
        accumulator.update(torch.from_numpy(np.ascontiguousarray(chunk)))
    return accumulator.finish()
