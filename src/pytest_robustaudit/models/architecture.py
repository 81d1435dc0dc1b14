"""What a model offers as layers, known without its weights: names, widths and the head's width.

Why: a spec that names ``blocks.9`` on a model with 5 blocks, ``pre_projection`` on a timm model or a
head metric on a layer the head does not read was accepted by validation and failed only when the
audit ran.  timm and open_clip build any architecture on PyTorch's meta device (no weights, no
memory, no network); one forward pass of a meta tensor through the layer adapter gives every layer's
pooled width.  That is an :class:`Architecture`, kept as JSON in the activation store
(``models/architecture-<key>.json``, key: the library versions, source, name, tag and options), so
that ``validate`` and collection read it without importing torch next time.

:class:`Architectures` is what spec validation asks (``spec/load.py``): it reads the cache, builds on
the meta device when needed (``build="always"`` in ``validate``; ``build="new"`` during collection:
only when the store has never built this model, so a warm run builds nothing), and never calls a
user's factory unless told to (``factories=True``: ``validate --factories``).
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ModelLoadError
from .layers import MODULE_PREFIX, LayerCatalogue

if TYPE_CHECKING:
    from ..registry import Registry
    from ..spec.schema import ModelSpec

#: bumped when what a cached architecture holds changes
ARCHITECTURE_FORMAT = 1
#: the store folder of the recipe memos (``measure/activations.py``); architectures sit beside them
MODELS = "models"
#: libraries whose code decides an architecture
ARCHITECTURE_LIBRARIES = ("torch", "timm", "open_clip_torch")


@dataclass(frozen=True)
class Architecture:
    """One model's layers as plain data: the :class:`~.layers.LayerCatalogue` (names), each layer's width
    (``representation``, ``pre_projection``, ``blocks.N``, and ``module:<name>`` for every module that
    ran in the image forward pass), and the width of its own linear classifier (None: none, with why)."""

    catalogue: LayerCatalogue
    widths: dict[str, int] = field(default_factory=dict)
    classifier_width: int | None = None
    classifier_problem: str = ""
    family: str = "generic"
    #: why the widths are unknown ("" when the meta forward pass gave them)
    widths_problem: str = ""

    def width(self, layer: str) -> int | None:
        """The width of ``layer`` (``blocks.-1`` counted from the end), None when not known."""
        return self.widths.get(self.catalogue.canonical(layer))

    def ran(self, layer: str) -> bool:
        """False for a ``module:`` layer that did not run in the image forward pass (e.g. the text tower)."""
        return not (layer.startswith(MODULE_PREFIX) and self.widths and layer not in self.widths)

    def head_width(self, kind: str) -> int | None:
        """The width the head of ``kind`` (``classifier``, ``zero-shot``) reads, None when unknown or none."""
        if kind == "zero-shot":
            return self.widths.get("representation") if self.family == "open_clip" else None
        if kind == "classifier":
            return self.classifier_width
        return None

    def to_json(self) -> dict[str, Any]:
        return {"format": ARCHITECTURE_FORMAT, "catalogue": {**asdict(self.catalogue), "modules": list(self.catalogue.modules)},
                "widths": dict(self.widths), "classifier_width": self.classifier_width,
                "classifier_problem": self.classifier_problem, "family": self.family,
                "widths_problem": self.widths_problem}

    @classmethod
    def from_json(cls, data: Any) -> "Architecture | None":
        """The architecture :meth:`to_json` wrote; None for anything else (a foreign or damaged file)."""
        try:
            if data.get("format") != ARCHITECTURE_FORMAT:
                return None
            raw = dict(data["catalogue"])
            catalogue = LayerCatalogue(**{**raw, "modules": tuple(raw["modules"])})
            return cls(catalogue, {str(k): int(v) for k, v in data["widths"].items()}, data["classifier_width"],
                       str(data["classifier_problem"]), str(data["family"]), str(data["widths_problem"]))
        except (AttributeError, KeyError, TypeError, ValueError):
            return None


def inspect(module: Any, example: Any, label: str) -> Architecture:
    """The :class:`Architecture` of ``module`` from one forward pass of ``example`` (a meta tensor for a
    model built on the meta device; a real one for a user's factory)."""
    import torch

    from .heads import HeadError, classifier_weights
    from .layers import adapter_for

    adapter = adapter_for(module, label)
    catalogue = adapter.catalogue()
    classifier_width, classifier_problem = None, ""
    try:
        classifier_width = int(classifier_weights(module, label)[0].shape[1])
    except HeadError as error:
        classifier_problem = str(error).splitlines()[0]
    widths: dict[str, int] = {}
    problem = ""
    try:
        with torch.no_grad():
            for name, tensor in adapter.forward(example, catalogue.available()).items():
                widths[name] = int(tensor.shape[-1])
            widths.update(_module_widths(adapter, example))
    except Exception as error:  # noqa: BLE001 - an op without a meta kernel: names are known, widths are not
        widths, problem = {}, f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
    return Architecture(catalogue, widths, classifier_width, classifier_problem, adapter.family, problem)


def _module_widths(adapter: Any, example: Any) -> dict[str, int]:
    """``module:<name>`` → pooled width, for every named module that runs in the image pass (the
    classifier included: it runs after the representation)."""
    captured: dict[str, int] = {}

    def hook_for(name: str):
        def hook(_module, _inputs, output):
            with contextlib.suppress(Exception):   # an output without a tensor has no width
                captured[MODULE_PREFIX + name] = int(adapter._pool(output).shape[-1])
        return hook

    handles = [module.register_forward_hook(hook_for(name)) for name, module in adapter.model.named_modules() if name]
    try:
        adapter._run(example)
        adapter._run_rest()
    finally:
        for handle in handles:
            handle.remove()
    return captured


def architecture_key(model: "ModelSpec") -> str:
    """The cache key of a model's architecture: library versions, source, name, tag and options."""
    from ..store import content_key, library_versions

    return content_key({"architecture": {
        "source": model.source, "name": model.name, "pretrained": model.pretrained,
        "options": json.loads(json.dumps(model.options, sort_keys=True, default=str)),
        "versions": library_versions(ARCHITECTURE_LIBRARIES), "format": ARCHITECTURE_FORMAT}})


class Architectures:
    """Architectures for spec validation, by :class:`~..spec.schema.ModelSpec` (see the module docstring).

    Calling it returns the model's :class:`Architecture`, None when it cannot be known here (a factory
    not to be called, a third-party source without ``skeleton``, an ``hf-hub:`` name, collection on a
    store that built the model before), or raises the source's :class:`~..errors.ModelLoadError` for a
    name or tag the library does not know."""

    def __init__(self, sources: "Registry", root: Path | None = None, build: str = "always",
                 factories: bool = False):
        self.sources = sources
        self.root = Path(root) if root is not None else None
        self.build = build
        self.factories = factories
        self._known: dict[str, Architecture | None] = {}
        #: models built on the meta device by this object (for tests and the benchmark)
        self.built = 0
        #: models whose architecture could not be built (label -> why): their layers are known at run time
        self.unknown: dict[str, str] = {}

    def __call__(self, model: "ModelSpec") -> Architecture | None:
        if model.source not in self.sources:
            return None
        source = self.sources.get(model.source)
        skeleton = getattr(source, "skeleton", None)
        calls_factory = model.source == "factory"
        if not callable(skeleton) and not (calls_factory and self.factories):
            return None
        key = architecture_key(model) if not calls_factory else None
        if key is not None and key in self._known:
            return self._known[key]
        found = self._read(key)
        if found is None and self._may_build(model):
            try:
                found = self._build(model, source, skeleton)
            except ModelLoadError:
                raise   # a name, tag or option the library refuses: the spec's problem, said at its key
            except Exception as error:  # noqa: BLE001 - e.g. a warning turned into an error by -W error
                from ..errors import describe_error

                # the layers stay unknown until the audit runs (where such an error is shown in full)
                self.unknown[model.describe()] = describe_error(error)
                found = None
            if found is not None:
                self._write(key, found)
        if key is not None:
            self._known[key] = found
        return found

    def _may_build(self, model: "ModelSpec") -> bool:
        if self.build == "always" or self.root is None:
            return True
        # collection: only for a model this store has never built (its recipe memo is absent), so a
        # warm run imports no model library
        from ..measure.activations import RECIPE_SOURCES, _Model
        from ..store import ActivationStore
        from types import SimpleNamespace

        if model.source not in RECIPE_SOURCES:
            return True
        store = ActivationStore(self.root)
        try:
            return _Model(SimpleNamespace(model=model), None, store).memo is None
        except Exception:  # noqa: BLE001 - an unreadable checkpoint fails later, where it is named
            return True
        finally:
            store.hasher.save()   # the checkpoint's hash, for the run that follows

    def _build(self, model: "ModelSpec", source: Any, skeleton: Any) -> Architecture | None:
        import torch

        if model.source == "factory" and not callable(skeleton):
            loaded = source.load(model)
            from PIL import Image

            example = loaded.preprocess(Image.new("RGB", (224, 224))).unsqueeze(0)
            return inspect(loaded.module, example, loaded.description)
        built = skeleton(model)
        if built is None:
            return None
        module, (height, width) = built
        self.built += 1
        return inspect(module, torch.empty(1, 3, height, width, device="meta"), model.describe())

    def _path(self, key: str | None) -> Path | None:
        return self.root / MODELS / f"architecture-{key}.json" if key and self.root is not None else None

    def _read(self, key: str | None) -> Architecture | None:
        path = self._path(key)
        if path is None:
            return None
        try:
            return Architecture.from_json(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError):
            return None

    def _write(self, key: str | None, found: Architecture) -> None:
        path = self._path(key)
        if path is None:
            return
        from ..atomic import write_text_atomic

        with contextlib.suppress(OSError):   # a read-only store only costs the next run a meta build
            write_text_atomic(path, json.dumps(found.to_json(), sort_keys=True))
