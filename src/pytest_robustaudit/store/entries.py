"""Store entries: one folder of per-layer ``.npy`` files plus a checksummed manifest, per content key.

Layout under the store root (see docs/store.md)::

    entries/<key>/manifest.json         what the entry is (key parts, meta, image hashes, layers)
    entries/<key>/000-<layer>.npy       one row per image, float32 (or float16), shape [N, d]
    incomplete/<key>.<pid>.<uuid>/      an entry being written; never read, cleaned after a day
    locks/<key>.lock                    per-key lock files (a separate tree, as huggingface_hub does)
    filehashes.json                     the stat memo of file hashes (see keys.py)

The commit point is one ``rename`` of a complete, checksummed folder from ``incomplete/`` into
``entries/``: a run killed at any moment leaves either no entry or a whole one.  Reading checks the
format version, the manifest's own checksum, every file's size and sha256 (memoised by stat, so a
warm read costs a ``stat`` per file), and sets a bad entry aside so it is recomputed, saying why in
one line (:attr:`ActivationStore.problems`).

Plain ``.npy`` rather than safetensors: it is memory-mappable by numpy alone, its header can be
written before the row count is final (rows are streamed batch by batch, never held in memory), and
``numpy.load(mmap_mode="r")`` opens it anywhere without this plugin.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import shutil
import socket
import struct
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from .errors import WAY_OUT as _WAY_OUT
from .errors import StoreError
from .errors import ensure_dir as _ensure_dir
from .keys import STORE_FORMAT_VERSION, FileHasher, canonical_json, content_key

ENTRIES = "entries"
INCOMPLETE = "incomplete"
LOCKS = "locks"
MEMO = "filehashes.json"
MANIFEST = "manifest.json"

#: Storage dtypes by their spec name; little-endian on disk whatever the machine.
STORE_DTYPES = {"float32": np.dtype("<f4"), "float16": np.dtype("<f2")}
#: Incomplete folders whose newest file is older than this are leftovers of killed runs.
STALE_INCOMPLETE_S = 24 * 3600.0
#: Default size of one chunk that Entry.rows yields.
CHUNK_BYTES = 8 << 20
#: Every .npy header is padded to this many bytes, so the row count can be rewritten in place.
_NPY_HEADER_BYTES = 128
_KEY_RE = re.compile(r"^[0-9a-f]{16,128}$")


def _check_key(key: str) -> str:
    if not isinstance(key, str) or not _KEY_RE.match(key):
        raise ValueError(f"not a store key (hex digest from content_key): {key!r}")
    return key


def _npy_header(dtype: np.dtype, shape: tuple[int, int]) -> bytes:
    """A version 1.0 ``.npy`` header padded to a fixed size (numpy reads any padding)."""
    text = "{'descr': %r, 'fortran_order': False, 'shape': (%d, %d), }" % (
        np.lib.format.dtype_to_descr(dtype), shape[0], shape[1])
    length = _NPY_HEADER_BYTES - 10
    body = text.encode("latin1")
    if len(body) + 1 > length:
        raise ValueError(f"shape {shape} does not fit a {_NPY_HEADER_BYTES}-byte .npy header")
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", length) + body.ljust(length - 1) + b"\n"


def _read_npy_header(path: Path) -> tuple[tuple[int, ...], np.dtype, int]:
    """(shape, dtype, offset of the data) of a ``.npy`` file; ValueError when it is not one."""
    with open(path, "rb") as handle:
        version = np.lib.format.read_magic(handle)
        if version != (1, 0):
            raise ValueError(f"unexpected .npy version {version}")
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(handle)
        if fortran:
            raise ValueError("Fortran-ordered array")
        return tuple(shape), dtype, handle.tell()


def _safe_name(layer: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", layer)[:80] or "layer"


def _fsync_dir(path: Path) -> None:
    if os.name != "posix":
        return
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@dataclass(frozen=True)
class LayerInfo:
    """One stored layer: its file in the entry folder, shape [N, d], storage dtype and sha256."""

    name: str
    file: str
    shape: tuple[int, int]
    dtype: str
    sha256: str


class Entry:
    """A verified, read-only store entry.  Read rows in chunks (:meth:`rows`) or memory-mapped (:meth:`array`)."""

    def __init__(self, path: Path, manifest: dict):
        self.path = Path(path)
        self.manifest = manifest
        self.key: str = manifest["key"]
        self.parts: dict = manifest["parts"]
        self.meta: dict = manifest["meta"]
        self.images: tuple[str, ...] = tuple(manifest["images"])
        self.created: float = float(manifest["created"])
        self.dtype: str = manifest["dtype"]
        self._layers = {
            item["name"]: LayerInfo(item["name"], item["file"], tuple(item["shape"]), item["dtype"], item["sha256"])
            for item in manifest["layers"]
        }

    @property
    def layers(self) -> tuple[str, ...]:
        """The stored layer names, in the order they were first written."""
        return tuple(self._layers)

    @property
    def size_bytes(self) -> int:
        """Bytes on disk: the layer files and the manifest."""
        total = 0
        for child in os.scandir(self.path):
            with contextlib.suppress(OSError):
                total += child.stat().st_size
        return total

    def info(self, layer: str) -> LayerInfo:
        try:
            return self._layers[layer]
        except KeyError:
            raise StoreError(
                f"activation store entry {self.key[:12]} ({self.path}) has no layer {layer!r}; "
                f"it holds {', '.join(map(repr, self._layers)) or 'no layers'}"
            ) from None

    def shape(self, layer: str) -> tuple[int, int]:
        return self.info(layer).shape

    def array(self, layer: str) -> np.memmap:
        """The layer's rows as a read-only memory map (pages load on access; nothing is copied)."""
        return np.load(self.path / self.info(layer).file, mmap_mode="r")

    def rows(self, layer: str, chunk_rows: int | None = None, dtype=np.float32) -> Iterator[np.ndarray]:
        """The layer's rows, ``chunk_rows`` at a time (default: about 8 MiB per chunk), as ``dtype``
        (float32 or float64) arrays, in image order.

        Each chunk is read into its own array of at most ``chunk_rows x d`` (plain reads, no memory
        map, so no page of the file stays counted in RSS), so memory stays flat in N however many
        images the entry holds."""
        info = self.info(layer)
        path = self.path / info.file
        stored = STORE_DTYPES[info.dtype]
        n, d = info.shape
        out = np.dtype(dtype)
        if chunk_rows is None:
            chunk_rows = max(1, CHUNK_BYTES // max(1, d * out.itemsize))
        if chunk_rows < 1:
            raise ValueError(f"chunk_rows must be at least 1, got {chunk_rows}")
        with open(path, "rb") as handle:
            handle.seek(_read_npy_header(path)[2])
            for start in range(0, n, chunk_rows):
                count = min(chunk_rows, n - start)
                chunk = np.empty((count, d), dtype=stored)
                view = memoryview(chunk).cast("B")
                got = handle.readinto(view)
                if got != view.nbytes:
                    raise StoreError(
                        f"activation store entry {self.key[:12]}: {path} ended early (rows {start}..{start + count} "
                        f"of {n}); it changed after it was checked; run again to recompute it"
                    )
                yield chunk if chunk.dtype == out else chunk.astype(out)

    def __repr__(self) -> str:
        return f"Entry({self.key[:12]}, {len(self.images)} images, layers={list(self._layers)})"


class _LayerFile:
    def __init__(self, path: Path, width: int, planned: int, dtype: np.dtype):
        self.path = path
        self.width = width
        self.rows = 0
        self.handle = open(path, "wb")
        header = _npy_header(dtype, (planned, width))
        self.handle.write(header)
        self.digest = hashlib.sha256(header)


class EntryWriter:
    """Writes one entry into its own incomplete folder, batch by batch; :meth:`commit` publishes it.

    Used as a context manager, an exception or leaving without :meth:`commit` aborts (the folder is
    removed).  The row count per layer may end below ``len(images)`` (pass the final ``images`` to
    :meth:`commit`), never above it."""

    def __init__(self, store: "ActivationStore", key: str, parts: Mapping, meta: Mapping,
                 images: Sequence[str], dtype: str = "float32"):
        if dtype not in STORE_DTYPES:
            raise StoreError(f"unknown store dtype {dtype!r}; use one of {', '.join(STORE_DTYPES)}")
        if content_key(parts) != _check_key(key):
            raise ValueError("key does not match content_key(parts): compute keys with store.keys.content_key")
        self.store = store
        self.key = key
        self.parts = json.loads(canonical_json(dict(parts)))
        self.meta = json.loads(canonical_json(dict(meta)))
        self.images = [str(item) for item in images]
        self.dtype_name = dtype
        self.dtype = STORE_DTYPES[dtype]
        self.planned = len(self.images)
        self.raced = False
        self._layers: dict[str, _LayerFile] = {}
        self._closed = False
        store._clean_once()
        self.path = _ensure_dir(store.incomplete_dir) / f"{key}.{os.getpid()}.{uuid.uuid4().hex[:12]}"
        try:
            self.path.mkdir()
        except OSError as error:
            raise StoreError(f"cannot write the activation store entry folder {self.path}: "
                             f"{error.strerror or error}; {_WAY_OUT}") from error

    def rows_written(self, layer: str) -> int:
        return self._layers[layer].rows if layer in self._layers else 0

    def append(self, layer: str, batch) -> None:
        """Add ``batch`` ([b, d] array) as the next rows of ``layer``, cast to the storage dtype."""
        if self._closed:
            raise ValueError("this entry writer was already committed or aborted")
        array = np.asarray(batch)
        if array.ndim != 2:
            raise ValueError(f"layer {layer!r}: rows must be a 2-D [batch, features] array, got shape {array.shape}")
        with np.errstate(over="ignore"):
            stored = np.ascontiguousarray(array, dtype=self.dtype)
        if self.dtype.itemsize < 4:
            overflow = np.isinf(stored) & np.isfinite(array)
            if overflow.any():
                raise StoreError(
                    f"layer {layer!r}: {int(overflow.sum())} activation(s) exceed the float16 range (max 65504, "
                    f"largest here {float(np.nanmax(np.abs(array[np.isfinite(array)]))):.4g}); "
                    "set store_dtype: float32 for this model"
                )
        try:
            target = self._layers.get(layer)
            if target is None:
                name = f"{len(self._layers):03d}-{_safe_name(layer)}.npy"
                target = self._layers[layer] = _LayerFile(self.path / name, array.shape[1], self.planned, self.dtype)
            elif array.shape[1] != target.width:
                raise ValueError(f"layer {layer!r}: batch has {array.shape[1]} features, earlier batches {target.width}")
            if target.rows + array.shape[0] > self.planned:
                raise ValueError(f"layer {layer!r}: more rows ({target.rows + array.shape[0]}) than images ({self.planned})")
            data = memoryview(stored).cast("B")
            target.handle.write(data)
            target.digest.update(data)
            target.rows += array.shape[0]
        except OSError as error:
            self.abort()
            raise StoreError(f"cannot write activations to {self.path}: {error.strerror or error}; "
                             f"free some space or {_WAY_OUT}") from error

    def commit(self, images: Sequence[str] | None = None) -> Entry:
        """Checksum, write the manifest, and rename the folder into ``entries/<key>`` (the commit point).

        When another process committed the same key first, ours is discarded and theirs returned
        (:attr:`raced` is then True)."""
        if self._closed:
            raise ValueError("this entry writer was already committed or aborted")
        if images is not None:
            self.images = [str(item) for item in images]
        if not self._layers:
            raise ValueError(f"entry {self.key[:12]}: nothing was written (no layer rows)")
        for name, layer in self._layers.items():
            if layer.rows != len(self.images):
                raise ValueError(f"entry {self.key[:12]}: layer {name!r} has {layer.rows} rows for {len(self.images)} images")
        try:
            manifest = self._finish_files()
            target = _ensure_dir(self.store.entries_dir) / self.key
            entry = self._publish(target, manifest)
        except OSError as error:
            self.abort()
            raise StoreError(f"cannot finish the activation store entry in {self.path}: "
                             f"{error.strerror or error}; {_WAY_OUT}") from error
        except BaseException:
            self.abort()
            raise
        self._closed = True
        return entry

    def _finish_files(self) -> dict:
        layers = []
        for name, layer in self._layers.items():
            handle = layer.handle
            if layer.rows != self.planned:
                handle.seek(0)
                handle.write(_npy_header(self.dtype, (layer.rows, layer.width)))
            handle.flush()
            if self.store.durable:
                os.fsync(handle.fileno())
            handle.close()
            digest = layer.digest.hexdigest() if layer.rows == self.planned else _sha256(layer.path)
            layers.append({"name": name, "file": layer.path.name, "shape": [layer.rows, layer.width],
                           "dtype": self.dtype_name, "sha256": digest})
        now = time.time()
        manifest = {
            "format_version": STORE_FORMAT_VERSION,
            "key": self.key,
            "parts": self.parts,
            "meta": self.meta,
            "dtype": self.dtype_name,
            "images": self.images,
            "layers": layers,
            "created": now,
            "created_utc": datetime.fromtimestamp(now, timezone.utc).isoformat(timespec="seconds"),
            "writer": {"host": socket.gethostname(), "pid": os.getpid()},
        }
        manifest["manifest_sha256"] = _manifest_digest(manifest)
        with open(self.path / MANIFEST, "w", encoding="utf-8") as handle:
            handle.write(json.dumps(manifest, indent=1, sort_keys=True))
            handle.flush()
            if self.store.durable:
                os.fsync(handle.fileno())
        return manifest

    def _publish(self, target: Path, manifest: dict) -> Entry:
        for _attempt in range(3):
            try:
                os.rename(self.path, target)
            except OSError as error:
                if error.errno not in (errno.EEXIST, errno.ENOTEMPTY) and not isinstance(error, FileExistsError) \
                        and not (os.name == "nt" and target.exists()):
                    raise
                theirs = self.store.open(self.key)
                if theirs is not None:
                    self.raced = True
                    shutil.rmtree(self.path, ignore_errors=True)
                    return theirs
                continue  # theirs was bad and has been set aside: try again
            if self.store.durable:
                _fsync_dir(target.parent)
            return Entry(target, manifest)
        raise StoreError(f"cannot publish activation store entry {target}: another process keeps replacing it; {_WAY_OUT}")

    def abort(self) -> None:
        """Close and remove the incomplete folder (nothing was published)."""
        if self._closed:
            return
        self._closed = True
        for layer in self._layers.values():
            with contextlib.suppress(OSError):
                layer.handle.close()
        shutil.rmtree(self.path, ignore_errors=True)

    def __enter__(self) -> "EntryWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.abort()


def _sha256(path: Path) -> str:
    from .keys import sha256_file
    return sha256_file(path)


def _manifest_digest(manifest: Mapping) -> str:
    body = {k: v for k, v in manifest.items() if k != "manifest_sha256"}
    return hashlib.sha256(canonical_json(body).encode("utf-8")).hexdigest()


class _BadEntry(Exception):
    """Internal: why an entry folder cannot be trusted (one line)."""


class ActivationStore:
    """The activation store rooted at ``root`` (created on first write, not on construction).

    ``problems`` collects one line per entry that was found bad and set aside (and per lock that
    could not be used), for the caller to report; ``durable`` fsyncs files before the commit rename.
    """

    def __init__(self, root: os.PathLike | str, *, durable: bool = True, lock_timeout: float | None = None):
        self.root = Path(root)
        self.durable = durable
        self.lock_timeout = lock_timeout
        self.problems: list[str] = []
        self._hasher: FileHasher | None = None
        self._cleaned = False

    @property
    def entries_dir(self) -> Path:
        return self.root / ENTRIES

    @property
    def incomplete_dir(self) -> Path:
        return self.root / INCOMPLETE

    @property
    def locks_dir(self) -> Path:
        return self.root / LOCKS

    @property
    def memo_path(self) -> Path:
        return self.root / MEMO

    @property
    def hasher(self) -> FileHasher:
        """The store's stat-memoised file hasher (probe images, checkpoints, entry files)."""
        if self._hasher is None:
            self._hasher = FileHasher(self.memo_path)
        return self._hasher

    def entry_path(self, key: str) -> Path:
        return self.entries_dir / _check_key(key)

    # -- reading -------------------------------------------------------------------------------

    def open(self, key: str) -> Entry | None:
        """The verified entry for ``key``, or None when there is none or it was bad (then set aside,
        and a one-line reason appended to :attr:`problems`)."""
        path = self.entry_path(key)
        try:
            entry = self._verify(key, path)
        except FileNotFoundError:
            return None
        except _BadEntry as bad:
            self.problems.append(
                f"activation store entry {key[:12]} ({path}) cannot be used: {bad}; it was set aside and is recomputed")
            self._set_aside(path, "bad")
            return None
        finally:
            if self._hasher is not None:
                self._hasher.save()
        with contextlib.suppress(OSError):
            os.utime(path)  # "last used", for prune
        return entry

    def _verify(self, key: str, path: Path) -> Entry:
        try:
            text = (path / MANIFEST).read_text(encoding="utf-8")
        except FileNotFoundError:
            if not path.is_dir():
                raise
            raise _BadEntry("its manifest.json is missing") from None
        except (OSError, UnicodeDecodeError) as error:
            raise _BadEntry(f"its manifest.json cannot be read ({error})") from None
        try:
            manifest = json.loads(text)
        except ValueError:
            raise _BadEntry("its manifest.json is not valid JSON (truncated or corrupted)") from None
        if not isinstance(manifest, dict):
            raise _BadEntry("its manifest.json is not a JSON object")
        version = manifest.get("format_version")
        if version != STORE_FORMAT_VERSION:
            raise _BadEntry(f"it was written in store format {version!r}, this plugin reads format {STORE_FORMAT_VERSION}")
        if manifest.get("manifest_sha256") != _manifest_digest(manifest):
            raise _BadEntry("its manifest.json does not match its own checksum (corrupted)")
        try:
            if manifest["key"] != key or content_key(manifest["parts"]) != key:
                raise _BadEntry("its manifest describes another key")
            images = manifest["images"]
            layers = manifest["layers"]
            entry = Entry(path, manifest)
        except (KeyError, TypeError, ValueError) as error:
            raise _BadEntry(f"its manifest.json lacks or mangles a field ({error})") from None
        if not layers:
            raise _BadEntry("it holds no layers")
        for info in entry._layers.values():
            self._verify_layer(path, info, len(images))
        return entry

    def _verify_layer(self, path: Path, info: LayerInfo, n_images: int) -> None:
        label = f"layer {info.name!r} ({info.file})"
        if Path(info.file).name != info.file or info.dtype not in STORE_DTYPES:
            raise _BadEntry(f"{label} is described wrongly in the manifest")
        file = path / info.file
        try:
            shape, dtype, offset = _read_npy_header(file)
            size = file.stat().st_size
        except FileNotFoundError:
            raise _BadEntry(f"{label} is missing") from None
        except (OSError, ValueError) as error:
            raise _BadEntry(f"{label} has no readable .npy header ({error})") from None
        if len(info.shape) != 2 or shape != info.shape or info.shape[0] != n_images or dtype != STORE_DTYPES[info.dtype]:
            raise _BadEntry(f"{label} holds {dtype} {shape}, the manifest says {info.dtype} {list(info.shape)} "
                            f"for {n_images} images")
        expected = offset + shape[0] * shape[1] * dtype.itemsize
        if size != expected:
            raise _BadEntry(f"{label} is {size} bytes, {expected} expected (truncated or extended)")
        try:
            digest = self.hasher.sha256(file)
        except AuditError as error:
            raise _BadEntry(f"{label} cannot be read ({error})") from None
        if digest != info.sha256:
            raise _BadEntry(f"{label} does not match its sha256 (corrupted)")

    # -- writing -------------------------------------------------------------------------------

    def create(self, key: str, parts: Mapping, meta: Mapping, images: Sequence[str],
               dtype: str = "float32") -> EntryWriter:
        """A writer for a new entry ``key`` (== ``content_key(parts)``), one row per image in ``images``."""
        return EntryWriter(self, key, parts, meta, images, dtype)

    def get_or_create(self, key: str, parts: Mapping, meta: Mapping, images: Sequence[str],
                      build: Callable[[EntryWriter], None], on_wait: Callable[[str], None] | None = None,
                      dtype: str = "float32", refresh_before: float | None = None) -> tuple[Entry, bool]:
        """The entry for ``key``, built by ``build(writer)`` only when no process has it yet.

        Returns ``(entry, created)``.  ``build`` appends rows; it is committed here.  A second process
        waits on the key's lock (``on_wait(message)`` is called when it must wait, and again every
        30 s), then finds the first one's entry.  ``refresh_before`` (epoch seconds): an entry created
        before it is replaced (``--audit-cache refresh``; pass the run's start time so pytest-xdist
        workers refresh once, not once each).
        """
        entry = self.open(key)
        if entry is not None and (refresh_before is None or entry.created >= refresh_before):
            return entry, False
        from .locks import key_lock

        with key_lock(self.locks_dir, key, on_wait, self.lock_timeout, self.problems):
            entry = self.open(key)
            if entry is not None:
                if refresh_before is None or entry.created >= refresh_before:
                    return entry, False
                self.remove(key)
            with self.create(key, parts, meta, images, dtype) as writer:
                build(writer)
                entry = writer.commit()
            return entry, not writer.raced

    # -- removal -------------------------------------------------------------------------------

    def remove(self, key: str) -> bool:
        """Take the entry for ``key`` out of ``entries/`` (one rename, so readers see all or nothing)."""
        return self._set_aside(self.entry_path(key), "removed")

    def _set_aside(self, path: Path, why: str) -> bool:
        aside = self.incomplete_dir / f"{path.name}.{why}.{uuid.uuid4().hex[:12]}"
        try:
            self.incomplete_dir.mkdir(parents=True, exist_ok=True)
            os.rename(path, aside)
        except FileNotFoundError:
            return False
        except OSError:
            shutil.rmtree(path, ignore_errors=True)
            return not path.exists()
        shutil.rmtree(aside, ignore_errors=True)
        return True

    def _clean_once(self) -> None:
        if not self._cleaned:
            self._cleaned = True
            self.clean_incomplete()

    def clean_incomplete(self, older_than_s: float = STALE_INCOMPLETE_S) -> int:
        """Remove incomplete folders whose newest file is older than ``older_than_s`` (killed runs)."""
        removed = 0
        now = time.time()
        try:
            children = list(os.scandir(self.incomplete_dir))
        except OSError:
            return 0
        for child in children:
            try:
                newest = child.stat(follow_symlinks=False).st_mtime
                if child.is_dir(follow_symlinks=False):
                    for item in os.scandir(child.path):
                        newest = max(newest, item.stat(follow_symlinks=False).st_mtime)
            except OSError:
                continue
            if now - newest > older_than_s:
                if child.is_dir(follow_symlinks=False):
                    shutil.rmtree(child.path, ignore_errors=True)
                else:
                    with contextlib.suppress(OSError):
                        os.unlink(child.path)
                removed += 1
        return removed
