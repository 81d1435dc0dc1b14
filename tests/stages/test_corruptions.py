"""ImageNet-C corruptions: each against its published formula, determinism per seed, damage growing
with severity, the spec form, and the split of an eval transform around the corruption.

The fixed test image is synthetic (smooth colour fields, hard edges and texture from a seeded
Generator) so that the tests run without ../shared; the formulas are checked with independent code
(colorsys for HSV, Pillow for JPEG/pixelate/greyscale, scipy for blurs, the reference's own loop for
glass blur's shuffle) or with statistics of the noise.
"""

from __future__ import annotations

import colorsys
import hashlib
import io
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from pytest_robustaudit.data import corruptions as C
from pytest_robustaudit.data.corruptions import blur, digital, filters, weather
from pytest_robustaudit.errors import AuditError


def natural_image(size: int = 224, seed: int = 7) -> np.ndarray:
    """A deterministic image with what photos have: smooth shading, edges, texture, all colours."""
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    smooth = np.stack([gaussian_filter(rng.random((size, size)), size / 8) for _ in range(3)], axis=-1)
    smooth = (smooth - smooth.min()) / (smooth.max() - smooth.min())
    img = 0.5 * smooth + 0.25 * np.stack([xx, yy, 1 - xx], axis=-1)
    img[size // 4: size // 2, size // 4: 3 * size // 4] += 0.2  # a bright block with hard edges
    img[(xx - 0.7) ** 2 + (yy - 0.7) ** 2 < 0.02] = [0.9, 0.2, 0.1]  # a red disk
    img += 0.05 * rng.standard_normal((size, size, 3))  # texture
    return np.clip(img * 255, 0, 255).astype(np.uint8)


IMG = natural_image(224)
SMALL = natural_image(64, seed=3)
FROST_AVAILABLE = True
try:
    C.frost_dir()
except C.FrostTexturesMissing:
    FROST_AVAILABLE = False
needs_frost = pytest.mark.skipif(not FROST_AVAILABLE, reason="frost textures absent: pip install --no-deps "
                                 "imagecorruptions==1.1.2 or set ROBUSTAUDIT_FROST_DIR")
ALL_NAMES = [n for n in C.REGISTRY if n != "frost" or FROST_AVAILABLE]
RANDOM = ["gaussian_noise", "shot_noise", "impulse_noise", "speckle_noise", "glass_blur", "motion_blur",
          "snow", "frost", "fog", "spatter", "elastic_transform"]


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0 ** 2 / max(mse, 1e-12)))


# ---------------------------------------------------------------- registry, shape, determinism

def test_registry_holds_imagenet_c_and_its_extras():
    assert C.CORRUPTIONS == ("gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "glass_blur",
                             "motion_blur", "zoom_blur", "snow", "frost", "fog", "brightness", "contrast",
                             "elastic_transform", "pixelate", "jpeg_compression")
    assert C.EXTRA_CORRUPTIONS == ("speckle_noise", "gaussian_blur", "spatter", "saturate")
    assert set(C.REGISTRY) == set(C.CORRUPTIONS) | set(C.EXTRA_CORRUPTIONS) | {"greyscale"}
    for name in C.CORRUPTIONS + C.EXTRA_CORRUPTIONS:
        assert C.REGISTRY[name].severities == (1, 2, 3, 4, 5)
    assert C.REGISTRY["greyscale"].severities == (1,)


@pytest.mark.parametrize("name", ALL_NAMES)
def test_output_is_uint8_same_shape_and_deterministic_per_seed(name):
    for severity in C.REGISTRY[name].severities[::2]:
        out = C.corrupt(SMALL, name, severity, seed=1)
        assert out.dtype == np.uint8 and out.shape == SMALL.shape and out.flags.c_contiguous
        assert np.array_equal(out, C.corrupt(SMALL, name, severity, seed=1))
        if name in RANDOM:
            assert not np.array_equal(out, C.corrupt(SMALL, name, severity, seed=2))
            assert not np.array_equal(out, C.corrupt(SMALL, name, severity, seed=1, index=1))
    assert np.array_equal(SMALL, natural_image(64, seed=3))  # the input is never modified


