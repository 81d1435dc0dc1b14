"""Find and label the probe images of a spec (no file is opened here).

:func:`discover` turns a :class:`~pytest_robustaudit.spec.schema.DataSpec` into a :class:`ProbeSet`:
a sorted, optionally subsampled, labelled list of files.  Everything about it is deterministic,
because the audit's numbers (and any cache keyed on the probe data) must not depend on the order
in which the file system happens to list a folder.
"""

from __future__ import annotations

import os
import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import DataError

if TYPE_CHECKING:  # the spec stage imports this one for its vocabulary (LABEL_MODES)
    from ..spec.schema import DataSpec

IMAGE_EXTENSIONS: tuple[str, ...] = (
    ".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff",
)

#: Values of ``data.labels``.  ``auto`` is resolved by :func:`discover`; a :class:`ProbeSet`
#: always carries one of the other three.
LABEL_MODES: tuple[str, ...] = ("auto", "folder", "wnid", "none")

#: A WordNet id at the start of a file name, as ImageNet names its files (``n01440764_10026.JPEG``).
#: The id must not run on into more digits, so ``n123456789.jpg`` is not taken for ``n12345678``.
_WNID = re.compile(r"^(n\d{8})(?!\d)")

#: Shown in error messages: how many offending paths to name before summarising the rest.
_SHOW = 5

@dataclass(frozen=True)
class ProbeImage:
    """One probe file and its label (a class folder name, a WordNet id, or None)."""

    path: Path
    label: str | None


@dataclass(frozen=True)
class ProbeSet:
    """The probe images an audit runs on, in a fixed order.

    ``images`` are sorted by their path relative to ``root`` (POSIX spelling), so the same folder
    gives the same order on every OS and file system.  ``label_mode`` is the resolved mode
    (``folder``, ``wnid`` or ``none``; never ``auto``).  ``classes`` are the distinct labels of
    *every* image found, sorted, so a label's index does not change when ``limit`` picks a subset
    (for a ``wnid`` folder holding all 1000 ImageNet-1k classes this is the ImageNet class index).
    ``total_found`` counts the images found before ``limit`` was applied.
    """

    root: Path
    images: tuple[ProbeImage, ...]
    label_mode: str
    classes: tuple[str, ...]
    total_found: int

    def __len__(self) -> int:
        return len(self.images)

    @property
    def targets(self) -> tuple[int, ...] | None:
        """Each image's label as an index into ``classes`` (None when the set is unlabelled)."""
        if self.label_mode == "none":
            return None
        index = {name: i for i, name in enumerate(self.classes)}
        return tuple(index[image.label] for image in self.images)  # type: ignore[index]


