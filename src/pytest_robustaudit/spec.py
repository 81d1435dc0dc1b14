"""Load and validate an audit spec: YAML file → :class:`~.specmodel.AuditSpec`, or every problem.

Validation never stops at the first problem: a user fixing a spec wants the whole list, each with
file, line, key and a fix.  Nothing is built here (no model, no image is opened): that happens when
an item runs.  Paths are resolved against the spec's folder; they must exist at collection time so
a typo fails before any model is loaded.  The key-by-key schema is documented in docs/spec.md.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import re
from pathlib import Path
from typing import Any, Mapping

from .errors import DataError, Problem, SpecError
from .registries import Registries
from .registry import suggest
from .specmodel import (AuditSpec, CheckpointSpec, CheckSpec, DataSpec, Located, ModelSpec, PreprocessSpec,
                        ReferenceSpec)
from .yamlsource import Doc, dotted, load_doc

TOP_KEYS = ("name", "model", "data", "layers", "checks", "device", "precision", "seed", "reference")
REFERENCE_KEYS = ("model", "baseline", "entry")
MODEL_KEYS = ("source", "name", "pretrained", "checkpoint", "factory", "options", "preprocess", "cache_dir")
CHECKPOINT_KEYS = ("path", "package", "match_keys", "trusted")
PREPROCESS_KEYS = ("mean", "std", "interpolation")
DATA_KEYS = ("path", "labels", "limit", "seed", "batch_size", "workers")
RELATIVE_KEYS = ("min_ratio", "max_ratio", "min_delta", "max_delta")
CHECK_KEYS = ("min", "max", *RELATIVE_KEYS, "layers")
LABEL_MODES = ("auto", "folder", "wnid", "none")
MATCH_KEYS = ("by_name", "by_order")
PRECISIONS = ("fp32", "fp16", "bf16")
INTERPOLATIONS = ("nearest", "bilinear", "bicubic")
DEFAULT_LAYERS = ("representation",)
_LAYER = re.compile(r"^(representation|pre_projection|blocks\.-?\d+|module:[A-Za-z_][\w.]*)$")
_DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


def load_spec(file: Path, registries: Registries, env: Mapping[str, str] | None = None,
              text: str | None = None) -> AuditSpec:
    """Parse and validate ``file``; raise :class:`SpecError` listing every problem.

    With ``text``, that YAML is validated instead of the file's content, as if it were at ``file``
    (relative paths resolve against ``file``'s folder): how inline specs in tests are loaded.
    """
    file = Path(file)
    doc, problems = load_doc(file, env, text)
    if not problems:
        spec = _Validator(doc, registries, problems).spec()
        if not problems and spec is not None:
            return spec
    raise SpecError(problems)


class _Validator:
    """Walks the plain data of one document, appending a Problem for each violation."""

    def __init__(self, doc: Doc, registries: Registries, problems: list[Problem]):
        self.doc = doc
        self.file = doc.file
        self.base = doc.file.parent
        self.registries = registries
        self.problems = problems

    # -- helpers ------------------------------------------------------------------------------
    def problem(self, path: tuple, message: str, fix: str = "") -> None:
        self.problems.append(Problem(self.file, self.doc.line(path), dotted(path), message, fix))

    def where(self, path: tuple) -> Located:
        return Located(self.file, self.doc.line(path), dotted(path))

    def mapping(self, value: Any, path: tuple, allowed: tuple[str, ...], required: tuple[str, ...] = ()) -> dict | None:
        if not isinstance(value, dict):
            self.problem(path, f"expected a mapping of keys, got {_kind(value)}",
                         f"write {dotted(path) or 'the spec'} as 'key: value' lines (keys: {', '.join(allowed)})")
            return None
        for key in value:
            if key not in allowed:
                self.problem(path + (key,), f"unknown key '{key}'.{suggest(key, allowed)}",
                             f"allowed keys here: {', '.join(allowed)}")
        for key in required:
            if key not in value:
                self.problem(path, f"missing required key '{key}'", f"add '{key}:' under {dotted(path) or 'the top level'}")
        return value

    def typed(self, value: Any, path: tuple, kinds: tuple[type, ...], what: str) -> Any:
        ok = isinstance(value, kinds) and not (isinstance(value, bool) and bool not in kinds)
        if not ok:
            self.problem(path, f"expected {what}, got {_kind(value)} {value!r}", f"set {dotted(path)} to {what}")
            return None
        return value

    def integer(self, value: Any, path: tuple, minimum: int) -> int | None:
        number = self.typed(value, path, (int,), "an integer")
        if number is not None and number < minimum:
            self.problem(path, f"must be at least {minimum}, got {number}", f"set {dotted(path)} to {minimum} or more")
            return None
        return number

    def choice(self, value: Any, path: tuple, choices: tuple[str, ...]) -> str | None:
        if not isinstance(value, str) or value not in choices:
            self.problem(path, f"{value!r} is not one of {', '.join(choices)}.{suggest(str(value), choices)}",
                         f"set {dotted(path)} to one of: {', '.join(choices)}")
            return None
        return value

    def existing_path(self, value: Any, path: tuple, want_dir: bool | None, base: Path | None = None) -> Path | None:
        text = self.typed(value, path, (str,), "a path (string)")
        if text is None:
            return None
        resolved = ((base or self.base) / Path(text).expanduser()).resolve()
        if not resolved.exists():
            self.problem(path, f"'{text}' does not exist (resolved to {resolved})",
                         "fix the path; relative paths are relative to the spec file's folder")
            return None
        if want_dir is True and not resolved.is_dir():
            self.problem(path, f"'{text}' is a file, a folder of images is expected", "point it at the folder")
            return None
        if want_dir is False and not resolved.is_file():
            self.problem(path, f"'{text}' is a folder, a file is expected", "point it at the file")
            return None
        return resolved

    # -- sections -----------------------------------------------------------------------------
    def spec(self) -> AuditSpec | None:
        top = self.mapping(self.doc.data, (), TOP_KEYS, required=("model", "data", "checks"))
        if top is None:
            return None
        name = top.get("name", self.file.stem)
        if not isinstance(name, str) or not name.strip():
            self.problem(("name",), f"expected a non-empty string, got {_kind(name)}", "give the audit a name")
        device = top.get("device", "auto")
        if not isinstance(device, str) or not _DEVICE.match(device):
            self.problem(("device",), f"{device!r} is not a device", "use auto, cpu, cuda, cuda:N or mps")
        precision = self.choice(top.get("precision", "fp32"), ("precision",), PRECISIONS)
        seed = self.integer(top.get("seed", 0), ("seed",), 0)
        model = self.model(top["model"], ("model",)) if "model" in top else None
        data = self.data(top["data"]) if "data" in top else None
        layers = self.layers(top.get("layers", list(DEFAULT_LAYERS)))
        reference = self.reference(top["reference"]) if top.get("reference") is not None else None
        checks = self.checks(top["checks"], layers) if "checks" in top else ()
        relative = [c for c in checks if c.relative]
        if relative and reference is None and "reference" not in top:
            self.problem(("checks", relative[0].metric), "relative bounds (min_ratio, max_ratio, min_delta, max_delta) "
                         "need something to compare with", "add a top-level 'reference:' with 'model:' or 'baseline:'")
        if self.problems or model is None or data is None:
            return None
        return AuditSpec(path=self.file, name=str(name), model=model, data=data, layers=layers, checks=checks,
                         device=device, precision=precision or "fp32", seed=seed or 0, reference=reference)

    def reference(self, value: Any) -> ReferenceSpec | None:
        path = ("reference",)
        section = self.mapping(value, path, REFERENCE_KEYS)
        if section is None:
            return None
        if ("model" in section) == ("baseline" in section):
            self.problem(path, "give exactly one of 'model' (a model audited alongside) or 'baseline' (a stored record)",
                         "e.g. reference: {baseline: baselines/my_model.json}")
            return None
        entry = section.get("entry")
        if entry is not None:
            self.typed(entry, path + ("entry",), (str,), "the audit name inside the baseline record")
        if "model" in section:
            model = self.model(section["model"], path + ("model",))
            return ReferenceSpec(model=model, where=self.where(path)) if model else None
        text = self.typed(section["baseline"], path + ("baseline",), (str,), "a path to a JSON record")
        if text is None:
            return None
        file = (self.base / Path(text).expanduser()).resolve()   # may not exist yet: --audit-save-baseline writes it
        return ReferenceSpec(baseline=file, entry=entry if isinstance(entry, str) else None, where=self.where(path))

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
        return ModelSpec(source=source_name, name=name if isinstance(name, str) else None,
                         pretrained=pretrained if isinstance(pretrained, (str, bool)) else None,
                         checkpoint=checkpoint, factory=factory, options=dict(options), preprocess=preprocess,
                         cache_dir=cache_dir, where=self.where(path))

    def factory(self, value: Any, path: tuple) -> str | None:
        text = self.typed(value, path, (str,), "'package.module:callable' or 'file.py:callable'")
        if text is None:
            return None
        target, sep, attr = text.rpartition(":")
        if not sep or not target or not attr.replace(".", "_").isidentifier():
            self.problem(path, f"{text!r} does not name a callable", "write 'package.module:function' or 'path/to/file.py:function'")
            return None
        if target.endswith(".py"):
            file = self.existing_path(target, path, want_dir=False)
            return f"{file}:{attr}" if file else None
        if importlib.util.find_spec(target.split(".")[0]) is None:
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
            found = importlib.util.find_spec(package) if package else None
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
                        or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in seq)):
                    self.problem(path + (key,), f"expected 3 numbers (one per RGB channel), got {seq!r}",
                                 f"e.g. {key}: [0.5, 0.5, 0.5]")
                elif key == "std" and any(v <= 0 for v in seq):
                    self.problem(path + (key,), "every std must be positive", "use the checkpoint's normalisation std")
                else:
                    triples[key] = tuple(float(v) for v in seq)
        interpolation = None
        if "interpolation" in section:
            interpolation = self.choice(section["interpolation"], path + ("interpolation",), INTERPOLATIONS)
        return PreprocessSpec(mean=triples.get("mean"), std=triples.get("std"), interpolation=interpolation)

    def data(self, value: Any) -> DataSpec | None:
        path = ("data",)
        if isinstance(value, str):
            value = {"path": value}
        section = self.mapping(value, path, DATA_KEYS, required=("path",))
        if section is None or "path" not in section:
            return None
        folder = self.existing_path(section["path"], path + ("path",), want_dir=True)
        labels = self.choice(section.get("labels", "auto"), path + ("labels",), LABEL_MODES)
        limit = self.integer(section["limit"], path + ("limit",), 1) if section.get("limit") is not None else None
        seed = self.integer(section.get("seed", 0), path + ("seed",), 0)
        batch = self.integer(section.get("batch_size", 32), path + ("batch_size",), 1)
        workers = self.integer(section.get("workers", 0), path + ("workers",), 0)
        if folder is None:
            return None
        spec = DataSpec(path=folder, labels=labels or "auto", limit=limit, seed=seed or 0, batch_size=batch or 32,
                        workers=workers or 0, where=self.where(path))
        try:  # an empty folder or unlabelled files fail now, not after the model has loaded
            from .data import discover

            discover(dataclasses.replace(spec, where=None))
        except DataError as error:
            message, _, fix = str(error).partition("\n    fix: ")
            key, sep, rest = message.partition(": ")   # the data stage names its key ("data.labels: ...")
            located = path + ("path",)
            if sep and key.startswith("data."):
                located, message = tuple(key.split(".")), rest
            self.problem(located, message, fix or "point data.path at a folder of images")
            return None
        return spec

    def layers(self, value: Any) -> tuple[str, ...]:
        path = ("layers",)
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not value:
            self.problem(path, f"expected a non-empty list of layer names, got {_kind(value)}",
                         "e.g. layers: [representation, blocks.-1]")
            return DEFAULT_LAYERS
        seen: list[str] = []
        for i, name in enumerate(value):
            if not isinstance(name, str) or not _LAYER.match(name):
                self.problem(path + (i,), f"{name!r} is not a layer name.{suggest(str(name), ['representation', 'pre_projection'])}",
                             "use representation, pre_projection, blocks.N (N may be negative) or module:<dotted.name>")
            elif name in seen:
                self.problem(path + (i,), f"layer '{name}' is listed twice", "list each layer once")
            else:
                seen.append(name)
        return tuple(seen) or DEFAULT_LAYERS

    def checks(self, value: Any, layers: tuple[str, ...]) -> tuple[CheckSpec, ...]:
        path = ("checks",)
        if not isinstance(value, dict) or not value:
            self.problem(path, f"expected a mapping of metric name → bounds, got {_kind(value)}",
                         "e.g. checks: {kurtosis_mean: {min: 5}}")
            return ()
        metrics = self.registries.metrics
        out: list[CheckSpec] = []
        taken: dict[tuple[str, str], int | None] = {}
        for metric_name, body in value.items():
            mpath = path + (metric_name,)
            if metric_name not in metrics:
                self.problem(mpath, f"unknown metric '{metric_name}'.{suggest(metric_name, metrics.names())}",
                             f"known metrics: {', '.join(metrics.names())}")
                continue
            metric = metrics.get(metric_name)
            bodies = body if isinstance(body, list) else [body]
            for j, entry in enumerate(bodies):
                epath = mpath + (j,) if isinstance(body, list) else mpath
                for check in self.check(metric, entry, epath, layers):
                    key = (check.metric, check.layer)
                    if key in taken:
                        self.problem(epath, f"metric '{check.metric}' on layer '{check.layer}' is checked twice "
                                            f"(first at line {taken[key]})",
                                     "merge the bounds into one check, or restrict each to other layers")
                        continue
                    taken[key] = self.doc.line(epath)
                    out.append(check)
        return tuple(out)

    def check(self, metric, entry: Any, path: tuple, layers: tuple[str, ...]) -> list[CheckSpec]:
        allowed = CHECK_KEYS + tuple(metric.params)
        section = self.mapping(entry, path, allowed)
        if section is None:
            return []
        bounds: dict[str, float] = {}
        for key in ("min", "max", *RELATIVE_KEYS):
            if section.get(key) is not None:
                number = self.typed(section[key], path + (key,), (int, float), "a number")
                if number is not None and number != number:
                    self.problem(path + (key,), "the bound is NaN", "use a number")
                elif number is not None:
                    bounds[key] = float(number)
        if not any(k in section for k in ("min", "max", *RELATIVE_KEYS)):
            self.problem(path, "the check has no bound, so it could never fail",
                         "add min:, max: or both (or a relative bound: min_ratio, max_ratio, min_delta, max_delta)")
            return []
        crossed = False
        for low, high in (("min", "max"), ("min_ratio", "max_ratio"), ("min_delta", "max_delta")):
            if low in bounds and high in bounds and bounds[low] > bounds[high]:
                self.problem(path, f"{low} {bounds[low]:g} is greater than {high} {bounds[high]:g}, so no value can pass",
                             "swap or correct the bounds")
                crossed = True
        for key in ("min_ratio", "max_ratio"):
            if bounds.get(key, 1.0) < 0:
                self.problem(path + (key,), "a ratio bound must not be negative", "e.g. min_ratio: 0.8 keeps 80% of the reference")
                crossed = True
        if crossed:
            return []
        lo, hi = bounds.get("min"), bounds.get("max")
        params = {name: param.default for name, param in metric.params.items()}  # explicit in every message
        for pname, param in metric.params.items():
            if pname in section:
                kinds = (int, float) if param.type is float else (param.type,)
                got = self.typed(section[pname], path + (pname,), kinds, f"a {param.type.__name__}")
                if got is not None and param.minimum is not None and got < param.minimum:
                    self.problem(path + (pname,), f"must be at least {param.minimum}, got {got}", param.help)
                elif got is not None:
                    params[pname] = param.type(got)
        targets = section.get("layers", list(layers))
        if isinstance(targets, str):
            targets = [targets]
        if not isinstance(targets, list) or not targets:
            self.problem(path + ("layers",), "expected a list of layer names", "e.g. layers: [representation]")
            return []
        out = []
        for i, layer in enumerate(targets):
            if layer not in layers:
                self.problem(path + ("layers", i) if "layers" in section else path,
                             f"layer {layer!r} is not among the spec's layers ({', '.join(layers)}).{suggest(str(layer), layers)}",
                             "add it to the top-level 'layers:' list")
                continue
            out.append(CheckSpec(metric.name, layer, lo, hi, params, self.where(path),
                                 min_ratio=bounds.get("min_ratio"), max_ratio=bounds.get("max_ratio"),
                                 min_delta=bounds.get("min_delta"), max_delta=bounds.get("max_delta")))
        return out


def _kind(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean", int: "an integer",
            float: "a number"}.get(type(value), type(value).__name__)