@pytest.mark.parametrize("name", ALL_NAMES)
def test_non_square_read_only_crops_keep_their_shape(name):
    img = SMALL[:40, :56].copy()
    img.setflags(write=False)  # np.asarray(pil_image) is read-only
    out = C.corrupt(img, name, C.REGISTRY[name].severities[-1], seed=0)
    assert out.shape == (40, 56, 3) and out.dtype == np.uint8


def test_byte_identical_in_a_fresh_process():
    names = ["gaussian_noise", "glass_blur", "snow", "fog", "elastic_transform", "spatter"]
    digest = hashlib.sha256(b"".join(C.corrupt(SMALL, n, 3, seed=11, index=4).tobytes() for n in names)).hexdigest()
    code = ("import hashlib, sys; sys.path[:0] = sys.argv[1:]; from test_corruptions import SMALL; "
            "from pytest_robustaudit.data import corruptions as C; "
            f"print(hashlib.sha256(b''.join(C.corrupt(SMALL, n, 3, seed=11, index=4).tobytes() for n in {names!r})).hexdigest())")
    import os

    here = os.path.dirname(__file__)
    out = subprocess.run([sys.executable, "-c", code, here, os.path.dirname(here)], capture_output=True,
                         text=True, check=True, env={**os.environ, "PYTHONHASHSEED": "123"})
    assert out.stdout.strip() == digest


def test_generators_are_independent_of_order_and_name():
    a = C.rng_for(0, "gaussian_noise", 3, 0).random(4)
    assert np.array_equal(a, C.rng_for(0, "gaussian_noise", 3, 0).random(4))
    for other in [(1, "gaussian_noise", 3, 0), (0, "shot_noise", 3, 0), (0, "gaussian_noise", 4, 0),
                  (0, "gaussian_noise", 3, 1)]:
        assert not np.array_equal(a, C.rng_for(*other).random(4))


def test_bad_inputs_are_located_errors():
    with pytest.raises(C.CorruptionError, match="Did you mean: gaussian_noise"):
        C.corrupt(SMALL, "gausian_noise", 1)
    with pytest.raises(C.CorruptionError, match="no severity 6"):
        C.corrupt(SMALL, "fog", 6)
    with pytest.raises(C.CorruptionError, match="no severity 2"):
        C.corrupt(SMALL, "greyscale", 2)
    with pytest.raises(C.CorruptionError, match="HxWx3 uint8"):
        C.corrupt(SMALL.astype(np.float32), "fog", 1)
    with pytest.raises(C.CorruptionError, match="HxWx3 uint8"):
        C.corrupt(SMALL[..., 0], "fog", 1)
    assert issubclass(C.CorruptionError, AuditError)


# ---------------------------------------------------------------- damage grows with severity

#: measured on IMG (seed 0) and on 8 imagenet-samples crops: PSNR falls strictly over 1..5 for these.
#: The others' published tables are not monotone in pixel damage (they were tuned on model error):
#: glass_blur (severity 2 has one shuffle pass, 1 has two), fog (3 and 4 share the amount 2.5 and
#: differ in roughness), elastic_transform (1-2 are large affine warps, 3-5 small ones plus local
#: elasticity), saturate (1-2 wash colour out, 3-5 push it), spatter (1-3 water, 4-5 mud), frost (the
#: texture drawn dominates), pixelate (severity 5's factor 0.25 blows 56 px up exactly 4x, into clean
#: blocks; on IMG its PSNR is 0.2 dB above severity 4's, on photos below): those are tested within
#: their monotone stretches below.
MONOTONE = ["gaussian_noise", "shot_noise", "impulse_noise", "speckle_noise", "defocus_blur", "motion_blur",
            "zoom_blur", "gaussian_blur", "snow", "brightness", "contrast", "jpeg_compression"]
STRETCHES = {"pixelate": [(1, 2, 3, 4)], "glass_blur": [(2, 3), (4, 5)], "fog": [(1, 2, 3)], "elastic_transform": [(3, 4), (1, 2)],
             "saturate": [(3, 4, 5)], "spatter": [(1, 2, 3), (4, 5)]}


