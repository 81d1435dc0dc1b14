"""Reading files that a user, a broken disk or a careless CI job may have replaced with anything.

Why a module: the store's manifests and rows, the hash memo, JSON records given to ``merge`` and
concept-bank manifests are read by paths nobody checked.  A named pipe (FIFO) there blocks ``open()``
for ever, ``/dev/zero`` never ends, a 100,000-deep JSON array exhausts the parser's stack.  Every such
read goes through here:

* :func:`open_regular` opens without blocking (``O_NONBLOCK``: opening a FIFO returns at once) and
  refuses whatever the opened descriptor is not a regular file (checked on the descriptor itself,
  so the file cannot be swapped between a check and the open);
* :func:`read_bytes` / :func:`read_text` add a size limit;
* :func:`parse_json` / :func:`read_json` add a nesting limit (:data:`MAX_JSON_DEPTH`).

Each refusal is an :class:`UnfitFile` whose text says what the file is and which limit it broke; the
callers turn it into their own located error (a record error, a bad store entry, a bank error).
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
from collections.abc import Iterator
from typing import IO, Any

from .errors import mode_kind

#: the deepest nesting of arrays and objects accepted in a JSON input (records nest about 8 levels)
MAX_JSON_DEPTH = 64


class UnfitFile(ValueError):
    """A file that is not a regular file, is larger than its limit, or nests deeper than JSON inputs may."""


@contextlib.contextmanager
def open_regular(path: os.PathLike | str) -> Iterator[IO[bytes]]:
    """``path`` opened for binary reading, or :class:`UnfitFile` when it is not a regular file (never
    blocks on a FIFO).  A missing or unreadable file raises the usual :class:`OSError`."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0)
    if not hasattr(os, "O_NONBLOCK"):          # Windows: no FIFOs to block on; still refuse devices and folders
        mode = os.stat(path).st_mode
        if not stat.S_ISREG(mode):
            raise UnfitFile(f"is {mode_kind(mode)}, not a regular file")
    fd = os.open(path, flags)
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise UnfitFile(f"is {mode_kind(mode)}, not a regular file")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        handle = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    with handle:
        yield handle


def read_bytes(path: os.PathLike | str, limit: int) -> bytes:
    """The bytes of regular file ``path``; :class:`UnfitFile` when it holds more than ``limit`` bytes."""
    with open_regular(path) as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise UnfitFile(f"holds more than {limit:,} bytes, the most this file may hold")
    return data


def read_text(path: os.PathLike | str, limit: int) -> str:
    """:func:`read_bytes` decoded as UTF-8 (:class:`UnicodeDecodeError`, a ValueError, when it is not)."""
    return read_bytes(path, limit).decode("utf-8")


def json_depth_exceeds(value: Any, limit: int = MAX_JSON_DEPTH) -> bool:
    """True when ``value`` (decoded JSON) nests arrays and objects deeper than ``limit`` (no recursion)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return False


def parse_json(text: str | bytes, depth: int = MAX_JSON_DEPTH) -> Any:
    """``json.loads(text)``, refusing (:class:`UnfitFile`) nesting deeper than ``depth``; invalid JSON
    raises :class:`json.JSONDecodeError` (a ValueError) as usual."""
    try:
        value = json.loads(text)
    except RecursionError:          # the C scanner stops safely at the interpreter's recursion limit
        raise UnfitFile(f"nests arrays or objects deeper than {depth} levels") from None
    if json_depth_exceeds(value, depth):
        raise UnfitFile(f"nests arrays or objects deeper than {depth} levels")
    return value


def read_json(path: os.PathLike | str, limit: int, depth: int = MAX_JSON_DEPTH) -> Any:
    """The JSON value in regular file ``path`` (at most ``limit`` bytes, ``depth`` levels)."""
    return parse_json(read_text(path, limit), depth)

