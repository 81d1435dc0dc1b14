"""The image operations ImageNet-C borrows from scikit-image, OpenCV and ImageMagick, in numpy/scipy.

Hendrycks & Dietterich's reference code (hendrycks/robustness, ImageNet-C/create_c/make_imagenet_c.py)
calls skimage.filters.gaussian, skimage.color.rgb2hsv/hsv2rgb, cv2.GaussianBlur/filter2D/Canny/
distanceTransform/equalizeHist/warpAffine and ImageMagick's MotionBlurImage.  Each is rewritten here
with the same parameters and border rules so that the corruptions need only numpy, scipy and Pillow
(the reference package pulls OpenCV and scikit-image, and breaks on their current versions).  Where a
rewrite is not bit-identical to the library it replaces, the docstring says how it differs.
"""

from __future__ import annotations

import math

import numpy as np


def gaussian(image: np.ndarray, sigma: float, *, channels: bool = False, mode: str = "nearest",
             truncate: float = 4.0) -> np.ndarray:
    """skimage.filters.gaussian: scipy's gaussian_filter, border 'nearest' and truncate 4 by default,
    the channel axis (last) left unblurred when ``channels``."""
    from scipy.ndimage import gaussian_filter

    image = np.asarray(image, dtype=np.float64)
    sigmas = (sigma, sigma, 0.0) if channels else sigma
    return gaussian_filter(image, sigma=sigmas, mode=mode, truncate=truncate)


def gaussian_reflect(image: np.ndarray, sigma: float, truncate: float = 4.0) -> np.ndarray:
    """scipy's ``gaussian_filter(image, sigma, mode='reflect', truncate=truncate)`` of a 2-D array, by FFT.

    Half-sample reflection makes each row periodic with period 2N, so the filter is a circular
    correlation with the kernel folded onto 2N samples: exact, and fast when the kernel is longer
    than the image (elastic_transform's severity 1 blurs 224 px with sigma 170.8: 1025 taps).
    """
    out = np.asarray(image, dtype=np.float64)
    radius = int(truncate * float(sigma) + 0.5)
    taps = np.arange(-radius, radius + 1)
    weights = np.exp(-0.5 * taps ** 2 / float(sigma) ** 2)
    weights /= weights.sum()
    for axis in (0, 1):
        n = out.shape[axis]
        period = 2 * n
        folded = np.zeros(period)
        np.add.at(folded, taps % period, weights)
        extended = np.concatenate([out, np.flip(out, axis=axis)], axis=axis)
        spectrum = np.fft.rfft(extended, axis=axis)
        # correlation: conj of the kernel's spectrum (the folded kernel is symmetric, so it is real)
        kernel = np.conj(np.fft.rfft(folded))
        shape = [1, 1]
        shape[axis] = kernel.size
        full = np.fft.irfft(spectrum * kernel.reshape(shape), n=period, axis=axis)
        out = np.take(full, np.arange(n), axis=axis)
    return out


def cv2_gaussian_kernel(ksize: int, sigma: float) -> np.ndarray:
    """cv2.getGaussianKernel(ksize, sigma) for sigma > 0: sampled, normalised to sum 1."""
    i = np.arange(ksize) - (ksize - 1) / 2.0
    k = np.exp(-(i ** 2) / (2.0 * sigma * sigma))
    return k / k.sum()


def disk(radius: int, alias_blur: float) -> np.ndarray:
    """ImageNet-C's defocus kernel: a normalised aliased disk, smoothed by cv2.GaussianBlur
    (3x3, or 5x5 above radius 8; border reflect-101), so it still sums to 1."""
    from scipy.ndimage import correlate1d

    half = 8 if radius <= 8 else radius
    ksize = 3 if radius <= 8 else 5
    grid = np.arange(-half, half + 1)
    xx, yy = np.meshgrid(grid, grid)
    kernel = ((xx ** 2 + yy ** 2) <= radius ** 2).astype(np.float64)
    kernel /= kernel.sum()
    g = cv2_gaussian_kernel(ksize, alias_blur)
    kernel = correlate1d(kernel, g, axis=0, mode="mirror")
    return correlate1d(kernel, g, axis=1, mode="mirror")


