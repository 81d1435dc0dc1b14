"""Blur corruptions of ImageNet-C: defocus, glass, motion, zoom, and the extra gaussian blur."""

from __future__ import annotations

import numpy as np

from . import filters


def defocus_blur(x: np.ndarray, c: tuple, rng: np.random.Generator) -> np.ndarray:
    """Convolve with an anti-aliased disk of radius c[0] (alias blur c[1]), border reflect-101."""
    radius, alias_blur = c
    kernel = filters.disk(radius, alias_blur)
    return np.clip(filters.filter2d(np.asarray(x) / 255.0, kernel), 0, 1) * 255


def gaussian_blur(x: np.ndarray, c: float, rng: np.random.Generator) -> np.ndarray:
    """skimage gaussian with sigma c per channel, border 'nearest' (an extra corruption)."""
    return np.clip(filters.gaussian(np.asarray(x) / 255.0, c, channels=True), 0, 1) * 255


def glass_positions(h: int, w: int, delta: int, iterations: int, rng: np.random.Generator) -> np.ndarray:
    """Where each pixel of glass blur's local shuffle reads from, as flat indices into the image.

    The reference walks rows then columns from ``side - delta`` down to ``delta + 1`` and for each
    pixel draws ``dx, dy = randint(-delta, delta)`` (upper bound exclusive) and runs
    ``x[h, w], x[h', w'] = x[h', w'], x[h, w]``.  On an HxWx3 array both sides are views, so that
    line is not a swap: it copies the neighbour's pixel into (h, w) and leaves (h', w') as it was.
    The published ImageNet-C images were made that way, and so are these.  The walk is sequential
    (a pixel may copy one that was already overwritten), so it runs as a plain Python loop over
    integer indices with all the random offsets drawn at once, then moves the pixels in one gather:
    tens of milliseconds instead of the reference's seconds.
    """
    index = list(range(h * w))
    rows = range(h - delta, delta, -1)
    cols = range(w - delta, delta, -1)
    per_pass = len(rows) * len(cols)
    for _ in range(iterations):
        offsets = rng.integers(-delta, delta, size=(per_pass, 2))  # (dx, dy) as the reference draws them
        flat_dx = offsets[:, 0].tolist()
        flat_dy = offsets[:, 1].tolist()
        k = 0
        for r in rows:
            base = r * w
            for col in cols:
                index[base + col] = index[(r + flat_dy[k]) * w + col + flat_dx[k]]
                k += 1
    return np.asarray(index, dtype=np.int64)


def glass_blur(x: np.ndarray, c: tuple, rng: np.random.Generator) -> np.ndarray:
    """Gaussian blur (sigma c[0]), quantise to uint8 (truncating, as ``np.uint8`` does), shuffle
    pixels locally c[2] times within c[1] pixels (see :func:`glass_positions`), blur again."""
    sigma, delta, iterations = c
    blurred = np.uint8(filters.gaussian(np.asarray(x) / 255.0, sigma, channels=True) * 255)
    h, w = blurred.shape[:2]
    source = glass_positions(h, w, delta, iterations, rng)
    shuffled = blurred.reshape(h * w, -1)[source].reshape(blurred.shape)
    return np.clip(filters.gaussian(shuffled / 255.0, sigma, channels=True), 0, 1) * 255


def motion_blur(x: np.ndarray, c: tuple, rng: np.random.Generator) -> np.ndarray:
    """ImageMagick motion blur (radius c[0], sigma c[1]) at an angle uniform in [-45, 45) degrees,
    as a numpy line kernel (see :func:`filters.motion_blur`)."""
    radius, sigma = c
    angle = rng.uniform(-45, 45)
    return np.clip(filters.motion_blur(np.asarray(x, dtype=np.float64), radius, sigma, angle), 0, 255)


def zoom_blur(x: np.ndarray, c: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The mean of the image and its centre zoomed by each factor in c (bilinear)."""
    x = (np.asarray(x) / 255.0).astype(np.float32)
    out = np.zeros_like(x)
    for factor in c:
        out += filters.clipped_zoom(x, float(factor))
    return np.clip((x + out) / (len(c) + 1), 0, 1) * 255
