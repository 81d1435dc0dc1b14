"""Validation of ``concepts``: the concept bank the concept metrics probe (docs/spec.md, docs/concepts.md).

``concepts: builtin`` or ``concepts: DIR`` (short forms), or a mapping with exactly one of ``path``
(a folder bank) and ``builtin: true`` (the procedural bank), plus the probe's settings.  A folder
bank is read now (no image is opened), so a missing folder, a concept folder without images or with
too few fail at collection with the key at fault; the built-in bank's concept names are checked
against the bank's own list (with "Did you mean").
"""

from __future__ import annotations

from typing import Any

from ..registry import suggest
from .schema import ConceptsSpec
from .validator import SEED_LIMIT, Validator, _kind

CONCEPT_KEYS = ("path", "builtin", "seed", "images_per_concept", "size", "names", "min_images", "quantile",
                "null_repeats", "folds", "alpha")
BUILTIN_ONLY = ("seed", "images_per_concept", "size", "names")


class ConceptsSection(Validator):
    def concepts(self, value: Any, source: str | None) -> ConceptsSpec | None:
        path = ("concepts",)
        if value is None:
            return None
        if isinstance(value, str):
            value = {"builtin": True} if value == "builtin" else {"path": value}
        section = self.mapping(value, path, CONCEPT_KEYS)
        if section is None:
            return None
        if source == "activations":
            self.problem(path, "concept probing runs the bank's images through the model, but `source: activations` "
                         "has no model", "remove `concepts:`, or audit the model itself")
            return None
        builtin = section.get("builtin", False)
        if not isinstance(builtin, bool):
            self.problem(path + ("builtin",), f"expected true or false, got {_kind(builtin)}",
                         "write `builtin: true` for the built-in bank, or give `path:` instead")
            return None
        if builtin == ("path" in section):
            self.problem(path, "give exactly one of `path` (a folder bank: one sub-folder of images per concept) or "
                         "`builtin: true` (the built-in procedural bank)",
                         "e.g. concepts: {builtin: true}, or concepts: {path: my_bank}")
            return None
        if not builtin:
            extra = [k for k in BUILTIN_ONLY if k in section]
            for key in extra:
                self.problem(path + (key,), f"'{key}' sets the built-in bank, but this bank is a folder",
                             "remove it, or use `builtin: true` instead of `path`")
        elif "min_images" in section:
            self.problem(path + ("min_images",), "min_images is for a folder bank; the built-in bank draws "
                         "images_per_concept images for every concept", "remove it, or set images_per_concept")
        settings = self._settings(section, path)
        if builtin:
            ipc = self.integer(section.get("images_per_concept", 10), path + ("images_per_concept",), 2, 10000)
            size = self.integer(section.get("size", 224), path + ("size",), 16, 1024)
            seed = self.integer(section.get("seed", 0), path + ("seed",), 0, SEED_LIMIT)
            names = self._names(section["names"], path + ("names",)) if "names" in section else None
            from ..data.concept_bank import BUILTIN_CONCEPTS, MAX_BANK_IMAGES

            count = len(names) if names else len(BUILTIN_CONCEPTS)
            if ipc and ipc * count > MAX_BANK_IMAGES:
                self.problem(path + ("images_per_concept",), f"{ipc} images for each of {count} concepts make "
                             f"{ipc * count} images, more than the {MAX_BANK_IMAGES} a bank may hold",
                             f"set images_per_concept to at most {MAX_BANK_IMAGES // count} (docs/concepts.md#limits)")
                return None
            return ConceptsSpec(builtin=True, bank_seed=seed or 0, images_per_concept=ipc or 10, size=size or 224,
                                names=names, where=self.where(path), **settings)
        folder = self.existing_path(section["path"], path + ("path",), want_dir=True)
        min_images = self.integer(section.get("min_images", 5), path + ("min_images",), 2, 100000) or 5
        if folder is None:
            return None
        from ..data.concept_bank import ConceptBankError, folder_bank

        try:   # a folder that cannot be probed fails now, before any model is loaded
            folder_bank(folder, min_images=min_images)
        except ConceptBankError as error:
            self.problem(path + ("path",), f"{error.where}: {error.message}" if error.where else error.message,
                         error.fix)
            return None
        return ConceptsSpec(path=folder, min_images=min_images, where=self.where(path), **settings)

    def _settings(self, section: dict, path: tuple) -> dict[str, Any]:
        out: dict[str, Any] = {}
        quantile = self.typed(section.get("quantile", 0.99), path + ("quantile",), (int, float),
                              "a quantile in (0.5, 1], e.g. 0.99")
        if quantile is not None and not 0.5 < float(quantile) <= 1.0:
            self.problem(path + ("quantile",), f"must lie in (0.5, 1], got {quantile}",
                         "e.g. 0.99: a concept counts when it beats the 99th percentile of its null")
        else:
            out["quantile"] = float(quantile) if quantile is not None else 0.99
        if section.get("null_repeats") is not None:
            out["null_repeats"] = self.integer(section["null_repeats"], path + ("null_repeats",), 1, 10000)
        out["folds"] = self.integer(section.get("folds", 5), path + ("folds",), 2, 100) or 5
        alpha = self.typed(section.get("alpha", 1.0), path + ("alpha",), (int, float), "a positive number")
        if alpha is not None and not float(alpha) > 0:
            self.problem(path + ("alpha",), f"must be positive, got {alpha}", "e.g. alpha: 1.0 (the ridge penalty, "
                         "times the mean eigenvalue of the features' scatter)")
        elif alpha is not None:
            out["alpha"] = float(alpha)
        return out

    def _names(self, value: Any, path: tuple) -> tuple[str, ...] | None:
        from ..data.concept_bank import BUILTIN_CONCEPTS

        known = tuple(spec.name for spec in BUILTIN_CONCEPTS)
        if not isinstance(value, list) or len(value) < 2 or not all(isinstance(v, str) for v in value):
            self.problem(path, f"expected a list of at least two built-in concept names, got {_kind(value)}",
                         "e.g. names: [colour-red, colour-blue, shape-circle] (docs/concepts.md lists them)")
            return None
        bad = [v for v in value if v not in known]
        for name in bad[:5]:
            self.problem(path, f"'{name}' is not a built-in concept.{suggest(name, known)}",
                         "use names from the table in docs/concepts.md")
        if len(set(value)) != len(value):
            self.problem(path, "a concept is listed twice", "list each concept once")
        return None if bad else tuple(value)

    def concept_checks(self, concepts: ConceptsSpec | None, checks: tuple, reference: Any) -> None:
        """A check of a concept metric needs a bank; a check of ``concept_overlap`` a reference too."""
        from ..metrics.types import READS_CONCEPTS

        names = self.registries.metrics.names()
        for check in checks:
            metric = self.registries.metrics.get(check.metric) if check.metric in names else None
            if metric is None or metric.reads != READS_CONCEPTS:
                continue
            if concepts is None:
                self.problem(("checks", check.metric), f"{check.metric} probes a concept bank, but the spec has no "
                             "`concepts:`", "add `concepts: builtin` (or `concepts: {path: DIR}`), or remove this check")
                return
            if check.metric == "concept_overlap" and reference is None:
                self.problem(("checks", check.metric), "concept_overlap compares with the spec's reference, but the "
                             "spec has no `reference:`", "add `reference: {model: ...}` or `{baseline: ...}`")
                return
