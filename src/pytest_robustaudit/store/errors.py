"""The store's error type and the one folder helper every store module uses (a low module of its own,
so that entries and locks do not import each other)."""

from __future__ import annotations

from pathlib import Path

from ..errors import AuditError

#: the way out of every store problem, said in each message
WAY_OUT = "use --audit-cache-dir PATH to put the store elsewhere, or --audit-cache off to run without it"


class StoreError(AuditError):
    """The activation store cannot be used as asked (unwritable folder, full disk, a lock never freed)."""


def ensure_dir(path: Path) -> Path:
    """Create ``path`` (and parents), or raise a :class:`StoreError` naming it and the way out."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise StoreError(f"cannot create the activation store folder {path}: {error.strerror or error}; {WAY_OUT}") \
            from error
    return path
