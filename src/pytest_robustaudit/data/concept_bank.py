"""Concept banks: the labelled image groups that concept probing (issue 20) reads.

A concept bank is a set of concepts, each with its positive images; every image belongs to exactly
one concept.  Two kinds:

* a **folder bank** (:func:`folder_bank`): one sub-folder of images per concept, the layout Broden
  flattened to image level has.  Validated here with located errors (no concept folder, a concept
  folder without images, fewer images than the probe needs, images loose at the top level).
* the **built-in bank** (:func:`builtin_bank`): procedurally drawn RGB images of colours, textures
  (stripes, checkers, dots, noise at several scales and orientations) and shapes.  It needs no
  download, is generated at run time (never committed), and is byte-identical for one seed:
  every image draws from its own ``numpy.random.default_rng([seed, concept, image])`` stream and
  is drawn with integer and exactly-rounded float arithmetic (no ``sin``/``exp`` on arrays, whose
  last bit may differ between CPUs) and Pillow's fixed-point resampling.  :func:`write_builtin_bank`
  writes it as a folder bank (PNG files plus ``bank.json``), so the probe-image pipeline and the
  activation store read it like any folder; :func:`folder_bank` reads the kinds back from
  ``bank.json``.

Concept names sort the same way as :func:`~pytest_robustaudit.data.discover.discover` sorts class
folders, so a concept's index here equals its class index in the folder's ``ProbeSet``.
No pytest, no torch.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from ..errors import DataError
from .discover import IMAGE_EXTENSIONS

#: the file beside the concept folders that names each concept's kind and how it was drawn (optional
#: in a user's folder bank)
MANIFEST = "bank.json"
#: the most concepts and images a bank may hold: the probe keeps every image's row (float64) and an
#: images x (concepts x 2) indicator matrix in memory, about 0.7 GB at these limits on a 2048-wide layer
MAX_CONCEPTS = 1000
MAX_BANK_IMAGES = 20000
#: the largest bank.json read (a few hundred bytes per concept)
MAX_MANIFEST_BYTES = 16 << 20

#: a concept needs this many images by default: the probe's stratified cross-validation puts at
#: least one of them in every held-out fold (5 folds), and a direction's AUROC needs several
#: positives to mean anything
DEFAULT_MIN_IMAGES = 5

_SHOW = 5


class ConceptBankError(DataError):
    """A concept bank folder that cannot be probed; ``where`` is the offending path."""

    def __init__(self, message: object = "", *, where: object = None, fix: str = ""):
        super().__init__(message, where=where, fix=fix, key="concepts")


@dataclass(frozen=True)
class Concept:
    """One concept of a folder bank: its name (the folder's name), kind and image files (sorted)."""

    name: str
    kind: str
    paths: tuple[Path, ...]
    description: str = ""


@dataclass(frozen=True)
class ConceptBank:
    """A validated folder bank: concepts sorted by name, each with at least ``min_images`` images."""

    root: Path
    concepts: tuple[Concept, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.concepts)

    def images(self) -> tuple[list[Path], np.ndarray]:
        """Every image path, concept by concept, and each image's concept index (the ``labels`` that
        :func:`~pytest_robustaudit.metrics.concepts.probe_concepts` takes)."""
        paths: list[Path] = []
        labels: list[int] = []
        for index, concept in enumerate(self.concepts):
            paths.extend(concept.paths)
            labels.extend([index] * len(concept.paths))
        return paths, np.asarray(labels, dtype=np.int64)


def _summarise(items: list[str], show: int = _SHOW) -> str:
    head = ", ".join(items[:show])
    return head + (f" (and {len(items) - show} more)" if len(items) > show else "")


def _is_image(name: str) -> bool:
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def _images_under(folder: Path) -> tuple[list[Path], int]:
    """The non-hidden image files under ``folder`` (recursively, sorted by relative POSIX path) and
    how many other non-hidden files sit there."""
    found: list[tuple[str, Path]] = []
    others = 0
    seen: set[str] = set()
    for current, dirs, files in os.walk(folder, followlinks=True):
        real = os.path.realpath(current)
        if real in seen:  # a link loop, or a folder linked twice: read each real folder once
            dirs[:] = []
            continue
        seen.add(real)
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in files:
            if name.startswith("."):
                continue
            path = Path(current) / name
            if _is_image(name):
                found.append((path.relative_to(folder).as_posix(), path))
            else:
                others += 1
    found.sort()
    return [p for _, p in found], others


def _read_manifest(root: Path) -> dict[str, dict]:
    from ..files import read_json

    path = root / MANIFEST
    if not path.is_file():
        return {}
    try:
        data = read_json(path, MAX_MANIFEST_BYTES)   # regular files only, nesting bounded
        return {entry["name"]: entry for entry in data["concepts"]}
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ConceptBankError(f"unreadable concept manifest ({error})", where=path,
                               fix=f"delete {MANIFEST} (kinds then default to 'folder') or rewrite it as "
                                   '{"concepts": [{"name": ..., "kind": ...}, ...]}') from None


def folder_bank(path: str | Path, *, min_images: int = DEFAULT_MIN_IMAGES) -> ConceptBank:
    """Read and validate a folder bank: every non-hidden sub-folder of ``path`` is a concept, its
    images (searched recursively) are the concept's positives.

    Raises :class:`ConceptBankError` naming the path when the folder is missing or a file, has fewer
    than two concept folders (a one-vs-rest probe needs a rest), has images directly at its top
    level (they would belong to no concept), or has concept folders with no image or with fewer
    than ``min_images`` images; all offending folders are listed together.
    """
    root = Path(path)
    if not root.exists():
        raise ConceptBankError("concept bank folder not found", where=root,
                               fix="correct the path, or use the built-in bank (`concepts: builtin`)")
    if not root.is_dir():
        raise ConceptBankError("a concept bank must be a folder with one sub-folder of images per concept, "
                               "but this is a file", where=root,
                               fix=f"point at the folder that holds the concept folders ({root.parent})")
    entries = sorted(e for e in os.listdir(root) if not e.startswith("."))
    loose = [e for e in entries if (root / e).is_file() and _is_image(e)]
    if loose:
        raise ConceptBankError(
            f"{len(loose)} image(s) sit directly in the bank folder, outside any concept folder: {_summarise(loose)}",
            where=root, fix="move each image into the sub-folder named after its concept")
    folders = [e for e in entries if (root / e).is_dir()]
    if len(folders) < 2:
        raise ConceptBankError(
            f"a concept bank needs at least two concept sub-folders (a concept is probed against the rest), "
            f"found {len(folders)}{': ' + folders[0] if folders else ''}", where=root,
            fix="put one sub-folder of images per concept in this folder")
    if len(folders) > MAX_CONCEPTS:
        raise ConceptBankError(
            f"the bank holds {len(folders)} concept folders, more than the {MAX_CONCEPTS} a bank may hold (the probe "
            f"keeps an images x concepts matrix in memory)", where=root,
            fix=f"split the concepts over several banks (and specs) of at most {MAX_CONCEPTS}, or keep the concepts "
                "you need (docs/concepts.md#limits)")
    manifest = _read_manifest(root)
    empty: list[str] = []
    short: list[str] = []
    concepts: list[Concept] = []
    for name in folders:
        paths, others = _images_under(root / name)
        if not paths:
            empty.append(f"{name}/" + (f" ({others} non-image file(s))" if others else ""))
        elif len(paths) < min_images:
            short.append(f"{name}/ ({len(paths)})")
        entry = manifest.get(name, {})
        concepts.append(Concept(name=name, kind=str(entry.get("kind", "folder")), paths=tuple(paths),
                                description=str(entry.get("description", ""))))
    total = sum(len(c.paths) for c in concepts)
    if total > MAX_BANK_IMAGES:
        raise ConceptBankError(
            f"the bank holds {total} images, more than the {MAX_BANK_IMAGES} a bank may hold (every image's row is "
            f"probed in memory)", where=root,
            fix=f"use fewer images per concept (a few dozen each is plenty), at most {MAX_BANK_IMAGES} in all "
                "(docs/concepts.md#limits)")
    if empty:
        raise ConceptBankError(
            f"{len(empty)} concept folder(s) hold no image ({', '.join(IMAGE_EXTENSIONS)}): {_summarise(empty)}",
            where=root, fix="add images to them or remove them")
    if short:
        raise ConceptBankError(
            f"{len(short)} concept folder(s) have fewer than {min_images} images: {_summarise(short)}",
            where=root, fix=f"give every concept at least {min_images} images, remove those concepts, or lower "
                            "the minimum")
    return ConceptBank(root=root, concepts=tuple(concepts))


# ---------------------------------------------------------------------------------------------
# The built-in bank


@dataclass(frozen=True)
class ConceptSpec:
    """A built-in concept: its name, kind (colour, texture, shape) and how each image is drawn."""

    name: str
    kind: str
    description: str
    draw: Callable[[np.random.Generator, int], np.ndarray]


#: named colours (RGB) of the colour concepts
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30), "orange": (245, 140, 20), "yellow": (240, 225, 40), "green": (40, 170, 50),
    "cyan": (40, 210, 220), "blue": (30, 60, 220), "purple": (130, 40, 180), "pink": (250, 150, 200),
    "brown": (120, 70, 30), "black": (15, 15, 15), "white": (240, 240, 240), "grey": (128, 128, 128),
}


