"""Files written whole or not at all.

Reports, records and baselines are read by browsers, CI steps and later runs; a run killed while
writing one must leave the previous file (or none), never half a file that is later trusted.
"""

from __future__ import annotations

import os
from pathlib import Path


def write_text_atomic(path: os.PathLike | str, text: str) -> Path:
    """Write ``text`` to ``path`` (parents created) through a temporary file in the same folder,
    renamed into place with :func:`os.replace`, which is atomic there; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path
