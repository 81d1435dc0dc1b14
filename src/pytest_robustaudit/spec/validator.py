"""The shared machinery of spec validation: located problems and typed readers of YAML values.

Each section of a spec (model, data, layers and checks, reference) is validated by its own module;
they all append :class:`~..errors.Problem` objects through this base, so a user fixing a spec gets
every problem at once, each with file, line, key and a fix.
"""

from __future__ import annotations

import errno
import math
from pathlib import Path
from typing import Any

from ..errors import Problem, file_kind
from ..registries import Registries
from ..registry import suggest
from .schema import Located
from .yamlsource import Doc, dotted


#: the largest integer magnitude a spec may hold (64-bit signed: what torch and numpy take)
INT_LIMIT = 2**63 - 1
#: the largest seed (numpy's legacy seeding and torch's generators both take it)
SEED_LIMIT = 2**32 - 1


class Validator:
    """Walks the plain data of one document, appending a Problem for each violation."""

    def __init__(self, doc: Doc, registries: Registries, problems: list[Problem]):
        self.doc = doc
        self.file = doc.file
        self.base = doc.file.parent
        self.registries = registries
        self.problems = problems

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
        """``value`` if it is one of ``kinds`` and representable, else None and a problem.

        Representable: a float is finite (``.inf``, ``-.inf``, ``.nan`` and ``1e999`` are refused:
        no bound, size or parameter means anything at infinity, and an open side is written by
        leaving the key out), an integer fits in 64 bits (torch, numpy and the record cannot hold more).
        """
        ok = isinstance(value, kinds) and not (isinstance(value, bool) and bool not in kinds)
        if not ok:
            self.problem(path, f"expected {what}, got {_kind(value)} {_short(value)}", f"set {dotted(path)} to {what}")
            return None
        if isinstance(value, float) and not math.isfinite(value):
            self.problem(path, f"expected {what}, got {value!r}, which is not a finite number",
                         f"set {dotted(path)} to a finite number (leave a bound out to leave that side open)")
            return None
        if isinstance(value, int) and not isinstance(value, bool) and not -INT_LIMIT <= value <= INT_LIMIT:
            self.problem(path, f"the integer {_short(value)} is out of range (at most {INT_LIMIT} in magnitude)",
                         f"set {dotted(path)} to a smaller number")
            return None
        return value

    def integer(self, value: Any, path: tuple, minimum: int, maximum: int = INT_LIMIT) -> int | None:
        number = self.typed(value, path, (int,), "an integer")
        if number is not None and number < minimum:
            self.problem(path, f"must be at least {minimum}, got {number}", f"set {dotted(path)} to {minimum} or more")
            return None
        if number is not None and number > maximum:
            self.problem(path, f"must be at most {maximum}, got {_short(number)}", f"set {dotted(path)} to {maximum} or less")
            return None
        return number

    def confidence(self, value: Any, path: tuple) -> float | None:
        """A confidence level for checks: a number strictly between 0.5 and 1 (e.g. 0.95); null: none."""
        if value is None:
            return None
        number = self.typed(value, path, (int, float), "a confidence level such as 0.95")
        if number is not None and not 0.5 < float(number) < 1:
            self.problem(path, f"must lie strictly between 0.5 and 1, got {number}",
                         f"set {dotted(path)} to e.g. 0.95 (docs/intervals.md)")
            return None
        return None if number is None else float(number)

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
        try:
            resolved = ((base or self.base) / Path(text).expanduser()).resolve()
            exists = resolved.exists()
        except (OSError, ValueError, RuntimeError) as exc:   # a NUL byte, a name too long, a symlink loop
            if isinstance(exc, RuntimeError) or getattr(exc, "errno", None) == errno.ELOOP:
                self.problem(path, f"'{text}' is a symbolic link that leads nowhere (a loop)",
                             "point the link at a real file or folder, or use the real path")
            else:
                self.problem(path, f"'{_short(text)}' cannot be used as a path: {exc}",
                             "fix the path; relative paths are relative to the spec file's folder")
            return None
        if not exists and resolved.is_symlink():
            self.problem(path, f"'{text}' is a symbolic link that leads nowhere (a loop, or its target is missing)",
                         "point the link at a real file or folder, or use the real path")
            return None
        if not exists:
            self.problem(path, f"'{text}' does not exist (resolved to {resolved})",
                         "fix the path; relative paths are relative to the spec file's folder")
            return None
        if want_dir is True and not resolved.is_dir():
            self.problem(path, f"'{text}' is a file, a folder of images is expected", "point it at the folder")
            return None
        if want_dir is False and not resolved.is_file():
            self.problem(path, f"'{text}' is {file_kind(resolved)}, a file is expected", "point it at the file")
            return None
        return resolved


def percentage_hint(value: float, top: float) -> str:
    """``". Did you mean 0.7?"`` when ``value`` reads as a percentage of a fraction whose top is ``top`` (1);
    "" otherwise.  One wording for every place a fraction is expected (bounds, parameters, accuracies)."""
    if top == 1 and 2 <= value <= 100:
        return f". It looks like a percentage: did you mean {value / 100:g}?"
    return ""


def _kind(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean", int: "an integer",
            float: "a number"}.get(type(value), type(value).__name__)


def _short(value: Any, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters (a 5000-digit integer is not a message)."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit - 3]}... ({len(text)} characters)"

