"""How long does concept probing take at the issue's scale: 300 concepts x 20 images x 1280 dimensions?

Synthetic features (Gaussian, with 30 concepts planted along 30 directions so that the probe and the
directions have something to find), one run each of

(a) ``probe_concepts``: the 5-fold ridge probe of every concept plus its permuted-label null
    (ceil(1000 / 300) = 4 permutations, all solved with the real labels in one solve per fold);
(b) ``detect_concepts`` on 1280 neurons (identity basis, sign kept) with its null of 4 draws of
    1280 random orthonormal directions;
(c) ``detect_concepts`` on 1000 sign-free directions (a head's right singular vectors, here random).

Prints wall-clock seconds and the counts found beside their nulls.  Not part of the test suite:

    python benchmarks/bench_concepts.py [--concepts 300] [--images 20] [--dim 1280] [--directions 1000]
"""

from __future__ import annotations

import argparse
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--concepts", type=int, default=300)
    parser.add_argument("--images", type=int, default=20, help="images per concept")
    parser.add_argument("--dim", type=int, default=1280)
    parser.add_argument("--directions", type=int, default=1000, help="sign-free directions for (c)")
    parser.add_argument("--planted", type=int, default=30, help="concepts shifted along their own direction")
    args = parser.parse_args()

    import numpy as np

    started = time.perf_counter()
    import scipy.stats  # noqa: F401  (imports timed apart from the work)
    import sklearn.linear_model  # noqa: F401

    from pytest_robustaudit.metrics.concepts import detect_concepts, probe_concepts, random_orthonormal

    print(f"imports: {time.perf_counter() - started:.1f} s")
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(args.concepts), args.images)
    X = rng.standard_normal((labels.size, args.dim)).astype(np.float32)
    for c in range(args.planted):
        X[labels == c, c] += 2.0  # concept c lifts neuron c

    t = time.perf_counter()
    probe = probe_concepts(X, labels)
    figure = probe.concepts_encoded
    print(f"(a) probe {args.concepts} concepts x {args.images} images x {args.dim} dims: "
          f"{time.perf_counter() - t:.1f} s; encoded {figure.value:.0f} (null {figure.null:.2f}, "
          f"threshold AUROC {figure.threshold:.3f}, {probe.null_auroc.shape[0]} permutations)")

    t = time.perf_counter()
    neurons = detect_concepts(X, labels, np.eye(args.dim), sign_free=False)
    unique = neurons.unique_concepts
    print(f"(b) {args.dim} neurons: {time.perf_counter() - t:.1f} s; unique {unique.value:.0f} (null {unique.null:.2f}, "
          f"threshold {unique.threshold:.3f}); polysemanticity {neurons.polysemanticity.mean:.4f} "
          f"(null {neurons.polysemanticity.null_mean:.4f})")

    t = time.perf_counter()
    directions = random_orthonormal(args.directions, args.dim, np.random.default_rng(1))
    sign_free = detect_concepts(X, labels, directions, sign_free=True)
    unique = sign_free.unique_concepts
    print(f"(c) {args.directions} sign-free directions: {time.perf_counter() - t:.1f} s; unique {unique.value:.0f} "
          f"(null {unique.null:.2f}, threshold {unique.threshold:.3f})")


if __name__ == "__main__":
    main()
