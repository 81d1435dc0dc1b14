"""Zero-shot CLIP heads from an open_clip model's own text tower, built fast and exactly.

The recipe is the standard one (open_clip's ``build_zero_shot_classifier``, CLIP_benchmark): encode
every ``template.format(class)`` prompt, normalise each embedding, average over the templates,
normalise.  open_clip's shipped ImageNet class names and templates are reused (they work offline).

Why not call open_clip's builder: a 1000-class x 80-template head is 80,000 text-tower forwards,
each padded by the tokenizer to 77 tokens, most of them padding (ImageNet prompts average under 10
tokens).  CLIP's text tower is causal and pools one token (the end-of-text token found by
``argmax`` of the token ids, or the ``eos`` id, or the first token); with a causal mask the output
at position ``p`` depends only on tokens ``0..p``, so everything after a batch's last pooled
position can be cut without changing any value.  :func:`zero_shot_head` sorts all prompts of all
classes by that length, encodes them in batches cut to their own longest prompt (slicing the
positional embedding and the causal mask to match, as ``encode_text`` would need), and first
re-checks that route against the model's own ``encode_text`` on the longest prompts.  Towers that
are not causal, pool otherwise, append a class token (CoCa) or come from Hugging Face take the
untrimmed route (still batched across classes).  The route and why are in ``Head.details``.
Measured in ``benchmarks/bench_zeroshot_head.py``.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

from .heads import Head, HeadError, imagenet_class_names, imagenet_wnids

if TYPE_CHECKING:
    import torch

__all__ = [
    "HEAD_RECIPE",
    "TEMPLATE_SETS",
    "describe_tokenizer",
    "head_cache_parts",
    "resolve_templates",
    "text_tower_fingerprint",
    "zero_shot_head",
]

#: names of the shipped prompt sets (open_clip's ``zero_shot_metadata``)
TEMPLATE_SETS: tuple[str, ...] = ("openai", "simple")
#: bumped whenever the way a zero-shot head is computed changes (part of its cache key)
HEAD_RECIPE = "zero-shot/v1: normalise each prompt embedding, mean over templates, normalise"
#: how many prompts (the longest) the trimmed route compares against the model's own encode_text
#: before use; each costs a full 77-token forward, so one: a mirror that differs, differs on any
_SELF_CHECK = 1
#: tolerance of that comparison (float32 kernels on a different padded length differ by ~1e-6)
_SELF_CHECK_ATOL = 1e-4
#: how many offending templates an error message shows
_SHOW = 5


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
# caching: the parts of a zero-shot head's store key
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