@pytest.mark.parametrize("name", MONOTONE)
def test_psnr_strictly_decreases_with_severity(name):
    values = [psnr(C.corrupt(IMG, name, s, seed=0), IMG) for s in range(1, 6)]
    assert all(a > b for a, b in zip(values, values[1:])), values


@pytest.mark.parametrize("name", sorted(STRETCHES))
def test_psnr_decreases_within_the_monotone_stretches_of_the_table(name):
    for stretch in STRETCHES[name]:
        values = [psnr(C.corrupt(IMG, name, s, seed=0), IMG) for s in stretch]
        assert all(a > b for a, b in zip(values, values[1:])), (stretch, values)


@needs_frost
def test_frost_damage_grows_with_the_texture_weight_for_one_texture():
    # pin the texture and crop: the mean over many seeds of c[0]x + c[1]t moves away from x monotonically
    values = [np.mean([psnr(C.corrupt(SMALL, "frost", s, seed=k), SMALL) for k in range(12)]) for s in (1, 2, 3)]
    assert values[0] > values[1] > values[2], values


# ---------------------------------------------------------------- noise: the formulas and statistics

def _grey(level: int, size: int = 128) -> np.ndarray:
    return np.full((size, size, 3), level, dtype=np.uint8)


def test_gaussian_noise_is_the_published_formula_with_its_statistics():
    for severity, c in enumerate((0.08, 0.12, 0.18, 0.26, 0.38), start=1):
        out = C.corrupt(SMALL, "gaussian_noise", severity, seed=5, index=2)
        rng = C.rng_for(5, "gaussian_noise", severity, 2)
        expected = np.uint8(np.clip(SMALL / 255.0 + rng.normal(size=SMALL.shape, scale=c), 0, 1) * 255)
        assert np.array_equal(out, expected)
    grey = _grey(128, 256)
    residual = C.corrupt(grey, "gaussian_noise", 1, seed=0).astype(np.float64) - 127.5  # truncation: -0.5 on average
    assert abs(residual.mean() / 255) < 0.002 and abs(residual.std() / 255 - 0.08) < 0.002


def test_shot_noise_is_poisson_with_c_photons():
    grey = _grey(128, 256)
    for severity, c in ((1, 60), (4, 5)):
        out = C.corrupt(grey, "shot_noise", severity, seed=0).astype(np.float64) / 255
        lam = 128 / 255 * c
        # E and Var of Poisson(lam)/c, truncated to 8 bits (values k/c * 255 floored)
        k = np.arange(0, 200)
        from scipy.stats import poisson

        values = np.floor(np.clip(k / c, 0, 1) * 255) / 255
        mean = (poisson.pmf(k, lam) * values).sum()
        var = (poisson.pmf(k, lam) * values ** 2).sum() - mean ** 2
        assert abs(out.mean() - mean) < 4 * np.sqrt(var / out.size)
        assert abs(out.var() / var - 1) < 0.03


def test_impulse_noise_flips_a_fraction_c_half_to_white_half_to_black():
    grey = _grey(100, 256)
    for severity, c in enumerate((0.03, 0.06, 0.09, 0.17, 0.27), start=1):
        out = C.corrupt(grey, "impulse_noise", severity, seed=0)
        assert set(np.unique(out)) <= {0, 100, 255}
        white, black = np.mean(out == 255), np.mean(out == 0)
        assert abs(white + black - c) < 0.004 and abs(white - black) < 0.004


def test_speckle_noise_is_multiplicative():
    grey = _grey(100, 256)
    out = C.corrupt(grey, "speckle_noise", 3, seed=0).astype(np.float64)
    ratio = (out + 0.5) / 100.0 - 1  # + 0.5: undo the truncation on average
    assert abs(ratio.std() - 0.35) < 0.005 and abs(ratio.mean()) < 0.005
    assert np.array_equal(C.corrupt(_grey(0, 16), "speckle_noise", 5, seed=0), _grey(0, 16))  # black stays black


# ---------------------------------------------------------------- blur: kernels and the reference loop

