"""What does the rotation control cost, before (dense Haar matrix by QR) and now (structured)?

For each width d, on N = 200 rows of float64 (what a 200-image audit feeds the accumulator):

* old: build Q by QR of a d×d Gaussian (with the sign fix), then ``h @ Q``; the build was paid
  per layer width and process (an in-memory cache of 4 matrices; 512 MB of float64 at d = 8192);
* new: :func:`pytest_robustaudit.metrics.outlier_stats.rotate`, three rounds of permutation,
  random signs and an orthonormal DCT (O(d log d) per row, no matrix), first call and warm call;

and the rotated kurtosis both give (the same null band 3 ± 2√(24/d)).  Not part of the test suite:
``python benchmarks/bench_rotation.py [--widths 1024 2048 4096 8192]``.  The dense QR at d = 8192
takes about a minute on a 2-core CPU.
"""

from __future__ import annotations

import argparse
import math
import time

import torch

from pytest_robustaudit.metrics import outlier_stats
from pytest_robustaudit.metrics.outlier_stats import row_kurtosis, rotate


def haar(dim: int, seed: int) -> torch.Tensor:
    """The old construction, kept here only to measure it."""
    gen = torch.Generator(device="cpu").manual_seed(int(seed) * 1_000_003 + int(dim))
    q, r = torch.linalg.qr(torch.randn(dim, dim, generator=gen, dtype=torch.float64))
    signs = torch.sign(torch.diagonal(r))
    signs[signs == 0] = 1.0
    return q * signs.unsqueeze(0)


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--widths", type=int, nargs="+", default=[1024, 2048, 4096, 8192])
    parser.add_argument("--rows", type=int, default=200)
    parser.add_argument("--no-old", action="store_true", help="time only the structured rotation (the QR takes minutes)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, N = {args.rows} rows, float64")
    print(f"{'d':>6} {'old: QR':>10} {'old: h@Q':>10} {'new: first':>11} {'new: warm':>10} "
          f"{'speed-up':>9}  {'κ old':>6} {'κ new':>6}  band 3±2√(24/d)")
    for d in args.widths:
        h = torch.randn(args.rows, d, dtype=torch.float64)
        h[:, :3] *= 100.0                                   # planted outliers: κ ≫ 3 before rotation
        if args.no_old:
            old, t_qr, t_mm = h * math.nan, math.nan, math.nan
        else:
            q, t_qr = timed(lambda: haar(d, 0))
            old, t_mm = timed(lambda: h @ q)
            del q
        outlier_stats._plan.cache_clear()
        new, t_first = timed(lambda: rotate(h, 0))
        _, t_warm = timed(lambda: rotate(h, 0))
        k_old = float(row_kurtosis(old).mean())
        k_new = float(row_kurtosis(new).mean())
        half = 2 * math.sqrt(24 / d)
        print(f"{d:>6} {t_qr:>9.2f}s {t_mm:>9.3f}s {t_first:>10.3f}s {t_warm:>9.3f}s "
              f"{(t_qr + t_mm) / t_first:>8.0f}x  {k_old:>6.3f} {k_new:>6.3f}  [{3 - half:.3f}, {3 + half:.3f}]",
              flush=True)


if __name__ == "__main__":
    main()