def filter2d(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """cv2.filter2D(image, -1, kernel) on each channel: correlation centred on the kernel, border
    reflect-101 (numpy 'reflect'), computed by FFT as OpenCV does for large kernels (numpy's FFT:
    scipy.signal alone takes seconds to import)."""
    image = np.asarray(image, dtype=np.float64)
    ky, kx = kernel.shape
    pad = [(ky // 2, ky // 2), (kx // 2, kx // 2)] + [(0, 0)] * (image.ndim - 2)
    padded = np.pad(image, pad, mode="reflect")
    ph, pw = padded.shape[:2]
    spectrum = np.fft.rfft2(padded, axes=(0, 1))
    kernel_spectrum = np.fft.rfft2(kernel[::-1, ::-1], s=(ph, pw))
    if image.ndim == 3:
        kernel_spectrum = kernel_spectrum[:, :, None]
    full = np.fft.irfft2(spectrum * kernel_spectrum, s=(ph, pw), axes=(0, 1))
    # circular convolution: rows/cols from the kernel size on are the valid (uncorrupted) part
    return full[ky - 1:ph, kx - 1:pw]


def box3(image: np.ndarray) -> np.ndarray:
    """cv2.blur(image, (3, 3)): the 3x3 mean, border reflect-101 (scipy 'mirror')."""
    from scipy.ndimage import uniform_filter

    return uniform_filter(np.asarray(image, dtype=np.float64), size=3, mode="mirror")


def motion_kernel(radius: int, sigma: float, angle: float) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """ImageMagick's MotionBlurImage kernel: ``2*radius+1`` one-sided Gaussian weights (sum 1) and
    the (row, column) offset of each tap along the line at ``angle`` degrees (column offset
    ``ceil(i*cos - 0.5)``, row offset ``ceil(i*sin - 0.5)``, as in ImageMagick's effect.c)."""
    width = 2 * int(radius) + 1
    i = np.arange(width, dtype=np.float64)
    weights = np.exp(-(i * i) / (2.0 * sigma * sigma)) / (math.sqrt(2.0 * math.pi) * sigma)
    weights /= weights.sum()
    a = math.radians(angle)
    offsets = [(math.ceil(k * math.sin(a) - 0.5), math.ceil(k * math.cos(a) - 0.5)) for k in range(width)]
    return weights, offsets


def motion_blur(image: np.ndarray, radius: int, sigma: float, angle: float) -> np.ndarray:
    """Blur along a line as ImageMagick's ``-motion-blur radius x sigma + angle``: each output pixel is
    the weighted sum of the pixels at the kernel's offsets, the image's edge pixels repeated beyond it
    (ImageMagick's default 'edge' virtual pixels).  Works in float; ImageMagick quantises to its Q16
    depth between steps, which moves results by well under one 8-bit grey level."""
    image = np.asarray(image, dtype=np.float64)
    weights, offsets = motion_kernel(radius, sigma, angle)
    reach = max(max(abs(r), abs(c)) for r, c in offsets)
    h, w = image.shape[:2]
    pad = [(reach, reach), (reach, reach)] + [(0, 0)] * (image.ndim - 2)
    padded = np.pad(image, pad, mode="edge")
    out = np.zeros_like(image)
    for weight, (dr, dc) in zip(weights, offsets):
        out += weight * padded[reach + dr: reach + dr + h, reach + dc: reach + dc + w]
    return out


def clipped_zoom(image: np.ndarray, factor: float) -> np.ndarray:
    """ImageNet-C's clipped_zoom: crop the centre ``ceil(side/factor)``, zoom it back up bilinearly
    (scipy.ndimage.zoom, order 1) and trim the centre to the input size (generalised to non-square
    images; the reference crops both axes with the row offset, which is the same on its 224x224)."""
    from scipy.ndimage import zoom

    h, w = image.shape[:2]
    ch, cw = int(np.ceil(h / factor)), int(np.ceil(w / factor))
    top, left = (h - ch) // 2, (w - cw) // 2
    crop = image[top:top + ch, left:left + cw]
    if image.ndim == 3:  # channel by channel: the same values as zoom (f, f, 1), 2.4x faster
        out = np.stack([zoom(crop[..., k], (factor, factor), order=1) for k in range(image.shape[2])], axis=-1)
    else:
        out = zoom(crop, (factor, factor), order=1)
    if out.shape[0] < h or out.shape[1] < w:  # scipy rounds the output size; never seen at 224 px
        extra = [(0, max(0, h - out.shape[0])), (0, max(0, w - out.shape[1]))] + [(0, 0)] * (image.ndim - 2)
        out = np.pad(out, extra, mode="edge")
    trim_top, trim_left = (out.shape[0] - h) // 2, (out.shape[1] - w) // 2
    return out[trim_top:trim_top + h, trim_left:trim_left + w]


def plasma_fractal(rng: np.random.Generator, mapsize: int = 256, wibbledecay: float = 3) -> np.ndarray:
    """ImageNet-C's fog heightmap: the diamond-square algorithm on a ``mapsize`` square (a power of
    two), noise amplitude 100 divided by ``wibbledecay`` per level, rescaled to [0, 1]."""
    if mapsize & (mapsize - 1):
        raise ValueError(f"plasma_fractal needs a power of two, got {mapsize}")
    maparray = np.empty((mapsize, mapsize), dtype=np.float64)
    maparray[0, 0] = 0
    stepsize = mapsize
    wibble = 100.0

    def wibbledmean(array):
        return array / 4 + wibble * rng.uniform(-wibble, wibble, array.shape)

    while stepsize >= 2:
        half = stepsize // 2
        corners = maparray[0:mapsize:stepsize, 0:mapsize:stepsize]
        squares = corners + np.roll(corners, shift=-1, axis=0)
        squares += np.roll(squares, shift=-1, axis=1)
        maparray[half:mapsize:stepsize, half:mapsize:stepsize] = wibbledmean(squares)
        centres = maparray[half:mapsize:stepsize, half:mapsize:stepsize]
        corners = maparray[0:mapsize:stepsize, 0:mapsize:stepsize]
        ltsum = centres + np.roll(centres, 1, axis=0) + corners + np.roll(corners, -1, axis=1)
        maparray[0:mapsize:stepsize, half:mapsize:stepsize] = wibbledmean(ltsum)
        ttsum = centres + np.roll(centres, 1, axis=1) + corners + np.roll(corners, -1, axis=0)
        maparray[half:mapsize:stepsize, 0:mapsize:stepsize] = wibbledmean(ttsum)
        stepsize //= 2
        wibble /= wibbledecay
    maparray -= maparray.min()
    return maparray / maparray.max()


def rgb2hsv(rgb: np.ndarray) -> np.ndarray:
    """skimage.color.rgb2hsv on floats in [0, 1]: hue and saturation 0 where the pixel is grey."""
    rgb = np.asarray(rgb, dtype=np.float64)
    v = rgb.max(-1)
    delta = rgb.max(-1) - rgb.min(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        s = np.where(delta == 0, 0.0, delta / np.where(v == 0, 1.0, v))
        safe = np.where(delta == 0, 1.0, delta)
        r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
        h = np.zeros_like(v)
        # skimage assigns red, then green, then blue: the last maximum wins on ties
        h = np.where(r == v, (g - b) / safe, h)
        h = np.where(g == v, 2.0 + (b - r) / safe, h)
        h = np.where(b == v, 4.0 + (r - g) / safe, h)
    h = (h / 6.0) % 1.0
    h[delta == 0] = 0.0
    return np.stack([h, s, v], axis=-1)


def hsv2rgb(hsv: np.ndarray) -> np.ndarray:
    """skimage.color.hsv2rgb: the six-sector formula."""
    h, s, v = hsv[..., 0], hsv[..., 1], hsv[..., 2]
    hi = np.floor(h * 6)
    f = h * 6 - hi
    p = v * (1 - s)
    q = v * (1 - f * s)
    t = v * (1 - (1 - f) * s)
    sector = (hi.astype(np.int64) % 6)[..., None]
    choices = [np.stack(c, axis=-1) for c in ((v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q))]
    return np.choose(np.broadcast_to(sector, choices[0].shape), choices)


def rgb2gray_cv2(rgb: np.ndarray) -> np.ndarray:
    """cv2.cvtColor(RGB2GRAY) on floats: 0.299 R + 0.587 G + 0.114 B."""
    return rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114


def canny(image: np.ndarray, low: float, high: float) -> np.ndarray:
    """cv2.Canny(uint8, low, high) with its defaults (3x3 Sobel, L1 gradient magnitude, border
    replicate): non-maximum suppression in four direction sectors (tan 22.5 and 67.5 degrees), then
    hysteresis keeping 8-connected weak pixels that touch a strong one.  Returns a bool edge map.
    The comparisons (strict towards the previous row/column, non-strict towards the next, the main
    diagonal for same-sign gradients) follow OpenCV's canny.cpp; not compared bit for bit with
    OpenCV, which is not installed here."""
    from scipy.ndimage import correlate, label

    img = np.asarray(image, dtype=np.float64)
    sx = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], dtype=np.float64)
    gx = correlate(img, sx, mode="nearest")
    gy = correlate(img, sx.T, mode="nearest")
    mag = np.abs(gx) + np.abs(gy)
    p = np.pad(mag, 1, mode="constant")
    c = p[1:-1, 1:-1]
    ax, ay = np.abs(gx), np.abs(gy)
    tan22, tan67 = math.tan(math.radians(22.5)), math.tan(math.radians(67.5))
    horizontal = ay < ax * tan22
    vertical = ay > ax * tan67
    diagonal = ~(horizontal | vertical)
    same_sign = (gx * gy) > 0
    keep = np.zeros_like(c, dtype=bool)
    keep |= horizontal & (c > p[1:-1, :-2]) & (c >= p[1:-1, 2:])
    keep |= vertical & (c > p[:-2, 1:-1]) & (c >= p[2:, 1:-1])
    # image rows grow downwards: same-sign gradients point along the main diagonal
    keep |= diagonal & same_sign & (c > p[:-2, :-2]) & (c > p[2:, 2:])
    keep |= diagonal & ~same_sign & (c > p[:-2, 2:]) & (c > p[2:, :-2])
    candidates = keep & (c > low)
    labels, count = label(candidates, structure=np.ones((3, 3)))
    if count == 0:
        return np.zeros_like(candidates)
    strong = np.zeros(count + 1, dtype=bool)
    strong[np.unique(labels[candidates & (c > high)])] = True
    strong[0] = False
    return strong[labels]


def equalize_hist(image: np.ndarray) -> np.ndarray:
    """cv2.equalizeHist on uint8: the cumulative histogram from the first occupied level, scaled to 0..255."""
    image = np.asarray(image, dtype=np.uint8)
    hist = np.bincount(image.ravel(), minlength=256)
    first = int(np.flatnonzero(hist)[0])
    total = image.size
    if hist[first] == total:
        return np.full_like(image, first)
    scale = 255.0 / (total - hist[first])
    cum = np.cumsum(hist) - hist[first]
    lut = np.clip(np.round(cum * scale), 0, 255).astype(np.uint8)
    lut[:first + 1] = 0
    return lut[image]


def affine_from_points(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """cv2.getAffineTransform: the 2x3 matrix mapping three (x, y) points onto three others."""
    a = np.hstack([src, np.ones((3, 1))])
    return np.linalg.solve(a, dst).T


def warp_affine(image: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """cv2.warpAffine(image, M, size, borderMode=BORDER_REFLECT_101): ``dst(p) = src(M^-1 p)``,
    bilinear.  OpenCV rounds its interpolation weights to 1/32 pixel; this does not."""
    from scipy.ndimage import map_coordinates

    full = np.vstack([matrix, [0, 0, 1]])
    inv = np.linalg.inv(full)
    h, w = image.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    src_x = inv[0, 0] * xs + inv[0, 1] * ys + inv[0, 2]
    src_y = inv[1, 0] * xs + inv[1, 1] * ys + inv[1, 2]
    channels = [map_coordinates(image[..., k], (src_y, src_x), order=1, mode="mirror")
                for k in range(image.shape[2])]
    return np.stack(channels, axis=-1)