def test_defocus_kernel_is_a_normalised_antialiased_disk():
    for radius, alias in ((3, 0.1), (4, 0.5), (6, 0.5), (8, 0.5), (10, 0.5)):
        k = filters.disk(radius, alias)
        assert k.shape == ((17, 17) if radius <= 8 else (21, 21))
        assert np.allclose(k, k.T) and np.allclose(k, k[::-1, ::-1])
        if radius < 8:
            assert abs(k.sum() - 1) < 1e-12
        else:  # the disk touches the kernel's edge and cv2's reflect-101 border folds blur back in
            assert 1.01 < k.sum() < 1.014
        centre = k.shape[0] // 2
        assert k[centre, centre + radius] > 0
        if centre + radius + 2 < k.shape[0]:
            assert k[centre, centre + radius + 2] == 0
    # alias blur 0.1: the 3-tap Gaussian is [e^-50, 1, e^-50] normalised, so the kernel is the aliased disk
    grid = np.arange(-8, 9)
    disk3 = ((grid[None, :] ** 2 + grid[:, None] ** 2) <= 9).astype(np.float64)
    assert np.allclose(filters.disk(3, 0.1), disk3 / disk3.sum(), atol=1e-15)


def test_defocus_blur_is_filter2d_with_reflect_101_border():
    from scipy.ndimage import correlate

    out = blur.defocus_blur(SMALL, (4, 0.5), None)
    k = filters.disk(4, 0.5)
    expected = np.stack([correlate(SMALL[..., i] / 255.0, k, mode="mirror") for i in range(3)], axis=-1)
    assert np.allclose(out, np.clip(expected, 0, 1) * 255, atol=1e-9)


def test_gaussian_blur_matches_scipy_per_channel_and_keeps_flat_images():
    from scipy.ndimage import gaussian_filter

    out = blur.gaussian_blur(SMALL, 3, None)
    expected = np.stack([gaussian_filter(SMALL[..., i] / 255.0, 3, mode="nearest") for i in range(3)], axis=-1) * 255
    assert np.allclose(out, expected, atol=1e-9)
    assert np.array_equal(C.corrupt(_grey(77, 32), "gaussian_blur", 5), _grey(77, 32))


def test_glass_blur_shuffle_equals_the_reference_loop():
    """The reference statement ``x[h, w], x[h', w'] = x[h', w'], x[h, w]`` run literally on an HxWx3
    array, with the offsets our Generator draws, moves the pixels exactly as our index walk does."""
    h, w = 20, 17
    img = np.arange(h * w * 3, dtype=np.int64).reshape(h, w, 3)
    for delta, iterations in ((1, 2), (2, 1), (3, 2), (4, 2)):
        ours = img.reshape(h * w, 3)[blur.glass_positions(h, w, delta, iterations, np.random.default_rng(9))]
        rng = np.random.default_rng(9)
        x = img.copy()
        for _ in range(iterations):
            rows, cols = range(h - delta, delta, -1), range(w - delta, delta, -1)
            offsets = rng.integers(-delta, delta, size=(len(rows) * len(cols), 2))
            k = 0
            for hh in rows:
                for ww in cols:
                    dx, dy = offsets[k]
                    k += 1
                    h_prime, w_prime = hh + dy, ww + dx
                    x[hh, ww], x[h_prime, w_prime] = x[h_prime, w_prime], x[hh, ww]
        assert np.array_equal(ours.reshape(h, w, 3), x)


def test_motion_kernel_is_imagemagicks_one_sided_line():
    weights, offsets = filters.motion_kernel(10, 3, 0.0)
    assert len(weights) == 21 and abs(weights.sum() - 1) < 1e-12 and np.all(np.diff(weights) < 0)
    assert offsets == [(0, i) for i in range(21)]
    _, diagonal = filters.motion_kernel(15, 5, 45.0)
    assert all(abs(r - c) <= 1 and r >= 0 for r, c in diagonal)
    # a point spreads into a trail opposite the angle's direction, weights preserved
    dot = np.zeros((41, 41))
    dot[20, 30] = 1.0
    trail = filters.motion_blur(dot, 10, 3, 0.0)
    assert np.isclose(trail.sum(), 1.0) and np.allclose(trail[20, 20:31][::-1], weights[:11])
    assert np.array_equal(C.corrupt(_grey(90, 40), "motion_blur", 5, seed=3), _grey(90, 40))


