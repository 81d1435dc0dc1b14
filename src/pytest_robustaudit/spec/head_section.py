"""Validation of ``head``: which classification head the accuracy and direction metrics read.

``head: auto`` (default), ``none``, ``classifier``, ``zero-shot``, or a mapping
``{kind: ..., classes: [...] | file, templates: openai | simple | [...]}`` (``classes`` and
``templates`` only for a zero-shot head).  Nothing is built here: the head is built (or read from
the store) when an audit runs.  Documented in docs/spec.md.
"""

from __future__ import annotations

from typing import Any

from .schema import HeadSpec
from .validator import Validator, _kind

HEAD_CHOICES = ("auto", "none", "classifier", "zero-shot")
HEAD_KEYS = ("kind", "classes", "templates")
TEMPLATE_SET_NAMES = ("openai", "simple")   # models.zero_shot.TEMPLATE_SETS, without importing open_clip


class HeadSection(Validator):
    def head(self, value: Any, source: str | None) -> HeadSpec:
        path = ("head",)
        if value is None:
            return HeadSpec()
        if isinstance(value, str):
            kind = self.choice(value, path, HEAD_CHOICES)
            section: dict = {}
        else:
            section = self.mapping(value, path, HEAD_KEYS) or {}
            kind = self.choice(section.get("kind", "auto"), path + ("kind",), HEAD_CHOICES) if section else None
        if kind is None:
            return HeadSpec(where=self.where(path))
        resolved = kind if kind != "auto" else ("zero-shot" if source == "open_clip" else "classifier")
        if kind == "zero-shot" and source not in (None, "open_clip"):
            self.problem(path, f"a zero-shot head needs an open_clip model's text tower, but the model source is "
                         f"'{source}'", "use `head: classifier` (the model's own classifier) or `head: none`")
        if resolved != "zero-shot" and ("classes" in section or "templates" in section):
            self.problem(path, "classes and templates are for a zero-shot head (open_clip); this head is the "
                         "model's own classifier, whose classes are its outputs",
                         "remove them, or use an open_clip model with `kind: zero-shot`")
        classes = self._classes(section["classes"], path + ("classes",)) if "classes" in section else None
        templates = self._templates(section.get("templates", "openai"), path + ("templates",))
        return HeadSpec(kind=kind, classes=classes, templates=templates, explicit=True, where=self.where(path))

    def _classes(self, value: Any, path: tuple) -> tuple[str, ...] | None:
        if isinstance(value, str):
            file = self.existing_path(value, path, want_dir=False)
            if file is None:
                return None
            names = [line.strip() for line in file.read_text(encoding="utf-8").splitlines()]
            names = [n for n in names if n and not n.startswith("#")]
            if not names:
                self.problem(path, f"{file} lists no class (one class name per line)", "write one class per line")
                return None
            value = names
        if not isinstance(value, list) or not value or not all(isinstance(v, str) and v.strip() for v in value):
            self.problem(path, f"expected a non-empty list of class names or a file of them, got {_kind(value)}",
                         "e.g. classes: [cat, dog], or classes: classes.txt (one per line)")
            return None
        if len(set(value)) != len(value):
            twice = sorted({v for v in value if value.count(v) > 1})
            self.problem(path, f"class(es) listed twice: {', '.join(twice[:5])}", "list each class once")
            return None
        return tuple(str(v).strip() for v in value)

    def _templates(self, value: Any, path: tuple) -> str | tuple[str, ...]:
        if isinstance(value, str):
            return self.choice(value, path, TEMPLATE_SET_NAMES) or "openai"
        if not isinstance(value, list) or not value:
            self.problem(path, f"expected a template set name or a non-empty list of prompts, got {_kind(value)}",
                         "e.g. templates: simple, or templates: ['a photo of a {}.']")
            return "openai"
        bad = [f"#{i} {t!r}" for i, t in enumerate(value) if not isinstance(t, str) or t.count("{}") != 1
               or t.replace("{}", "").count("{") or t.replace("{}", "").count("}")]
        if bad:
            self.problem(path, f"each prompt needs exactly one {{}} and no other braces; bad: {', '.join(bad[:5])}",
                         "write each prompt like 'a photo of a {}.'")
            return "openai"
        return tuple(value)
