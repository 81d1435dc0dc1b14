"""Content identity: the one place that decides when two extractions are "the same".

An activation store entry is found by a key computed from what determines its numbers (weights,
preprocessing, the ordered probe images' bytes, layer, precision, library versions), never from a
name or a path, so renaming a probe folder still hits and changing one image's bytes misses.

Hashing 50,000 probe images or a 1 GB checkpoint on every warm run would dominate it, so file hashes
are memoised by their stat signature (size, mtime_ns, inode, device), the way git's index and
make-style tools do: a file is re-hashed only when its signature changed.  A file modified within
``RACY_WINDOW_S`` of being hashed is not memoised (its mtime may not tick on a second write within
the filesystem's timestamp granularity), so it is hashed again next time.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat as stat_module
import time
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path

from ..errors import DataError

#: Bumped whenever the on-disk layout or the meaning of a stored number changes.  It is part of
#: every key (so entries of another version are never even looked up) and of every manifest (so one
#: found under a key anyway is rejected, not misread).
STORE_FORMAT_VERSION = 1

#: Seconds within which a file's mtime is too recent to trust a memoised hash of it.
RACY_WINDOW_S = 2.0

_MEMO_VERSION = 1
_CHUNK = 1 << 20
#: The largest hash memo read (about 250 bytes per remembered file: a million files)
MAX_MEMO_BYTES = 256 << 20


def canonical_json(value: object) -> str:
    """``value`` as JSON with sorted keys and no whitespace: the same parts always give the same text.

    Only JSON types are accepted (a Path or an object in the key parts is a bug: identity must be
    spelled out, not left to ``repr``)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def content_key(parts: Mapping) -> str:
    """The hex sha256 of the store format version and ``parts`` in canonical JSON.

    ``parts`` describes everything that changes the stored numbers, e.g. ``{"weights": <sha256>,
    "preprocess": {...}, "images": <sha256 of the ordered image hashes>, "layer": "blocks.11",
    "precision": {...}, "versions": {...}}``; tuples and lists are the same thing in JSON.
    """
    if not isinstance(parts, Mapping):
        raise TypeError(f"content_key needs a mapping of key parts, got {type(parts).__name__}")
    text = canonical_json({"store_format": STORE_FORMAT_VERSION, "parts": dict(parts)})
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def sha256_file(path: os.PathLike | str) -> str:
    """The hex sha256 of a file's bytes, read in 1 MiB chunks (memory flat in the file size); a file
    that is not a regular file raises :class:`~..files.UnfitFile` (a FIFO is never waited on)."""
    from ..files import open_regular

    digest = hashlib.sha256()
    with open_regular(path) as handle:
        while True:
            block = handle.read(_CHUNK)
            if not block:
                break
            digest.update(block)
    return digest.hexdigest()


def _well_formed(known: object) -> bool:
    """A memo item is [size, mtime_ns, inode, device, sha256 hex]."""
    return isinstance(known, list) and len(known) == 5 and isinstance(known[4], str) and \
        all(isinstance(v, int) and not isinstance(v, bool) for v in known[:4])


def _signature(stat: os.stat_result) -> list[int]:
    return [stat.st_size, stat.st_mtime_ns, stat.st_ino, stat.st_dev]


