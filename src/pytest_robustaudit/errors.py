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
    """A problem with the user's input, explained in plain words (no traceback is shown).

    Fields, so that every output renders an error in one layout and a caller can act on its parts:
    ``message`` (what went wrong), ``where`` (the file, line and key, or a path; rendered as the
    message's prefix ``where: ``), ``fix`` (the way out; rendered on its own ``    fix:`` line).
    Messages written before the fields existed pass their whole text as ``message``.
    """

    def __init__(self, message: object = "", *, where: object = None, fix: str = ""):
        self.message = str(message)
        self.where = where
        self.fix = fix
        super().__init__(self.render())

    def render(self) -> str:
        """``where: message`` and, when there is one, ``\n    fix: ...``: the text users see."""
        text = f"{self.where}: {self.message}" if self.where not in (None, "") else self.message
        return f"{text}\n    fix: {self.fix}" if self.fix else text


class RobustAuditWarning(RuntimeWarning):
    """The one warning class of the plugin: filter it with ``-W ignore::pytest_robustaudit.RobustAuditWarning``."""


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


#: the most characters of an unexpected error's message kept in the record, the report and the summary
MESSAGE_LIMIT = 600


def describe_error(error: BaseException, tb: object = None) -> str:
    """One error as the record and the report keep it: an AuditError's own text; for anything else
    its type, message (cut to :data:`MESSAGE_LIMIT`) and the line that raised it.  Never a
    traceback or library source: a record stays small whatever went wrong."""
    import traceback

    if isinstance(error, AuditError):
        return str(error)
    message = str(error).strip()
    if len(message) > MESSAGE_LIMIT:
        message = message[:MESSAGE_LIMIT - 3].rstrip() + "..."
    text = f"{type(error).__name__}: {message}" if message else type(error).__name__
    frames = traceback.extract_tb(tb if tb is not None else error.__traceback__)  # type: ignore[arg-type]
    if frames:
        last = frames[-1]
        text += f"\n  (raised at {last.filename}:{last.lineno} in {last.name})"
    return text


def display_path(path: Path | str) -> str:
    """``path`` relative to the working directory when it lies below it (as pytest prints node ids)."""
    try:
        given = Path(path)
        # a symbolic link is shown by its own name (resolving it would name its target, or fail on a loop)
        full = given.parent.resolve() / given.name if given.is_symlink() else given.resolve()
        return str(full.relative_to(Path.cwd().resolve()))
    except (ValueError, OSError, RuntimeError):   # RuntimeError: a symlink loop (Python < 3.13)
        return str(path)


def file_kind(path: Path | str) -> str:
    """What ``path`` is, in words, for "a file is expected" messages (never opens it: a FIFO would block)."""
    try:
        mode = Path(path).stat().st_mode
    except OSError as exc:
        return f"not readable ({exc.strerror or exc})"
    return mode_kind(mode)


def mode_kind(mode: int) -> str:
    """What a file of stat mode ``mode`` is, in words ("a named pipe (FIFO)", "a regular file", ...)."""
    import stat

    for test, words in ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a named pipe (FIFO)"),
                        (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
                        (stat.S_ISBLK, "a block device"), (stat.S_ISREG, "a regular file")):
        if test(mode):
            return words
    return "not a regular file"


class SpecError(AuditError):
    """One or more problems found while loading and validating a spec (all reported together)."""

    def __init__(self, problems: list[Problem], kind: str = "audit spec"):
        self.problems = list(problems)
        count = len(self.problems)
        head = f"invalid {kind} ({count} problem{'s' if count != 1 else ''}):"
        first = self.problems[0] if self.problems else None
        super().__init__("\n".join([head, *(str(p) for p in self.problems)]))
        # the first problem's location and fix as fields (the rendered text lists them all)
        self.where = f"{display_path(first.file)}:{first.line}: {first.key}" if first else None
        self.fix = first.fix if first else ""

    def render(self) -> str:
        return self.message


class ModelLoadError(AuditError):
    """The model could not be built or its weights could not be loaded."""


class CheckpointError(ModelLoadError):
    """A checkpoint file is unreadable, unsafe, or does not fit the architecture."""


class DataError(AuditError):
    """The probe images could not be found or none of them could be read.

    ``key`` is the spec key at fault (``data.path``, ``data.labels``, ...): the spec validator
    reports the problem at that key's line without parsing the message.
    """

    def __init__(self, message: object = "", *, where: object = None, fix: str = "", key: str = "data.path"):
        self.key = key
        super().__init__(message, where=where if where is not None else key, fix=fix)


class LayerError(AuditError):
    """A requested layer does not exist for this model."""


class RegistryError(AuditError):
    """An unknown name was looked up, or a name was registered twice."""


def _restore(cls: type, args: tuple, state: dict) -> AuditError:
    error = Exception.__new__(cls)
    error.args = args
    error.__dict__.update(state)
    return error


def _reduce(self: AuditError):
    """Pickle with the fields intact (pytest-xdist and multiprocessing copy errors between processes)."""
    return _restore, (type(self), self.args, dict(self.__dict__))


AuditError.__reduce__ = _reduce  # type: ignore[method-assign]
