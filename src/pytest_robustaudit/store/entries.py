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

from ..errors import AuditError
from ..files import UnfitFile, open_regular, parse_json, read_text
from .errors import WAY_OUT as _WAY_OUT
from .errors import RottenEntry, StoreError
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
#: The largest manifest.json read (a manifest lists one 64-character hash per image: about 3.8 million images)
MAX_MANIFEST_BYTES = 256 << 20
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
    """(shape, dtype, offset of the data) of a ``.npy`` file; ValueError when it is not one (or not a
    regular file: a FIFO is refused, never waited on)."""
    with open_regular(path) as handle:
        return _parse_npy_header(handle)


def _parse_npy_header(handle) -> tuple[tuple[int, ...], np.dtype, int]:
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
        images the entry holds.  The bytes are checksummed as they stream: before the last chunk is
        handed out, the file's sha256 is compared with the manifest's, and a mismatch (bit rot that
        kept the file's size and times, which the stat memo cannot see) raises :class:`RottenEntry`
        instead, so a reader that went through every row never finishes on rotten numbers."""
        info = self.info(layer)
        path = self.path / info.file
        out = np.dtype(dtype)
        if chunk_rows is None:
            chunk_rows = max(1, CHUNK_BYTES // max(1, info.shape[1] * out.itemsize))
        if chunk_rows < 1:
            raise ValueError(f"chunk_rows must be at least 1, got {chunk_rows}")
        try:
            with open_regular(path) as handle:
                yield from self._checked_chunks(handle, info, chunk_rows, out)
        except (OSError, UnfitFile) as error:   # gone, swapped for a FIFO, or the disk failed mid-read
            raise RottenEntry(self.key, self.path, f"{info.file} cannot be read any more ({error})") from None

    def _checked_chunks(self, handle, info: LayerInfo, chunk_rows: int, out: np.dtype) -> Iterator[np.ndarray]:
        n, d = info.shape
        stored = STORE_DTYPES[info.dtype]
        try:
            offset = _parse_npy_header(handle)[2]
        except ValueError as error:
            raise RottenEntry(self.key, self.path, f"{info.file} has no readable .npy header ({error})") from None
        handle.seek(0)
        digest = hashlib.sha256(handle.read(offset))
        for start in range(0, max(n, 1), chunk_rows):
            count = max(0, min(chunk_rows, n - start))
            chunk = np.empty((count, d), dtype=stored)
            view = memoryview(chunk).cast("B")
            got = handle.readinto(view) if view.nbytes else 0
            if got != view.nbytes:
                raise RottenEntry(self.key, self.path, f"{info.file} ended early (rows {start}..{start + count} of "
                                                       f"{n}): it changed after it was checked")
            digest.update(view)
            if start + chunk_rows >= n and digest.hexdigest() != info.sha256:   # checked before the last chunk
                raise RottenEntry(self.key, self.path, f"layer {info.name!r} ({info.file}) does not match its "
                                                       f"sha256 (corrupted on disk)")
            if count:
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
        if array.dtype.kind in "fiu" and array.dtype != self.dtype:
            overflow = np.isinf(stored) & np.isfinite(array)   # a finite value the storage dtype cannot hold
            if overflow.any():
                fix = "set store_dtype: float32 for this model" if self.dtype.itemsize < 4 else \
                    "scale the features down before auditing them (the store keeps float32 at most)"
                raise StoreError(
                    f"layer {layer!r}: {int(overflow.sum())} activation(s) exceed the {self.dtype_name} range "
                    f"(max {float(np.finfo(self.dtype).max):.4g}, largest here "
                    f"{float(np.nanmax(np.abs(array[np.isfinite(array)]))):.4g}); they would be stored as infinity "
                    f"and dropped as non-finite", fix=fix)
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


class BadEntry(Exception):
    """Why an entry folder cannot be trusted (one line, said by :attr:`ActivationStore.problems` and
    ``cache list``)."""


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _layer_problem(item: object) -> str:
    if not isinstance(item, dict):
        return "a layer is not an object"
    if not isinstance(item.get("name"), str) or not isinstance(item.get("sha256"), str):
        return "a layer's name or sha256 is not a string"
    file = item.get("file")
    if not isinstance(file, str) or Path(file).name != file or file in ("", ".", ".."):
        return f"layer {item['name']!r} names no plain file in the entry folder"
    shape = item.get("shape")
    if not isinstance(shape, list) or len(shape) != 2 or not all(_is_count(v) for v in shape):
        return f"layer {item['name']!r} has no [rows, features] shape"
    if item.get("dtype") not in STORE_DTYPES:
        return f"layer {item['name']!r} has no storage dtype of {', '.join(STORE_DTYPES)}"
    return ""


def manifest_problem(manifest: object) -> str:
    """Why ``manifest`` (decoded JSON) is not a well-formed manifest of this store format ("" when it is):
    every field an :class:`Entry` and ``cache list`` read, of the type they read it as."""
    if not isinstance(manifest, dict):
        return "its manifest.json is not a JSON object"
    version = manifest.get("format_version")
    if version != STORE_FORMAT_VERSION:
        return f"it was written in store format {version!r}, this plugin reads format {STORE_FORMAT_VERSION}"
    created = manifest.get("created")
    if not isinstance(manifest.get("key"), str) or not isinstance(manifest.get("parts"), dict) \
            or not isinstance(manifest.get("meta"), dict) or manifest.get("dtype") not in STORE_DTYPES \
            or isinstance(created, bool) or not isinstance(created, (int, float)) or created != created \
            or not isinstance(manifest.get("images"), list) or not isinstance(manifest.get("layers"), list):
        return "its manifest.json lacks or mangles a field (key, parts, meta, dtype, images, created or layers)"
    if not all(isinstance(image, str) for image in manifest["images"]):
        return "its manifest.json lists an image identity that is not a string"
    if not manifest["layers"]:
        return "it holds no layers"
    problems = [p for p in map(_layer_problem, manifest["layers"]) if p]
    if problems:
        return f"its manifest.json describes a layer wrongly ({problems[0]})"
    if len({item["name"] for item in manifest["layers"]}) != len(manifest["layers"]):
        return "its manifest.json names a layer twice"
    return ""


def read_manifest(folder: os.PathLike | str) -> dict:
    """The manifest of the entry folder ``folder``: read without blocking (a FIFO is refused), at most
    :data:`MAX_MANIFEST_BYTES`, checksummed and well-formed, or :class:`BadEntry` saying why.  A
    folder that does not exist raises FileNotFoundError."""
    folder = Path(folder)
    try:
        text = read_text(folder / MANIFEST, MAX_MANIFEST_BYTES)
    except FileNotFoundError:
        if not folder.is_dir():
            raise
        raise BadEntry("its manifest.json is missing") from None
    except (OSError, UnfitFile, UnicodeDecodeError) as error:
        raise BadEntry(f"its manifest.json cannot be read ({getattr(error, 'strerror', None) or error})") from None
    try:
        manifest = parse_json(text)
    except UnfitFile as error:
        raise BadEntry(f"its manifest.json {error}") from None
    except ValueError:
        raise BadEntry("its manifest.json is not valid JSON (truncated or corrupted)") from None
    problem = manifest_problem(manifest)
    if problem:
        raise BadEntry(problem)
    try:
        intact = manifest.get("manifest_sha256") == _manifest_digest(manifest)
    except ValueError:                       # NaN or Infinity, which canonical JSON refuses
        intact = False
    if not intact:
        raise BadEntry("its manifest.json does not match its own checksum (corrupted)")
    return manifest


def unusable_reason(root: Path) -> str:
    """Why the store cannot live in ``root`` ("" when it can): the folder cannot be created, nothing can
    be written in it (a read-only home or checkout, a path through a regular file), or one of its own
    sub-folders is something else (a file where ``entries/`` should be)."""
    import tempfile

    try:
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=root, prefix=".robustaudit-probe-"):
            pass
    except OSError as error:
        return error.strerror or str(error)
    for name in (ENTRIES, INCOMPLETE, LOCKS):
        sub = root / name
        if os.path.lexists(sub) and not sub.is_dir():
            return f"its {name}/ is not a folder"
    return ""


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
            entry = self._verify(key, path, self.hasher)
        except FileNotFoundError:
            return None
        except BadEntry as bad:
            self._set_aside_bad(key, path, str(bad))
            return None
        finally:
            if self._hasher is not None:
                self._hasher.save()
        with contextlib.suppress(OSError):
            os.utime(path)  # "last used", for prune
        return entry

    def discard(self, rotten: RottenEntry) -> None:
        """Set aside the entry whose rows were found rotten while read (:class:`RottenEntry`), saying so
        in :attr:`problems` as for any bad entry, so that the caller computes it again."""
        self._set_aside_bad(rotten.key, self.entry_path(rotten.key), rotten.reason)

    def _set_aside_bad(self, key: str, path: Path, reason: str) -> None:
        self.problems.append(
            f"activation store entry {key[:12]} ({path}) cannot be used: {reason}; it was set aside and is recomputed")
        if self._hasher is not None:          # its files' remembered hashes go with it
            self._hasher.forget_under(path)
            self._hasher.save()
        self._set_aside(path, "bad")

    def verify(self, key: str) -> str:
        """Check the entry ``key`` completely, hashing every file again (the stat memo is not trusted):
        "" when it is whole, else why it is not (then it is set aside, as a run would).  For
        ``cache verify``; a run checks the rows as it streams them (:meth:`Entry.rows`)."""
        path = self.entry_path(key)
        try:
            self._verify(key, path, FileHasher(None))
        except FileNotFoundError:
            return "it is gone (removed while checking)"
        except BadEntry as bad:
            self._set_aside_bad(key, path, str(bad))
            return str(bad)
        return ""

    def _verify(self, key: str, path: Path, hasher: FileHasher) -> Entry:
        manifest = read_manifest(path)
        if manifest["key"] != key or content_key(manifest["parts"]) != key:
            raise BadEntry("its manifest describes another key")
        entry = Entry(path, manifest)
        for info in entry._layers.values():
            self._verify_layer(path, info, len(entry.images), hasher)
        return entry

    def _verify_layer(self, path: Path, info: LayerInfo, n_images: int, hasher: FileHasher) -> None:
        label = f"layer {info.name!r} ({info.file})"
        file = path / info.file
        try:
            shape, dtype, offset = _read_npy_header(file)
            size = file.stat().st_size
        except FileNotFoundError:
            raise BadEntry(f"{label} is missing") from None
        except (OSError, ValueError) as error:
            raise BadEntry(f"{label} has no readable .npy header ({error})") from None
        if shape != info.shape or info.shape[0] != n_images or dtype != STORE_DTYPES[info.dtype]:
            raise BadEntry(f"{label} holds {dtype} {shape}, the manifest says {info.dtype} {list(info.shape)} "
                            f"for {n_images} images")
        expected = offset + shape[0] * shape[1] * dtype.itemsize
        if size != expected:
            raise BadEntry(f"{label} is {size} bytes, {expected} expected (truncated or extended)")
        try:
            digest = hasher.sha256(file)
        except AuditError as error:
            raise BadEntry(f"{label} cannot be read ({error})") from None
        if digest != info.sha256:
            raise BadEntry(f"{label} does not match its sha256 (corrupted)")

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
