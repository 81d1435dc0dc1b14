"""Validation of ``shifts``: the shifted sets the head is scored on (issue 17; corruptions issue 18).

``shifts`` is a list; each entry is one of

* a folder of images: ``{path: DIR, set: imagenet-r, name: ..., labels: auto, limit: N}``; ``set``
  (one of the five standard natural shifts) gives the class subset, the label mapping and the
  effective-robustness baseline; without it the folder is scored on the classes its labels cover;
* an accuracy measured elsewhere: ``{name: ..., set: ..., accuracy: 0.42, source: "..."}`` (``name:
  imagenet`` gives the clean ImageNet accuracy effective robustness compares with);
* synthetic corruptions of the probe images: ``{corruption: ..., severity: ..., seed: N}``, expanded
  by :func:`~..data.corruptions.spec.parse_corruptions` into one shift per (corruption, severity).

Every bad entry is a located problem (``shifts[2].path``) with the way out.  Nothing is opened here
beyond checking that a folder exists.  Documented in docs/spec.md#shifts.
"""

from __future__ import annotations

from typing import Any

from .schema import ShiftSpec
from .validator import SEED_LIMIT, Validator, _kind, percentage_hint

#: the five standard natural shifts, as written in a spec (hyphens) -> their canonical names
SET_NAMES = {"imagenet-v2": "imagenet_v2", "imagenet-r": "imagenet_r", "imagenet-sketch": "imagenet_sketch",
             "objectnet": "objectnet", "imagenet-a": "imagenet_a"}
FOLDER_KEYS = ("path", "set", "name", "labels", "limit")
GIVEN_KEYS = ("name", "set", "accuracy", "source")
LABEL_MODES = ("auto", "folder", "wnid")
#: shift names a user cannot take: ``mean`` is the parameter value for the mean over the natural shifts
RESERVED = ("mean",)
#: the given entry that stands for the clean ImageNet accuracy
CLEAN = "imagenet"


def spelled(shift_set: str | None) -> str | None:
    """``imagenet_r`` -> ``imagenet-r``: how a spec writes a standard set (the default shift name)."""
    return next((k for k, v in SET_NAMES.items() if v == shift_set), None)


def canonical_set(text: str) -> str | None:
    """``imagenet-r`` / ``imagenet_r`` -> ``imagenet_r``; None for anything else."""
    spelled = str(text).strip().lower().replace("_", "-")
    return SET_NAMES.get(spelled)


