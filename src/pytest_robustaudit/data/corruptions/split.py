"""Split a model's eval transform where ImageNet-C corrupts: after the resize and crop, before the tensor.

ImageNet-C corrupts the 224-px crop (``Resize(256), CenterCrop(224)`` in make_imagenet_c.py) and the
model then normalises it.  timm's and open_clip's eval transforms are torchvision ``Compose`` lists:
``Resize, CenterCrop, [convert to RGB], ToTensor | MaybeToTensor, Normalize``.  :func:`split_eval_transform`
cuts such a list into its PIL part (geometry and mode) and its tensor part, so that::

    geometric, to_tensor = split_eval_transform(preprocess)
    crop = np.asarray(geometric(pil_image).convert("RGB"))
    tensor = to_tensor(Image.fromarray(corrupt(crop, name, severity, seed, index)))

is the corrupted input, and ``to_tensor(geometric(img))`` is the clean one, equal to ``preprocess(img)``.
A transform with a step it does not recognise fails with the step named, never a silent guess.
"""

from __future__ import annotations

from typing import Any, Callable

from .table import CorruptionError

#: PIL -> PIL steps that may come before the corruption (geometry and colour mode only)
PIL_STEPS = frozenset({"Resize", "CenterCrop", "ResizeKeepRatio", "CenterCropOrPad", "MaybeConvertMode",
                       "_convert_to_rgb", "convert_to_rgb", "ToRGB"})
#: the step that turns the PIL image into a tensor
TENSOR_STEPS = frozenset({"ToTensor", "MaybeToTensor", "PILToTensor", "ToImage"})
#: tensor -> tensor steps that may follow it
AFTER_STEPS = frozenset({"Normalize", "MaybeNormalize", "ConvertImageDtype", "ToDtype"})


def _step_name(step: Any) -> str:
    name = getattr(step, "__name__", None)
    if isinstance(name, str):  # a plain function such as open_clip's _convert_to_rgb
        return name
    return type(step).__name__


class _Chain:
    """The steps of one part, applied in order (a torchvision Compose would do; this needs no torch import)."""

    def __init__(self, steps: list[Callable]):
        self.steps = list(steps)

    def __call__(self, value):
        for step in self.steps:
            value = step(value)
        return value

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(_step_name(s) for s in self.steps)})"


def split_eval_transform(transform: Any) -> tuple[Callable, Callable]:
    """``(geometric, tensor_part)`` of an eval transform; CorruptionError for one it cannot split."""
    steps = getattr(transform, "transforms", None)
    if not isinstance(steps, (list, tuple)):
        raise CorruptionError(
            f"cannot split the eval transform {type(transform).__name__} for corruptions: it is not a "
            "torchvision Compose", where="model preprocess",
            fix="corruptions need a Compose of Resize/CenterCrop, ToTensor and Normalize (timm's and "
                "open_clip's eval transforms are); give the model such a preprocess or drop the corruption shifts")
    names = [_step_name(step) for step in steps]
    cut = next((i for i, name in enumerate(names) if name in TENSOR_STEPS), None)
    if cut is None:
        raise CorruptionError(
            f"the eval transform has no ToTensor step ({', '.join(names)}), so there is no uint8 crop to corrupt",
            where="model preprocess", fix="corruptions apply to the PIL crop before ToTensor; use a Compose with one")
    for i, name in enumerate(names):
        allowed = PIL_STEPS if i < cut else AFTER_STEPS if i > cut else TENSOR_STEPS
        if name not in allowed:
            side = "before" if i < cut else "after"
            raise CorruptionError(
                f"cannot split the eval transform for corruptions: step {i} ({name}) {side} {names[cut]} is "
                f"not one of {', '.join(sorted(allowed))}", where="model preprocess",
                fix="corruptions must run on the resized, cropped image and before normalisation; a step that "
                    "changes pixel values there would be corrupted too. Use a standard eval transform or drop "
                    "the corruption shifts")
    return _Chain(list(steps[:cut])), _Chain(list(steps[cut:]))


def content_index(crop) -> int:
    """A per-image index from the crop's bytes (the first 8 bytes of its SHA-256), for callers that
    stream images without their position (``data.iter_batches`` calls ``preprocess(image)`` only).
    Deterministic, and independent of the probe set's order and subsampling."""
    import hashlib

    import numpy as np

    array = np.ascontiguousarray(crop)
    digest = hashlib.sha256(repr(array.shape).encode() + array.tobytes()).digest()
    return int.from_bytes(digest[:8], "little") >> 1  # a non-negative int64 for SeedSequence


class CorruptingPreprocess:
    """A drop-in ``preprocess`` (PIL image -> normalised tensor) that corrupts the eval crop on the way.

    ``CorruptingPreprocess(model.preprocess, "gaussian_noise", 3, seed)`` can go wherever the model's
    own preprocess goes (e.g. ``data.iter_batches``): each image gets the noise of
    ``corrupt(crop, name, severity, seed, index=content_index(crop))``.  Stateless, so thread workers
    may share it.
    """

    def __init__(self, preprocess: Any, name: str, severity: int, seed: int = 0):
        from .table import get_corruption

        get_corruption(name)  # an unknown name fails here, before any image is read
        self.geometric, self.tensor_part = split_eval_transform(preprocess)
        self.name, self.severity, self.seed = name, int(severity), int(seed)

    def corrupted_crop(self, image):
        """The corrupted eval crop of a PIL image, as the HxWx3 uint8 array the model's tensor part gets
        (to look at, or to hash: nothing writes it anywhere)."""
        import numpy as np

        from .table import corrupt

        crop = np.asarray(self.geometric(image).convert("RGB"))
        return corrupt(crop, self.name, self.severity, self.seed, index=content_index(crop))

    def __call__(self, image):
        from PIL import Image

        return self.tensor_part(Image.fromarray(self.corrupted_crop(image)))

    def __repr__(self) -> str:
        return f"CorruptingPreprocess({self.name}, severity={self.severity}, seed={self.seed})"
