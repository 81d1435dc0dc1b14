"""Decode probe images and stream them through a model's eval transform.

:func:`iter_batches` decodes the files of a :class:`~.discover.ProbeSet` with Pillow, converts every
image mode to RGB, applies the checkpoint's own ``preprocess`` and yields stacked batches.  It
streams (memory holds about two batches, whatever the folder size), and a file that cannot be
decoded is recorded as a :class:`SkippedImage` instead of aborting an audit that has already spent
minutes on a model.  Torch and Pillow are imported inside the functions that need them.
"""

from __future__ import annotations

import os
import warnings
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

from ..errors import DataError, RobustAuditWarning, file_kind
from .discover import _SHOW, ProbeSet

if TYPE_CHECKING:  # pragma: no cover - typing only
    import torch
    from PIL import Image as PILImage


@dataclass(frozen=True)
class SkippedImage:
    """A probe file that could not be decoded, and a short reason (for the report)."""

    path: Path
    reason: str


# --------------------------------------------------------------------------------------------
# discovery
# --------------------------------------------------------------------------------------------


_ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})


def _high_bit_depth_to_l(im: PILImage.Image) -> PILImage.Image:
    """Map a 16/32-bit integer or float greyscale image to 8-bit ``L`` by its value range.

    Pillow's own ``convert("RGB")`` clips these at 255, which turns a normal 16-bit photograph
    almost white.  We scale instead: ``I;16*`` by its full 16-bit range; ``I`` and ``F`` by the
    range their values actually use (``[0, 1]`` floats and ``[0, 255]`` values are kept as is,
    values up to 65535 are read as 16-bit, anything else is min-max stretched).
    """
    import numpy as np
    from PIL import Image

    arr = np.asarray(im)
    if im.mode.startswith("I;16"):
        scaled = arr.astype(np.float64) / 257.0
    else:
        arr = arr.astype(np.float64)
        finite = arr[np.isfinite(arr)]
        lo = float(finite.min()) if finite.size else 0.0
        hi = float(finite.max()) if finite.size else 0.0
        if im.mode == "F" and lo >= 0.0 and hi <= 1.0:
            scaled = arr * 255.0
        elif lo >= 0.0 and hi <= 255.0:
            scaled = arr
        elif lo >= 0.0 and hi <= 65535.0:
            scaled = arr / 257.0
        else:
            scaled = (arr - lo) / (hi - lo) * 255.0 if hi > lo else np.zeros_like(arr)
        scaled = np.nan_to_num(scaled, nan=0.0, posinf=255.0, neginf=0.0)
    out = np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
    return Image.fromarray(out, mode="L")


def _to_rgb(im: PILImage.Image) -> PILImage.Image:
    """Convert any Pillow mode to RGB, compositing transparency onto white.

    Transparent pixels (``RGBA``, ``LA``, ``PA`` and palette images with a transparent entry) are
    composited onto an opaque white background, the way browsers and image viewers show them,
    instead of Pillow's plain ``convert("RGB")``, which drops alpha and exposes whatever colour
    the transparent pixels happen to store (often black).  Other modes (``1``, ``L``, ``P``,
    ``CMYK``, ``YCbCr``, ``LAB``, ``HSV``, ...) use Pillow's conversion; 16/32-bit and float
    greyscale is rescaled to 8 bits first (see :func:`_high_bit_depth_to_l`).
    """
    from PIL import Image

    mode = im.mode
    if mode == "RGB":
        return im
    if mode.startswith("I;16") or mode in ("I", "F"):
        return _high_bit_depth_to_l(im).convert("RGB")
    if mode == "P" and "transparency" not in im.info:
        return im.convert("RGB")
    if mode in _ALPHA_MODES or mode == "P":
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return im.convert("RGB")