class ShiftsSection(Validator):
    def shifts(self, value: Any) -> tuple[ShiftSpec, ...]:
        path = ("shifts",)
        if value is None:
            return ()
        if not isinstance(value, list):
            self.problem(path, f"expected a list of shifted sets, got {_kind(value)}",
                         "write each shift as a list item: `- {path: imagenet-r/, set: imagenet-r}`, "
                         "`- {name: objectnet, accuracy: 0.42, source: ...}` or `- {corruption: gaussian_noise, "
                         "severity: 3}` (docs/spec.md#shifts)")
            return ()
        out: list[ShiftSpec] = []
        for i, entry in enumerate(value):
            out.extend(self._entry(entry, path + (i,)))
        seen: dict[str, int] = {}
        for shift in out:
            where = shift.where.key if shift.where else "shifts"
            if shift.name in seen:
                self.problem(path, f"two shifts are named '{shift.name}' ({where} and an earlier entry)",
                             "give each shift its own `name:`")
            seen[shift.name] = 1
        return tuple(out)

    # -- one entry -----------------------------------------------------------------------------
    def _entry(self, entry: Any, path: tuple) -> list[ShiftSpec]:
        if not isinstance(entry, dict):
            self.problem(path, f"expected a mapping, got {_kind(entry)}",
                         "e.g. `- {path: imagenet-r/, set: imagenet-r}` (docs/spec.md#shifts)")
            return []
        if "kind" in entry:
            return self._of_kind(entry, path)
        if "corruption" in entry:
            return self._corruptions(entry, path)
        if "accuracy" in entry:
            one = self._given(entry, path)
        elif "path" in entry:
            one = self._folder(entry, path)
        else:
            self.problem(path, "a shift needs `path` (a folder of images), `accuracy` (measured elsewhere) or "
                         "`corruption` (synthetic, from the probe images)",
                         "e.g. `{path: imagenet-r/, set: imagenet-r}` or `{name: objectnet, accuracy: 0.42, "
                         "source: \"paper, table 2\"}`")
            return []
        return [one] if one is not None else []

    def _set(self, entry: dict, path: tuple) -> str | None:
        if "set" not in entry:
            return None
        text = self.typed(entry["set"], path + ("set",), (str,), "the name of a standard shifted set")
        if text is None:
            return None
        found = canonical_set(text)
        if found is None:
            from ..registry import suggest

            self.problem(path + ("set",), f"'{text}' is not a standard shifted set.{suggest(text, tuple(SET_NAMES))}",
                         f"use one of {', '.join(SET_NAMES)}, or leave `set` out to score the folder on the "
                         "classes its labels cover")
        return found

    def _name(self, entry: dict, path: tuple, default: str | None) -> str | None:
        if "name" not in entry:
            return default
        name = self.typed(entry["name"], path + ("name",), (str,), "a short name for the shift")
        if name is None or not name.strip():
            if name is not None:
                self.problem(path + ("name",), "the name is empty", "give the shift a short name")
            return None
        return name.strip()

    def _reserved(self, name: str | None, path: tuple, given: bool) -> bool:
        if name in RESERVED:
            self.problem(path + ("name",), f"'{name}' is reserved (the parameter value for the mean over the "
                         "natural shifts)", "give the shift another name")
            return True
        if name == CLEAN and not given:
            self.problem(path + ("name",), f"'{CLEAN}' is reserved for the clean ImageNet accuracy given as a number",
                         f"name this set otherwise, or give `{{name: {CLEAN}, accuracy: ..., source: ...}}`")
            return True
        return False

    def _folder(self, entry: dict, path: tuple) -> ShiftSpec | None:
        self.mapping(entry, path, FOLDER_KEYS)
        folder = self.existing_path(entry["path"], path + ("path",), want_dir=True)
        shift_set = self._set(entry, path)
        default = spelled(shift_set) or (folder.name if folder is not None else None)
        name = self._name(entry, path, default)
        labels = self.choice(entry.get("labels", "auto"), path + ("labels",), LABEL_MODES)
        limit = self.integer(entry["limit"], path + ("limit",), 1) if entry.get("limit") is not None else None
        if folder is None or name is None or labels is None or self._reserved(name, path, given=False):
            return None
        return ShiftSpec(name=name, kind="folder", path=folder, set=shift_set, labels=labels, limit=limit,
                         where=self.where(path + ("path",)))

    def _given(self, entry: dict, path: tuple) -> ShiftSpec | None:
        self.mapping(entry, path, GIVEN_KEYS)
        shift_set = self._set(entry, path)
        name = self._name(entry, path, spelled(shift_set))
        if name is None and "name" not in entry and shift_set is None:
            self.problem(path, "an accuracy given in the spec needs `name` (or `set`)",
                         "e.g. `{name: objectnet, accuracy: 0.42, source: \"...\"}`")
        if shift_set is None and name is not None and "set" not in entry:
            shift_set = canonical_set(name)   # `name: imagenet-r` is the standard set of that name
        accuracy = self._accuracy(entry["accuracy"], path + ("accuracy",))
        source = entry.get("source")
        if not isinstance(source, str) or not source.strip():
            self.problem(path + ("source",), "an accuracy given in the spec needs its `source` "
                         f"(got {_kind(source)})", "say where the number comes from, e.g. `source: \"imagenet-testbed, "
                         "resnet50\"` (it is shown beside the value in the report)")
            source = None
        if name is None or accuracy is None or source is None or self._reserved(name, path, given=True):
            return None
        return ShiftSpec(name=name, kind="given", set=shift_set if name != CLEAN else None, accuracy=accuracy,
                         source=source.strip(), where=self.where(path + ("accuracy",)))

    def _accuracy(self, value: Any, path: tuple) -> float | None:
        number = self.typed(value, path, (int, float), "an accuracy as a fraction (0.42)")
        if number is None:
            return None
        if 1 < number <= 100:
            self.problem(path, f"accuracies are fractions here, got {number:g}{percentage_hint(number, 1)}",
                         f"write {number / 100:g} for {number:g} %")
            return None
        if not 0 <= number <= 1:
            self.problem(path, f"{number:g} is not a fraction in [0, 1]", "give the accuracy as a fraction (0.42)")
            return None
        return float(number)

    def _corruptions(self, entry: dict, path: tuple) -> list[ShiftSpec]:
        from ..data.corruptions.spec import parse_corruptions
        from ..data.corruptions.table import CorruptionError
        from .yamlsource import dotted

        prefix = dotted(path)
        try:
            pairs = parse_corruptions(entry, where=prefix, extra_keys=("seed",))
        except CorruptionError as error:
            key = str(error.where or prefix)
            rest = key[len(prefix):].lstrip(".") if key.startswith(prefix) else ""
            self.problem(path + ((rest,) if rest else ()), error.message, error.fix or "")
            return []
        seed = self.integer(entry["seed"], path + ("seed",), 0, SEED_LIMIT) if entry.get("seed") is not None else None
        if entry.get("seed") is not None and seed is None:
            return []
        return [ShiftSpec(name=f"{name}/{severity}", kind="corruption", corruption=name, severity=severity,
                          seed=seed, where=self.where(path + ("corruption",))) for name, severity in pairs]

    # -- a kind named with `kind:` (measure/image_sets.py) ---------------------------------------
    def _of_kind(self, entry: dict, path: tuple) -> list[ShiftSpec]:
        """``{kind: NAME, ...}``: a built-in kind spelled out, or a kind a plugin registered."""
        from ..measure.image_sets import BUILTIN_KINDS
        from ..registry import suggest

        kinds = self.registries.image_sets
        name = entry["kind"]
        if not isinstance(name, str) or name not in kinds:
            known = tuple(kinds.names())
            said = f"'{name}' is not a kind of image set.{suggest(name, known)}" if isinstance(name, str) else \
                f"expected the name of a kind of image set, got {_kind(name)}"
            self.problem(path + ("kind",), said,
                         f"use one of {', '.join(known)} (a plugin adds its own with "
                         "pytest_robustaudit_register_image_sets, docs/extending.md#your-own-image-set)")
            return []
        kind = kinds.get(name)
        rest = {k: v for k, v in entry.items() if k != "kind"}
        if name in BUILTIN_KINDS and kind.transform is None:   # the built-in kinds keep their own keys and checks
            route = {"folder": ("path", self._folder), "given": ("accuracy", self._given),
                     "corruption": ("corruption", None)}[name]
            if route[0] not in rest:
                self.problem(path, f"a `{name}` shift needs `{route[0]}`", "see docs/spec.md#shifts")
                return []
            if route[1] is None:
                return self._corruptions(rest, path)
            one = route[1](rest, path)
            return [one] if one is not None else []
        return self._plugin_kind(kind, rest, path)

    def _plugin_kind(self, kind: Any, entry: dict, path: tuple) -> list[ShiftSpec]:
        """A plugin kind's entry: its options checked against its ``params`` (type, minimum), ``name`` and
        ``seed`` optional; the set is the probe seen through the kind's transform (a corruption's role)."""
        self.mapping({"kind": kind.name, **entry}, path, ("kind", "name", "seed") + tuple(kind.params))
        options: dict[str, Any] = {}
        for key, param in kind.params.items():
            value = entry.get(key, param.default)
            wanted = (int, float) if param.type is float else (param.type,)
            if isinstance(value, bool) and param.type is not bool or not isinstance(value, wanted):
                self.problem(path + (key,), f"expected {param.type.__name__}, got {_kind(value)}",
                             param.help or f"see the `{kind.name}` kind's documentation")
                continue
            if param.minimum is not None and value < param.minimum:
                self.problem(path + (key,), f"{value!r} is below the minimum {param.minimum:g}",
                             param.help or f"give at least {param.minimum:g}")
                continue
            options[key] = param.type(value)
        seed = self.integer(entry["seed"], path + ("seed",), 0, SEED_LIMIT) if entry.get("seed") is not None else None
        changed = ",".join(f"{k}={v}" for k, v in options.items() if v != kind.params[k].default)
        name = self._name(entry, path, kind.name + (f"/{changed}" if changed else ""))
        if name is None or len(options) != len(kind.params) or self._reserved(name, path, given=False):
            return []
        return [ShiftSpec(name=name, kind="corruption", corruption=name, seed=seed, set_kind=kind.name,
                          options=tuple(options.items()), where=self.where(path + ("kind",)))]