class FileHasher:
    """sha256 of files, memoised by stat signature in a JSON file (``memo_path``).

    The memo is only an accelerator: a missing, corrupt or foreign memo is ignored (everything is
    hashed again) and a memo that cannot be written is skipped silently.  Call :meth:`save` (or use
    the hasher as a context manager) to persist new hashes; it writes atomically, so two processes
    saving at once leave one complete memo (the other's new hashes are simply recomputed later).
    """

    def __init__(self, memo_path: os.PathLike | str | None):
        self.memo_path = Path(memo_path) if memo_path is not None else None
        self.hits = 0
        self.hashed = 0
        self._dirty = False
        self._memo: dict[str, list] = self._load()

    def _load(self) -> dict[str, list]:
        from ..files import UnfitFile, read_json

        if self.memo_path is None:
            return {}
        try:
            data = read_json(self.memo_path, MAX_MEMO_BYTES)
        except (OSError, ValueError, UnfitFile):
            return {}
        if not isinstance(data, dict) or data.get("version") != _MEMO_VERSION or not isinstance(data.get("files"), dict):
            return {}
        # a memo of the wrong shape (valid JSON all the same) only costs a re-hash: keep the well-formed items
        return {name: known for name, known in data["files"].items() if _well_formed(known)}

    def sha256(self, path: os.PathLike | str) -> str:
        """The hex sha256 of ``path``'s bytes; from the memo when its stat signature is unchanged.

        An unreadable file raises :class:`DataError` naming it."""
        name = os.path.abspath(path)
        try:
            stat = os.stat(name)
            signature = _signature(stat)
            known = self._memo.get(name)
            if known is not None and known[:4] == signature:
                self.hits += 1
                return known[4]
            digest = sha256_file(name)
        except (OSError, ValueError) as error:   # ValueError: UnfitFile, not a regular file
            raise DataError(
                f"cannot read {name} to compute its content hash: {getattr(error, 'strerror', None) or error}; "
                "check that the file exists, is a regular file and is readable"
            ) from error
        self.hashed += 1
        if time.time_ns() - stat.st_mtime_ns > RACY_WINDOW_S * 1e9:
            self._memo[name] = [*signature, digest]
            self._dirty = True
        elif name in self._memo:
            del self._memo[name]
            self._dirty = True
        return digest

    def forget_under(self, folder: os.PathLike | str) -> None:
        """Drop the remembered hashes of the files in ``folder`` (an entry set aside: a new file there may
        one day have the old one's size, times and inode)."""
        prefix = os.path.join(os.path.abspath(folder), "")
        gone = [name for name in self._memo if name.startswith(prefix)]
        for name in gone:
            del self._memo[name]
        self._dirty = self._dirty or bool(gone)

    def save(self) -> None:
        """Write the memo (only when something new was hashed) through a temporary file and a rename."""
        if self.memo_path is None or not self._dirty:
            return
        text = json.dumps({"version": _MEMO_VERSION, "files": self._memo}, separators=(",", ":"))
        tmp = self.memo_path.with_name(f".{self.memo_path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
        try:
            self.memo_path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(text, encoding="utf-8")
            os.replace(tmp, self.memo_path)
            self._dirty = False
        except OSError:
            try:
                tmp.unlink()
            except OSError:
                pass

    def __enter__(self) -> "FileHasher":
        return self

    def __exit__(self, *exc) -> None:
        self.save()


def hash_files(paths: Iterable[os.PathLike | str], hasher: FileHasher, skip_unreadable: bool = False) -> list[str]:
    """Content hashes of ``paths`` in their order (the probe images' identities), memo saved after.

    With ``skip_unreadable`` (probe images: decoding skips such files with their reason), a file that
    is not a regular file (a FIFO would block for ever, a device never ends) or cannot be read gets an
    identity from its name and the reason instead of an error, and is never opened.
    """
    digests = []
    for path in paths:
        if skip_unreadable:
            try:
                regular = stat_module.S_ISREG(os.stat(path).st_mode)
                reason = "" if regular else "not a regular file"
            except OSError as error:
                reason = f"unreadable: {error.strerror or error}"
            if reason:
                name = os.fsencode(os.path.abspath(path))
                digests.append(hashlib.sha256(b"\0".join([b"skipped", reason.encode(), name])).hexdigest())
                continue
            try:
                digests.append(hasher.sha256(path))
            except DataError as error:
                digests.append(hashlib.sha256(b"\0".join([b"skipped", str(error).encode("utf-8", "replace")]))
                               .hexdigest())
            continue
        digests.append(hasher.sha256(path))
    hasher.save()
    return digests


def sequence_hash(digests: Iterable[str]) -> str:
    """One hash for an ordered list of content hashes (the probe set's part of a key)."""
    digest = hashlib.sha256()
    for item in digests:
        digest.update(item.encode("ascii"))
        digest.update(b"\n")
    return digest.hexdigest()


def library_versions(names: Iterable[str] = ("torch", "timm", "open_clip_torch", "numpy")) -> dict[str, str | None]:
    """Installed versions of the libraries that change extracted numbers, read from package metadata
    (nothing is imported); None for one that is not installed."""
    from importlib import metadata

    versions: dict[str, str | None] = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def extraction_parts(*, weights: str, preprocess: Mapping, canary: str, images: Iterable[str],
                     layers: Iterable[str], precision: Mapping, store_dtype: str = "float32",
                     extraction_format: int = 1, versions: Mapping | None = None,
                     extra: Mapping | None = None) -> dict:
    """The key parts of one extraction, every ingredient named so none is forgotten.

    ``weights``: a fingerprint of the weights (sha256 of the checkpoint file, or of the pretrained
    file the library loaded); ``preprocess``: the resolved transform settings; ``canary``: sha256 of
    one image's transformed tensor bytes (catches a transform change the settings do not show);
    ``images``: the ordered content hashes of the probe images (folded into one hash here);
    ``layers``: the requested layer names in order; ``precision``: device type, autocast dtype, TF32,
    ...; ``extraction_format``: the extraction code's own version (bump it when it changes what a row
    means); ``versions``: defaults to :func:`library_versions`; ``extra``: anything else that changes rows.
    """
    return {
        "weights": str(weights),
        "preprocess": dict(preprocess),
        "canary": str(canary),
        "images": sequence_hash(images),
        "layers": [str(layer) for layer in layers],
        "precision": dict(precision),
        "store_dtype": str(store_dtype),
        "extraction_format": int(extraction_format),
        "versions": dict(library_versions() if versions is None else versions),
        "extra": dict(extra or {}),
    }
