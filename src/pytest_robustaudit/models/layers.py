"""Layer adapters: the plugin's layer names mapped onto open_clip, timm and arbitrary models.

Why one adapter per library: the audit talks about ``representation``, ``pre_projection``,
``blocks.N`` and ``module:<name>`` whatever the model is, but each library spells its
representation and its blocks differently (see DESIGN.md, "Representation h(x)"):

* open_clip: ``representation`` = ``model.encode_image(x, normalize=False)`` (the zero-shot
  head's input); ``pre_projection`` = the pooled feature before ``visual.proj`` (ViT, computed
  with the tower's own ``_pool`` so ``final_ln_after_pool`` and attention pools are honoured) or
  the spatial mean of ``layer4`` (ModifiedResNet: the attention pool's input); ``blocks.N`` = the
  blocks open_clip's own ``forward_intermediates`` enumerates.
* timm: ``representation`` = ``forward_head(forward_features(x), pre_logits=True)``; ``blocks.N`` =
  the modules of ``model.feature_info`` (what timm's ``forward_intermediates`` enumerates).
* anything else: ``representation`` = the forward output flattened to ``[B, d]``.

Intermediate outputs are captured by forward hooks that exist only during one forward pass, so a
single pass serves every requested layer, and they are pooled inside the hook (feature maps to
their spatial mean, token maps to the class token or token mean), so no full activation map is
kept.  Every output is ``[B, d]``.  A module that runs more than once in a pass keeps its last
output.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Sequence

from ..errors import LayerError
from ..registry import suggest

if TYPE_CHECKING:
    import torch

_BLOCK = re.compile(r"^blocks\.(-?\d+)$")
MODULE_PREFIX = "module:"
#: the layer names a spec may ask for (the grammar this module resolves)
LAYER_NAME = re.compile(r"^(representation|pre_projection|blocks\.-?\d+|module:[A-Za-z_][\w.]*)$")
LAYER_NAME_HELP = "use representation, pre_projection, blocks.N (N may be negative) or module:<dotted.name>"
NAMED_LAYERS = ("representation", "pre_projection")

Pool = Callable[[Any], "torch.Tensor"]


def first_tensor(out: Any) -> "torch.Tensor":
    """The tensor in a module output (tuples, lists and dicts keep theirs in the first slot)."""
    import torch

    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, (tuple, list)):
        for item in out:
            if isinstance(item, torch.Tensor):
                return item
    if isinstance(out, dict):
        for item in out.values():
            if isinstance(item, torch.Tensor):
                return item
    raise LayerError(f"a hooked module returned {type(out).__name__}, which holds no tensor to read")


def pool(out: Any, class_token: bool = False, prefix_tokens: int = 0, channels_last: bool = False) -> "torch.Tensor":
    """Reduce one activation to ``[B, d]``.

    ``[B, C, H, W]`` → mean over H, W (``[B, H, W, C]`` when ``channels_last``); ``[B, T, d]`` → the
    class token (position 0) when the model has one, else the mean of the non-prefix tokens;
    ``[B, d]`` as is.  The result is a fresh tensor, safe from later in-place ops.
    """
    t = first_tensor(out).detach()
    if t.ndim == 2:
        return t.clone()
    if t.ndim == 1:
        return t.reshape(-1, 1).clone()
    if t.ndim == 3:
        if class_token:
            return t[:, 0].clone()
        if 0 < prefix_tokens < t.shape[1]:
            return t[:, prefix_tokens:].mean(dim=1)
        return t.mean(dim=1)
    if t.ndim == 4:
        return t.mean(dim=(1, 2)) if channels_last else t.mean(dim=(2, 3))
    return t.flatten(2).mean(dim=2)



@dataclass(frozen=True)
class LayerCatalogue:
    """The layer names one model offers, as plain data: known from the model, or from its cached
    architecture (``models/architecture.py``) without building it.

    ``blocks``: how many ``blocks.N`` there are; ``pre_projection``: whether that layer exists (else
    ``pre_projection_unsupported`` says why); ``modules``: the names of ``model.named_modules()`` (for
    ``module:<name>``); ``module_example``: one to show in messages."""

    label: str
    blocks: int
    pre_projection: bool
    modules: tuple[str, ...]
    pre_projection_unsupported: str = ""
    blocks_unsupported: str = ""
    module_example: str = MODULE_PREFIX + "<name>"

    def available(self) -> list[str]:
        names = ["representation"] + (["pre_projection"] if self.pre_projection else [])
        return names + [f"blocks.{i}" for i in range(self.blocks)]

    def summary(self) -> str:
        n = self.blocks
        parts = ["representation"] + (["pre_projection"] if self.pre_projection else [])
        if n:
            parts.append(f"blocks.0..blocks.{n - 1}" if n > 1 else "blocks.0")
        parts.append(f"module:<name> (any named module, e.g. {self.module_example})")
        return ", ".join(parts)

    def canonical(self, name: str) -> str:
        """``blocks.-1`` as ``blocks.{n-1}``; any other name as it is."""
        match = _BLOCK.match(name)
        if match and self.blocks and -self.blocks <= int(match.group(1)) < 0:
            return f"blocks.{int(match.group(1)) + self.blocks}"
        return name

    def problem(self, name: str) -> str | None:
        """None if ``name`` is a layer of this model, else the explanation with what is available."""
        if name == "representation":
            return None
        if name == "pre_projection":
            if self.pre_projection:
                return None
            return (f"layer 'pre_projection' is not available for {self.label}: "
                    f"{self.pre_projection_unsupported}. Available: {self.summary()}")
        match = _BLOCK.match(name)
        if match:
            n = self.blocks
            if n == 0:
                return (f"layer '{name}' does not exist for {self.label}: {self.blocks_unsupported}. "
                        f"Available: {self.summary()}")
            index = int(match.group(1))
            if -n <= index < n:
                return None
            return (f"layer '{name}' does not exist for {self.label} ({n} block{'s' if n != 1 else ''}: "
                    f"blocks.0 … blocks.{n - 1}, or blocks.-{n} … blocks.-1 counting from the end). "
                    f"Available: {self.summary()}")
        if name.startswith(MODULE_PREFIX):
            dotted = name[len(MODULE_PREFIX):]
            if dotted and dotted in self.modules:
                return None
            hint = suggest(dotted, list(self.modules))
            return (f"layer '{name}': {self.label} has no module named '{dotted}'.{hint} "
                    f"Module names are those of model.named_modules(). Available: {self.summary()}")
        known = self.available() + [MODULE_PREFIX + "<name>"]
        return (f"unknown layer '{name}' for {self.label}.{suggest(name, known)} "
                f"Available: {self.summary()}")


class HookAdapter:
    """Common machinery: name checking, hook registration for one pass, pooling, error text.

    Subclasses provide :meth:`_blocks` (ordered ``(name, module, pool)``), optionally
    :meth:`_pre_projection` (``(module, pool)``), :meth:`_run` (the forward that returns the
    representation) and :meth:`_pool` for ``module:`` targets.
    """

    family = "model"

    def __init__(self, model: "torch.nn.Module", label: str):
        self.model = model
        self.label = label
        self._block_list: list[tuple[str, Any, Pool]] | None = None
        self._catalogue: LayerCatalogue | None = None

    # -- to override ------------------------------------------------------------------------
    def _blocks(self) -> list[tuple[str, Any, Pool]]:
        return []

    def _pre_projection(self) -> tuple[Any, Pool] | None:
        return None

    def _pre_projection_unsupported(self) -> str:
        return "this model has no projection layer the adapter knows of"

    def _blocks_unsupported(self) -> str:
        return "this model has no block list the adapter knows of (only timm and open_clip models do)"

    def _pool(self, out: Any) -> "torch.Tensor":
        return pool(out)

    def _run(self, images: "torch.Tensor") -> "torch.Tensor":
        raise NotImplementedError

    def _run_rest(self) -> None:
        """Run parts of the model the representation pass skipped (e.g. a classifier head)."""

    # -- LayerAdapter ---------------------------------------------------------------------------
    @property
    def blocks(self) -> list[tuple[str, Any, Pool]]:
        if self._block_list is None:
            self._block_list = self._blocks()
        return self._block_list

    def catalogue(self) -> "LayerCatalogue":
        """What this model offers as layers, as plain data (:class:`LayerCatalogue`): the one place layer
        names are judged, whether the model is at hand or only its cached architecture."""
        if self._catalogue is None:
            modules = tuple(n for n, _ in self.model.named_modules() if n)
            self._catalogue = LayerCatalogue(
                label=self.label, blocks=len(self.blocks), pre_projection=self._pre_projection() is not None,
                modules=modules, pre_projection_unsupported=self._pre_projection_unsupported(),
                blocks_unsupported=self._blocks_unsupported(), module_example=self._module_example(modules))
        return self._catalogue

    def available(self) -> list[str]:
        return self.catalogue().available()

    def _summary(self) -> str:
        return self.catalogue().summary()

    def _module_example(self, modules: Sequence[str]) -> str:
        if self.blocks:
            return MODULE_PREFIX + self.blocks[0][0]
        return MODULE_PREFIX + (modules[0] if modules else "<name>")

    def _problem(self, name: str) -> str | None:
        """None if ``name`` is valid, else the explanation."""
        return self.catalogue().problem(name)

    def check(self, names: Sequence[str]) -> None:
        problems = [p for p in (self._problem(str(n)) for n in names) if p]
        if problems:
            raise LayerError("\n".join(problems))

    def _target(self, name: str) -> tuple[Any, Pool] | None:
        if name == "representation":
            return None
        if name == "pre_projection":
            return self._pre_projection()
        match = _BLOCK.match(name)
        if match:
            _, module, block_pool = self.blocks[int(match.group(1))]
            return module, block_pool
        return self.model.get_submodule(name[len(MODULE_PREFIX):]), self._pool

    def forward(self, images: "torch.Tensor", names: Sequence[str]) -> dict[str, "torch.Tensor"]:
        names = [str(n) for n in names]
        self.check(names)
        captured: dict[str, Any] = {}
        by_module: dict[int, tuple[Any, list[tuple[str, Pool]]]] = {}
        for name in dict.fromkeys(names):
            target = self._target(name)
            if target is None:
                continue
            module, fn = target
            by_module.setdefault(id(module), (module, []))[1].append((name, fn))

        def make_hook(wanted: list[tuple[str, Pool]]):
            def hook(_module, _inputs, output):
                for layer, fn in wanted:
                    captured[layer] = fn(output)

            return hook

        handles = [module.register_forward_hook(make_hook(wanted)) for module, wanted in by_module.values()]
        try:
            representation = self._run(images)
            if any(n not in captured and n != "representation" for n in names):
                self._run_rest()
        finally:
            for handle in handles:
                handle.remove()
        result: dict[str, "torch.Tensor"] = {}
        for name in names:
            if name == "representation":
                rep = first_tensor(representation)
                result[name] = rep if rep.ndim == 2 else rep.reshape(rep.shape[0], -1)
            elif name in captured:
                result[name] = captured[name]
            else:
                raise LayerError(
                    f"layer '{name}' of {self.label} did not run during the image forward pass "
                    "(it may belong to another part of the model, e.g. the text tower or a classifier "
                    "that the representation does not use). Available: " + self._summary()
                )
        return result


# --------------------------------------------------------------------------------------------
class OpenClipAdapter(HookAdapter):
    """open_clip CLIP models (VisionTransformer, ModifiedResNet and timm image towers)."""

    family = "open_clip"

    def __init__(self, model: "torch.nn.Module", label: str):
        super().__init__(model, label)
        self.visual = getattr(model, "visual", model)
        self.prefix = "visual." if self.visual is not model else ""
        self.kind = self._kind()

    def _kind(self) -> str:
        v = self.visual
        if hasattr(v, "transformer") and hasattr(v, "class_embedding") and hasattr(v.transformer, "resblocks"):
            return "vit"
        if all(hasattr(v, a) for a in ("layer4", "attnpool", "avgpool")):
            return "resnet"
        if hasattr(v, "trunk"):
            return "timm"
        return "other"

    def _blocks(self) -> list[tuple[str, Any, Pool]]:
        v, p = self.visual, self.prefix
        if self.kind == "vit":
            batch_first = getattr(v.transformer, "batch_first", True)

            def vit_pool(out: Any) -> "torch.Tensor":
                t = first_tensor(out)
                return pool(t if batch_first else t.transpose(0, 1), class_token=True)

            return [(f"{p}transformer.resblocks.{i}", blk, vit_pool) for i, blk in enumerate(v.transformer.resblocks)]
        if self.kind == "resnet":
            # stem, layer1..layer4 as ModifiedResNet.forward_intermediates enumerates them; the stem is
            # a method whose last op is ``avgpool``, so its output is the stem's output
            return [(f"{p}avgpool", v.avgpool, pool)] + [
                (f"{p}layer{i}", getattr(v, f"layer{i}"), pool) for i in range(1, 5)
            ]
        if self.kind == "timm":
            return timm_blocks(v.trunk, f"{p}trunk.")
        return []

    def _pre_projection(self) -> tuple[Any, Pool] | None:
        v = self.visual
        if self.kind == "vit" and hasattr(v, "_pool"):
            # the transformer's output (always batch-first after Transformer.forward), pooled with the
            # tower's own _pool: ln_post then class token, or pool then ln_post (final_ln_after_pool)
            return v.transformer, lambda out: v._pool(first_tensor(out))[0].detach().clone()
        if self.kind == "resnet":
            return v.layer4, pool  # the attention pool's input, spatially averaged
        return None

    def _pre_projection_unsupported(self) -> str:
        return (f"it is defined for open_clip VisionTransformer and ModifiedResNet image towers, and this "
                f"tower is a {type(self.visual).__name__}")

    def _pool(self, out: Any) -> "torch.Tensor":
        return pool(out, class_token=self.kind == "vit")

    def _run(self, images: "torch.Tensor") -> "torch.Tensor":
        if hasattr(self.model, "encode_image"):
            return self.model.encode_image(images, normalize=False)
        return first_tensor(self.visual(images))


def timm_blocks(model: "torch.nn.Module", prefix: str = "") -> list[tuple[str, Any, Pool]]:
    """The modules of a timm model's ``feature_info``, each with the pooling its outputs need."""
    info = getattr(model, "feature_info", None) or []
    class_token = getattr(model, "cls_token", None) is not None
    prefix_tokens = int(getattr(model, "num_prefix_tokens", 0) or 0)
    channels_last = str(getattr(model, "output_fmt", "NCHW")) == "NHWC"

    def timm_pool(out: Any) -> "torch.Tensor":
        return pool(out, class_token=class_token, prefix_tokens=prefix_tokens, channels_last=channels_last)

    blocks = []
    for entry in info:
        name = entry.get("module") if isinstance(entry, dict) else None
        if not name:
            continue
        try:
            module = model.get_submodule(name)
        except AttributeError:
            continue
        blocks.append((prefix + name, module, timm_pool))
    return blocks


