"""Digital corruptions of ImageNet-C: brightness, contrast, elastic, pixelate, JPEG; the extra
saturate; and greyscale (not in ImageNet-C: the common colour-removal shift)."""

from __future__ import annotations

import io

import numpy as np

from . import filters


def brightness(x: np.ndarray, c: float, rng: np.random.Generator) -> np.ndarray:
    """Add c to the HSV value channel (clipped to [0, 1])."""
    hsv = filters.rgb2hsv(np.asarray(x) / 255.0)
    hsv[..., 2] = np.clip(hsv[..., 2] + c, 0, 1)
    return np.clip(filters.hsv2rgb(hsv), 0, 1) * 255


def saturate(x: np.ndarray, c: tuple, rng: np.random.Generator) -> np.ndarray:
    """HSV saturation s -> clip(s * c[0] + c[1]): severities 1-2 wash colours out, 3-5 push them
    (an extra corruption)."""
    hsv = filters.rgb2hsv(np.asarray(x) / 255.0)
    hsv[..., 1] = np.clip(hsv[..., 1] * c[0] + c[1], 0, 1)
    return np.clip(filters.hsv2rgb(hsv), 0, 1) * 255


def contrast(x: np.ndarray, c: float, rng: np.random.Generator) -> np.ndarray:
    """Scale each channel's deviation from its mean over the image by c."""
    x = np.asarray(x) / 255.0
    means = np.mean(x, axis=(0, 1), keepdims=True)
    return np.clip((x - means) * c + means, 0, 1) * 255


def jpeg_compression(x: np.ndarray, c: int, rng: np.random.Generator) -> np.ndarray:
    """Encode and decode with Pillow's JPEG encoder at quality c."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.asarray(x, dtype=np.uint8)).save(buffer, "JPEG", quality=int(c))
    buffer.seek(0)
    with Image.open(buffer) as img:
        return np.asarray(img.convert("RGB"))


def pixelate(x: np.ndarray, c: float, rng: np.random.Generator) -> np.ndarray:
    """Box-downsample to int(side * c) and box-upsample back (ImageNet-C uses BOX both ways;
    imagecorruptions upsamples with NEAREST)."""
    from PIL import Image

    img = Image.fromarray(np.asarray(x, dtype=np.uint8))
    w, h = img.size
    small = img.resize((int(w * c), int(h * c)), Image.BOX)
    return np.asarray(small.resize((w, h), Image.BOX))


def elastic_transform(x: np.ndarray, c: tuple, rng: np.random.Generator) -> np.ndarray:
    """ImageNet-C's elastic transform: a random affine warp (three points moved up to c[2] pixels,
    border reflect-101) followed by a smooth displacement field (uniform noise blurred with sigma
    c[1], truncate 3, scaled by c[0]), both bilinear.  The table keeps ImageNet-C's '244' (a typo for
    224 that the authors kept, since the parameters were tuned with it)."""
    from scipy.ndimage import map_coordinates

    image = np.asarray(x, dtype=np.float32) / 255.0
    h, w = image.shape[:2]
    centre = np.array([w // 2, h // 2], dtype=np.float64)
    square = min(h, w) // 3
    src = np.array([centre + square, [centre[0] + square, centre[1] - square], centre - square])
    dst = src + rng.uniform(-c[2], c[2], size=src.shape).astype(np.float32)
    image = filters.warp_affine(image.astype(np.float64), filters.affine_from_points(src, dst))
    dx = filters.gaussian_reflect(rng.uniform(-1, 1, size=(h, w)), c[1], truncate=3) * c[0]
    dy = filters.gaussian_reflect(rng.uniform(-1, 1, size=(h, w)), c[1], truncate=3) * c[0]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    coords = (ys + dy.astype(np.float32), xs + dx.astype(np.float32))
    out = np.stack([map_coordinates(image[..., k], coords, order=1, mode="reflect")
                    for k in range(image.shape[2])], axis=-1)
    return np.clip(out, 0, 1) * 255


def greyscale(x: np.ndarray, c: object, rng: np.random.Generator) -> np.ndarray:
    """Pillow's ITU-R 601-2 luma (L = R*299/1000 + G*587/1000 + B*114/1000), copied to three channels."""
    from PIL import Image

    grey = np.asarray(Image.fromarray(np.asarray(x, dtype=np.uint8)).convert("L"))
    return np.repeat(grey[..., None], 3, axis=2)