def test_zoom_blur_averages_centre_zooms():
    from scipy.ndimage import zoom

    assert np.allclose(filters.clipped_zoom(SMALL.astype(np.float64), 1.0), SMALL)
    x = (SMALL / 255.0).astype(np.float32)
    for factor in (1.07, 1.3):  # per channel equals the reference's zoom (f, f, 1) of the centre crop
        ch = int(np.ceil(64 / factor))
        top = (64 - ch) // 2
        ref = zoom(x[top:top + ch, top:top + ch], (factor, factor, 1), order=1)
        trim = (ref.shape[0] - 64) // 2
        assert np.array_equal(filters.clipped_zoom(x, factor), ref[trim:trim + 64, trim:trim + 64])
    factors = C.REGISTRY["zoom_blur"].params[0]
    # np.arange(1, 1.11, 0.01) as published: float steps make it end at 1.11, 12 factors
    assert len(factors) == 12 and factors[0] == 1 and abs(factors[-1] - 1.11) < 1e-9
    assert np.array_equal(C.corrupt(_grey(60, 32), "zoom_blur", 5), _grey(60, 32))


# ---------------------------------------------------------------- digital: exact formulas

def _hsv_reference(img: np.ndarray, fn) -> np.ndarray:
    out = np.empty(img.shape, dtype=np.float64)
    for idx in np.ndindex(img.shape[:2]):
        h, s, v = colorsys.rgb_to_hsv(*(img[idx] / 255.0))
        out[idx] = colorsys.hsv_to_rgb(*fn(h, s, v))
    return np.clip(out, 0, 1) * 255


def test_brightness_adds_to_hsv_value_exactly():
    img = SMALL[:24, :24]
    for severity, c in enumerate((0.1, 0.2, 0.3, 0.4, 0.5), start=1):
        expected = _hsv_reference(img, lambda h, s, v: (h, s, min(v + c, 1.0)))
        assert np.allclose(digital.brightness(img, c, None), expected, atol=1e-9)


def test_saturate_scales_hsv_saturation_exactly():
    img = SMALL[:24, :24]
    for c in ((0.3, 0), (0.1, 0), (2, 0), (5, 0.1), (20, 0.2)):
        expected = _hsv_reference(img, lambda h, s, v: (h, min(max(s * c[0] + c[1], 0.0), 1.0), v))
        assert np.allclose(digital.saturate(img, c, None), expected, atol=1e-9)


def test_hsv_roundtrip_is_exact_on_every_grey_and_primary():
    colours = np.array([[[0, 0, 0], [255, 255, 255], [255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0],
                         [0, 255, 255], [255, 0, 255], [10, 10, 10], [200, 100, 100]]], dtype=np.float64) / 255
    assert np.allclose(filters.hsv2rgb(filters.rgb2hsv(colours)), colours, atol=1e-12)


def test_contrast_shrinks_each_channel_towards_its_mean():
    for c in (0.4, 0.3, 0.2, 0.1, 0.05):
        x = SMALL / 255.0
        means = x.mean(axis=(0, 1))
        assert np.allclose(digital.contrast(SMALL, c, None), np.clip((x - means) * c + means, 0, 1) * 255)


