"""Weather corruptions of ImageNet-C: snow, frost, fog, and the extra spatter."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ...errors import AuditError
from . import filters

#: the environment variable naming a folder with ImageNet-C's frost textures (frost1.png ... frost6.jpg)
FROST_ENV = "ROBUSTAUDIT_FROST_DIR"
FROST_FILES = ("frost1.png", "frost2.png", "frost3.png", "frost4.jpg", "frost5.jpg", "frost6.jpg")


class FrostTexturesMissing(AuditError):
    """frost needs six photographs of frost that this package may not ship."""


def frost_dir() -> Path:
    """The folder holding the frost textures: ``$ROBUSTAUDIT_FROST_DIR``, else the ``frost/`` folder
    of an installed ``imagecorruptions`` package (found without importing it: its module needs
    OpenCV and scikit-image, the textures do not)."""
    env = os.environ.get(FROST_ENV)
    if env:
        folder = Path(env)
        if all((folder / name).is_file() for name in FROST_FILES[:5]):
            return folder
        raise FrostTexturesMissing(
            f"{FROST_ENV}={env} does not hold ImageNet-C's frost textures ({', '.join(FROST_FILES[:5])})",
            where="corruption 'frost'",
            fix=f"point {FROST_ENV} at a folder with those files, or unset it and "
                "`pip install --no-deps imagecorruptions==1.1.2` (only its texture files are used)")
    import importlib.util

    spec = importlib.util.find_spec("imagecorruptions")
    if spec is not None and spec.submodule_search_locations:
        for location in spec.submodule_search_locations:
            folder = Path(location) / "frost"
            if all((folder / name).is_file() for name in FROST_FILES[:5]):
                return folder
    raise FrostTexturesMissing(
        "frost blends the image with photographs of frost (ImageNet-C's frost1.png ... frost5.jpg); "
        "they cannot be generated faithfully and are not shipped with pytest-robustaudit",
        where="corruption 'frost'",
        fix="`pip install --no-deps imagecorruptions==1.1.2` (Apache-2.0; only its texture files are read, "
            f"its code and OpenCV are not needed), or set {FROST_ENV} to a folder with the textures, "
            "or leave frost out of the spec's corruptions")


def _texture(index: int) -> np.ndarray:
    from PIL import Image

    with Image.open(frost_dir() / FROST_FILES[index]) as img:
        return np.asarray(img.convert("RGB"))


def frost(x: np.ndarray, c: tuple, rng: np.random.Generator) -> np.ndarray:
    """c[0] * x + c[1] * a random crop of one of the first five frost textures (ImageNet-C draws
    ``randint(5)``, so frost6 is never used).  Images larger than a texture get it upscaled (bicubic,
    x1.1 the covering factor) as imagecorruptions does; at 224 px no texture is rescaled."""
    from PIL import Image

    x = np.asarray(x, dtype=np.float64)
    texture = _texture(int(rng.integers(5)))
    th, tw = texture.shape[:2]
    h, w = x.shape[:2]
    if th < h or tw < w:
        factor = 1.1 * max(h / th, w / tw)
        size = (int(np.ceil(tw * factor)), int(np.ceil(th * factor)))
        texture = np.asarray(Image.fromarray(texture).resize(size, Image.BICUBIC))
        th, tw = texture.shape[:2]
    top = int(rng.integers(0, th - h)) if th > h else 0
    left = int(rng.integers(0, tw - w)) if tw > w else 0
    crop = texture[top:top + h, left:left + w].astype(np.float64)
    return np.clip(c[0] * x + c[1] * crop, 0, 255)


def fog(x: np.ndarray, c: tuple, rng: np.random.Generator) -> np.ndarray:
    """Add c[0] x a plasma fractal (decay c[1]) and rescale by max/(max + c[0])."""
    x = np.asarray(x) / 255.0
    h, w = x.shape[:2]
    mapsize = 1 << max(0, int(max(h, w) - 1).bit_length())
    max_val = x.max()
    x = x + c[0] * filters.plasma_fractal(rng, mapsize=mapsize, wibbledecay=c[1])[:h, :w][..., None]
    return np.clip(x * max_val / (max_val + c[0]), 0, 1) * 255


def snow(x: np.ndarray, c: tuple, rng: np.random.Generator) -> np.ndarray:
    """Snowflakes: N(c[0], c[1]) noise zoomed by c[2], thresholded at c[3], quantised to 8 bits,
    motion-blurred (radius c[4], sigma c[5], angle uniform in [-135, -45)), added with its 180-degree
    rotation to the image whitened towards 1.5 x grey + 0.5 (weight 1 - c[6])."""
    x = np.asarray(x, dtype=np.float32) / 255.0
    layer = rng.normal(size=x.shape[:2], loc=c[0], scale=c[1])
    layer = filters.clipped_zoom(layer[..., None], c[2])[..., 0]
    layer[layer < c[3]] = 0
    layer = np.uint8(np.clip(layer, 0, 1) * 255).astype(np.float64)
    layer = filters.motion_blur(layer, c[4], c[5], rng.uniform(-135, -45))
    layer = (np.round(layer) / 255.0)[..., None]
    grey = filters.rgb2gray_cv2(x)[..., None]
    x = c[6] * x + (1 - c[6]) * np.maximum(x, grey * 1.5 + 0.5)
    return np.clip(x + layer + np.rot90(layer, k=2), 0, 1) * 255


def spatter(x: np.ndarray, c: tuple, rng: np.random.Generator) -> np.ndarray:
    """Water (severities 1-3: pale turquoise drops with Canny-outlined, embossed rims) or mud
    (severities 4-5: brown blobs) from a smoothed N(c[0], c[1]) layer (sigma c[2]) above c[3]
    (an extra corruption)."""
    x = np.asarray(x, dtype=np.float32) / 255.0
    liquid = filters.gaussian(rng.normal(size=x.shape[:2], loc=c[0], scale=c[1]), c[2])
    liquid[liquid < c[3]] = 0
    if c[5] == 0:
        liquid8 = np.clip(liquid * 255, 0, 255).astype(np.uint8)
        edges = filters.canny(liquid8, 50, 150)
        if edges.any():
            from scipy.ndimage import distance_transform_edt

            dist = distance_transform_edt(~edges)
        else:
            dist = np.full(liquid8.shape, 20.0)
        dist = np.minimum(dist, 20)
        dist = filters.box3(dist).astype(np.uint8)
        dist = filters.equalize_hist(dist)
        emboss = np.array([[-2, -1, 0], [-1, 1, 1], [0, 1, 2]], dtype=np.float64)
        dist = np.clip(np.round(filters.filter2d(dist.astype(np.float64), emboss)), 0, 255)
        dist = np.round(filters.box3(dist)).astype(np.float32)  # cv2.blur of uint8 rounds to uint8
        m = liquid8.astype(np.float32) * dist
        peak = m.max()
        m = (m / peak if peak > 0 else m) * c[4]
        colour = np.array([175, 238, 238], dtype=np.float32) / 255.0
        return np.clip(x + m[..., None] * colour, 0, 1) * 255
    m = (liquid > c[3]).astype(np.float32)
    m = filters.gaussian(m, c[4])
    m[m < 0.8] = 0
    colour = np.array([63, 42, 20], dtype=np.float64) / 255.0
    return np.clip(x * (1 - m[..., None]) + colour * m[..., None], 0, 1) * 255
