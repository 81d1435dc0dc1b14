"""The store's error type and the one folder helper every store module uses (a low module of its own,
so that entries and locks do not import each other)."""

from __future__ import annotations

from pathlib import Path

from ..errors import AuditError

#: the way out of every store problem, said in each message
WAY_OUT = "use --audit-cache-dir PATH to put the store elsewhere, or --audit-cache off to run without it"


class StoreError(AuditError):
    """The activation store cannot be used as asked (unwritable folder, full disk, a lock never freed)."""


class RottenEntry(StoreError):
    """A store entry whose rows changed on disk after it was written (bit rot, a stray write), found
    while they were read: nothing computed from them may be reported.  ``key`` and ``reason`` (one
    line, said like any other bad entry) let the reader set the entry aside and compute it again."""

    def __init__(self, key: str, path: Path, reason: str):
        self.key = key
        self.reason = reason
        super().__init__(f"activation store entry {key[:12]} ({path}): {reason}; nothing read from it was used",
                         fix="run again: the entry is set aside and recomputed (python -m pytest_robustaudit cache "
                             "verify checks every entry)")


def ensure_dir(path: Path) -> Path:
    """Create ``path`` (and parents), or raise a :class:`StoreError` naming it and the way out."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise StoreError(f"cannot create the activation store folder {path}: {error.strerror or error}; {WAY_OUT}") \
            from error
    return path