def test_jpeg_compression_is_pillow_at_the_published_quality():
    for severity, quality in enumerate((25, 18, 15, 10, 7), start=1):
        buffer = io.BytesIO()
        Image.fromarray(IMG).save(buffer, "JPEG", quality=quality)
        expected = np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))
        out = C.corrupt(IMG, "jpeg_compression", severity)
        assert np.array_equal(out, expected)
        buffer = io.BytesIO()
        Image.fromarray(IMG).save(buffer, "JPEG", quality=quality + 10)
        assert not np.array_equal(out, np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")))


def test_pixelate_box_downsamples_to_the_published_size():
    out = C.corrupt(IMG, "pixelate", 5)  # 0.25: 56 px, blown back up 4x with BOX = 4x4 blocks
    small = np.asarray(Image.fromarray(IMG).resize((56, 56), Image.BOX))
    assert np.array_equal(out, np.repeat(np.repeat(small, 4, axis=0), 4, axis=1))
    for severity, c in enumerate((0.6, 0.5, 0.4, 0.3), start=1):
        out = C.corrupt(IMG, "pixelate", severity)
        n = int(224 * c)
        small = Image.fromarray(IMG).resize((n, n), Image.BOX)
        assert np.array_equal(out, np.asarray(small.resize((224, 224), Image.BOX)))


def test_greyscale_is_pillows_luma_on_three_channels():
    out = C.corrupt(IMG, "greyscale", 1)
    luma = np.asarray(Image.fromarray(IMG).convert("L"))
    assert all(np.array_equal(out[..., i], luma) for i in range(3))


def test_elastic_affine_helpers_match_opencvs_definitions():
    src = np.array([[10.0, 10.0], [50.0, 10.0], [10.0, 40.0]])
    m = filters.affine_from_points(src, src + [3.0, -2.0])
    assert np.allclose(m, [[1, 0, 3], [0, 1, -2]])
    img = SMALL.astype(np.float64)
    moved = filters.warp_affine(img, m)  # dst(x, y) = src(x - 3, y + 2)
    assert np.allclose(moved[10:50, 10:50], img[12:52, 7:47])
    assert np.allclose(filters.warp_affine(img, np.array([[1.0, 0, 0], [0, 1, 0]])), img)


def test_elastic_field_blur_equals_scipys_reflect_gaussian():
    from scipy.ndimage import gaussian_filter

    field = np.random.default_rng(0).uniform(-1, 1, size=(40, 56))
    for sigma in (244 * 0.7, 244 * 0.08, 244 * 0.01):  # kernels far longer than the image, and short
        expected = gaussian_filter(field, sigma, mode="reflect", truncate=3)
        assert np.allclose(filters.gaussian_reflect(field, sigma, truncate=3), expected, rtol=0, atol=1e-14)


def test_elastic_transform_moves_pixels_without_changing_colours_much():
    for severity in (1, 3, 5):
        out = C.corrupt(IMG, "elastic_transform", severity, seed=0)
        assert abs(out.mean() - IMG.mean()) < 3  # a warp, not a recolouring
        assert psnr(out, IMG) < 35


# ---------------------------------------------------------------- weather

def test_fog_plasma_is_a_normalised_fractal_and_fog_lowers_contrast():
    heights = filters.plasma_fractal(np.random.default_rng(0), 256, 2)
    assert heights.shape == (256, 256) and heights.min() == 0 and heights.max() == 1
    out = C.corrupt(IMG, "fog", 3, seed=0).astype(np.float64)
    assert out.std() < IMG.std()


def test_snow_whitens_and_adds_flakes():
    out = C.corrupt(IMG, "snow", 3, seed=0).astype(np.int64)
    assert out.mean() > IMG.mean() + 20 and np.mean(out >= 250) > np.mean(IMG >= 250)


@needs_frost
def test_frost_is_the_weighted_sum_with_a_crop_of_the_drawn_texture():
    for severity, c in ((1, (1, 0.4)), (5, (0.6, 0.75))):
        out = C.corrupt(IMG, "frost", severity, seed=4, index=1)
        rng = C.rng_for(4, "frost", severity, 1)
        index = int(rng.integers(5))
        with Image.open(C.frost_dir() / weather.FROST_FILES[index]) as texture:
            texture = np.asarray(texture.convert("RGB")).astype(np.float64)
        top, left = int(rng.integers(0, texture.shape[0] - 224)), int(rng.integers(0, texture.shape[1] - 224))
        expected = np.uint8(np.clip(c[0] * IMG + c[1] * texture[top:top + 224, left:left + 224], 0, 255))
        assert np.array_equal(out, expected)


def test_frost_without_textures_names_the_way_out(monkeypatch, tmp_path):
    monkeypatch.setenv(C.FROST_ENV, str(tmp_path))
    with pytest.raises(C.FrostTexturesMissing) as info:
        C.corrupt(SMALL, "frost", 1)
    assert "pip install --no-deps imagecorruptions==1.1.2" in str(info.value)
    assert str(tmp_path) in str(info.value)


def test_spatter_mud_blends_towards_brown_and_water_towards_turquoise():
    brown = np.array([63, 42, 20], dtype=np.float64)
    out = C.corrupt(IMG, "spatter", 5, seed=0).astype(np.float64)
    changed = np.any(out != IMG, axis=-1)
    assert 0.01 < changed.mean() < 0.9
    # a convex combination x(1-m) + brown m never moves away from brown (1 level for truncation)
    assert np.all(np.abs(out - brown) <= np.abs(IMG - brown) + 1)
    water = C.corrupt(IMG, "spatter", 1, seed=0).astype(np.int64)
    assert np.all(water >= IMG.astype(np.int64) - 1)  # water only adds light


def test_canny_and_histogram_equalisation_helpers():
    square = np.zeros((32, 32), dtype=np.uint8)
    square[8:24, 8:24] = 200
    edges = filters.canny(square, 50, 150)
    assert edges[8:24, 7:9].any(axis=1).all() and not edges[12:20, 12:20].any() and not edges[:4].any()
    eq = filters.equalize_hist(np.array([[10, 10, 20, 30]], dtype=np.uint8))
    assert eq.tolist() == [[0, 0, 128, 255]]


# ---------------------------------------------------------------- the spec form

def test_spec_forms_expand_to_name_severity_pairs():
    parse = C.parse_corruptions
    assert parse({"corruption": "gaussian_noise", "severity": 3}) == [("gaussian_noise", 3)]
    assert parse({"corruption": "fog", "severity": [5, 1, 3, 3]}) == [("fog", 1), ("fog", 3), ("fog", 5)]
    assert parse({"corruption": "fog"}) == [("fog", s) for s in range(1, 6)]
    assert parse({"corruption": "fog", "severity": "all"}) == [("fog", s) for s in range(1, 6)]
    assert parse({"corruption": "all", "severity": 2}) == [(n, 2) for n in C.CORRUPTIONS]
    assert len(parse({"corruption": "all"})) == 75
    assert parse({"corruption": "extra", "severity": 1}) == [(n, 1) for n in C.EXTRA_CORRUPTIONS]
    assert parse({"corruption": ["snow", "greyscale"], "severity": 1}) == [("snow", 1), ("greyscale", 1)]
    assert parse({"corruption": "greyscale"}) == [("greyscale", 1)]
    assert parse({"corruption": "fog", "name": "x"}, extra_keys=("name",)) == [("fog", s) for s in range(1, 6)]


@pytest.mark.parametrize("entry, where, text", [
    ({"corruption": "gausian_noise"}, "shifts[2].corruption", "Did you mean: gaussian_noise"),
    ({"corruption": "fog", "severity": 6}, "shifts[2].severity", "severity 6 is not one of"),
    ({"corruption": "fog", "severity": [1, "high"]}, "shifts[2].severity", "severity 'high'"),
    ({"corruption": "fog", "severity": True}, "shifts[2].severity", "severity True"),
    ({"corruption": "fog", "severity": []}, "shifts[2].severity", "empty list of severities"),
    ({"corruption": "greyscale", "severity": 3}, "shifts[2].severity", "has only severity 1"),
    ({"corruption": "fog", "sevrity": 3}, "shifts[2].sevrity", "Did you mean: severity"),
    ({"severity": 3}, "shifts[2]", "missing key 'corruption'"),
    ({"corruption": 3}, "shifts[2].corruption", "named by a string"),
    ("fog", "shifts[2]", "is a mapping"),
])
def test_spec_errors_are_located_with_a_way_out(entry, where, text):
    with pytest.raises(C.CorruptionError) as info:
        C.parse_corruptions(entry, where="shifts[2]")
    assert info.value.where == where and text in info.value.message and info.value.fix


# ---------------------------------------------------------------- where it plugs in: the eval transform

def _timm_transform():
    from timm.data import create_transform

    return create_transform(input_size=(3, 224, 224), interpolation="bicubic", crop_pct=0.875,
                            mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))


