"""Error types that carry a user-facing message instead of a traceback.

Every stage raises a subclass of :class:`AuditError` for problems caused by the user's input
(a spec, a checkpoint, an image folder).  The pytest glue prints ``str(error)`` as the whole failure,
so each message must say *where* (file, line, key or path), *what* went wrong and *how to fix it*.
Anything that is not an ``AuditError`` is a bug in our code or in the user's own Python and keeps
its traceback.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


class AuditError(Exception):
    """A problem with the user's input, explained in plain words (no traceback is shown)."""


@dataclass(frozen=True)
class Problem:
    """One located problem in a spec file: ``file:line: key: message (fix)``."""

    file: Path | str
    line: int | None
    key: str
    message: str
    fix: str = ""

    def __str__(self) -> str:
        where = f"{display_path(self.file)}:{self.line}" if self.line else f"{display_path(self.file)}"
        text = f"{where}: {self.key}: {self.message}" if self.key else f"{where}: {self.message}"
        return f"{text}\n    fix: {self.fix}" if self.fix else text


def headline(message: object) -> str:
    """The one line that stands for an error message in tables and pointers: its first line, and
    when that only introduces a list ("invalid audit spec (3 problems):"), the first item too."""
    lines = [line.strip() for line in str(message).strip().splitlines() if line.strip()]
    if not lines:
        return "error"
    if lines[0].endswith(":") and len(lines) > 1:
        return f"{lines[0]} {lines[1]}"
    return lines[0]


def display_path(path: Path | str) -> str:
    """``path`` relative to the working directory when it lies below it (as pytest prints node ids)."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except (ValueError, OSError):
        return str(path)


class SpecError(AuditError):
    """One or more problems found while loading and validating a spec (all reported together)."""

    def __init__(self, problems: list[Problem]):
        self.problems = list(problems)
        count = len(self.problems)
        head = f"invalid audit spec ({count} problem{'s' if count != 1 else ''}):"
        super().__init__("\n".join([head, *(str(p) for p in self.problems)]))


class ModelLoadError(AuditError):
    """The model could not be built or its weights could not be loaded."""


class CheckpointError(ModelLoadError):
    """A checkpoint file is unreadable, unsafe, or does not fit the architecture."""


class DataError(AuditError):
    """The probe images could not be found or none of them could be read."""


class LayerError(AuditError):
    """A requested layer does not exist for this model."""


class RegistryError(AuditError):
    """An unknown name was looked up, or a name was registered twice."""
