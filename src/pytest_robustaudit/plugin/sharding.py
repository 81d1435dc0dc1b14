"""``--audit-shard K/N``: this machine audits the K-th of N deterministic parts of the specs.

For a CI matrix or a Slurm job array: every machine runs the same command with its own K, each
writes its JSON record, and ``python -m pytest_robustaudit merge`` joins the records into the one
report a single run would have written.  The split depends only on the spec files' paths relative
to pytest's rootdir (the same checkout gives the same split on every machine): sorted, the i-th spec
belongs to shard ``i mod N + 1``, so shards differ by at most one spec.
"""

from __future__ import annotations

import fnmatch
import os
import re
from pathlib import Path

import pytest

from .state import SPEC_SUFFIXES

_SHARD = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


def parse_shard(text: str) -> tuple[int, int]:
    """``"2/3"`` → (2, 3); a usage error naming the option otherwise."""
    found = _SHARD.match(str(text))
    index, count = (int(found.group(1)), int(found.group(2))) if found else (0, 0)
    if not found or count < 1 or not 1 <= index <= count:
        raise pytest.UsageError(f"--audit-shard {text!r}: expected K/N with 1 <= K <= N (e.g. --audit-shard 2/3)")
    return index, count


def spec_files(roots: list[Path], norecurse: list[str]) -> list[Path]:
    """Every spec file under ``roots`` (files given directly count), not following links into loops."""
    found: set[Path] = set()
    for root in roots:
        if root.is_file():
            found.add(Path(os.path.realpath(root)))
            continue
        for folder, dirs, files in os.walk(root, followlinks=False):
            dirs[:] = sorted(d for d in dirs if not any(fnmatch.fnmatch(d, p) for p in norecurse))
            # realpath never raises: a spec may be a symlink loop (its collection reports it)
            found.update(Path(os.path.realpath(Path(folder, f))) for f in files if Path(f).suffix in SPEC_SUFFIXES)
    return sorted(found)


def identity(path: Path, rootdir: Path) -> str:
    """A spec's name for sharding: its path relative to the rootdir (posix), the same on every machine."""
    try:
        return path.relative_to(rootdir.resolve()).as_posix()
    except ValueError:
        return path.as_posix()


def members(files: list[Path], rootdir: Path, index: int, count: int) -> set[Path]:
    """The specs of shard ``index`` of ``count``."""
    ordered = sorted(files, key=lambda p: identity(p, rootdir))
    return {p for i, p in enumerate(ordered) if i % count == index - 1}
