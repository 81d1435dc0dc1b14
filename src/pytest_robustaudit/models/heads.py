"""Classification heads: the model's own linear classifier, or a zero-shot CLIP head from text.

Why a head of our own instead of calling the model: accuracy, privileged directions and pruning all
read the *stored* representation rows, never the image tower again, so a head is plain numbers
(weight ``[C, d]`` and bias ``[C]`` in float64) that turn a row ``h`` into logits:

* ``classifier`` (timm / factory models): ``logits = h W^T + b``, read from ``get_classifier()``.
* ``zero-shot`` (open_clip): ``logits = s * cos(h, w_c) (+ b)``, ``w_c`` the normalised mean of the
  normalised text embeddings of the class's prompts (the standard CLIP recipe), ``s`` the model's
  ``logit_scale.exp()`` (SigLIP models add ``logit_bias``).

Building a 1000-class x 80-template zero-shot head means 80,000 text-tower forwards, each padded to
77 tokens by the tokenizer.  CLIP's text tower is causal and pools one token (the end-of-text token,
found by ``argmax`` of the token ids, or the ``eos`` id, or the first token); with a causal mask the
output at position ``p`` depends only on tokens ``0..p``, so everything after a batch's last pooled
position can be cut without changing any value.  :func:`zero_shot_head` therefore sorts all prompts
of all classes by that length, encodes them in batches trimmed to their own longest prompt
(slicing the positional embedding and the causal mask to match), and re-checks the result against
the model's own ``encode_text`` on a few prompts first.  Towers that are not causal, pool
otherwise, prepend or append a class token (CoCa) or come from Hugging Face take the untrimmed
route (still batched across classes); both routes are recorded in the head's ``details``.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

import numpy as np

from ..errors import AuditError

if TYPE_CHECKING:
    import torch

__all__ = [
    "HEAD_KINDS",
    "HEAD_RECIPE",
    "TEMPLATE_SETS",
    "Head",
    "HeadError",
    "check_width",
    "classifier_head",
    "describe_tokenizer",
    "head_cache_parts",
    "head_from_arrays",
    "head_to_arrays",
    "imagenet_class_names",
    "imagenet_wnids",
    "label_indices",
    "resolve_templates",
    "text_tower_fingerprint",
    "zero_shot_head",
]

HEAD_KINDS: tuple[str, ...] = ("classifier", "zero-shot")
#: names of the shipped prompt sets (open_clip's ``zero_shot_metadata``)
TEMPLATE_SETS: tuple[str, ...] = ("openai", "simple")
#: bumped whenever the way a zero-shot head is computed changes (part of its cache key)
HEAD_RECIPE = "zero-shot/v1: normalise each prompt embedding, mean over templates, normalise"

#: how many prompts the trimmed route compares against the model's own encode_text before use
_SELF_CHECK = 2
#: tolerance of that comparison (float32 kernels on a different padded length differ by ~1e-6)
_SELF_CHECK_ATOL = 1e-4
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


def classifier_head(module: Any, class_names: Sequence[str] | None = None, *,
                    class_ids: Sequence[str] | None = None, name: str | None = None) -> Head:
    """The model's own linear classifier, read from timm's ``get_classifier()``.

    A ``Linear`` or a 1x1 ``Conv2d`` (timm's ``use_conv`` heads) gives ``W [C, d]`` and ``b``.
    Class names default to ImageNet-1k's (with its wnids) for 1000 outputs, else timm's inferred
    ImageNet subset, else the output indices.  ``name`` names the model in errors.
    """
    import torch

    label = _model_label(module, name)
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
# zero-shot heads (open_clip)
# --------------------------------------------------------------------------------------------


def resolve_templates(templates: str | Sequence[Any] = "openai") -> tuple[str, ...]:
    """Prompt templates as ``str.format`` strings with one ``{}``.

    ``"openai"`` is open_clip's ``OPENAI_IMAGENET_TEMPLATES`` (80), ``"simple"`` its
    ``SIMPLE_IMAGENET_TEMPLATES`` (7); they ship as lambdas and are turned into strings by calling
    them with ``"{}"`` so that a head's cache key can name them.  A list gives one template per item.
    """
    if isinstance(templates, str):
        from open_clip import zero_shot_metadata as meta

        sets = {"openai": meta.OPENAI_IMAGENET_TEMPLATES, "simple": meta.SIMPLE_IMAGENET_TEMPLATES}
        if templates not in sets:
            raise HeadError(f"unknown template set {templates!r}\n"
                            f"    fix: use one of {', '.join(TEMPLATE_SETS)}, or a list of prompts each with {{}}")
        return tuple(t("{}") for t in sets[templates])
    out = []
    bad = []
    for i, template in enumerate(templates):
        if callable(template):
            template = template("{}")
        if not isinstance(template, str) or template.count("{}") != 1:
            bad.append(f"#{i} {template!r}")
            continue
        try:
            template.format("x")
        except (IndexError, KeyError, ValueError):
            bad.append(f"#{i} {template!r}")
            continue
        out.append(template)
    if bad or not out:
        shown = ", ".join(bad[:_SHOW]) + (f" (and {len(bad) - _SHOW} more)" if len(bad) > _SHOW else "")
        raise HeadError(f"templates must be a set name or a non-empty list of prompts with exactly one {{}} "
                        f"(and no other braces); bad: {shown or '(empty list)'}\n"
                        "    fix: write each prompt like 'a photo of a {}.'")
    return tuple(out)


def text_tower_fingerprint(model: Any) -> str:
    """``sha256:...`` of every open_clip model tensor outside the image tower (``visual.``):
    text transformer, embeddings, projection, ``logit_scale``/``logit_bias``.  Two checkpoints
    sharing a text tower share zero-shot heads, whatever their image towers."""
    from .checkpoints import fingerprint_state_dict

    state = {k: v for k, v in model.state_dict().items() if not k.startswith("visual.")}
    return fingerprint_state_dict(state)


def _is_causal_mask(mask: Any) -> bool:
    """True for open_clip's additive causal mask: -inf strictly above the diagonal, 0 elsewhere."""
    import torch

    if not isinstance(mask, torch.Tensor) or mask.ndim != 2 or mask.shape[0] != mask.shape[1]:
        return False
    if not mask.is_floating_point():
        return False
    upper = torch.ones(mask.shape, dtype=torch.bool, device=mask.device).triu(1)
    return bool(torch.equal(torch.isneginf(mask), upper) and torch.all(mask[~upper] == 0))


@dataclass(frozen=True)
class _Tower:
    """The pieces of a causal CLIP text tower the trimmed route runs (mirrors ``encode_text``)."""

    token_embedding: Any
    positional_embedding: Any
    transformer: Any
    ln_final: Any
    text_projection: Any
    attn_mask: Any
    pool_type: str
    eos_id: int | None


def _trim_plan(model: Any) -> tuple[_Tower | None, str]:
    """The tower to run trimmed, or None and the reason the untrimmed route is taken."""
    try:
        from open_clip.model import CLIP, CustomTextCLIP
        from open_clip.transformer import TextTransformer
    except ImportError as exc:  # pragma: no cover - open_clip is a dependency
        return None, f"open_clip layout unknown ({exc})"
    if isinstance(model, CLIP) and type(model).encode_text is CLIP.encode_text:
        tower, pool, eos = model, getattr(model, "text_pool_type", None), getattr(model, "text_eos_id", None)
        where = "CLIP"
    elif (isinstance(model, CustomTextCLIP) and type(model).encode_text is CustomTextCLIP.encode_text
          and type(getattr(model, "text", None)) is TextTransformer):
        tower = model.text
        where = "TextTransformer"
        if getattr(tower, "cls_emb", None) is not None:
            return None, f"{where} appends a class token (CoCa-style): pools the last token"
        if getattr(tower, "use_pad_mask", False):
            return None, f"{where} masks padding (bidirectional)"
        pool, eos = getattr(tower, "pool_type", None), getattr(tower, "eos_id", None)
    else:
        return None, f"text tower {type(getattr(model, 'text', model)).__name__} is not open_clip's causal transformer"
    if pool not in ("argmax", "eos", "first"):
        return None, f"{where} pools {pool!r}, not one token (argmax/eos/first)"
    if pool == "eos" and eos is None:
        return None, f"{where} pools 'eos' without an eos id"
    mask = getattr(tower, "attn_mask", None)
    if not _is_causal_mask(mask):
        return None, f"{where} attention mask is not causal"
    needed = ("token_embedding", "positional_embedding", "transformer", "ln_final", "text_projection")
    if any(not hasattr(tower, n) for n in needed) or not hasattr(tower.transformer, "get_cast_dtype"):
        return None, f"{where} lacks the parts of open_clip's text transformer"
    return _Tower(tower.token_embedding, tower.positional_embedding, tower.transformer, tower.ln_final,
                  tower.text_projection, mask, pool, eos), f"{where}: causal, pools {pool}"


def _pool_index(tokens: "torch.Tensor", pool: str, eos: int | None) -> "torch.Tensor":
    """The position each prompt is pooled at (as open_clip's ``text_global_pool``)."""
    import torch

    if pool == "argmax":
        return tokens.argmax(dim=-1)
    if pool == "eos":
        return (tokens == eos).int().argmax(dim=-1)
    return torch.zeros(tokens.shape[0], dtype=torch.long, device=tokens.device)


def _encode_trimmed(tower: _Tower, tokens: "torch.Tensor", pooled_at: "torch.Tensor") -> "torch.Tensor":
    """``encode_text`` on tokens cut to length L: positional embedding and causal mask cut to L too."""
    import torch

    length = tokens.shape[1]
    cast = tower.transformer.get_cast_dtype()
    x = tower.token_embedding(tokens).to(cast)
    x = x + tower.positional_embedding[:length].to(cast)
    x = tower.transformer(x, attn_mask=tower.attn_mask[:length, :length])
    x = tower.ln_final(x)
    x = x[torch.arange(x.shape[0], device=x.device), pooled_at]
    proj = tower.text_projection
    if proj is not None:
        x = proj(x) if isinstance(proj, torch.nn.Linear) else x @ proj
    return x


def _model_device(model: Any) -> "torch.device":
    import torch

    for p in model.parameters():
        return p.device
    return torch.device("cpu")


def zero_shot_head(
    model: Any,
    tokenizer: Callable[[list[str]], "torch.Tensor"],
    class_names: Sequence[str] | None = None,
    templates: str | Sequence[Any] = "openai",
    batch_size: int = 256,
    device: Any = None,
    progress: Callable[[int, int], None] | None = None,
    *,
    class_ids: Sequence[str] | None = None,
    name: str | None = None,
    trim: bool = True,
) -> Head:
    """A zero-shot head from an open_clip model's text tower (weights as ``build_zero_shot_classifier``).

    ``class_names`` default to ImageNet-1k (open_clip's names, timm's wnids as ``class_ids``);
    ``templates`` is a set name (``"openai"``, ``"simple"``) or a list with ``{}``.  All
    ``classes x templates`` prompts are encoded in batches of ``batch_size`` prompts, shortest
    first; on a causal tower each batch is cut to its longest prompt (``trim=False`` forces the
    untrimmed route).  ``progress(done, total)`` is called after each batch, in prompts.
    The model is not moved: ``device`` (default: where its parameters are) receives the tokens.
    """
    import torch

    label = name or f"open_clip {type(model).__name__}"
    if not hasattr(model, "encode_text"):
        raise HeadError(f"{label}: has no encode_text (not an open_clip CLIP model), so no zero-shot head\n"
                        "    fix: set `head: none`, or use the model's own classifier")
    if class_names is None:
        names, ids = imagenet_class_names(), imagenet_wnids()
        if class_ids is not None:
            ids = tuple(class_ids)
    else:
        names = tuple(str(c) for c in class_names)
        ids = tuple(class_ids) if class_ids is not None else None
    if not names:
        raise HeadError(f"{label}: no class names given for the zero-shot head\n    fix: list the classes, or omit them for ImageNet-1k")
    if ids is not None and len(ids) != len(names):
        raise HeadError(f"{label}: {len(ids)} class ids for {len(names)} class names")
    prompts_of = resolve_templates(templates)
    if batch_size < 1:
        raise HeadError(f"{label}: zero-shot batch size must be at least 1, got {batch_size}")
    device = torch.device(device) if device is not None else _model_device(model)
    n_cls, n_tpl = len(names), len(prompts_of)
    total = n_cls * n_tpl
    started = time.perf_counter()

    texts = [t.format(c) for c in names for t in prompts_of]  # class-major, as open_clip's builder
    tokens = tokenizer(texts)
    if not isinstance(tokens, torch.Tensor) or tokens.ndim != 2 or tokens.shape[0] != total:
        raise HeadError(f"{label}: the tokenizer returned {type(tokens).__name__} "
                        f"{tuple(getattr(tokens, 'shape', ()))}, expected a [{total}, context] tensor")
    tower, why = _trim_plan(model) if trim else (None, "trimming switched off")
    if tower is not None:
        pooled_at = _pool_index(tokens, tower.pool_type, tower.eos_id)
        lengths = pooled_at + 1
    else:
        lengths = torch.full((total,), tokens.shape[1], dtype=torch.long)
    order = torch.argsort(lengths, stable=True)

    embeddings: "torch.Tensor | None" = None
    done = 0
    with torch.inference_mode():
        if tower is not None:
            tower, why = _self_check(model, tower, tokens, pooled_at, device, why)
        for start in range(0, total, batch_size):
            idx = order[start:start + batch_size]
            if tower is not None:
                cut = int(lengths[idx].max())
                batch = tokens[idx, :cut].to(device)
                out = _encode_trimmed(tower, batch, pooled_at[idx].to(device))
            else:
                out = model.encode_text(tokens[idx].to(device))
            out = out.detach().to("cpu", torch.float64)
            if embeddings is None:
                embeddings = torch.empty((total, out.shape[1]), dtype=torch.float64)
            embeddings[idx] = out
            done += len(idx)
            if progress is not None:
                progress(done, total)
    assert embeddings is not None
    emb = embeddings.numpy()
    norms = np.linalg.norm(emb, axis=1, keepdims=True)
    if not np.all(np.isfinite(emb)) or np.any(norms == 0):
        raise HeadError(f"{label}: the text tower gave non-finite or zero embeddings; its weights are broken")
    emb = (emb / norms).reshape(n_cls, n_tpl, -1).mean(axis=1)
    weight = emb / np.linalg.norm(emb, axis=1, keepdims=True)

    scale = float(model.logit_scale.detach().exp().item()) if hasattr(model, "logit_scale") else 1.0
    logit_bias = getattr(model, "logit_bias", None)
    bias = None if logit_bias is None else np.full(n_cls, float(logit_bias.detach().reshape(-1)[0].item()))
    seconds = time.perf_counter() - started
    route = "trimmed" if tower is not None else "untrimmed"
    return Head(
        weight=weight,
        bias=bias,
        logit_scale=scale,
        class_names=names,
        class_ids=ids,
        kind="zero-shot",
        description=f"{label}: zero-shot head, {n_cls} classes x {n_tpl} templates",
        details={"route": route, "why": why, "prompts": total, "batch_size": batch_size,
                 "seconds": round(seconds, 3), "templates": list(prompts_of), "recipe": HEAD_RECIPE},
    )


def _self_check(model: Any, tower: _Tower, tokens: "torch.Tensor", pooled_at: "torch.Tensor",
                device: "torch.device", why: str) -> tuple[_Tower | None, str]:
    """Compare the trimmed route with the model's own ``encode_text`` on the longest prompts.

    Guards against an open_clip version whose ``encode_text`` does more than we mirror: on any
    difference (or error) the untrimmed route is taken and the reason recorded.
    """
    import torch

    pick = torch.argsort(pooled_at, descending=True, stable=True)[:_SELF_CHECK]
    sample = tokens[pick].to(device)
    try:
        full = model.encode_text(sample).float()
        cut = int(pooled_at[pick].max()) + 1
        trimmed = _encode_trimmed(tower, sample[:, :cut], pooled_at[pick].to(device)).float()
    except Exception as exc:  # noqa: BLE001 - any failure means: do not trust the trimmed route
        return None, f"{why}; trimmed self-check failed ({type(exc).__name__}: {exc}): untrimmed"
    if full.shape != trimmed.shape:
        return None, f"{why}; trimmed self-check shape {tuple(trimmed.shape)} != {tuple(full.shape)}: untrimmed"
    scale = float(full.abs().max().clamp_min(1.0))
    diff = float((full - trimmed).abs().max())
    if not diff <= _SELF_CHECK_ATOL * scale:
        return None, f"{why}; trimmed self-check differs by {diff:.3g}: untrimmed"
    return tower, why


# --------------------------------------------------------------------------------------------
# labels -> output indices
# --------------------------------------------------------------------------------------------


def label_indices(head: Head, labels: Sequence[str | None], where: str = "") -> np.ndarray:
    """Each probe label as an output index of ``head`` (int64; -1 for an unlabelled image).

    A label matches a class id first (ImageNet wnids from ``labels: wnid``), else a class name
    (``labels: folder`` with folders named after the classes).  Labels the head does not know
    are an error naming both sides: accuracy over classes the head cannot predict is meaningless.
    """
    by_id = {c: i for i, c in enumerate(head.class_ids or ())}
    by_name = {c: i for i, c in enumerate(head.class_names)}
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
# caching: key parts and (de)serialisation
# --------------------------------------------------------------------------------------------


def _digest(items: Sequence[str]) -> str:
    return "sha256:" + hashlib.sha256(json.dumps(list(items)).encode("utf-8")).hexdigest()


def head_cache_parts(model_fingerprint_of_text_tower: str, classes: Sequence[str], templates: Sequence[str], *,
                     class_ids: Sequence[str] | None = None, tokenizer: str = "",
                     recipe: str = HEAD_RECIPE) -> dict[str, Any]:
    """The parts of a zero-shot head's store key: what it is a function of, and nothing else.

    ``templates`` as :func:`resolve_templates` returns them (strings), ``tokenizer`` a description
    of the tokenizer (class and context length; e.g. ``describe_tokenizer(tok)``).  Batch size and
    route are left out: they change values only at float32 rounding (< 1e-5).
    """
    return {
        "kind": "zero-shot-head",
        "text_tower": str(model_fingerprint_of_text_tower),
        "classes": _digest([str(c) for c in classes]),
        "class_ids": None if class_ids is None else _digest([str(c) for c in class_ids]),
        "templates": _digest([str(t) for t in templates]),
        "tokenizer": tokenizer,
        "recipe": recipe,
    }


def describe_tokenizer(tokenizer: Any) -> str:
    """A short identity of an open_clip tokenizer for cache keys (class, context length, vocab)."""
    parts = [type(tokenizer).__module__ + "." + type(tokenizer).__name__]
    for attr in ("context_length", "vocab_size", "sot_token_id", "eot_token_id", "pad_id"):
        value = getattr(tokenizer, attr, None)
        if isinstance(value, (int, str)):
            parts.append(f"{attr}={value}")
    inner = getattr(tokenizer, "tokenizer", None)  # HF tokenizers: the wrapped model's name
    name = getattr(inner, "name_or_path", None)
    if isinstance(name, str):
        parts.append(f"hf={name}")
    return " ".join(parts)


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
