"""Synthetic distribution shifts: ImageNet-C's corruptions of the probe images, generated offline.

The 15 corruptions of Hendrycks & Dietterich (ICLR 2019) and their 4 held-out extras at severities
1-5, plus greyscale, applied to the model's uint8 eval crop (after resize and centre crop, before
normalisation: see :func:`split_eval_transform`), deterministic for a seed.  Written with numpy,
scipy and Pillow from the published definitions (docs/corruptions.md lists each one's parameters and
where this differs from the reference code); only frost needs external files (its textures).

Public API::

    corrupt(image_uint8, name, severity, seed, index=0) -> uint8 image
    apply_corruption(image_uint8, name, severity, rng) -> uint8 image
    CORRUPTIONS, EXTRA_CORRUPTIONS, OTHER_CORRUPTIONS, REGISTRY
    parse_corruptions(entry, where) -> [(name, severity), ...]
    split_eval_transform(preprocess) -> (geometric, tensor_part)
    CorruptingPreprocess(preprocess, name, severity, seed)  # a drop-in preprocess: PIL -> corrupted tensor
"""

from .spec import GROUPS, parse_corruptions
from .split import CorruptingPreprocess, content_index, split_eval_transform
from .table import (
    CORRUPTIONS,
    EXTRA_CORRUPTIONS,
    OTHER_CORRUPTIONS,
    REGISTRY,
    SEVERITIES,
    Corruption,
    CorruptionError,
    apply_corruption,
    corrupt,
    get_corruption,
    rng_for,
)
from .weather import FROST_ENV, FrostTexturesMissing, frost_dir

__all__ = [
    "CORRUPTIONS",
    "CorruptingPreprocess",
    "EXTRA_CORRUPTIONS",
    "FROST_ENV",
    "GROUPS",
    "OTHER_CORRUPTIONS",
    "REGISTRY",
    "SEVERITIES",
    "Corruption",
    "CorruptionError",
    "FrostTexturesMissing",
    "apply_corruption",
    "content_index",
    "corrupt",
    "frost_dir",
    "get_corruption",
    "parse_corruptions",
    "rng_for",
    "split_eval_transform",
]