def test_split_eval_transform_equals_the_whole_on_clean_images():
    import torch
    from torchvision import transforms as T

    photo = Image.fromarray(natural_image(300, seed=1)[:, :260])
    clip_like = T.Compose([T.Resize(224, interpolation=T.InterpolationMode.BICUBIC), T.CenterCrop(224),
                           lambda im: im.convert("RGB"), T.ToTensor(),
                           T.Normalize((0.481, 0.458, 0.408), (0.269, 0.261, 0.276))])
    clip_like.transforms[2].__name__ = "_convert_to_rgb"  # what open_clip's plain function is called
    for transform in (_timm_transform(), clip_like):
        geometric, tensor_part = C.split_eval_transform(transform)
        crop = geometric(photo)
        assert crop.size == (224, 224)
        assert torch.equal(tensor_part(crop), transform(photo))
        corrupted = tensor_part(Image.fromarray(C.corrupt(np.asarray(crop.convert("RGB")), "fog", 2, seed=0)))
        assert corrupted.shape == (3, 224, 224) and not torch.equal(corrupted, transform(photo))


def test_corrupting_preprocess_is_a_drop_in_preprocess():
    import torch

    transform = _timm_transform()
    geometric, tensor_part = C.split_eval_transform(transform)
    pre = C.CorruptingPreprocess(transform, "gaussian_noise", 2, seed=3)
    photos = [Image.fromarray(natural_image(240, seed=k)) for k in (1, 2)]
    outs = [pre(p) for p in photos]
    for photo, out in zip(photos, outs):
        crop = np.asarray(geometric(photo).convert("RGB"))
        expected = tensor_part(Image.fromarray(C.corrupt(crop, "gaussian_noise", 2, 3, index=C.content_index(crop))))
        assert torch.equal(out, expected) and torch.equal(pre(photo), out)
    assert C.content_index(np.asarray(geometric(photos[0]))) != C.content_index(np.asarray(geometric(photos[1])))
    with pytest.raises(C.CorruptionError, match="Did you mean: fog"):
        C.CorruptingPreprocess(transform, "fogg", 1)


