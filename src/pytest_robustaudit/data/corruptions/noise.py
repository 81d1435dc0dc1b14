"""Noise corruptions of ImageNet-C: gaussian, shot (Poisson), impulse (salt and pepper), speckle.

Each takes the uint8 RGB crop, its severity's parameter from the published table and a numpy
Generator, and returns floats in [0, 255] (the registry truncates them to uint8 as ImageNet-C's
``np.uint8(img)`` does).
"""

from __future__ import annotations

import numpy as np


def gaussian_noise(x: np.ndarray, c: float, rng: np.random.Generator) -> np.ndarray:
    """x/255 + N(0, c^2) per pixel and channel, clipped to [0, 1]."""
    x = np.asarray(x) / 255.0
    return np.clip(x + rng.normal(size=x.shape, scale=c), 0, 1) * 255


def shot_noise(x: np.ndarray, c: float, rng: np.random.Generator) -> np.ndarray:
    """Poisson(x/255 * c) / c: photon noise with ``c`` photons at full intensity."""
    x = np.asarray(x) / 255.0
    return np.clip(rng.poisson(x * c) / float(c), 0, 1) * 255


def impulse_noise(x: np.ndarray, c: float, rng: np.random.Generator) -> np.ndarray:
    """Salt and pepper on a fraction ``c`` of the values (skimage.util.random_noise 's&p', half salt):
    each value flips with probability c, to 1 or 0 with probability 1/2.  Current scikit-image draws
    per value like this; older releases drew a fixed number of salt and pepper coordinates, the same
    expected amount."""
    x = np.asarray(x) / 255.0
    flipped = rng.random(x.shape) <= c
    salted = rng.random(x.shape) <= 0.5
    out = x.copy()
    out[flipped & salted] = 1.0
    out[flipped & ~salted] = 0.0
    return np.clip(out, 0, 1) * 255


def speckle_noise(x: np.ndarray, c: float, rng: np.random.Generator) -> np.ndarray:
    """x + x * N(0, c^2): multiplicative noise (an extra corruption)."""
    x = np.asarray(x) / 255.0
    return np.clip(x + x * rng.normal(size=x.shape, scale=c), 0, 1) * 255
