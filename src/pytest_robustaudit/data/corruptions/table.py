"""The corruptions by name, with ImageNet-C's published parameters per severity, and how to run one.

Parameters are those of hendrycks/robustness ImageNet-C/create_c/make_imagenet_c.py (the 224-px
ImageNet-C of Hendrycks & Dietterich, ICLR 2019), the same tables imagecorruptions 1.1.2 ships except
elastic_transform (imagecorruptions changed it) and pixelate's upsampling (BOX here, as ImageNet-C).

Every run is deterministic for its Generator; :func:`corrupt` derives the Generator from
``(seed, corruption, severity, image index)`` so that one image's corruption does not depend on which
other images or corruptions run, or in which order.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ...errors import AuditError
from . import blur, digital, noise, weather

SEVERITIES = (1, 2, 3, 4, 5)
#: Bumped when a corruption's output for the same crop, severity and seed changes: part of the store
#: keys of corrupted sets (``corrupted.py``; the package's source hash is in them too).
CORRUPTION_VERSION = 1


class CorruptionError(AuditError):
    """An unknown corruption or severity, or an image the corruptions cannot take."""


@dataclass(frozen=True)
class Corruption:
    """One corruption: its name, family, published parameters for severities 1..5 and function.

    ``apply(x, params, rng)`` takes the HxWx3 uint8 crop and returns floats in [0, 255] (truncated to
    uint8 by :func:`apply_corruption`, as ImageNet-C's ``np.uint8(img)``) or uint8.
    """

    name: str
    family: str
    params: tuple
    apply: Callable[[np.ndarray, object, np.random.Generator], np.ndarray]
    standard: bool = True

    @property
    def severities(self) -> tuple[int, ...]:
        return tuple(range(1, len(self.params) + 1))


def _zoom_factors() -> tuple:
    return (np.arange(1, 1.11, 0.01), np.arange(1, 1.16, 0.01), np.arange(1, 1.21, 0.02),
            np.arange(1, 1.26, 0.02), np.arange(1, 1.31, 0.03))


_ALL = (
    # noise
    Corruption("gaussian_noise", "noise", (0.08, 0.12, 0.18, 0.26, 0.38), noise.gaussian_noise),
    Corruption("shot_noise", "noise", (60, 25, 12, 5, 3), noise.shot_noise),
    Corruption("impulse_noise", "noise", (0.03, 0.06, 0.09, 0.17, 0.27), noise.impulse_noise),
    # blur
    Corruption("defocus_blur", "blur", ((3, 0.1), (4, 0.5), (6, 0.5), (8, 0.5), (10, 0.5)), blur.defocus_blur),
    Corruption("glass_blur", "blur", ((0.7, 1, 2), (0.9, 2, 1), (1, 2, 3), (1.1, 3, 2), (1.5, 4, 2)),
               blur.glass_blur),
    Corruption("motion_blur", "blur", ((10, 3), (15, 5), (15, 8), (15, 12), (20, 15)), blur.motion_blur),
    Corruption("zoom_blur", "blur", _zoom_factors(), blur.zoom_blur),
    # weather
    Corruption("snow", "weather", ((0.1, 0.3, 3, 0.5, 10, 4, 0.8), (0.2, 0.3, 2, 0.5, 12, 4, 0.7),
                                   (0.55, 0.3, 4, 0.9, 12, 8, 0.7), (0.55, 0.3, 4.5, 0.85, 12, 8, 0.65),
                                   (0.55, 0.3, 2.5, 0.85, 12, 12, 0.55)), weather.snow),
    Corruption("frost", "weather", ((1, 0.4), (0.8, 0.6), (0.7, 0.7), (0.65, 0.7), (0.6, 0.75)), weather.frost),
    Corruption("fog", "weather", ((1.5, 2), (2.0, 2), (2.5, 1.7), (2.5, 1.5), (3.0, 1.4)), weather.fog),
    # digital
    Corruption("brightness", "digital", (0.1, 0.2, 0.3, 0.4, 0.5), digital.brightness),
    Corruption("contrast", "digital", (0.4, 0.3, 0.2, 0.1, 0.05), digital.contrast),
    Corruption("elastic_transform", "digital", ((244 * 2, 244 * 0.7, 244 * 0.1), (244 * 2, 244 * 0.08, 244 * 0.2),
                                               (244 * 0.05, 244 * 0.01, 244 * 0.02),
                                               (244 * 0.07, 244 * 0.01, 244 * 0.02),
                                               (244 * 0.12, 244 * 0.01, 244 * 0.02)), digital.elastic_transform),
    Corruption("pixelate", "digital", (0.6, 0.5, 0.4, 0.3, 0.25), digital.pixelate),
    Corruption("jpeg_compression", "digital", (25, 18, 15, 10, 7), digital.jpeg_compression),
    # the four extra corruptions of ImageNet-C (held out from mCE)
    Corruption("speckle_noise", "noise", (0.15, 0.2, 0.35, 0.45, 0.6), noise.speckle_noise, standard=False),
    Corruption("gaussian_blur", "blur", (1, 2, 3, 4, 6), blur.gaussian_blur, standard=False),
    Corruption("spatter", "weather", ((0.65, 0.3, 4, 0.69, 0.6, 0), (0.65, 0.3, 3, 0.68, 0.6, 0),
                                      (0.65, 0.3, 2, 0.68, 0.5, 0), (0.65, 0.3, 1, 0.65, 1.5, 1),
                                      (0.67, 0.4, 1, 0.65, 1.5, 1)), weather.spatter, standard=False),
    Corruption("saturate", "digital", ((0.3, 0), (0.1, 0), (2, 0), (5, 0.1), (20, 0.2)), digital.saturate,
               standard=False),
    # not ImageNet-C: one level only
    Corruption("greyscale", "colour", (None,), digital.greyscale, standard=False),
)

#: every corruption by name
REGISTRY: dict[str, Corruption] = {c.name: c for c in _ALL}
#: the 15 corruptions of ImageNet-C's mCE, in the paper's order
CORRUPTIONS: tuple[str, ...] = tuple(c.name for c in _ALL if c.standard)
#: ImageNet-C's 4 held-out extra corruptions
EXTRA_CORRUPTIONS: tuple[str, ...] = ("speckle_noise", "gaussian_blur", "spatter", "saturate")
#: corruptions that are not ImageNet-C's
OTHER_CORRUPTIONS: tuple[str, ...] = ("greyscale",)


def get_corruption(name: str) -> Corruption:
    """The corruption called ``name``, or a CorruptionError with a did-you-mean."""
    from ...registry import suggest

    try:
        return REGISTRY[name]
    except (KeyError, TypeError):
        raise CorruptionError(
            f"unknown corruption {name!r}.{suggest(str(name), list(REGISTRY))}",
            fix=f"use one of: {', '.join(REGISTRY)}") from None


def rng_for(seed: int, name: str, severity: int, index: int = 0) -> np.random.Generator:
    """The Generator of one (seed, corruption, severity, image index): independent streams, stable
    across processes (the name enters through its CRC-32, never Python's salted ``hash``)."""
    return np.random.default_rng([int(seed), zlib.crc32(name.encode("utf-8")), int(severity), int(index)])


def apply_corruption(image: np.ndarray, name: str, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Corrupt one HxWx3 uint8 RGB image with the given Generator; returns a new HxWx3 uint8 array."""
    corruption = get_corruption(name)
    if isinstance(severity, bool) or not isinstance(severity, (int, np.integer)) \
            or int(severity) not in corruption.severities:
        levels = ", ".join(map(str, corruption.severities))
        raise CorruptionError(f"corruption {name!r} has no severity {severity!r}", fix=f"use one of: {levels}")
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise CorruptionError(
            f"corruption {name!r} takes an HxWx3 uint8 RGB image, got dtype {image.dtype} shape {image.shape}",
            fix="pass np.asarray(pil_image.convert('RGB')) of the eval crop")
    out = corruption.apply(image, corruption.params[int(severity) - 1], rng)
    if out.dtype != np.uint8:
        out = np.uint8(np.clip(out, 0, 255))  # truncates, as ImageNet-C's np.uint8(img)
    return np.ascontiguousarray(out)


def corrupt(image: np.ndarray, name: str, severity: int = 1, seed: int = 0, index: int = 0,
            released_jpeg: bool = False) -> np.ndarray:
    """Corrupt ``image`` (HxWx3 uint8 RGB, normally the model's 224-px eval crop) deterministically.

    ``index`` is the image's position in its set, so that each image gets its own noise for one
    seed.  ``released_jpeg`` also applies the JPEG quality-85 save with which the published ImageNet-C
    files were written (make_imagenet_c.py); off by default, as the corruption itself has no such step.
    """
    out = apply_corruption(image, name, severity, rng_for(seed, name, severity, index))
    if released_jpeg:
        import io

        from PIL import Image

        buffer = io.BytesIO()
        Image.fromarray(out).save(buffer, "JPEG", quality=85, optimize=True)
        buffer.seek(0)
        with Image.open(buffer) as img:
            out = np.asarray(img.convert("RGB"))
    return out