def load_rgb(path: Path | str) -> PILImage.Image:
    """Decode one file fully and return it as an RGB Pillow image.

    ``Image.open`` only reads the header; ``load()`` decodes the pixels now, inside this call, so
    a damaged file fails here (where the caller can skip it) and the file handle is closed before
    returning.  Only the first frame of an animated GIF or multi-page TIFF is used.  EXIF
    orientation is *not* applied, matching torchvision's and timm's ImageNet loaders, so the
    pixels a model sees are those its published accuracy was measured on.

    A truncated file raises ``OSError`` (Pillow's default, ``ImageFile.LOAD_TRUNCATED_IMAGES =
    False``, which this module never changes) rather than coming back half grey.
    """
    from PIL import Image

    special = _not_regular(Path(path))   # a FIFO would block for ever: never opened, whoever asks
    if special:
        raise OSError(f"{Path(path).name}: {special}")
    with Image.open(path) as im:
        im.load()
        rgb = _to_rgb(im)
        if rgb is im:
            rgb = im.copy()  # detach from the file object before it is closed
    return rgb


def _reason(error: BaseException, path: Path) -> str:
    """A one-line, path-free explanation of why ``path`` could not be decoded."""
    from PIL import Image, UnidentifiedImageError

    if isinstance(error, UnidentifiedImageError):
        return "not an image Pillow can read (unknown or damaged format)"
    if isinstance(error, Image.DecompressionBombError):
        return f"too many pixels, refused as a possible decompression bomb ({error})"
    text = str(error).replace(str(path), path.name).strip() or "no details"
    if isinstance(error, OSError) and "truncated" in text:
        return f"truncated image file ({text})"
    text = " ".join(text.split())
    if len(text) > 160:
        text = text[:157] + "..."
    return f"could not decode: {type(error).__name__}: {text}"


def _decode_one(path: Path, preprocess: Callable[[Any], Any]) -> Any:
    """Decode and transform one file: a tensor, or a :class:`SkippedImage` if the file is bad.

    Only decoding errors (anything raised while Pillow opens, loads or converts the file) mark a
    file as skipped: they are properties of the file.  An error raised by ``preprocess`` on a
    correctly decoded image is a bug in the transform and propagates with its traceback.
    """
    special = _not_regular(path)
    if special:
        return SkippedImage(path=path, reason=special)
    try:
        image = load_rgb(path)
    except Exception as error:  # noqa: BLE001 - Pillow raises many types for damaged files
        return SkippedImage(path=path, reason=_reason(error, path))
    return preprocess(image)


def _not_regular(path: Path) -> str:
    """Why ``path`` must not be opened ("" for a regular file).

    Only regular files are opened: opening a FIFO named ``x.jpg`` blocks until someone writes to
    it (for ever, in CI), and a device or socket is never an image.  ``stat`` does not block.
    """
    import stat

    try:
        mode = os.stat(path).st_mode
    except OSError as error:
        return f"cannot be read: {error.strerror or error}"
    if stat.S_ISREG(mode):
        return ""
    return f"not a regular file ({file_kind(path)}), so it is not opened"


def _check_tensor(out: Any, path: Path, first_shape: tuple[int, ...] | None) -> tuple[int, ...]:
    import torch

    if not isinstance(out, torch.Tensor) or out.ndim != 3 or out.shape[0] != 3:
        got = (
            f"a tensor of shape {tuple(out.shape)}"
            if isinstance(out, torch.Tensor)
            else f"{type(out).__name__}"
        )
        raise TypeError(
            f"preprocess must turn an RGB PIL image into a tensor of shape [3, H, W], "
            f"but for {path} it returned {got}"
        )
    shape = tuple(out.shape)
    if first_shape is not None and shape != first_shape:
        raise ValueError(
            f"preprocess returned a tensor of shape {shape} for {path} but {first_shape} for "
            "earlier images; images cannot be batched unless the transform crops or resizes to "
            "one fixed size"
        )
    return shape


def _decoded(
    probe: ProbeSet, preprocess: Callable[[Any], Any], workers: int, window: int
) -> Iterator[tuple[int, Any]]:
    """Yield ``(index, tensor or SkippedImage)`` in probe order, decoding ahead by ``window``.

    With ``workers > 0`` files are decoded in a thread pool (Pillow and torchvision release the
    GIL while decoding and resizing), but results are taken in submission order, so the output
    is identical to ``workers == 0``.  At most ``window`` images are in flight, which bounds
    memory no matter how large the folder is.
    """
    paths = [image.path for image in probe.images]
    if workers <= 0:
        for index, path in enumerate(paths):
            yield index, _decode_one(path, preprocess)
        return

    from concurrent.futures import ThreadPoolExecutor

    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="robustaudit-decode")
    try:
        pending: deque = deque()
        upcoming = iter(enumerate(paths))
        for index, path in upcoming:
            pending.append((index, pool.submit(_decode_one, path, preprocess)))
            if len(pending) >= window:
                break
        while pending:
            index, future = pending.popleft()
            result = future.result()
            for next_index, next_path in upcoming:
                pending.append((next_index, pool.submit(_decode_one, next_path, preprocess)))
                break
            yield index, result
    finally:
        # A consumer that stops early (an error, a break) must not leave decodes running.
        pool.shutdown(wait=True, cancel_futures=True)


