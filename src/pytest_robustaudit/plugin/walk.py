"""What pytest's own collection must not walk under the ``--audit`` paths.

Probe images usually live beside the specs (``audits/photos/``), so pytest's directory walk would
enter them: thousands of files that are never tests, and a symlink loop there (``photos/all ->
..``) makes the walk endless.  So the folders that specs under the audit paths name as
``data.path`` are left to the data stage (which follows each real folder once), and a symlinked
folder that leads back to one of its own ancestors is not entered twice.  A ``conftest.py`` or a
test file elsewhere under the audit paths is still collected.

Free of pytest; ``collect.py`` asks :func:`probe_folders` once per run.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

SPEC_SUFFIXES = (".yaml", ".yml")


def probe_folders(roots: Iterable[Path]) -> tuple[set[str], set[str]]:
    """``(probe, holders)``: the real paths of the ``data.path`` folders named by the specs under
    ``roots``, and of the folders that hold those specs or the roots (with their ancestors).

    The walk follows no symlink (so it cannot loop), skips folders it cannot list (collection
    reports them), reads only regular spec files (a FIFO named ``x.yaml`` would block), and does
    not descend into a data folder once a spec found before it has named it.  A spec that cannot
    be parsed names nothing here; its collection reports why.
    """
    probe: set[str] = set()
    holders: set[str] = set()

    def hold(folder: str) -> None:
        while folder not in holders:
            holders.add(folder)
            folder, parent = os.path.dirname(folder), folder
            if folder == parent:
                break

    for root in roots:
        root = Path(root)
        if root.is_file():
            probe.update(_named_by(root))
            hold(os.path.realpath(root.parent))
            continue
        hold(os.path.realpath(root))
        for current, dirs, files in os.walk(root, followlinks=False, onerror=lambda error: None):
            for name in sorted(files):
                if name.endswith(SPEC_SUFFIXES):
                    probe.update(_named_by(Path(current, name)))
                    hold(os.path.realpath(current))
            dirs[:] = [d for d in dirs if not d.startswith(".") and os.path.realpath(os.path.join(current, d)) not in probe]
    return probe, holders


def _named_by(spec_file: Path) -> list[str]:
    """The real path of ``spec_file``'s ``data.path`` (or ``data: PATH``), if it parses that far."""
    from ..spec.yamlsource import load_doc

    try:
        doc, _ = load_doc(spec_file)
    except Exception:  # noqa: BLE001 - a broken spec names nothing here; collecting it says why
        return []
    data = doc.data.get("data") if isinstance(doc.data, dict) else None
    text = data.get("path") if isinstance(data, dict) else data
    if not isinstance(text, str) or not text.strip() or "\x00" in text:
        return []
    return [os.path.realpath(os.path.join(spec_file.parent, os.path.expanduser(text)))]


def is_walked_elsewhere(path: Path, roots: Iterable[Path], probe: set[str], holders: set[str]) -> str:
    """Why pytest's walk should not enter the folder ``path`` under one of ``roots`` ("" when it should).

    A folder whose real path is that of one of its own parents on the path from its root is a
    symbolic-link loop (``a/b -> ..``, or ``A/b -> ../B`` with ``B/a -> ../A``): pytest would walk it
    for ever.  A data folder that also holds specs (``data.path: .``) is still walked.
    """
    real = os.path.realpath(path)
    for root in roots:
        if path != root and Path(root) in path.parents:
            parent = path.parent
            while True:
                if os.path.realpath(parent) == real:
                    return f"{path} leads back to {parent} through a symbolic link (a loop)"
                if parent == root or parent == parent.parent:
                    break
                parent = parent.parent
    if real in holders:
        return ""
    for folder in probe:
        if real == folder or real.startswith(folder.rstrip(os.sep) + os.sep):
            return f"{path} holds probe data of a spec (data.path)"
    return ""
