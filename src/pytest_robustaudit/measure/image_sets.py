"""Kinds of image set a spec's ``shifts:`` can name, in one registry filled through a hook.

Why a registry: the probe, a folder of shifted images, a corruption at a severity and a plugin's own
set are all image sets the audit measures through the same path (:func:`~.activations.measure_layers`
into the activation store).  Adding a kind used to touch the spec validator, the shift scorer, the
corruption measurer and the report; now a plugin registers an :class:`ImageSetKind` with
``pytest_robustaudit_register_image_sets`` and a spec names it::

    shifts:
      - {kind: jpeg, quality: 10}

The built-in kinds (``folder``, ``given``, ``corruption``) are registered through the same hook and
keep their short spellings (``{path: ...}``, ``{accuracy: ...}``, ``{corruption: ...}``).  A plugin's
kind changes every probe image's eval crop (after the model's resize and centre crop, before ToTensor
and Normalize) with its ``transform``, so its set pairs image for image with the clean probe and is
read by ``corruption_accuracy`` and ``corruption_drop`` (``corruption: <the entry's name>``), like an
ImageNet-C corruption.  Its rows are stored under the clean key plus the kind's identity: its name,
version, options, seed and the source file of its transform.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from ..metrics.types import Param
    from .activations import ImageVariant

#: the kinds built in, with the role each plays (what the spec validator and the scorer do with it)
BUILTIN_KINDS = ("folder", "given", "corruption")


@dataclass(frozen=True)
class ImageSetKind:
    """A kind of image set: ``name`` (what ``kind:`` says), ``description``, ``params`` (its spec keys,
    as :class:`~..metrics.types.Param`: type, default, help, minimum), and for a plugin kind
    ``transform(crop, rng, **options) -> crop``: the probe image's eval crop (an HxWx3 uint8 array)
    changed, deterministic for a given ``rng`` (a :class:`numpy.random.Generator` seeded per image and
    seed).  ``version``: bump it when the transform changes what it produces (the stored rows miss)."""

    name: str
    description: str
    params: dict[str, "Param"] = field(default_factory=dict)
    transform: Callable[..., Any] | None = None
    version: int = 1


def _check_kind(kind: Any) -> str:
    # by its fields, not isinstance: a kind made from another import of this module is as good
    missing = [a for a in ("name", "description", "params", "transform", "version") if not hasattr(kind, a)]
    if missing:
        return f"register a pytest_robustaudit.ImageSetKind, not {type(kind).__name__} (no {', '.join(missing)})"
    if kind.transform is None and kind.name not in BUILTIN_KINDS:
        return f"image set kind '{kind.name}' needs a transform(crop, rng, **options)"
    return ""


def ImageSetRegistry() -> Any:  # noqa: N802 - reads as the type it builds
    """Image set kinds by name; ``register(kind)`` takes the name from the kind."""
    from ..registry import Registry

    return Registry("image set kind", check=_check_kind)


#: the built-in kinds, registered by ``builtin.py`` through the hook like a plugin's
BUILTIN = (
    ImageSetKind("folder", "a folder of images, measured like the probe (`{path: DIR, set: ..., labels: ...}`)"),
    ImageSetKind("given", "an accuracy measured elsewhere (`{name: ..., accuracy: 0.42, source: ...}`)"),
    ImageSetKind("corruption", "ImageNet-C corruptions of the probe images (`{corruption: NAME, severity: N}`)"),
)


def kind_variant(kind: ImageSetKind, label: str, options: dict[str, Any], seed: int, hasher: Any) -> "ImageVariant":
    """The :class:`~.activations.ImageVariant` of a plugin kind's set: the probe seen through its transform.
    ``hasher``: the store's file hasher, which also hashes a factory's file (an edited transform misses)."""
    from .activations import ImageVariant

    code = None
    with contextlib.suppress(OSError, TypeError):
        source = inspect.getsourcefile(kind.transform)
        code = hasher.sha256(Path(source)) if source else None
    key = {"kind": "image set kind", "name": kind.name, "version": kind.version,
           "options": json.loads(json.dumps(options, sort_keys=True, default=str)), "seed": int(seed),
           "code_sha256": code}

    def wrap(preprocess: Any) -> Any:
        return TransformingPreprocess(preprocess, kind, options, seed)

    return ImageVariant(label=label, key=key, wrap=wrap)


class TransformingPreprocess:
    """The model's eval transform with a kind's ``transform`` applied to the uint8 eval crop on the way
    (the cut a corruption uses: :func:`~..data.corruptions.split.split_eval_transform`)."""

    def __init__(self, preprocess: Any, kind: ImageSetKind, options: dict[str, Any], seed: int):
        from ..data.corruptions.split import split_eval_transform

        self.geometric, self.tensor_part = split_eval_transform(preprocess)
        self.kind, self.options, self.seed = kind, dict(options), int(seed)

    def __call__(self, image: Any) -> Any:
        import numpy as np
        from PIL import Image

        from ..data.corruptions.split import content_index

        crop = np.asarray(self.geometric(image).convert("RGB"))
        rng = np.random.default_rng([self.seed, zlib.crc32(self.kind.name.encode("utf-8")), content_index(crop)])
        changed = np.asarray(self.kind.transform(crop.copy(), rng, **self.options))
        if changed.shape != crop.shape:
            from ..errors import AuditError

            raise AuditError(f"image set kind '{self.kind.name}': its transform returned shape {changed.shape} for a "
                             f"crop of shape {crop.shape}",
                             fix="return an array of the crop's shape (HxWx3, uint8) from transform(crop, rng, ...)")
        return self.tensor_part(Image.fromarray(np.clip(changed, 0, 255).astype(np.uint8)))

    def __repr__(self) -> str:
        return f"TransformingPreprocess({self.kind.name}, {self.options}, seed={self.seed})"
