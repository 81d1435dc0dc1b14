"""Streaming activation statistics: one pass over the probe images, float64, memory O(d).

Every outlier-feature metric (docs/metrics.md) is a function of a :class:`LayerStats` summary,
which is accumulated batch by batch by :class:`LayerAccumulator` without ever holding the N×d
activation matrix:

* per-feature running sums of ``|h_i|`` (the activation profile) and a Chan/Welford merge of the
  per-feature mean and M2 (to find constant features), all float64, O(d);
* per image, the kurtosis of its feature vector, in the neuron basis and after a fixed random
  rotation (the basis control).  These are one float each per image — O(N) scalars, not O(N·d) —
  kept so that the median is exact and the report can show their distribution.

The rotation is a fast structured orthogonal transform (three rounds of random permutation, random
signs and the orthonormal DCT-II, O(d log d) per vector; see :func:`rotate`), drawn on the CPU
from ``seed`` and ``d`` alone, so the control is identical on every device and run and costs
milliseconds at any width (a dense Haar matrix took 55 s of QR at d = 8192).

Tolerances are set by the precision the activations were *computed* in (the dtype handed to
:meth:`LayerAccumulator.update`, recorded as ``LayerStats.input_dtype``), not by float64: float32
activations of a collapsed layer differ by a few ulps, which float64 would read as a spiky,
"huge-kurtosis" vector.  Images whose activations contain NaN/Inf are excluded from all sums and
counted; images whose feature vector is constant at that precision (always the case when d = 1)
have no defined kurtosis and are counted as such.

Devices without float64 (Apple MPS) accumulate on the CPU: each batch is moved there before the
float64 conversion, and the layer's notes say so.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch

#: rounds of (permutation, signs, DCT) in the rotation; two already make a spike's image Gaussian
ROTATION_ROUNDS = 3
#: a vector is constant when max − min ≤ CONSTANT_ULPS · ε · max|v| (ε: eps of the input dtype)
CONSTANT_ULPS = 4.0
#: the dtype assumed for records written before ``input_dtype`` existed (every extraction was fp32 or lower)
DEFAULT_INPUT_DTYPE = "float32"


def dtype_eps(dtype_name: str) -> float:
    """Machine epsilon of the dtype the activations were computed in (float32 when unknown)."""
    import numpy as _np

    names = {"float16": 2.0 ** -10, "bfloat16": 2.0 ** -7, "float32": float(_np.finfo(_np.float32).eps),
             "float64": float(_np.finfo(_np.float64).eps)}
    return names.get(str(dtype_name).replace("torch.", ""), names[DEFAULT_INPUT_DTYPE])


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
    input_dtype: str = DEFAULT_INPUT_DTYPE  # the dtype the activations arrived in (sets the tolerances)

    @property
    def eps(self) -> float:
        """Machine epsilon of :attr:`input_dtype`: the relative precision of the activations."""
        return dtype_eps(self.input_dtype)

    @property
    def n_undefined_kurtosis(self) -> int:
        """Images whose feature vector was constant, so their kurtosis is undefined."""
        return int(np.isnan(self.kurtosis).sum())

    @property
    def constant_features(self) -> int:
        """Features constant across the probe images at the input precision (sd ≤ 4 ε |mean|)."""
        if not self.n_images:
            return 0
        floor = (CONSTANT_ULPS * self.eps * np.maximum(np.abs(self.feature_mean), np.finfo(np.float64).tiny)) ** 2
        return int((self.feature_var <= floor).sum())


def row_kurtosis(h: "torch.Tensor", eps: float | None = None) -> "torch.Tensor":
    """Non-excess kurtosis of each row (Gaussian = 3); NaN for a row constant at precision ``eps``.

    κ(x) = mean_i (h_i − μ)^4 / (mean_i (h_i − μ)^2)^2 with μ = mean_i h_i, computed in the
    tensor's dtype (callers pass float64).  A row is constant when its range is within
    :data:`CONSTANT_ULPS` units of ``eps`` (the machine epsilon of the dtype the activations were
    computed in; default: the tensor's own) of its largest magnitude.
    """
    import torch

    if eps is None:
        eps = float(torch.finfo(h.dtype).eps)
    centred = h - h.mean(dim=1, keepdim=True)
    sq = centred * centred
    m2 = sq.mean(dim=1)
    m4 = (sq * sq).mean(dim=1)
    scale = h.abs().amax(dim=1)
    spread = h.amax(dim=1) - h.amin(dim=1)
    constant = (spread <= CONSTANT_ULPS * eps * scale) | (m2 <= 0)
    out = m4 / torch.where(constant, torch.ones_like(m2), m2 * m2)
    return torch.where(constant, torch.full_like(out, float("nan")), out)


@dataclass(frozen=True)
class _RotationPlan:
    """The random parts of the structured rotation of width ``dim``: per round a permutation and signs,
    both already in the order the DCT reads its input."""

    dim: int
    perms: tuple
    signs: tuple


@functools.lru_cache(maxsize=16)
def _plan(dim: int, seed: int) -> _RotationPlan:
    import torch

    gen = torch.Generator(device="cpu").manual_seed(int(seed) * 1_000_003 + int(dim))
    reorder = _dct_reorder(dim)
    perms, signs = [], []
    for _ in range(ROTATION_ROUNDS):
        perm = torch.randperm(dim, generator=gen)
        sign = torch.randint(0, 2, (dim,), generator=gen, dtype=torch.int64).to(torch.float64) * 2 - 1
        # (S P x)_j = s_j x_perm(j), read in the DCT's order r: index perm[r], sign s[r]
        perms.append(perm[reorder])
        signs.append(sign[reorder])
    return _RotationPlan(dim, tuple(perms), tuple(signs))


@functools.lru_cache(maxsize=16)
def _twiddle(n: int, device: str) -> tuple:
    import torch

    angle = -math.pi * torch.arange(n, dtype=torch.float64) / (2 * n)
    scale = torch.full((n,), math.sqrt(2.0 / n), dtype=torch.float64)
    scale[0] = math.sqrt(1.0 / n)
    return (torch.cos(angle) * scale).to(device), (torch.sin(angle) * scale).to(device)


def _dct_reorder(n: int) -> "torch.Tensor":
    """The input order of Makhoul's DCT: (x_0, x_2, x_4, …, x_5, x_3, x_1)."""
    import torch

    idx = torch.arange(n)
    return torch.cat([idx[::2], idx[1::2].flip(0)])


def _dct_of_reordered(v: "torch.Tensor") -> "torch.Tensor":
    import torch

    n = v.shape[-1]
    half = torch.fft.rfft(v, dim=-1)
    tail = n - half.shape[-1]                        # entries k = n - tail .. n - 1, mirrored from 1 .. tail
    re = torch.cat([half.real, half.real[..., 1:tail + 1].flip(-1)], dim=-1)
    im = torch.cat([half.imag, -half.imag[..., 1:tail + 1].flip(-1)], dim=-1)
    cos, sin = _twiddle(n, str(v.device))
    return re * cos.to(v.dtype) - im * sin.to(v.dtype)


def dct_ortho(x: "torch.Tensor") -> "torch.Tensor":
    """Orthonormal DCT-II along the last dimension, any length, via one real FFT (Makhoul 1980).

    Equal to ``scipy.fft.dct(x, type=2, norm="ortho")`` (float64, to ~1e-15); runs on any device
    torch's FFT supports.  X_k = Re(e^{-iπk/2n} V_k), V the FFT of x reordered as (x_0, x_2, …, x_3,
    x_1); the half of V that ``rfft`` omits is the mirror image (V_{n−k} = conj V_k).
    """
    return _dct_of_reordered(x[..., _dct_reorder(x.shape[-1]).to(x.device)])


def rotate(h: "torch.Tensor", seed: int) -> "torch.Tensor":
    """``h`` [B, d] (float64) times the fixed orthogonal matrix Q(d, seed), row by row.

    Q = Π_r C·S_r·P_r over :data:`ROTATION_ROUNDS` rounds: P_r a random permutation, S_r random
    signs, C the orthonormal DCT-II.  Each factor is orthogonal, so Q is (a true rotation up to a
    reflection: lengths and the mean-free structure are kept); O(d log d) per row, no d×d matrix.
    After two rounds every coordinate of Q v is a random-sign sum over all of v, so a vector with a
    few huge coordinates comes out Gaussian-like (κ ≈ 3) while any vector keeps its norm.  Each
    round is one gather (permutation and the DCT's reordering fused), one multiply and one FFT.
    """
    plan = _plan(int(h.shape[1]), int(seed))
    out = h
    for index, signs in zip(plan.perms, plan.signs):
        out = _dct_of_reordered(out[:, index.to(h.device)] * signs.to(device=h.device, dtype=h.dtype))
    return out


def random_rotation(dim: int, seed: int) -> "torch.Tensor":
    """The rotation as a dense [d, d] float64 matrix on the CPU (``h @ random_rotation(d, s)`` equals
    ``rotate(h, s)``): for tests and for inspecting Q; the accumulator never builds it."""
    import torch

    return rotate(torch.eye(dim, dtype=torch.float64), seed)


def null_band(dim: int, width: float = 2.0) -> tuple[float, float]:
    """Where the per-image rotated kurtosis falls for *any* representation: 3 ± width·√(24/d).

    After a random rotation the coordinates of a fixed vector are close to i.i.d. Gaussian, whose
    sample kurtosis over d values has standard deviation ≈ √(24/d); ``width`` = 2 covers ≈ 95% of
    images.  A rotated kurtosis outside it means the heavy tail is not a property of the basis.
    """
    half = width * math.sqrt(24.0 / dim) if dim > 0 else math.inf
    return 3.0 - half, 3.0 + half


@functools.lru_cache(maxsize=8)
def _probe_float64(device: str) -> bool:
    import torch

    try:
        torch.empty(1, dtype=torch.float64, device=device)
    except (TypeError, RuntimeError):
        return False
    return True


def supports_float64(device: Any) -> bool:
    """Whether tensors on ``device`` can be float64 (False on Apple MPS)."""
    return _probe_float64(str(device))


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
        self._home = None                      # where the float64 state lives
        self._input_dtype: str | None = None   # the lowest precision seen among the batches
        self._notes: list[str] = []

    def update(self, h: "torch.Tensor") -> None:
        """Add a batch of activations ``[B, d]`` (any float dtype, any device)."""
        import torch

        if h.ndim != 2:
            raise ValueError(f"layer {self.layer!r}: expected a [batch, features] tensor, got shape {tuple(h.shape)}")
        h = h.detach()
        self._note_dtype(h.dtype)
        if self.dim is None:
            self._start(h.shape[1], h.device)
        elif h.shape[1] != self.dim:
            raise ValueError(f"layer {self.layer!r}: feature width changed from {self.dim} to {h.shape[1]}")
        if h.device != self._home:
            h = h.to(self._home)
        h = h.to(torch.float64)
        finite = torch.isfinite(h).all(dim=1)
        bad = int((~finite).sum())
        if bad:
            self.nonfinite += bad
            h = h[finite]
        if h.shape[0] == 0:
            return
        eps = dtype_eps(self._input_dtype or DEFAULT_INPUT_DTYPE)
        neuron = row_kurtosis(h, eps)
        rotated = row_kurtosis(rotate(h, self.rotation_seed), eps)
        # a constant vector has no basis to control: its rotated kurtosis is undefined too
        rotated = torch.where(torch.isnan(neuron), neuron, rotated)
        self._kurt.append(neuron.cpu().numpy())
        self._rot_kurt.append(rotated.cpu().numpy())
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

    def _note_dtype(self, dtype: "torch.dtype") -> None:
        name = str(dtype).replace("torch.", "")
        if self._input_dtype is None or dtype_eps(name) > dtype_eps(self._input_dtype):
            self._input_dtype = name

    def _start(self, dim: int, device: "torch.device") -> None:
        import torch

        self.dim = dim
        self._home = device
        if not supports_float64(device):
            self._home = torch.device("cpu")
            self._notes.append(f"statistics accumulated in float64 on the CPU: device {device} has no float64")
        self._abs_sum = torch.zeros(dim, dtype=torch.float64, device=self._home)
        self._mean = torch.zeros(dim, dtype=torch.float64, device=self._home)
        self._m2 = torch.zeros(dim, dtype=torch.float64, device=self._home)

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
            input_dtype=self._input_dtype or DEFAULT_INPUT_DTYPE,
        )
