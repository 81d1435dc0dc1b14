"""Validation of the ``model`` section (also used for ``reference.model``).

The vocabularies are the model stage's own: registered sources, the factory syntax
(:func:`~..models.factory_source.split_factory`), checkpoint key matching and interpolations.
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path
from typing import Any

from ..errors import ModelLoadError
from ..models.base import INTERPOLATIONS
from ..models.checkpoints import MATCH_KEYS
from ..models.factory_source import split_factory
from ..registry import suggest
from .schema import CheckpointSpec, ModelSpec, PreprocessSpec
from .validator import Validator, _kind
from .yamlsource import dotted

MODEL_KEYS = ("source", "name", "pretrained", "checkpoint", "factory", "options", "preprocess", "cache_dir", "arrays")
CHECKPOINT_KEYS = ("path", "package", "match_keys", "trusted")
PREPROCESS_KEYS = ("mean", "std", "interpolation")


class ModelSection(Validator):
    def model(self, value: Any, path: tuple) -> ModelSpec | None:
        section = self.mapping(value, path, MODEL_KEYS, required=("source",))
        if section is None or "source" not in section:
            return None
        source_name = section["source"]
        sources = self.registries.sources
        if not isinstance(source_name, str) or source_name not in sources:
            self.problem(path + ("source",), f"unknown model source {source_name!r}.{suggest(str(source_name), sources.names())}",
                         f"use one of: {', '.join(sources.names())}")
            return None
        for key in sources.get(source_name).required:
            if key not in section:
                self.problem(path, f"source '{source_name}' needs the key '{key}'", f"add '{key}:' under {dotted(path)}")
        name = section.get("name")
        if name is not None:
            self.typed(name, path + ("name",), (str,), "a model name (string)")
        pretrained = section.get("pretrained")
        if pretrained is not None:
            self.typed(pretrained, path + ("pretrained",), (str, bool), "a pretrained tag (string) or true/false")
        factory = section.get("factory")
        if factory is not None:
            factory = self.factory(factory, path + ("factory",))
        options = section.get("options", {})
        if not isinstance(options, dict):
            self.problem(path + ("options",), f"expected a mapping of keyword arguments, got {_kind(options)}",
                         "write options as 'name: value' lines")
            options = {}
        checkpoint = self.checkpoint(section["checkpoint"], path + ("checkpoint",)) if section.get("checkpoint") is not None else None
        preprocess = (self.preprocess(section["preprocess"], path + ("preprocess",))
                      if section.get("preprocess") is not None else PreprocessSpec())
        cache_dir = None
        if section.get("cache_dir") is not None:
            text = self.typed(section["cache_dir"], path + ("cache_dir",), (str,), "a folder path")
            cache_dir = (self.base / Path(text).expanduser()).resolve() if text else None
        arrays = self.arrays(section["arrays"], path + ("arrays",)) if section.get("arrays") is not None else {}
        if arrays and source_name != "activations":
            self.problem(path + ("arrays",), f"'arrays' belongs to source 'activations', not '{source_name}'",
                         "remove it, or set source: activations to audit stored features")
        return ModelSpec(source=source_name, name=name if isinstance(name, str) else None,
                         pretrained=pretrained if isinstance(pretrained, (str, bool)) else None,
                         checkpoint=checkpoint, factory=factory, options=dict(options), preprocess=preprocess,
                         cache_dir=cache_dir, where=self.where(path), arrays=arrays)

    def factory(self, value: Any, path: tuple) -> str | None:
        text = self.typed(value, path, (str,), "'package.module:callable' or 'file.py:callable'")
        if text is None:
            return None
        try:
            target, attr = split_factory(text)
        except ModelLoadError:
            self.problem(path, f"{text!r} does not name a callable", "write 'package.module:function' or 'path/to/file.py:function'")
            return None
        if target.endswith(".py"):
            file = self.existing_path(target, path, want_dir=False)
            return f"{file}:{attr}" if file else None
        if _find_spec(target.split(".")[0]) is None:
            self.problem(path, f"module '{target}' cannot be imported (not installed and not on sys.path)",
                         "install the package, or use a file path: 'path/to/file.py:function'")
            return None
        return text

    def checkpoint(self, value: Any, path: tuple) -> CheckpointSpec | None:
        if isinstance(value, str):
            value = {"path": value}
            file = self.existing_path(value["path"], path, want_dir=False)
            return CheckpointSpec(file, where=self.where(path)) if file else None
        section = self.mapping(value, path, CHECKPOINT_KEYS, required=("path",))
        if section is None or "path" not in section:
            return None
        base = None
        if section.get("package") is not None:
            package = self.typed(section["package"], path + ("package",), (str,), "an installed package name")
            found = _find_spec(package) if package else None
            if package and (found is None or not found.submodule_search_locations):
                self.problem(path + ("package",), f"package '{package}' is not installed",
                             f"pip install it (e.g. pip install {package.replace('_', '-')}), or give a plain path")
                return None
            if found is None:
                return None
            base = Path(list(found.submodule_search_locations)[0])
        match_keys = self.choice(section.get("match_keys", "by_name"), path + ("match_keys",), MATCH_KEYS)
        trusted = self.typed(section.get("trusted", False), path + ("trusted",), (bool,), "true or false")
        file = self.existing_path(section["path"], path + ("path",), want_dir=False, base=base)
        if file is None:
            return None
        return CheckpointSpec(file, match_keys or "by_name", bool(trusted), where=self.where(path))

    def preprocess(self, value: Any, path: tuple) -> PreprocessSpec:
        section = self.mapping(value, path, PREPROCESS_KEYS) or {}
        triples = {}
        for key in ("mean", "std"):
            if key in section:
                seq = section[key]
                if (not isinstance(seq, list) or len(seq) != 3
                        or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                                   for v in seq)):
                    self.problem(path + (key,), f"expected 3 finite numbers (one per RGB channel), got {seq!r}",
                                 f"e.g. {key}: [0.5, 0.5, 0.5]")
                elif key == "std" and any(v <= 0 for v in seq):
                    self.problem(path + (key,), "every std must be positive", "use the checkpoint's normalisation std")
                else:
                    triples[key] = tuple(float(v) for v in seq)
        interpolation = None
        if "interpolation" in section:
            interpolation = self.choice(section["interpolation"], path + ("interpolation",), INTERPOLATIONS)
        return PreprocessSpec(mean=triples.get("mean"), std=triples.get("std"), interpolation=interpolation)

    def arrays(self, value: Any, path: tuple) -> dict[str, Path]:
        """``source: activations``: layer name → an existing ``.npy``/``.safetensors`` file."""
        from ..models.arrays_source import ARRAY_SUFFIXES
        from ..models.layers import LAYER_NAME, LAYER_NAME_HELP

        if not isinstance(value, dict) or not value:
            self.problem(path, f"expected a mapping of layer name → array file, got {_kind(value)}",
                         "e.g. arrays: {representation: features.npy}")
            return {}
        found: dict[str, Path] = {}
        for layer, text in value.items():
            if not isinstance(layer, str) or not LAYER_NAME.match(layer):
                self.problem(path + (layer,), f"{layer!r} is not a layer name", LAYER_NAME_HELP)
                continue
            file = self.existing_path(text, path + (layer,), want_dir=False)
            if file is not None and file.suffix not in ARRAY_SUFFIXES:
                self.problem(path + (layer,), f"'{file.name}' is not an array file ({', '.join(ARRAY_SUFFIXES)})",
                             "save the features with numpy.save or safetensors")
            elif file is not None:
                found[layer] = file
        return found


def _find_spec(name: str):
    """``importlib.util.find_spec``, None for a name that cannot be a module ("", ".x", "a..b")."""
    try:
        return importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
