"""``--audit-shard K/N``: this machine audits the K-th of N deterministic parts of the specs.

For a CI matrix or a Slurm job array: every machine runs the same command with its own K, each
writes its JSON record, and ``python -m pytest_robustaudit merge`` joins the records into the one
report a single run would have written.  The split depends only on the spec files' paths relative
to pytest's rootdir (the same checkout gives the same split on every machine): sorted, the i-th spec
belongs to shard ``i mod N + 1``, so shards differ by at most one spec.  A shard that gets no spec
(a matrix wider than the number of specs) is a success with an empty record, so ``merge`` finds
every shard; each record carries the spec set (paths and content hashes) ``merge`` checks it against.
"""

from __future__ import annotations

import fnmatch
import os
import re
from pathlib import Path

import pytest

from .state import SPEC_SUFFIXES

_SHARD = re.compile(r"^\s*([0-9]{1,9})\s*/\s*([0-9]{1,9})\s*$")   # ASCII digits, at most 999,999,999 shards


def parse_shard(text: str) -> tuple[int, int]:
    """``"2/3"`` → (2, 3); a usage error naming the option otherwise."""
    found = _SHARD.match(str(text))   # "" too is a usage error, never "audit everything"
    index, count = (int(found.group(1)), int(found.group(2))) if found else (0, 0)
    if not found or count < 1 or not 1 <= index <= count:
        raise pytest.UsageError(f"--audit-shard {text!r}: expected K/N with 1 <= K <= N (e.g. --audit-shard 2/3)")
    return index, count


def spec_files(roots: list[Path], norecurse: list[str]) -> list[Path]:
    """Every spec file under ``roots`` (files given directly count), not following links into loops."""
    found: set[Path] = set()
    for root in roots:
        if root.is_file():
            found.add(root.resolve())
            continue
        for folder, dirs, files in os.walk(root, followlinks=False):
            dirs[:] = sorted(d for d in dirs if not any(fnmatch.fnmatch(d, p) for p in norecurse))
            found.update(Path(folder, f).resolve() for f in files if Path(f).suffix in SPEC_SUFFIXES)
    return sorted(found)


def identity(path: Path, rootdir: Path) -> str:
    """A spec's name for sharding: its path relative to the rootdir (posix), the same on every machine."""
    try:
        return path.relative_to(rootdir.resolve()).as_posix()
    except ValueError:
        return path.as_posix()


def members(files: list[Path], rootdir: Path, index: int, count: int) -> set[Path]:
    """The specs of shard ``index`` of ``count`` (the split rule: ``results.merge.shard_members``)."""
    from ..results.merge import shard_members

    by_name = {identity(p, rootdir): p for p in files}
    return {by_name[name] for name in shard_members(list(by_name), index, count)}


def spec_digest(path: Path) -> str:
    """sha256 of a spec file's bytes (a FIFO is not waited on: its digest then names why it was not read)."""
    from ..store.keys import sha256_file

    try:
        return sha256_file(path)
    except (OSError, ValueError) as error:   # ValueError: files.UnfitFile
        return "unreadable: " + str(getattr(error, "strerror", None) or error)


def spec_set(files: list[Path], rootdir: Path, index: int, count: int) -> dict:
    """This shard's ``run.spec_set`` for its record: what ``merge`` checks the shards against."""
    from ..results.merge import spec_set_of

    return spec_set_of({identity(p, rootdir): spec_digest(p) for p in files}, index, count)


def is_relation_file(path: Path) -> bool:
    """Whether ``path`` is a relation file (top level ``relation:``, no ``model:``): every shard collects
    those.  Read by the specs' own guarded loader; a file that cannot be read or parsed is not one here
    (the shard that owns it reports it)."""
    from ..spec.relation_section import is_relation_doc
    from ..spec.yamlsource import load_doc

    try:
        doc, _ = load_doc(Path(path))
    except Exception:  # noqa: BLE001 - whatever it is, its own shard's collection says it
        return False
    return is_relation_doc(doc.data)
