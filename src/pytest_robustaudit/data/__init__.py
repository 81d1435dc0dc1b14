"""Probe images: find them, label them, and stream them through a model's eval transform.

This stage sits between the spec and feature extraction.  It is free of pytest and of any model
library so it can be tested (and reasoned about) on its own:

* :func:`discover` turns a :class:`~pytest_robustaudit.spec.schema.DataSpec` into a :class:`ProbeSet`:
  a sorted, optionally subsampled, labelled list of files.  Everything about it is deterministic,
  because the audit's numbers (and any cache keyed on the probe data) must not depend on the order
  in which the file system happens to list a folder.
* :func:`iter_batches` decodes those files with Pillow, converts every image mode to RGB, applies the
  checkpoint's own ``preprocess`` and yields stacked batches.  It streams (memory holds about two
  batches, whatever the folder size), and a file that cannot be decoded is recorded as a
  :class:`SkippedImage` instead of aborting an audit that has already spent minutes on a model.

Torch is imported inside the functions that need it: importing this module (for instance while
pytest collects the spec files) stays cheap.
"""

from __future__ import annotations

from .decode import SkippedImage, describe_skipped, iter_batches, load_rgb
from .discover import IMAGE_EXTENSIONS, LABEL_MODES, ProbeImage, ProbeSet, discover

__all__ = [
    "IMAGE_EXTENSIONS",
    "LABEL_MODES",
    "ProbeImage",
    "ProbeSet",
    "SkippedImage",
    "describe_skipped",
    "discover",
    "iter_batches",
    "load_rgb",
]