def _is_image_name(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def _walk(root: Path) -> tuple[list[str], list[str]]:
    """Every non-hidden file under ``root``: (image files, other files), as relative POSIX paths.

    Hidden names (a leading dot: ``.DS_Store``, ``.ipynb_checkpoints/``, ``._foo.jpg`` resource
    forks written by macOS) are skipped because they are never probe images, and AppleDouble
    ``._*.jpg`` files in particular would otherwise show up as "corrupt images".  Symlinked
    folders are followed, each real folder once (a visited set of real paths), so a dataset
    assembled from links works and a link loop cannot hang discovery.  A folder that cannot be
    listed (no permission) is a :class:`DataError` naming it, never silently empty: the audit's
    numbers would otherwise depend on who runs it.  Special files (a FIFO, a socket) are listed
    here like any file; decoding skips them with their reason (it opens only regular files).
    """
    images: list[str] = []
    others: list[str] = []
    seen: set[str] = set()
    unreadable: list[OSError] = []
    for current, dirs, files in os.walk(root, followlinks=True, onerror=unreadable.append):
        real = os.path.realpath(current)
        if real in seen:
            dirs[:] = []
            continue
        seen.add(real)
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        rel_dir = Path(current).relative_to(root)
        for name in files:
            if name.startswith("."):
                continue
            rel = (rel_dir / name).as_posix()
            (images if _is_image_name(name) else others).append(rel)
    if unreadable:
        first = unreadable[0]
        folder = first.filename or root
        more = f" (and {len(unreadable) - 1} more folder(s))" if len(unreadable) > 1 else ""
        raise DataError(f"cannot list the folder {folder}: {first.strerror or first}{more}",
                        fix="make it readable by the user running the audit (e.g. chmod -R u+rX), or point "
                            "data.path elsewhere")
    images.sort()
    others.sort()
    return images, others


def _summarise(items: list[str], show: int = _SHOW) -> str:
    head = ", ".join(items[:show])
    return head + (f" (and {len(items) - show} more)" if len(items) > show else "")


def _folder_label(rel: str) -> str | None:
    parts = rel.split("/")
    return parts[0] if len(parts) > 1 else None


def _wnid_label(rel: str) -> str | None:
    match = _WNID.match(rel.rsplit("/", 1)[-1])
    return match.group(1) if match else None


def _resolve_labels(spec: DataSpec, root: Path, rels: list[str]) -> tuple[str, list[str | None]]:
    """Pick the label mode (resolving ``auto``) and label every file, or raise DataError."""
    mode = spec.labels
    if mode not in LABEL_MODES:
        raise DataError(f"unknown label mode {mode!r} for {root}", where=spec.where, key="data.labels",
                        fix=f"use one of {', '.join(LABEL_MODES)}")
    folders = [_folder_label(r) for r in rels]
    wnids = [_wnid_label(r) for r in rels]

    if mode == "auto":
        # Class sub-folders win when every image sits in one and there are at least two of them:
        # a single sub-folder ("photos/", "val/") is a container, not a class, and labelling every
        # image with it would make an accuracy check meaningless.
        if all(f is not None for f in folders) and len(set(folders)) >= 2:
            return "folder", folders  # type: ignore[return-value]
        if all(w is not None for w in wnids):
            return "wnid", wnids  # type: ignore[return-value]
        return "none", [None] * len(rels)

    if mode == "folder":
        loose = [r for r, f in zip(rels, folders) if f is None]
        if loose:
            raise DataError(
                f"labels: folder needs every image inside a class sub-folder of {root}, but {len(loose)} image(s) "
                f"sit directly in it: {_summarise(loose)}", where=spec.where, key="data.labels",
                fix="move them into a sub-folder named after their class, or set `labels: none` (or `auto`) to "
                    "audit without labels")
        return "folder", folders  # type: ignore[return-value]

    if mode == "wnid":
        missing = [r for r, w in zip(rels, wnids) if w is None]
        if missing:
            raise DataError(
                f"labels: wnid needs every file name under {root} to start with a WordNet id such as n01440764_, "
                f"but {len(missing)} do not: {_summarise(missing)}", where=spec.where, key="data.labels",
                fix="rename them (n<8 digits>_name.jpg), remove them, or set `labels: folder`, `none` or `auto`")
        return "wnid", wnids  # type: ignore[return-value]

    return "none", [None] * len(rels)


def discover(spec: DataSpec) -> ProbeSet:
    """Find, label and (if ``spec.limit`` asks) subsample the probe images of ``spec.path``.

    The folder is searched recursively for :data:`IMAGE_EXTENSIONS` (any letter case), skipping
    hidden files and folders.  Files are sorted by relative POSIX path *before* sampling, so the
    subset depends only on the folder's content, ``limit`` and ``seed``: it is
    ``random.Random(seed).sample(sorted_files, limit)``, sorted again.  A ``limit`` at or above
    the number of images keeps them all.  Files are not opened here; unreadable ones are found
    (and reported) by :func:`iter_batches`.

    Raises :class:`DataError` when the folder is missing, is a file, holds no image files, or
    when the requested label mode does not fit the files.
    """
    root = Path(spec.path)
    if not root.exists():
        raise DataError(f"probe image folder not found: {root}", where=spec.where,
                        fix="correct data.path (a relative path is resolved against the spec file's folder) or "
                            "create the folder and put images in it")
    if not root.is_dir():
        raise DataError(f"data.path must be a folder of images, but {root} is a file", where=spec.where,
                        fix=f"point data.path at the folder that contains it ({root.parent})")

    try:
        rels, others = _walk(root)
    except DataError as error:
        raise DataError(error.message, where=spec.where, fix=error.fix) from None
    if not rels:
        found = (
            f"; found {len(others)} other file(s) with extensions not searched: "
            f"{_summarise(others)}"
            if others
            else "; the folder (and its non-hidden sub-folders) holds no files at all"
        )
        raise DataError(
            f"no image files found under {root} (searched recursively for {', '.join(IMAGE_EXTENSIONS)}, "
            f"any letter case){found}", where=spec.where,
            fix="point data.path at a folder of images, or convert the files to one of the searched formats")

    mode, labels = _resolve_labels(spec, root, rels)
    classes = tuple(sorted({label for label in labels if label is not None}))
    total = len(rels)

    chosen = list(range(total))
    limit = spec.limit
    if limit is not None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise DataError(f"data.limit must be a positive whole number, got {limit!r}", where=spec.where,
                            key="data.limit", fix="set it to the number of images to use, or remove it")
        if limit < total:
            chosen = sorted(random.Random(spec.seed).sample(chosen, limit))

    images = tuple(ProbeImage(root / rels[i], labels[i]) for i in chosen)
    return ProbeSet(root=root, images=images, label_mode=mode, classes=classes, total_found=total)


# --------------------------------------------------------------------------------------------
# decoding
# --------------------------------------------------------------------------------------------

#: Modes carrying an alpha channel (``P`` is handled separately: it has alpha only when the file
#: declares a transparent palette entry).
