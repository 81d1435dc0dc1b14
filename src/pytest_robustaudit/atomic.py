r"""Files written whole or not at all.

Reports, records and baselines are read by browsers, CI steps and later runs; a run killed while
writing one must leave the previous file (or none), never half a file that is later trusted.

Texts are written as UTF-8, and a file name that is not valid UTF-8 (Python keeps its bytes as
lone surrogates, ``'\udcff'``) is written escaped as ``\udcff``: in a JSON string that is the
standard escape, so reading the record back gives the very same name (and ``os.fsencode`` its
bytes); in HTML and Markdown it is readable text.  Such a name never costs a run its outputs.
"""

from __future__ import annotations

import os
from pathlib import Path


def write_text_atomic(path: os.PathLike | str, text: str) -> Path:
    """Write ``text`` to ``path`` (parents created) through a temporary file in the same folder,
    renamed into place with :func:`os.replace`, which is atomic there; returns the path."""
    return _replace_atomic(path, lambda tmp: tmp.write_text(text, encoding="utf-8", errors="backslashreplace"))


def write_bytes_atomic(path: os.PathLike | str, data: bytes) -> Path:
    """:func:`write_text_atomic` for bytes."""
    return _replace_atomic(path, lambda tmp: tmp.write_bytes(data))


def write_npz_atomic(path: os.PathLike | str, arrays: dict, meta: dict) -> Path:
    """``arrays`` and a JSON ``meta`` (the member ``meta``) as one ``.npz``, written atomically: what the
    store keeps beside its entries (heads, SVDs, summaries) and reads back with ``allow_pickle=False``."""
    import io
    import json

    import numpy as np

    buffer = io.BytesIO()
    np.savez(buffer, meta=np.array(json.dumps(meta)), **arrays)
    return write_bytes_atomic(path, buffer.getvalue())


def _replace_atomic(path: os.PathLike | str, write) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def escape_surrogates(text: str) -> str:
    r"""``text`` with each lone surrogate (a non-UTF-8 byte of a file name) written as ``\udcXX``, as
    :func:`write_text_atomic` writes it: for texts that travel elsewhere (a pytest-xdist worker's
    record), which must be valid UTF-8.  In JSON strings this escape reads back as the same name."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def write_output(what: str, path: os.PathLike | str, write, written: list, problems: list) -> None:
    """Render and write one output of a run or of ``merge`` (``write(path)``): on success ``(what, path)``
    goes to ``written``; any failure (a path that cannot be written, a value a renderer cannot take)
    becomes one line in ``problems``, never an exception, so it costs no other output."""
    from .errors import describe_error

    try:
        write(path)
        written.append((what, path))
    except OSError as error:
        problems.append(f"could not write the {what} to {path}: {error}")
    except Exception as error:  # noqa: BLE001 - the other outputs must still be written
        problems.append(f"could not write the {what} to {path}: {describe_error(error)}")