def test_split_refuses_transforms_it_cannot_split():
    from torchvision import transforms as T

    with pytest.raises(C.CorruptionError, match="not a torchvision Compose"):
        C.split_eval_transform(lambda im: im)
    with pytest.raises(C.CorruptionError, match=r"step 1 \(ColorJitter\) before ToTensor"):
        C.split_eval_transform(T.Compose([T.Resize(224), T.ColorJitter(0.4), T.ToTensor()]))
    with pytest.raises(C.CorruptionError, match="no ToTensor step"):
        C.split_eval_transform(T.Compose([T.Resize(224), T.CenterCrop(224)]))
    with pytest.raises(C.CorruptionError, match=r"step 2 \(RandomErasing\) after ToTensor"):
        C.split_eval_transform(T.Compose([T.CenterCrop(224), T.ToTensor(), T.RandomErasing()]))


# ---------------------------------------------------------------- the documented table stays true

def _fmt(p) -> str:
    if isinstance(p, np.ndarray):
        return f"{len(p)} zooms {p[0]:.2f}..{p[-1]:.2f} step {p[1] - p[0]:.2f}"
    if isinstance(p, tuple):
        return "(" + ", ".join(_fmt(v) for v in p) + ")"
    return f"{p:g}" if isinstance(p, float) else str(p)


def test_docs_table_lists_every_corruption_with_its_parameters():
    from support import REPO

    text = (REPO / "docs" / "corruptions.md").read_text(encoding="utf-8")
    for name, corruption in C.REGISTRY.items():
        cells = [_fmt(p) for p in corruption.params] + [""] * (5 - len(corruption.params))
        row = f"| `{name}` | {corruption.family} | " + " | ".join(cells) + " |"
        assert row in text, row