class TimmAdapter(HookAdapter):
    """timm classifiers: pre-logits representation, ``feature_info`` blocks."""

    family = "timm"

    def __init__(self, model: "torch.nn.Module", label: str):
        super().__init__(model, label)
        self._features: Any = None

    def _blocks(self) -> list[tuple[str, Any, Pool]]:
        return timm_blocks(self.model)

    def _pre_projection_unsupported(self) -> str:
        return ("a timm model's representation is already its pre-logits feature (the input of the "
                "classifier), so there is no separate pre-projection layer; use 'representation'")

    def _pool(self, out: Any) -> "torch.Tensor":
        m = self.model
        return pool(out, class_token=getattr(m, "cls_token", None) is not None,
                    prefix_tokens=int(getattr(m, "num_prefix_tokens", 0) or 0),
                    channels_last=str(getattr(m, "output_fmt", "NCHW")) == "NHWC")

    def _run(self, images: "torch.Tensor") -> "torch.Tensor":
        self._features = self.model.forward_features(images)
        return self.model.forward_head(self._features, pre_logits=True)

    def _run_rest(self) -> None:
        if self._features is not None:
            self.model.forward_head(self._features)  # the classifier, for module:<head> hooks
        self._features = None

    def forward(self, images: "torch.Tensor", names: Sequence[str]) -> dict[str, "torch.Tensor"]:
        try:
            return super().forward(images, names)
        finally:
            self._features = None


class GenericAdapter(HookAdapter):
    """Any ``nn.Module``: the forward output flattened is the representation; ``module:`` hooks."""

    family = "generic"

    def _blocks_unsupported(self) -> str:
        return ("blocks.N is defined for timm and open_clip models; for this model name a module with "
                "module:<name>")

    def _pre_projection_unsupported(self) -> str:
        return "it is defined for open_clip CLIP models only; name the module with module:<name>"

    def _run(self, images: "torch.Tensor") -> "torch.Tensor":
        out = first_tensor(self.model(images))
        return out.reshape(out.shape[0], -1)


def adapter_for(model: "torch.nn.Module", label: str) -> HookAdapter:
    """Pick the adapter by what the model can do: CLIP-like, timm-like, or generic."""
    if hasattr(model, "encode_image") and hasattr(model, "visual"):
        return OpenClipAdapter(model, label)
    if hasattr(model, "forward_features") and hasattr(model, "forward_head"):
        return TimmAdapter(model, label)
    return GenericAdapter(model, label)