def iter_batches(
    probe: ProbeSet,
    preprocess: Callable[[Any], Any],
    batch_size: int,
    workers: int = 0,
    skipped: list[SkippedImage] | None = None,
) -> Iterator[tuple[torch.Tensor, list[int]]]:
    """Stream ``probe`` as ``(batch, indices)``: a ``[B, 3, H, W]`` tensor and the positions in
    ``probe.images`` of its rows.

    Each file is decoded with Pillow, converted to RGB (see :func:`load_rgb`; transparency is
    composited onto white) and passed to ``preprocess``, the checkpoint's eval transform (a
    torchvision-style callable from a PIL image to a ``[3, H, W]`` tensor; it must be thread-safe
    when ``workers > 0``, as torchvision, timm and open_clip eval transforms are).  Batches are
    full (``batch_size`` rows) except the last, whatever was skipped, so batch composition
    depends only on the probe set and on which files are readable.

    A file that cannot be decoded (not an image, corrupt, truncated, too many pixels) is
    appended to ``skipped`` with a short reason and the iteration goes on.  ``skipped`` is a list
    the caller owns so the skips can be reported next to the results; it is required (passing
    None is a TypeError) so that no caller drops them silently.  If *no* image can be decoded a
    :class:`DataError` is raised at the end, listing the first reasons.

    ``workers > 0`` decodes in that many threads; rows come out in the same order with the same
    values as ``workers == 0``.  Memory holds at most about two batches of images at a time.
    """
    import torch
    from PIL import ImageFile

    if skipped is None:
        raise TypeError(
            "iter_batches() needs a list for `skipped`: unreadable images are recorded there "
            "so they can be reported"
        )
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
        raise ValueError(f"workers must be an int >= 0, got {workers!r}")
    if ImageFile.LOAD_TRUNCATED_IMAGES:
        warnings.warn(
            "PIL.ImageFile.LOAD_TRUNCATED_IMAGES is True in this process (set by some other "
            "code): truncated probe images will be decoded with grey filler instead of being "
            "skipped and reported",
            RobustAuditWarning,
            stacklevel=2,
        )

    window = max(batch_size, workers)
    rows: list[torch.Tensor] = []
    indices: list[int] = []
    shape: tuple[int, ...] | None = None
    decoded = 0
    mine: list[SkippedImage] = []
    for index, result in _decoded(probe, preprocess, workers, window):
        if isinstance(result, SkippedImage):
            skipped.append(result)
            mine.append(result)
            continue
        shape = _check_tensor(result, probe.images[index].path, shape)
        rows.append(result)
        indices.append(index)
        decoded += 1
        if len(rows) == batch_size:
            batch = torch.stack(rows)
            rows, out_indices, indices = [], indices, []
            yield batch, out_indices
    if rows:
        yield torch.stack(rows), indices

    if decoded == 0 and mine:
        raise DataError(
            f"none of the {len(probe.images)} probe image(s) under {probe.root} could be decoded: "
            f"{describe_skipped(mine, len(probe.images))}", where="",
            fix="check that data.path points at real image files (JPEG, PNG, ...) that open in an image viewer")


def describe_skipped(skipped: list[SkippedImage], total: int, show: int = _SHOW) -> str:
    """One short paragraph for reports: how many files were skipped, and the first few reasons."""
    if not skipped:
        return f"all {total} image(s) decoded"
    head = "; ".join(f"{s.path.name}: {s.reason}" for s in skipped[:show])
    more = f"; and {len(skipped) - show} more" if len(skipped) > show else ""
    return f"{len(skipped)} of {total} image(s) skipped ({head}{more})"
