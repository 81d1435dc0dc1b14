"""Classification heads as plain numbers: the model's own linear classifier, or a zero-shot head.

Why a head of our own instead of calling the model: accuracy, privileged directions and pruning all
read the *stored* representation rows, never the image tower again, so a head is plain numbers
(weight ``[C, d]`` and bias ``[C]`` in float64) that turn a row ``h`` into logits:

* ``classifier`` (timm / factory models): ``logits = h W^T + b``, read from ``get_classifier()``
  (:func:`classifier_head`, here).
* ``zero-shot`` (open_clip): ``logits = s * cos(h, w_c) (+ b)``, ``w_c`` the normalised mean of the
  normalised text embeddings of the class's prompts, ``s`` the model's ``logit_scale.exp()``
  (SigLIP models add ``logit_bias``); built by :mod:`.zero_shot`.

This module also maps probe labels to output indices, checks that a layer fits a head, and turns a
head into arrays + JSON for the store and back.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from ..errors import AuditError

__all__ = [
    "HEAD_KINDS",
    "Head",
    "HeadError",
    "check_width",
    "classifier_head",
    "head_from_arrays",
    "head_to_arrays",
    "imagenet_class_names",
    "imagenet_wnids",
    "label_indices",
]

HEAD_KINDS: tuple[str, ...] = ("classifier", "zero-shot")
#: how many offending names an error message shows before summarising the rest
_SHOW = 5


class HeadError(AuditError):
    """A head could not be built or does not fit the data (no classifier, bad templates, ...)."""


# --------------------------------------------------------------------------------------------
# the head
# --------------------------------------------------------------------------------------------


def _frozen_float64(array: Any, name: str) -> np.ndarray:
    out = np.array(array, dtype=np.float64, copy=True, order="C")
    if not np.all(np.isfinite(out)):
        raise HeadError(f"head {name} holds non-finite values (NaN or inf); the model's weights are broken")
    out.setflags(write=False)
    return out


@dataclass(frozen=True, eq=False)
class Head:
    """A classification head as plain float64 numbers, identified by its content.

    ``weight`` is ``[C, d]``, ``bias`` ``[C]`` or None.  For ``kind == "zero-shot"`` rows are
    L2-normalised before the product (cosine similarity) and multiplied by ``logit_scale``; for a
    ``classifier`` ``logit_scale`` is 1 and rows are used as they are.  ``class_names`` are what the
    prompts were built from (or human names of a classifier's outputs); ``class_ids`` are stable
    identifiers such as ImageNet WordNet ids when known, so labelled probe data can be matched to
    output indices.  ``fingerprint`` (``sha256:...``) covers everything that changes a logit or a
    class's meaning; ``details`` records how it was built (route, timings) and is not part of it.
    """

    weight: np.ndarray
    bias: np.ndarray | None
    logit_scale: float
    class_names: tuple[str, ...]
    class_ids: tuple[str, ...] | None
    kind: str
    description: str
    fingerprint: str = ""
    details: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in HEAD_KINDS:
            raise HeadError(f"unknown head kind {self.kind!r}; expected one of {', '.join(HEAD_KINDS)}")
        weight = _frozen_float64(self.weight, "weight")
        if weight.ndim != 2 or weight.shape[0] == 0 or weight.shape[1] == 0:
            raise HeadError(f"{self.description}: head weight must be [classes, width], got shape {weight.shape}")
        bias = None if self.bias is None else _frozen_float64(self.bias, "bias")
        if bias is not None and bias.shape != (weight.shape[0],):
            raise HeadError(f"{self.description}: head bias has shape {bias.shape}, expected ({weight.shape[0]},)")
        names = tuple(str(n) for n in self.class_names)
        if len(names) != weight.shape[0]:
            raise HeadError(f"{self.description}: {len(names)} class names for a head with {weight.shape[0]} outputs")
        ids = None if self.class_ids is None else tuple(str(i) for i in self.class_ids)
        if ids is not None and len(ids) != weight.shape[0]:
            raise HeadError(f"{self.description}: {len(ids)} class ids for a head with {weight.shape[0]} outputs")
        scale = float(self.logit_scale)
        if not math.isfinite(scale) or scale <= 0:
            raise HeadError(f"{self.description}: logit scale must be a positive number, got {scale}")
        object.__setattr__(self, "weight", weight)
        object.__setattr__(self, "bias", bias)
        object.__setattr__(self, "class_names", names)
        object.__setattr__(self, "class_ids", ids)
        object.__setattr__(self, "logit_scale", scale)
        object.__setattr__(self, "details", dict(self.details))
        own = _fingerprint(self)
        if self.fingerprint and self.fingerprint != own:
            raise HeadError(f"{self.description}: stored head fingerprint {self.fingerprint} does not match its "
                            f"content ({own}); the stored head is corrupt, delete it to rebuild")
        object.__setattr__(self, "fingerprint", own)

    @property
    def num_classes(self) -> int:
        return int(self.weight.shape[0])

    @property
    def width(self) -> int:
        """The representation width ``d`` this head reads."""
        return int(self.weight.shape[1])

    @property
    def normalizes_input(self) -> bool:
        """True when rows are L2-normalised before the product (zero-shot heads: cosine logits)."""
        return self.kind == "zero-shot"

    def features(self, rows: Any) -> np.ndarray:
        """Rows as the head sees them, float64 ``[n, d]`` (unit-normalised for a zero-shot head;
        an all-zero row stays zero: its cosine is undefined and every logit becomes the bias)."""
        x = np.asarray(rows, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.width:
            raise HeadError(f"{self.description}: rows of shape {x.shape} do not fit a head of width {self.width}")
        if self.normalizes_input:
            norms = np.linalg.norm(x, axis=1, keepdims=True)
            x = x / np.where(norms > 0, norms, 1.0)
        return x

    def logits(self, rows: Any, class_subset: Sequence[int] | None = None) -> np.ndarray:
        """float64 logits ``[n, C]`` (or ``[n, len(class_subset)]``, columns in the subset's order)."""
        weight, bias = self.weight, self.bias
        if class_subset is not None:
            idx = np.asarray(class_subset, dtype=np.int64)
            weight = weight[idx]
            bias = None if bias is None else bias[idx]
        out = self.features(rows) @ weight.T
        if self.logit_scale != 1.0:
            out *= self.logit_scale
        if bias is not None:
            out += bias
        return out


def _fingerprint(head: Head) -> str:
    digest = hashlib.sha256()
    meta = {
        "kind": head.kind,
        "logit_scale": float(head.logit_scale).hex(),
        "class_names": list(head.class_names),
        "class_ids": None if head.class_ids is None else list(head.class_ids),
        "shape": list(head.weight.shape),
        "bias": head.bias is not None,
    }
    digest.update(json.dumps(meta, sort_keys=True).encode("utf-8") + b"\0")
    digest.update(memoryview(head.weight).cast("B"))
    if head.bias is not None:
        digest.update(b"\0" + memoryview(head.bias).cast("B"))
    return "sha256:" + digest.hexdigest()


# --------------------------------------------------------------------------------------------
# ImageNet classes (reused from the libraries, never copied)
# --------------------------------------------------------------------------------------------


def imagenet_wnids() -> tuple[str, ...]:
    """The 1000 ImageNet-1k WordNet ids in class-index order (timm's ``imagenet_synsets.txt``;
    the same as their sorted order, and as the sorted ``imagenet-samples`` file names)."""
    from timm.data import ImageNetInfo

    return tuple(ImageNetInfo("imagenet-1k").label_names())


def imagenet_class_names() -> tuple[str, ...]:
    """open_clip's ImageNet-1k class names (the ones CLIP's zero-shot results use), index order."""
    from open_clip.zero_shot_metadata import IMAGENET_CLASSNAMES

    return tuple(IMAGENET_CLASSNAMES)


def _default_classes(num_classes: int, module: Any = None) -> tuple[tuple[str, ...], tuple[str, ...] | None]:
    """(names, ids) for ``num_classes`` outputs when nobody named them."""
    if num_classes == 1000:
        return imagenet_class_names(), imagenet_wnids()
    if module is not None:
        from timm.data import ImageNetInfo, infer_imagenet_subset

        subset = infer_imagenet_subset(module)
        if subset:
            info = ImageNetInfo(subset)
            ids = tuple(info.label_names())
            if len(ids) == num_classes:
                return tuple(info.label_descriptions()), ids
    return tuple(str(i) for i in range(num_classes)), None


# --------------------------------------------------------------------------------------------
# classifier heads (timm, factory)
# --------------------------------------------------------------------------------------------


def _model_label(module: Any, name: str | None) -> str:
    return name or f"model {type(module).__name__}"


def classifier_weights(module: Any, label: str) -> tuple[Any, Any]:
    """``(W [C, d], b or None)`` of the model's own linear classifier (``get_classifier()``: a ``Linear`` or
    a 1x1 ``Conv2d``), as tensors; :class:`HeadError` naming ``label`` when there is none.  On a model built
    on the meta device the shapes are what its architecture says (``models/architecture.py`` reads d)."""
    import torch

    getter = getattr(module, "get_classifier", None)
    if not callable(getter):
        raise HeadError(
            f"{label}: it has no get_classifier() (not a timm-style classifier), so its own head cannot be read\n"
            "    fix: set `head: none` in the spec, or give the model a get_classifier() returning its final Linear"
        )
    layer = getter()
    if isinstance(layer, (tuple, list)):
        raise HeadError(
            f"{label}: get_classifier() returned {len(layer)} heads ({', '.join(type(l).__name__ for l in layer)}), "
            "e.g. a distilled model's class and distillation heads; a single linear head is needed\n"
            "    fix: set `head: none`, or load the model without its distillation head"
        )
    if isinstance(layer, torch.nn.Linear):
        weight = layer.weight.detach()
        bias = layer.bias.detach() if layer.bias is not None else None
    elif isinstance(layer, torch.nn.Conv2d) and tuple(layer.kernel_size) == (1, 1) and layer.groups == 1:
        weight = layer.weight.detach().reshape(layer.out_channels, layer.in_channels)
        bias = layer.bias.detach() if layer.bias is not None else None
    else:
        what = "no classifier (num_classes=0: get_classifier() is an Identity)" if isinstance(
            layer, torch.nn.Identity) else f"a {type(layer).__name__} classifier, not a Linear or 1x1 convolution"
        raise HeadError(
            f"{label}: {what}, so there is no linear head to read\n"
            "    fix: build the model with its classifier (e.g. timm num_classes=1000), or set `head: none`"
        )
    return weight, bias


def classifier_head(module: Any, class_names: Sequence[str] | None = None, *,
                    class_ids: Sequence[str] | None = None, name: str | None = None) -> Head:
    """The model's own linear classifier, read from timm's ``get_classifier()``.

    A ``Linear`` or a 1x1 ``Conv2d`` (timm's ``use_conv`` heads) gives ``W [C, d]`` and ``b``.
    Class names default to ImageNet-1k's (with its wnids) for 1000 outputs, else timm's inferred
    ImageNet subset, else the output indices.  ``name`` names the model in errors.
    """
    import torch

    label = _model_label(module, name)
    weight, bias = classifier_weights(module, label)
    layer = module.get_classifier()
    num = int(weight.shape[0])
    if class_names is None:
        names, ids = _default_classes(num, module)
        if class_ids is not None:
            ids = tuple(class_ids)
    else:
        names, ids = tuple(class_names), (tuple(class_ids) if class_ids is not None else None)
        if len(names) != num:
            raise HeadError(f"{label}: {len(names)} class names given for a classifier with {num} outputs\n"
                            "    fix: list one class per output, in output order")
    return Head(
        weight=weight.to(torch.float64).cpu().numpy(),
        bias=None if bias is None else bias.to(torch.float64).cpu().numpy(),
        logit_scale=1.0,
        class_names=names,
        class_ids=ids,
        kind="classifier",
        description=f"{label}: own classifier ({type(layer).__name__} {weight.shape[1]} -> {num})",
        details={"layer": type(layer).__name__},
    )


# --------------------------------------------------------------------------------------------
# labels -> output indices
# --------------------------------------------------------------------------------------------


def label_indices(head: Head, labels: Sequence[str | None], where: str = "") -> np.ndarray:
    """Each probe label as an output index of ``head`` (int64; -1 for an unlabelled image).

    A label matches a class id first (ImageNet wnids from ``labels: wnid``), else a class name
    (``labels: folder`` with folders named after the classes).  Labels the head does not know
    are an error naming both sides: accuracy over classes the head cannot predict is meaningless.
    """
    by_id: dict[str, int] = {}
    by_name: dict[str, int] = {}
    for i, c in enumerate(head.class_ids or ()):
        by_id.setdefault(c, i)
    for i, c in enumerate(head.class_names):  # open_clip's ImageNet names repeat "missile" and
        by_name.setdefault(c, i)              # "sunglasses": a name matches its first class
    out = np.full(len(labels), -1, dtype=np.int64)
    missing: list[str] = []
    for k, lab in enumerate(labels):
        if lab is None:
            continue
        index = by_id.get(lab, by_name.get(lab))
        if index is None:
            if lab not in missing:
                missing.append(lab)
            continue
        out[k] = index
    if missing:
        shown = ", ".join(missing[:_SHOW]) + (f" (and {len(missing) - _SHOW} more)" if len(missing) > _SHOW else "")
        prefix = f"{where}: " if where else ""
        known = "class ids and names" if head.class_ids else "class names"
        raise HeadError(
            f"{prefix}{len(missing)} probe label(s) are not classes of {head.description}: {shown} "
            f"(the head has {head.num_classes} {known}, e.g. {', '.join((head.class_ids or head.class_names)[:3])})\n"
            "    fix: give the head `classes` that cover the data's labels, label the data differently, or set `head: none`"
        )
    return out


def check_width(head: Head, width: int, layer: str, where: str = "") -> None:
    """Raise HeadError naming both sides when ``layer``'s rows (``width`` wide) do not fit ``head``."""
    if int(width) != head.width:
        prefix = f"{where}: " if where else ""
        raise HeadError(
            f"{prefix}layer '{layer}' has width {width} but {head.description} reads width {head.width}\n"
            "    fix: score the head on the layer it reads (normally `representation`), or set `head: none`"
        )


# --------------------------------------------------------------------------------------------
# storage: (de)serialisation
# --------------------------------------------------------------------------------------------


def head_to_arrays(head: Head) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """(arrays, JSON-able meta) that :func:`head_from_arrays` turns back into the same head."""
    arrays = {"weight": np.ascontiguousarray(head.weight)}
    if head.bias is not None:
        arrays["bias"] = np.ascontiguousarray(head.bias)
    meta = {
        "format": 1,
        "kind": head.kind,
        "logit_scale": float(head.logit_scale).hex(),
        "class_names": list(head.class_names),
        "class_ids": None if head.class_ids is None else list(head.class_ids),
        "description": head.description,
        "fingerprint": head.fingerprint,
        "details": json.loads(json.dumps(dict(head.details), default=str)),
    }
    return arrays, meta


def head_from_arrays(arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> Head:
    """The head :func:`head_to_arrays` wrote; its fingerprint is re-checked against the content."""
    if meta.get("format") != 1 or "weight" not in arrays:
        raise HeadError(f"stored head has an unknown layout (format {meta.get('format')!r}, arrays "
                        f"{sorted(arrays)}); delete the stored entry to rebuild it")
    return Head(
        weight=np.asarray(arrays["weight"], dtype=np.float64),
        bias=np.asarray(arrays["bias"], dtype=np.float64) if "bias" in arrays else None,
        logit_scale=float.fromhex(meta["logit_scale"]),
        class_names=tuple(meta["class_names"]),
        class_ids=None if meta.get("class_ids") is None else tuple(meta["class_ids"]),
        kind=meta["kind"],
        description=meta.get("description", "stored head"),
        fingerprint=meta.get("fingerprint", ""),
        details=meta.get("details", {}),
    )
