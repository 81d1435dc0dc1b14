"""The ``open_clip`` model source: CLIP models from hub tags or local checkpoints.

Why the care around tags: an unknown architecture or tag must fail before any download, with a
suggestion.  A tag also fixes how the weights were trained: its preprocessing (mean, std,
interpolation, resize mode) and whether the towers use QuickGELU (all OpenAI weights do).
open_clip 3.x only *warns* when ``RN50`` is paired with ``openai`` weights without QuickGELU and
then computes a different function; here the tag's ``quick_gelu`` is applied
(``force_quick_gelu``) unless ``model.options`` sets it, so audited features are those the weights
were trained with.  The same tag settings apply when a local checkpoint of that tag is given.

Local checkpoints may be open_clip's own format (``{"state_dict": ...}`` or a plain state dict of
the whole CLIP model, text tower included), OpenAI's TorchScript archives, or the image tower
alone (keys with or without ``visual.``); the layout is detected from the keys.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Iterator

from ..errors import ModelLoadError
from ..registry import suggest
from .base import LoadedModel
from .hub import hub_download
from .loading import INIT_SEED, finish, seeded, versions

if TYPE_CHECKING:
    import torch

    from ..spec.schema import ModelSpec

#: scalar buffers in OpenAI's TorchScript CLIP files that open_clip models do not have
_JIT_EXTRAS = ("input_resolution", "context_length", "vocab_size")
_SCHEMAS = ("hf-hub:", "local-dir:")


def _validate(spec: "ModelSpec") -> tuple[str, str | None, dict[str, Any]]:
    """(architecture, tag, tag config) after checking both against open_clip's registry."""
    import open_clip

    name = str(spec.name)
    if name.startswith(_SCHEMAS):
        if spec.pretrained:
            raise ModelLoadError(f"{spec.describe()}: `pretrained` is ignored for '{name.split(':')[0]}:' "
                                 "names (their weights come with the name); remove it")
        return name, None, {}
    arch = name.replace("/", "-")
    known = open_clip.list_models()
    if arch not in known:
        raise ModelLoadError(
            f"{spec.describe()}: unknown open_clip architecture '{name}'.{suggest(arch, known)} "
            "See open_clip.list_models()."
        )
    pretrained = spec.pretrained
    if pretrained is True:
        tags = open_clip.list_pretrained_tags_by_model(arch)
        raise ModelLoadError(
            f"{spec.describe()}: open_clip needs a pretrained tag, not `true`. "
            f"Tags for {arch}: {', '.join(tags) or '(none)'}."
        )
    if not pretrained:
        return arch, None, {}
    tag = str(pretrained)
    cfg = open_clip.get_pretrained_cfg(arch, tag)
    if not cfg:
        tags = open_clip.list_pretrained_tags_by_model(arch)
        raise ModelLoadError(
            f"{spec.describe()}: open_clip has no pretrained tag '{tag}' for {arch}.{suggest(tag, tags)} "
            f"Known tags: {', '.join(tags) or '(none)'}. "
            "For weights from a file, set `model.checkpoint` instead of a tag."
        )
    return arch, tag, dict(cfg)


def _create_kwargs(spec: "ModelSpec", tag_cfg: dict[str, Any]) -> dict[str, Any]:
    """create_model_and_transforms arguments: the tag's training settings, then the spec's overrides."""
    kwargs: dict[str, Any] = {}
    if tag_cfg.get("quick_gelu"):
        kwargs["force_quick_gelu"] = True
    for ours, theirs in (("image_mean", "mean"), ("image_std", "std"),
                         ("image_interpolation", "interpolation"), ("image_resize_mode", "resize_mode")):
        if tag_cfg.get(theirs) is not None:
            kwargs[ours] = tag_cfg[theirs]
    kwargs.update({f"image_{name}": value for name, value in spec.preprocess.overrides().items()})
    kwargs.update(spec.options)
    if spec.cache_dir is not None:
        kwargs["cache_dir"] = str(spec.cache_dir)
    return kwargs


def _split_target(model: "torch.nn.Module", state: dict[str, Any], match_keys: str) -> tuple[Any, dict[str, Any], str]:
    """Decide whether ``state`` is the whole CLIP model or its image tower: (module, state, layout).

    Key names alone cannot tell: a ViT image tower's unprefixed keys (``positional_embedding``,
    ``transformer.resblocks.0...``) also name text-tower tensors of the whole model.  So keys all
    under ``visual.`` mean the image tower; otherwise the layout under which more tensors match by
    name *and* shape wins.
    """
    visual = model.visual
    full = model.state_dict()
    tower = visual.state_dict()
    keys = list(state)
    if match_keys == "by_order":
        if len(keys) == len(tower) and len(keys) != len(full):
            return visual, state, "image tower"
        return model, state, "full model"
    if keys and all(k.startswith("visual.") for k in keys):
        return visual, {k[len("visual."):]: v for k, v in state.items()}, "image tower"

    def fits(target: dict[str, Any]) -> int:
        return sum(1 for k, v in state.items() if k in target and tuple(target[k].shape) == tuple(v.shape))

    if fits(tower) > fits(full):
        return visual, state, "image tower"
    return model, state, "full model"


