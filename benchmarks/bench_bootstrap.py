"""Cost of the confidence intervals: every built-in metric family, 1,000 resamples, 1,000 x 1280 rows.

The issue's budget: seconds, not minutes.  Synthetic rows (seeded; ReLU-like non-negative
activations with a few planted outlier features, and a signed copy for ``kurtosis_of_mean``) stand
in for a layer of the activation store, streamed in chunks of 256 rows as the store reads them.
Prints one line per step with its wall time, then the total.  Not part of the test suite:

    python benchmarks/bench_bootstrap.py [--images 1000] [--width 1280] [--resamples 1000] [--chunk 256]
"""

from __future__ import annotations

import argparse
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--chunk", type=int, default=256)
    args = parser.parse_args()

    import numpy as np

    from pytest_robustaudit.metrics import bootstrap as bs
    from pytest_robustaudit.metrics import bootstrap_profiles as bp

    n, d, b = args.images, args.width, args.resamples
    rng = np.random.default_rng(0)
    rows = np.maximum(rng.standard_normal((n, d)), 0).astype(np.float32)
    rows[:, :4] *= 30                                     # four planted outlier features
    centred = rows - rows.mean(axis=1, keepdims=True)
    kurt = (centred ** 4).mean(axis=1) / ((centred ** 2).mean(axis=1)) ** 2
    rotated = 3 + 0.1 * rng.standard_normal(n)
    correct = int((rng.random(n) < 0.7).sum())
    chunks = lambda: (rows[i:i + args.chunk] for i in range(0, n, args.chunk))  # noqa: E731

    timings: list[tuple[str, float]] = []

    def timed(label, fn):
        start = time.perf_counter()
        out = fn()
        timings.append((label, time.perf_counter() - start))
        if isinstance(out, bs.Interval):
            print(f"{label:<48} {timings[-1][1]:7.3f} s   {out.describe()}")
        else:
            print(f"{label:<48} {timings[-1][1]:7.3f} s")
        return out

    seed = bs.derive_seed("bench", "representation", "kurtosis_mean")
    for stat, values in (("mean", kurt), ("median", kurt), ("mean", rotated), ("ratio_of_means", (kurt, rotated))):
        timed(f"per-image {stat}", lambda: bs.per_image_interval(values, stat, seed=seed, resamples=b))
    moon, full = timed(f"profiles: one pass, m={bp.default_m(n)} and m={n} (signed too)",
                       lambda: bp.resample_profiles(chunks(), n, seed=seed, resamples=b, m=(bp.default_m(n), n),
                                                    signed=True))
    timed("profile_max_over_median (m-out-of-n)", lambda: bp.profile_interval(moon, bp.max_over_median))
    timed("profile_max_over_mean (m-out-of-n)", lambda: bp.profile_interval(moon, bp.max_over_mean))
    timed("profile_kurtosis (basic, log scale)", lambda: bp.profile_interval(full, bp.kurtosis_rows))
    timed("kurtosis_of_mean (basic, log scale, signed)",
          lambda: bp.profile_interval(full, bp.kurtosis_rows, uses="signed"))
    timed("outlier_count factor 10 (exceedance)", lambda: bp.count_interval(moon, bp.outlier_margins(10.0)))
    timed("dead_units (exceedance)", lambda: bp.count_interval(moon, bp.dead_margins()))
    timed("accuracy (Clopper-Pearson)", lambda: bs.binomial_interval(correct, n))
    idx = np.arange(n)
    timed("paired kurtosis_mean difference", lambda: bs.paired_difference(kurt, kurt * 1.01, idx, idx, seed=seed,
                                                                          resamples=b))
    pa, pb = timed("paired profiles (two models, m-out-of-n)",
                   lambda: bp.resample_profiles_paired(chunks(), chunks(), idx, idx, seed=seed, resamples=b))
    timed("paired profile_max_over_median difference", lambda: bp.paired_profile_difference(pa, pb, bp.max_over_median))
    print(f"{'total':<48} {sum(t for _, t in timings):7.3f} s  ({n} x {d} rows, {b} resamples)")


if __name__ == "__main__":
    main()
