"""Seconds per 224-px image for each ImageNet-C corruption and severity.  Prints a markdown table; not a test.

    .venv/bin/python benchmarks/bench_corruptions.py [--images 4] [--size 224] [--data ../shared/data/imagenet-samples]

Each figure is the median over ``--images`` crops (real photos when the data folder exists, else
synthetic ones) after one warm-up call per corruption (the first call pays scipy's imports).  For
comparison it also times glass blur's shuffle written as the reference writes it (a Python loop of
numpy pixel assignments on the HxWx3 array, make_imagenet_c.py), which is what makes the reference
take seconds per image.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np


def crops(folder: Path, count: int, size: int) -> list[np.ndarray]:
    from PIL import Image

    files = sorted(folder.glob("*.jpg"))[:: max(1, 1000 // count)][:count] if folder.is_dir() else []
    if files:
        out = []
        for f in files:
            with Image.open(f) as img:
                img = img.convert("RGB")
                scale = size / min(img.size)
                img = img.resize((max(size, round(img.width * scale)), max(size, round(img.height * scale))), Image.BICUBIC)
                left, top = (img.width - size) // 2, (img.height - size) // 2
                out.append(np.asarray(img.crop((left, top, left + size, top + size))))
        return out
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for _ in range(count)]


def reference_glass_shuffle(x: np.ndarray, delta: int, iterations: int, rng: np.random.Generator) -> np.ndarray:
    """The reference's loop, statement for statement (for timing only)."""
    x = x.copy()
    h, w = x.shape[:2]
    for _ in range(iterations):
        for hh in range(h - delta, delta, -1):
            for ww in range(w - delta, delta, -1):
                dx, dy = rng.integers(-delta, delta, size=(2,))
                h_prime, w_prime = hh + dy, ww + dx
                x[hh, ww], x[h_prime, w_prime] = x[h_prime, w_prime], x[hh, ww]
    return x


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=4)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "imagenet-samples")
    args = parser.parse_args(argv)

    from pytest_robustaudit.data import corruptions as C

    images = crops(args.data, args.images, args.size)
    print(f"{len(images)} images of {args.size} px ({'photos' if args.data.is_dir() else 'synthetic'}); "
          "median seconds per image\n")
    print("| corruption | sev 1 | sev 2 | sev 3 | sev 4 | sev 5 | mean |")
    print("|---|---|---|---|---|---|---|")
    total = []
    for name, corruption in C.REGISTRY.items():
        try:
            C.corrupt(images[0], name, 1, seed=0)  # warm-up: imports, texture decode
        except C.FrostTexturesMissing:
            print(f"| {name} | textures absent | | | | | |")
            continue
        row = []
        for severity in corruption.severities:
            times = []
            for i, img in enumerate(images):
                start = time.perf_counter()
                C.corrupt(img, name, severity, seed=0, index=i)
                times.append(time.perf_counter() - start)
            row.append(statistics.median(times))
        total.append(statistics.mean(row))
        cells = [f"{t:.3f}" for t in row] + [""] * (5 - len(row))
        print(f"| {name} | " + " | ".join(cells) + f" | {statistics.mean(row):.3f} |")
    print(f"\nall 19 x 5 + greyscale, one image: {sum(total) * 5:.1f} s (mean per corruption x 5 severities)")

    from pytest_robustaudit.data.corruptions import blur

    h, w = args.size, args.size
    for delta, iterations in ((1, 2), (4, 2)):
        start = time.perf_counter()
        blur.glass_positions(h, w, delta, iterations, np.random.default_rng(0))
        ours = time.perf_counter() - start
        start = time.perf_counter()
        reference_glass_shuffle(images[0], delta, iterations, np.random.default_rng(0))
        ref = time.perf_counter() - start
        print(f"glass blur shuffle (delta {delta}, {iterations} passes): ours {ours:.3f} s, "
              f"reference-style loop {ref:.2f} s ({ref / ours:.0f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
