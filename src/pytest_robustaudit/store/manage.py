"""Looking after a store from the command line: list, clear, prune (``python -m pytest_robustaudit cache``).

Listing reads manifests only (no row checksums), so it is quick on a large store; an entry whose
manifest cannot be read (or is not a regular file, or is malformed) is listed with the reason rather
than hidden.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from .entries import ENTRIES, INCOMPLETE, LOCKS, STALE_INCOMPLETE_S, ActivationStore, BadEntry, read_manifest
from .errors import StoreError

#: the recipe memo (activations.py): model identities known without building the model
MODELS = "models"

#: The store's folder name under pytest's cache dir (``config.cache.mkdir(STORE_CACHE_NAME)``,
#: i.e. ``.pytest_cache/d/robustaudit-store`` by default).
STORE_CACHE_NAME = "robustaudit-store"

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


@dataclass(frozen=True)
class EntryRecord:
    """One entry as listed: what it holds, how big, how old, when last used (epoch seconds)."""

    key: str
    path: Path
    model: str
    data: str
    layers: tuple[str, ...]
    images: int
    size_bytes: int
    created: float
    last_used: float
    dtype: str = ""
    problem: str = ""

    @property
    def age_s(self) -> float:
        """Seconds since the entry was written."""
        return time.time() - self.created

    @property
    def idle_s(self) -> float:
        """Seconds since the entry was last read or written (what ``prune`` goes by)."""
        return time.time() - self.last_used


def default_store_dir(rootdir: os.PathLike | str = ".") -> Path:
    """Where pytest puts the store by default: ``<rootdir>/.pytest_cache/d/robustaudit-store``."""
    return Path(rootdir) / ".pytest_cache" / "d" / STORE_CACHE_NAME


def _describe(value) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _folder_size(path: Path) -> int:
    total = 0
    with contextlib.suppress(OSError):
        for child in os.scandir(path):
            with contextlib.suppress(OSError):
                total += child.stat(follow_symlinks=False).st_size
    return total


def list_entries(root: os.PathLike | str) -> list[EntryRecord]:
    """Every entry under ``root``, oldest first (manifests read, files not checksummed)."""
    folder = Path(root) / ENTRIES
    try:
        children = sorted(os.scandir(folder), key=lambda item: item.name)
    except OSError:
        return []
    records = []
    for child in children:
        if not child.is_dir(follow_symlinks=False):
            continue
        path = Path(child.path)
        try:
            last_used = child.stat(follow_symlinks=False).st_mtime
        except OSError:
            continue
        size = _folder_size(path)
        try:
            manifest = read_manifest(path)     # never blocks on a FIFO; every field of the right type
        except FileNotFoundError:
            continue                           # removed while listing
        except BadEntry as bad:
            records.append(EntryRecord(child.name, path, "", "", (), 0, size, last_used, last_used, problem=str(bad)))
            continue
        meta = manifest["meta"]
        records.append(EntryRecord(
            key=child.name, path=path, model=_describe(meta.get("model")), data=_describe(meta.get("data")),
            layers=tuple(item["name"] for item in manifest["layers"]), images=len(manifest["images"]),
            size_bytes=size, created=float(manifest["created"]), last_used=last_used, dtype=manifest["dtype"]))
    records.sort(key=lambda record: record.created)
    return records


def clear(root: os.PathLike | str) -> tuple[int, int]:
    """Remove every entry, incomplete folder, lock file and the hash memo; returns (entries, bytes).

    Only the store's own sub-folders are touched, never ``root`` itself.  Run it while no audit is
    running: a lock removed under a waiting process only risks one duplicate extraction."""
    root = Path(root)
    store = ActivationStore(root)
    records = list_entries(root)
    for record in records:
        store.remove(record.key)
    for name in (ENTRIES, INCOMPLETE, LOCKS, MODELS, "heads", "summaries"):  # head_source.HEADS, activations.SUMMARIES
        shutil.rmtree(root / name, ignore_errors=True)
    with contextlib.suppress(OSError):
        store.memo_path.unlink()
    return len(records), sum(record.size_bytes for record in records)


def prune(root: os.PathLike | str, older_than_seconds: float, now: float | None = None) -> list[EntryRecord]:
    """Remove entries not used (read or written) for ``older_than_seconds``, and incomplete folders
    of killed runs; returns the removed entries."""
    now = time.time() if now is None else now
    store = ActivationStore(root)
    removed = []
    for record in list_entries(root):
        if now - record.last_used > older_than_seconds and store.remove(record.key):
            removed.append(record)
    store.clean_incomplete(max(older_than_seconds, STALE_INCOMPLETE_S))
    # kept summaries (activations.SUMMARIES) are a cache of the entries: those not rewritten for as long go too
    # (a live entry's summary is recomputed once, from its rows)
    with contextlib.suppress(OSError):
        for child in os.scandir(Path(root) / "summaries"):
            with contextlib.suppress(OSError):
                if now - child.stat(follow_symlinks=False).st_mtime > older_than_seconds:
                    os.unlink(child.path)
    return removed


def parse_age(text: str) -> float:
    """Seconds in an age such as ``7d``, ``12h``, ``30m``, ``90s`` or ``2w``."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*", str(text).lower())
    if not match:
        raise StoreError(f"cannot read the age {text!r}: write a number and a unit, e.g. 7d, 12h, 30m or 90s")
    return float(match.group(1)) * _UNITS[match.group(2)]


def human_size(size: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} TB"  # pragma: no cover