def _massage_full(model: "torch.nn.Module", state: dict[str, Any]) -> dict[str, Any]:
    """open_clip's own conversions for whole-model state dicts (as its load_checkpoint does)."""
    from open_clip.convert import convert_state_dict
    from open_clip.model import convert_to_custom_text_state_dict

    state = convert_state_dict(model, state)
    if "positional_embedding" in state and not hasattr(model, "positional_embedding"):
        state = convert_to_custom_text_state_dict(state)
    for key in ("logit_scale", "logit_bias"):
        ours = getattr(model, key, None)
        if key in state and ours is not None and state[key].ndim != ours.ndim and state[key].numel() == ours.numel():
            state[key] = state[key].reshape(ours.shape)
    position_ids = "text.transformer.embeddings.position_ids"
    if position_ids in state and position_ids not in model.state_dict():
        del state[position_ids]
    return state


@contextmanager
def _options_errors(spec: "ModelSpec", arch: str, kinds: tuple[type, ...]) -> Iterator[None]:
    """A ``create_model_and_transforms`` that refuses the spec's options (errors of ``kinds``) fails as a
    ModelLoadError naming the call and the keys to check."""
    try:
        yield
    except ModelLoadError:
        raise
    except kinds as exc:
        raise ModelLoadError(
            f"open_clip.create_model_and_transforms({arch!r}, ...) failed: {type(exc).__name__}: {exc}",
            where=spec.describe(), fix="check `model.options` and `model.preprocess` in the spec") from exc


class OpenClipSource:
    """Load open_clip CLIP models; the LoadedModel's module is the whole CLIP model (both towers)."""

    name = "open_clip"
    required = ("name",)

    def load(self, spec: "ModelSpec") -> LoadedModel:
        import open_clip

        from .checkpoints import fit_state_dict, read_state_dict

        arch, tag, tag_cfg = _validate(spec)
        kwargs = _create_kwargs(spec, tag_cfg)
        download = tag is not None and spec.checkpoint is None
        from_hub = arch.startswith("hf-hub:")  # even its config comes from the hub
        with _options_errors(spec, arch, (TypeError, ValueError, AssertionError, KeyError)), seeded():
            if download or from_hub:
                cache = f", cache_dir={str(spec.cache_dir)!r}" if spec.cache_dir else ""
                wanted = f", pretrained='{tag}'" if download else ""
                snippet = ("python -c \"import open_clip; open_clip.create_model_and_transforms("
                           f"'{arch}'{wanted}{cache})\"")
                with hub_download(spec.describe(), snippet, spec.cache_dir):
                    model, _, preprocess = open_clip.create_model_and_transforms(
                        arch, pretrained=tag if download else None, **kwargs)
            else:
                model, _, preprocess = open_clip.create_model_and_transforms(arch, pretrained=None, **kwargs)

        layout = "full model"
        fingerprint_of = None
        if spec.checkpoint is not None:
            ckpt = spec.checkpoint
            state = read_state_dict(ckpt)
            own = model.state_dict()
            state = {k: v for k, v in state.items() if not (k in _JIT_EXTRAS and k not in own)}
            target, state, layout = _split_target(model, state, ckpt.match_keys)
            if target is model and ckpt.match_keys == "by_name":
                state = _massage_full(model, state)
            label = f"checkpoint {ckpt.path} ({layout}) for {spec.describe()}"
            fit_state_dict(target, state, ckpt.match_keys, label)
            if target is not model:
                # the text tower stays at its seeded random init: identify the weights by the image
                # tower only, so the fingerprint reflects what came from the file
                fingerprint_of = {f"visual.{k}": v for k, v in model.visual.state_dict().items()}
            weights = "checkpoint"
        else:
            weights = "hub" if download else f"random init (seed {INIT_SEED})"
        provenance = {
            "library": versions("open_clip_torch", "timm"),
            "architecture": arch,
            "pretrained": tag,
            "weights": weights,
            "checkpoint_layout": layout if spec.checkpoint is not None else None,
            "quick_gelu": bool(kwargs.get("force_quick_gelu")) or arch.endswith("quickgelu"),
            "options": dict(spec.options),
        }
        if layout == "image tower":
            provenance["text_tower"] = f"random init (seed {INIT_SEED}): the checkpoint holds the image tower only"
        return finish(spec, model, preprocess, provenance, fingerprint_of)

    def skeleton(self, spec: "ModelSpec") -> tuple[Any, tuple[int, int]] | None:
        """The CLIP model without weights, on the meta device, and its image size (see
        ``TimmSource.skeleton``); None for ``hf-hub:`` / ``local-dir:`` names, whose config comes with
        the weights.  An unknown architecture or tag raises the same ModelLoadError as :meth:`load`."""
        import logging

        import open_clip
        import torch

        arch, tag, tag_cfg = _validate(spec)
        if arch.startswith(_SCHEMAS):
            return None
        kwargs = _create_kwargs(spec, tag_cfg)
        kwargs.pop("cache_dir", None)
        logging.disable(logging.WARNING)   # open_clip logs that no pretrained weights were loaded: none were asked for
        try:
            with _options_errors(spec, arch, (TypeError, ValueError, AssertionError, KeyError, RuntimeError)), \
                    torch.device("meta"):
                model, _, _ = open_clip.create_model_and_transforms(arch, pretrained=None, device="meta", **kwargs)
        finally:
            logging.disable(logging.NOTSET)
        size = getattr(model.visual, "image_size", 224)
        size = tuple(size) if isinstance(size, (tuple, list)) else (size, size)
        return model.eval(), (int(size[0]), int(size[1]))