def _coords(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates in [-1, 1), ``y`` down the rows, ``x`` along the columns."""
    axis = (np.arange(size, dtype=np.float64) * 2.0 + 1.0) / size - 1.0
    return np.meshgrid(axis, axis, indexing="ij")


def _two_colours(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Two random colours far enough apart (max channel gap >= 96) that a pattern between them shows."""
    while True:
        a, b = rng.integers(0, 256, size=(2, 3))
        if np.abs(a - b).max() >= 96:
            return a.astype(np.float64), b.astype(np.float64)


def _paint(mask: np.ndarray, fg: np.ndarray, bg: np.ndarray) -> np.ndarray:
    """uint8 RGB image: ``fg`` where ``mask`` (bool or weights in [0, 1]) is set, ``bg`` elsewhere."""
    weight = mask.astype(np.float64)[..., None]
    return np.rint(weight * fg + (1.0 - weight) * bg).clip(0, 255).astype(np.uint8)


def _grain(rng: np.random.Generator, image: np.ndarray, amplitude: int = 8) -> np.ndarray:
    """Integer pixel noise in [-amplitude, amplitude] so no two images of a concept are alike."""
    noise = rng.integers(-amplitude, amplitude + 1, size=image.shape)
    return (image.astype(np.int64) + noise).clip(0, 255).astype(np.uint8)


def _colour(name: str) -> Callable[[np.random.Generator, int], np.ndarray]:
    base = np.asarray(COLOURS[name], dtype=np.int64)

    def draw(rng: np.random.Generator, size: int) -> np.ndarray:
        # the colour, shifted per image by up to 20 per channel, with a gentle linear shading and grain
        shift = rng.integers(-20, 21, size=3)
        colour = (base + shift).clip(0, 255).astype(np.float64)
        y, x = _coords(size)
        gx, gy = rng.integers(-12, 13, size=2)
        shade = (x * gx + y * gy)[..., None]
        image = np.rint(colour + shade).clip(0, 255).astype(np.uint8)
        return _grain(rng, np.broadcast_to(image, (size, size, 3)).copy())

    return draw


def _stripes(angle_deg: int, periods: tuple[int, int]) -> Callable[[np.random.Generator, int], np.ndarray]:
    theta = math.radians(angle_deg)
    cos_t, sin_t = math.cos(theta), math.sin(theta)

    def draw(rng: np.random.Generator, size: int) -> np.ndarray:
        # hard-edged stripes across ``angle_deg`` (0 = vertical bars varying along x), ``period`` = one
        # stripe's width in pixels of a 224-px image, jittered by +-2 degrees and a random phase
        period = rng.integers(periods[0], periods[1] + 1) * size / 224.0
        jitter = rng.integers(-2, 3)
        c = cos_t * math.cos(math.radians(jitter)) - sin_t * math.sin(math.radians(jitter))
        s = sin_t * math.cos(math.radians(jitter)) + cos_t * math.sin(math.radians(jitter))
        y, x = _coords(size)
        t = (x * c + y * s) * (size / 2.0) + rng.integers(0, 1000)
        mask = np.floor(t / period).astype(np.int64) % 2 == 0
        return _grain(rng, _paint(mask, *_two_colours(rng)))

    return draw


def _checkers(diagonal: bool, periods: tuple[int, int]) -> Callable[[np.random.Generator, int], np.ndarray]:
    def draw(rng: np.random.Generator, size: int) -> np.ndarray:
        # a checkerboard of square cells (period = one cell), axis-aligned or turned by 45 degrees
        period = rng.integers(periods[0], periods[1] + 1) * size / 224.0
        y, x = _coords(size)
        u, v = (x + y, x - y) if diagonal else (x, y)
        scale = size / (2.0 * (math.sqrt(2.0) if diagonal else 1.0))
        ox, oy = rng.integers(0, 1000, size=2)
        cells = np.floor(u * scale / period + ox).astype(np.int64) + np.floor(v * scale / period + oy).astype(np.int64)
        return _grain(rng, _paint(cells % 2 == 0, *_two_colours(rng)))

    return draw


def _dots(spacings: tuple[int, int], radius_share: float) -> Callable[[np.random.Generator, int], np.ndarray]:
    def draw(rng: np.random.Generator, size: int) -> np.ndarray:
        # round dots on a square grid (spacing in px of a 224-px image), each dot moved by up to a
        # quarter spacing so the grid is not perfect
        spacing = rng.integers(spacings[0], spacings[1] + 1) * size / 224.0
        radius = radius_share * spacing
        n = int(size // spacing) + 2
        offsets = rng.uniform(-0.25, 0.25, size=(n, n, 2)) * spacing
        rows, cols = np.mgrid[0:size, 0:size].astype(np.float64) + 0.5
        i = np.floor(rows / spacing).astype(np.int64)
        j = np.floor(cols / spacing).astype(np.int64)
        cy = (i + 0.5) * spacing + offsets[i, j, 0]
        cx = (j + 0.5) * spacing + offsets[i, j, 1]
        mask = (rows - cy) ** 2 + (cols - cx) ** 2 <= radius * radius
        return _grain(rng, _paint(mask, *_two_colours(rng)))

    return draw


def _noise(cells: int) -> Callable[[np.random.Generator, int], np.ndarray]:
    def draw(rng: np.random.Generator, size: int) -> np.ndarray:
        # value noise: a ``cells`` x ``cells`` grid of random grey levels, bicubic-upsampled by Pillow
        # (fixed-point, so exact), then mapped between two random colours
        from PIL import Image

        grid = rng.integers(0, 256, size=(cells, cells), dtype=np.uint8)
        smooth = np.asarray(Image.fromarray(grid, mode="L").resize((size, size), Image.BICUBIC), dtype=np.float64)
        return _grain(rng, _paint(smooth / 255.0, *_two_colours(rng)), amplitude=4)

    return draw


def _shape(mask_of: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> Callable[[np.random.Generator, int], np.ndarray]:
    def draw(rng: np.random.Generator, size: int) -> np.ndarray:
        # one filled shape, of random colour, size (radius 0.35-0.6 of the half-width), position and
        # rotation (multiples of 5 degrees), on a plain background of another colour
        radius = rng.integers(35, 61) / 100.0
        cy, cx = rng.integers(-25, 26, size=2) / 100.0
        angle = math.radians(5 * int(rng.integers(0, 72)))
        y, x = _coords(size)
        dy, dx = (y - cy) / radius, (x - cx) / radius
        u = dx * math.cos(angle) + dy * math.sin(angle)
        v = -dx * math.sin(angle) + dy * math.cos(angle)
        return _grain(rng, _paint(mask_of(u, v), *_two_colours(rng)))

    return draw


def _circle(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return u * u + v * v <= 1.0


def _ring(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    r2 = u * u + v * v
    return (r2 <= 1.0) & (r2 >= 0.5)


def _square(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return np.maximum(np.abs(u), np.abs(v)) <= 0.75


def _triangle(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    # equilateral, circumradius 1: three half-planes at 120 degrees
    half = math.sqrt(3.0) / 2.0
    return (v <= 0.5) & (half * u - 0.5 * v <= 0.5) & (-half * u - 0.5 * v <= 0.5)


def _cross(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return ((np.abs(u) <= 0.25) & (np.abs(v) <= 1.0)) | ((np.abs(v) <= 0.25) & (np.abs(u) <= 1.0))


def _diamond(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return np.abs(u) * 0.7 + np.abs(v) <= 1.0


def _builtin_concepts() -> tuple[ConceptSpec, ...]:
    specs: list[ConceptSpec] = []
    for name, rgb in COLOURS.items():
        specs.append(ConceptSpec(f"colour-{name}", "colour",
                                 f"the whole image RGB{rgb}, +-20 per channel per image, a linear shading of up to "
                                 "+-12 levels and +-8 grain", _colour(name)))
    for angle, label in ((0, "vertical"), (45, "diagonal-45"), (90, "horizontal"), (135, "diagonal-135")):
        for scale, periods in (("fine", (6, 10)), ("coarse", (24, 40))):
            specs.append(ConceptSpec(
                f"stripes-{label}-{scale}", "texture",
                f"two-colour hard-edged stripes, bars {label} (+-2 degrees), each stripe "
                f"{periods[0]}-{periods[1]} px wide at 224 px", _stripes(angle, periods)))
    for diagonal in (False, True):
        for scale, periods in (("fine", (6, 10)), ("coarse", (24, 40))):
            label = "diagonal" if diagonal else "square"
            specs.append(ConceptSpec(
                f"checkers-{label}-{scale}", "texture",
                f"two-colour checkerboard, cells {periods[0]}-{periods[1]} px at 224 px, "
                f"{'turned by 45 degrees' if diagonal else 'axis-aligned'}", _checkers(diagonal, periods)))
    for scale, spacings, share in (("small", (10, 16), 0.3), ("large", (36, 56), 0.3)):
        specs.append(ConceptSpec(
            f"dots-{scale}", "texture",
            f"two-colour round dots of radius 0.3 x spacing on a jittered grid, spacing {spacings[0]}-{spacings[1]} "
            "px at 224 px", _dots(spacings, share)))
    for scale, cells in (("fine", 56), ("medium", 14), ("coarse", 4)):
        specs.append(ConceptSpec(
            f"noise-{scale}", "texture",
            f"value noise between two colours: a {cells}x{cells} grid of random levels, bicubic-upsampled",
            _noise(cells)))
    for name, mask in (("circle", _circle), ("ring", _ring), ("square", _square), ("triangle", _triangle),
                       ("cross", _cross), ("diamond", _diamond)):
        specs.append(ConceptSpec(
            f"shape-{name}", "shape",
            f"one filled {name} of random colour, size, position and rotation on a plain background of another "
            "colour", _shape(mask)))
    return tuple(sorted(specs, key=lambda s: s.name))


#: every built-in concept, sorted by name (the order of the folder bank written from it)
BUILTIN_CONCEPTS: tuple[ConceptSpec, ...] = _builtin_concepts()


def builtin_bank(seed: int = 0, images_per_concept: int = 10, size: int = 224,
                 concepts: tuple[str, ...] | None = None) -> Iterator[tuple[str, str, list[np.ndarray]]]:
    """Yield ``(concept name, kind, images)`` for every built-in concept (or those named in ``concepts``),
    sorted by name; ``images`` are ``size`` x ``size`` x 3 uint8 arrays.

    Image ``i`` of the concept at position ``c`` of :data:`BUILTIN_CONCEPTS` draws only from
    ``numpy.random.default_rng([seed, c, i])``, so the bank is byte-identical for one seed (and one
    numpy and Pillow), a concept's images do not depend on which other concepts are asked for, and
    asking for more images keeps the first ones.
    """
    if images_per_concept < 1 or size < 8:
        raise ValueError(f"images_per_concept must be >= 1 and size >= 8, got {images_per_concept}, {size}")
    wanted = None if concepts is None else set(concepts)
    known = {s.name for s in BUILTIN_CONCEPTS}
    if wanted is not None and wanted - known:
        raise ConceptBankError(f"unknown built-in concept(s): {', '.join(sorted(wanted - known))}",
                               where="concepts", fix=f"use names from: {', '.join(sorted(known))}")
    for index, spec in enumerate(BUILTIN_CONCEPTS):
        if wanted is not None and spec.name not in wanted:
            continue
        images = [spec.draw(np.random.default_rng([seed, index, i]), size) for i in range(images_per_concept)]
        yield spec.name, spec.kind, images


def write_builtin_bank(folder: str | Path, seed: int = 0, images_per_concept: int = 10, size: int = 224,
                       concepts: tuple[str, ...] | None = None) -> ConceptBank:
    """Write the built-in bank as a folder bank: ``<folder>/<concept>/<concept>_<i>.png`` and
    ``bank.json`` (seed, size, a SHA-256 of every image's pixels, each concept's kind and how it is
    drawn), and return it read back by :func:`folder_bank`.  PNG is lossless, so the decoded pixels
    are exactly the generated arrays.  A folder that already holds the bank written with the same
    settings is read back as it is; any other non-empty folder is refused (ConceptBankError)."""
    from PIL import Image

    root = Path(folder)
    wanted = [s.name for s in BUILTIN_CONCEPTS if concepts is None or s.name in set(concepts)]
    if root.is_dir() and any(not e.startswith(".") for e in os.listdir(root)):
        try:
            written = json.loads((root / MANIFEST).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            written = {}
        same = (written.get("builtin") is True and written.get("seed") == seed and written.get("size") == size
                and written.get("images_per_concept") == images_per_concept
                and [e.get("name") for e in written.get("concepts", [])] == wanted)
        if not same:
            raise ConceptBankError("the folder is not empty and holds no built-in bank drawn with these settings",
                                   where=root, fix="write the built-in bank to a new or empty folder")
        return folder_bank(root, min_images=min(images_per_concept, DEFAULT_MIN_IMAGES))
    root.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    entries = []
    described = {s.name: s for s in BUILTIN_CONCEPTS}
    for name, kind, images in builtin_bank(seed, images_per_concept, size, concepts):
        sub = root / name
        sub.mkdir(exist_ok=True)
        for i, image in enumerate(images):
            digest.update(image.tobytes())
            Image.fromarray(image, mode="RGB").save(sub / f"{name}_{i:03d}.png", optimize=False)
        entries.append({"name": name, "kind": kind, "description": described[name].description})
    manifest = {"builtin": True, "seed": seed, "images_per_concept": images_per_concept, "size": size,
                "pixels_sha256": digest.hexdigest(), "concepts": entries}
    (root / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    return folder_bank(root, min_images=min(images_per_concept, DEFAULT_MIN_IMAGES))


def bank_digest(seed: int = 0, images_per_concept: int = 10, size: int = 224,
                concepts: tuple[str, ...] | None = None) -> str:
    """SHA-256 of the built-in bank's pixels (what :func:`write_builtin_bank` records in ``bank.json``)."""
    digest = hashlib.sha256()
    for _, _, images in builtin_bank(seed, images_per_concept, size, concepts):
        for image in images:
            digest.update(image.tobytes())
    return digest.hexdigest()
