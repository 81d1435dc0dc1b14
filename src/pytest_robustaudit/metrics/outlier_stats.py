"""Streaming activation statistics: one pass over the probe images, float64, memory O(d).

Every outlier-feature metric (docs/metrics.md) is a function of a :class:`LayerStats` summary,
which is accumulated batch by batch by :class:`LayerAccumulator` without ever holding the N×d
activation matrix:

* per-feature running sums of ``|h_i|`` (the activation profile) and a Chan/Welford merge of the
  per-feature mean and M2 (to find constant features), all float64, O(d);
* per image, the kurtosis of its feature vector, in the neuron basis and after a fixed random
  rotation (the basis control).  These are one float each per image — O(N) scalars, not O(N·d) —
  kept so that the median is exact and the report can show their distribution.

The rotation is a Haar-random orthogonal matrix drawn on the CPU from ``seed`` and ``d`` alone, so
the control is identical on every device and run.  Images whose activations contain NaN/Inf are
excluded from all sums and counted; images whose feature vector is constant (zero variance, always
the case when d = 1) have no defined kurtosis and are counted as such.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

#: rotation matrices are O(d²); past this width the control is skipped (and reported as such)
MAX_ROTATION_DIM = 8192


@dataclass
class LayerStats:
    """Summary of one layer's activations over the probe set (everything a metric may read)."""

    layer: str
    dim: int
    n_images: int                      # images with finite activations (used in every statistic)
    n_nonfinite: int                   # images excluded because of NaN/Inf activations
    kurtosis: np.ndarray               # per-image kurtosis, neuron basis (NaN where undefined)
    rotated_kurtosis: np.ndarray       # per-image kurtosis after the fixed random rotation
    profile: np.ndarray                # m_i = mean_x |h_i(x)|, shape [d]
    feature_mean: np.ndarray           # mean_x h_i(x), shape [d]
    feature_var: np.ndarray            # population variance over images of h_i(x), shape [d]
    rotation_seed: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def n_undefined_kurtosis(self) -> int:
        """Images whose feature vector was constant, so their kurtosis is undefined."""
        return int(np.isnan(self.kurtosis).sum())

    @property
    def constant_features(self) -> int:
        """Features with zero variance across the probe images."""
        if not self.n_images:
            return 0
        floor = (1e-12 * np.maximum(np.abs(self.feature_mean), np.finfo(np.float64).tiny)) ** 2
        return int((self.feature_var <= floor).sum())


def row_kurtosis(h: "torch.Tensor") -> "torch.Tensor":
    """Non-excess kurtosis of each row (Gaussian = 3); NaN for a constant row.

    κ(x) = mean_i (h_i − μ)^4 / (mean_i (h_i − μ)^2)^2 with μ = mean_i h_i, computed in the
    tensor's dtype (callers pass float64).
    """
    import torch

    centred = h - h.mean(dim=1, keepdim=True)
    sq = centred * centred
    m2 = sq.mean(dim=1)
    m4 = (sq * sq).mean(dim=1)
    # a row is constant when its spread is at rounding level relative to its magnitude
    scale = h.abs().amax(dim=1).clamp_min(torch.finfo(h.dtype).tiny)
    constant = m2 <= (scale * 1e-12) ** 2
    out = m4 / (m2 * m2)
    return torch.where(constant, torch.full_like(out, float("nan")), out)


@functools.lru_cache(maxsize=4)
def random_rotation(dim: int, seed: int) -> "torch.Tensor":
    """A fixed Haar-random orthogonal matrix [d, d] in float64 on the CPU (QR with sign fix).

    Cached: layers of the same width (and reference models) share one QR, which dominates the
    cost of small audits at d ≥ 2048.  Callers must not modify the returned tensor.
    """
    import torch

    gen = torch.Generator(device="cpu").manual_seed(int(seed) * 1_000_003 + int(dim))
    gauss = torch.randn(dim, dim, generator=gen, dtype=torch.float64)
    q, r = torch.linalg.qr(gauss)
    signs = torch.sign(torch.diagonal(r))
    signs[signs == 0] = 1.0
    return q * signs.unsqueeze(0)


class LayerAccumulator:
    """Consumes ``[B, d]`` activation batches of one layer; :meth:`finish` gives :class:`LayerStats`."""

    def __init__(self, layer: str, rotation_seed: int = 0):
        self.layer = layer
        self.rotation_seed = rotation_seed
        self.dim: int | None = None
        self.count = 0
        self.nonfinite = 0
        self._kurt: list[np.ndarray] = []
        self._rot_kurt: list[np.ndarray] = []
        self._abs_sum = None
        self._mean = None
        self._m2 = None
        self._rotation = None
        self._notes: list[str] = []

    def update(self, h: "torch.Tensor") -> None:
        """Add a batch of activations ``[B, d]`` (any float dtype, any device)."""
        import torch

        if h.ndim != 2:
            raise ValueError(f"layer {self.layer!r}: expected a [batch, features] tensor, got shape {tuple(h.shape)}")
        h = h.detach().to(torch.float64)
        if self.dim is None:
            self._start(h.shape[1], h.device)
        elif h.shape[1] != self.dim:
            raise ValueError(f"layer {self.layer!r}: feature width changed from {self.dim} to {h.shape[1]}")
        finite = torch.isfinite(h).all(dim=1)
        bad = int((~finite).sum())
        if bad:
            self.nonfinite += bad
            h = h[finite]
        if h.shape[0] == 0:
            return
        self._kurt.append(row_kurtosis(h).cpu().numpy())
        if self._rotation is not None:
            self._rot_kurt.append(row_kurtosis(h @ self._rotation).cpu().numpy())
        self._abs_sum += h.abs().sum(dim=0)
        # Chan et al. parallel merge of (count, mean, M2): stable for any batch split
        n_b = h.shape[0]
        mean_b = h.mean(dim=0)
        m2_b = ((h - mean_b) ** 2).sum(dim=0)
        n_a = self.count
        total = n_a + n_b
        delta = mean_b - self._mean
        self._mean += delta * (n_b / total)
        self._m2 += m2_b + delta * delta * (n_a * n_b / total)
        self.count = total

    def _start(self, dim: int, device: "torch.device") -> None:
        import torch

        self.dim = dim
        self._abs_sum = torch.zeros(dim, dtype=torch.float64, device=device)
        self._mean = torch.zeros(dim, dtype=torch.float64, device=device)
        self._m2 = torch.zeros(dim, dtype=torch.float64, device=device)
        if dim <= MAX_ROTATION_DIM:
            self._rotation = random_rotation(dim, self.rotation_seed).to(device)
        else:
            self._notes.append(f"rotation control skipped: d={dim} exceeds {MAX_ROTATION_DIM}")

    def finish(self) -> LayerStats:
        n = self.count
        dim = self.dim or 0
        if n:
            profile = (self._abs_sum / n).cpu().numpy()
            mean = self._mean.cpu().numpy()
            var = (self._m2 / n).cpu().numpy()
        else:
            profile = mean = var = np.full(dim, np.nan)
        empty = np.zeros(0, dtype=np.float64)
        return LayerStats(
            layer=self.layer,
            dim=dim,
            n_images=n,
            n_nonfinite=self.nonfinite,
            kurtosis=np.concatenate(self._kurt) if self._kurt else empty,
            rotated_kurtosis=np.concatenate(self._rot_kurt) if self._rot_kurt else np.full(n, np.nan),
            profile=profile,
            feature_mean=mean,
            feature_var=var,
            rotation_seed=self.rotation_seed,
            notes=list(self._notes),
        )