def human_age(seconds: float) -> str:
    seconds = max(0.0, seconds)
    for unit, span in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= span:
            return f"{seconds / span:.0f}{unit}"
    return f"{seconds:.0f}s"


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def format_table(records: list[EntryRecord], now: float | None = None) -> str:
    """A plain-text table of entries (key, model, data, layers, images, size, age, last used) and a total."""
    now = time.time() if now is None else now
    if not records:
        return "activation store is empty"
    header = ("KEY", "MODEL", "DATA", "LAYERS", "IMAGES", "SIZE", "AGE", "USED")
    rows = []
    for record in records:
        layers = ",".join(record.layers)
        model = record.model if not record.problem else f"[{record.problem}] {record.model}".strip()
        rows.append((record.key[:12], _clip(model, 40), _clip(record.data, 40), _clip(layers, 32),
                     str(record.images), human_size(record.size_bytes), human_age(now - record.created),
                     human_age(now - record.last_used)))
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    right = {4, 5, 6, 7}

    def line(row):
        return "  ".join(cell.rjust(w) if i in right else cell.ljust(w) for i, (cell, w) in enumerate(zip(row, widths))).rstrip()

    total = sum(record.size_bytes for record in records)
    problems = [f"{record.key[:12]}: {record.problem} (a run sets it aside and recomputes it)"
                for record in records if record.problem]
    return "\n".join([line(header), *(line(row) for row in rows),
                      f"{len(records)} entr{'y' if len(records) == 1 else 'ies'}, {human_size(total)}", *problems])


def usable_root(root: Path) -> Path:
    """``root`` when it is a store folder or does not exist yet (an empty store); a :class:`StoreError`
    naming it when it is something else (a regular file, a symbolic link loop, a FIFO): listing such a
    path as "empty" would hide a wrong ``--dir``."""
    import stat

    from ..errors import mode_kind

    try:
        mode = root.stat().st_mode
    except FileNotFoundError:
        if root.is_symlink():
            raise StoreError(f"{root} is a symbolic link that leads nowhere",
                             fix="give --dir the real store folder") from None
        return root
    except OSError as error:      # ELOOP: a symbolic link loop; EACCES, ENOTDIR along the way
        raise StoreError(f"{root} cannot be used as a store folder: {error.strerror or error}",
                         fix="give --dir the store folder (docs/store.md#where-it-lives-and-how-it-is-controlled)") from None
    if not stat.S_ISDIR(mode):
        raise StoreError(f"{root} is {mode_kind(mode)}, not a store folder",
                         fix="give --dir the store folder (docs/store.md#where-it-lives-and-how-it-is-controlled)")
    return root


def verify(root: os.PathLike | str) -> list[tuple[EntryRecord, str]]:
    """Hash every entry's files again (the stat memo is not trusted) and set aside the bad ones, as a
    run would; returns each entry with "" (whole) or why it was set aside."""
    store = ActivationStore(root)
    return [(record, store.verify(record.key)) for record in list_entries(root)]


def cache_main(argv: list[str] | None = None, default_root: os.PathLike | str | None = None) -> int:
    """``cache {list,clear,prune --older-than AGE,verify} [--dir PATH]`` (``--dir`` before or after the
    sub-command); prints, returns the exit code (2: a usage or store error, 1: ``verify`` set entries aside)."""
    parser = argparse.ArgumentParser(prog="python -m pytest_robustaudit cache",
                                     description="List, clear, prune or verify the activation store.")
    where = "store folder (default: $ROBUSTAUDIT_CACHE_DIR, else .pytest_cache/d/robustaudit-store here)"
    parser.add_argument("--dir", default=None, help=where)
    commands = parser.add_subparsers(dest="command", required=True)
    # --dir is also accepted after the sub-command (`cache prune --older-than 14d --dir DIR`); SUPPRESS
    # keeps a --dir given before it when none follows
    after = argparse.ArgumentParser(add_help=False)
    after.add_argument("--dir", default=argparse.SUPPRESS, help=where)
    commands.add_parser("list", parents=[after], help="show each entry's model, data, layers, size and age")
    commands.add_parser("clear", parents=[after], help="remove every entry")
    prune_parser = commands.add_parser("prune", parents=[after], help="remove entries not used for a while")
    prune_parser.add_argument("--older-than", required=True, help="age such as 7d, 12h, 30m, 90s")
    commands.add_parser("verify", parents=[after], help="hash every entry again; set aside the ones that changed "
                                                        "on disk (bit rot)")
    args = parser.parse_args(argv)
    root = Path(args.dir) if args.dir else Path(default_root) if default_root else default_store_dir()
    try:
        root = usable_root(root)
        if args.command == "list":
            print(f"activation store: {root}")
            print(format_table(list_entries(root)))
        elif args.command == "clear":
            count, size = clear(root)
            print(f"removed {count} entr{'y' if count == 1 else 'ies'} ({human_size(size)}) from {root}")
        elif args.command == "verify":
            return _print_verified(root, verify(root))
        else:
            removed = prune(root, parse_age(args.older_than))
            size = sum(record.size_bytes for record in removed)
            print(f"removed {len(removed)} entr{'y' if len(removed) == 1 else 'ies'} ({human_size(size)}) "
                  f"not used for {args.older_than} from {root}")
    except StoreError as error:
        print(f"error: {error}")
        return 2
    return 0


def _print_verified(root: Path, checked: list[tuple[EntryRecord, str]]) -> int:
    bad = [(record, why) for record, why in checked if why]
    for record, why in bad:
        print(f"{record.key[:12]}  set aside: {why}")
    print(f"verified {len(checked)} entr{'y' if len(checked) == 1 else 'ies'} in {root}: "
          f"{len(checked) - len(bad)} whole, {len(bad)} set aside (recomputed by the next run that needs them)")
    return 1 if bad else 0
