"""Per-key locks, so that two processes needing one entry do not both extract it.

Lock files live in their own tree (``locks/<key>.lock``), never inside an entry, so taking a lock
never touches what readers read, and an entry can be removed while its lock file stays.  We use the
``filelock`` package: cross-platform (``fcntl.flock`` on POSIX, ``msvcrt.locking`` on Windows), well
kept, already installed with huggingface_hub, which uses it for exactly this (its model cache).
An OS lock is released by the kernel when its holder dies, so a ``kill -9`` never leaves a stale lock.

The lock is an optimisation, not the guarantee: the commit point is the entry folder's rename, and a
duplicate commit is detected and discarded (entries.py).  Where the filesystem refuses locks (some
network mounts), the caller goes on without one and says so.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from .errors import StoreError, ensure_dir as _ensure_dir

#: Seconds between ``on_wait`` messages while a lock is held elsewhere.
WAIT_REPORT_S = 30.0
_WAY_OUT = "use --audit-cache-dir PATH to put the store elsewhere, or --audit-cache off to run without it"


@contextlib.contextmanager
def key_lock(locks_dir: Path, key: str, on_wait: Callable[[str], None] | None = None,
             timeout: float | None = None, problems: list[str] | None = None) -> Iterator[bool]:
    """Hold the lock for ``key`` (yields True), or go on without one where locking is unsupported
    (yields False and appends a line to ``problems``).

    ``on_wait(message)`` is called when another process holds the lock, then every WAIT_REPORT_S.
    ``timeout`` (seconds, None: wait as long as it takes, since an extraction may take hours) raises
    :class:`StoreError` naming the lock file."""
    import filelock

    if not re.fullmatch(r"[0-9a-f]{16,128}", key):
        raise ValueError(f"not a store key: {key!r}")
    path = _ensure_dir(Path(locks_dir)) / f"{key}.lock"
    lock = filelock.FileLock(str(path))
    try:
        _acquire(lock, key, path, on_wait, timeout)
    except (NotImplementedError, OSError) as error:
        if problems is not None:
            problems.append(f"cannot lock {path} ({error}); two runs may extract the same activations")
        yield False
        return
    try:
        yield True
    finally:
        lock.release()


def _acquire(lock, key: str, path: Path, on_wait, timeout: float | None) -> None:
    import filelock

    try:
        lock.acquire(timeout=0)
        return
    except filelock.Timeout:
        pass
    started = time.monotonic()
    while True:
        waited = time.monotonic() - started
        if on_wait is not None:
            still = f" (still waiting after {waited:.0f} s)" if waited >= 1 else ""
            on_wait(f"another process is computing activation store entry {key[:12]}; waiting for {path}{still}")
        step = WAIT_REPORT_S
        if timeout is not None:
            step = min(step, timeout - waited)
            if step <= 0:
                raise StoreError(
                    f"waited {waited:.0f} s for the lock {path} on activation store entry {key[:12]}; if no other "
                    f"run is using the store, delete that file; or {_WAY_OUT}")
        try:
            lock.acquire(timeout=step)
            return
        except filelock.Timeout:
            continue
