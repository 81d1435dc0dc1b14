"""Extract once per content into the activation store, then summarise the stored rows.

Why this module: every analysis must read what was extracted instead of running the model again
(docs/store.md).  For one spec it computes each requested layer's content key (weights, applied
preprocessing, ordered probe image hashes, layer, numerics, versions), opens the entries that exist,
runs the model once for all the missing layers (under their file locks, so two processes never both
extract one entry), and feeds the stored rows in chunks into the same streaming
:class:`~.metrics.outlier_stats.LayerAccumulator` as before: the float64 statistics are those of the
rows the model produced, whether they were extracted a second ago or a month ago.

A warm run does not build the model when it can know the weights and the transform without it: for
the built-in timm and open_clip sources with local (or no) weights, the identity of a *recipe*
(the model section with the checkpoint file's content hash, and the library versions) is memoised
under ``models/`` in the store with the weights fingerprint, the resolved transform and the canary
hashes it produced.  Anything else (a factory, hub weights, a third-party source) is built, as its
identity cannot be known from the outside.

Free of pytest; torch and the model libraries are imported inside functions.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import re
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

if TYPE_CHECKING:
    from .context import AuditContext
    from ..data import ProbeSet, SkippedImage
    from ..metrics.outlier_stats import LayerStats
    from ..models.base import LoadedModel
    from ..registries import Registries
    from ..spec.schema import AuditSpec
    from ..store import ActivationStore, Entry

#: Bumped when extraction changes what a stored row means (pooling, layer naming, decoding).
EXTRACTION_FORMAT = 1
#: Libraries whose versions change extracted numbers (decoding, transform, model code, kernels).
NUMBER_LIBRARIES = ("torch", "torchvision", "timm", "open_clip_torch", "numpy", "pillow")
#: --audit-cache modes
CACHE_MODES = ("on", "off", "refresh")
#: Model sources whose weights and transform are known from the spec and the checkpoint's bytes.
RECIPE_SOURCES = ("timm", "open_clip")
MODELS = "models"


class Progress:
    """What an audit says while it runs; the default says nothing (the plugin writes a terminal line)."""

    def start(self, label: str, total: int, device: str) -> None:
        """The model starts on ``total`` images."""

    def update(self, done: int) -> None:
        """``done`` images went through the model so far."""

    def finish(self, done: int, seconds: float) -> None:
        """The extraction ended."""

    def note(self, message: str) -> None:
        """A one-off message (e.g. waiting for another process's extraction)."""

    def phase(self, label: str, name: str, seconds: float | None) -> None:
        """An analysis phase of audit ``label`` started (``seconds`` None) or ended after ``seconds``."""


@dataclass
class StoreOptions:
    """Where the store is and how a run uses it (``--audit-cache-dir``, ``--audit-cache``).

    ``root`` None or ``mode == "off"``: a private temporary store, removed by :meth:`close`.
    ``refresh_before`` (epoch seconds, with ``refresh``): entries created before it are recomputed.
    A ``root`` where nothing can be written (a read-only home or checkout) is not an audit failure:
    the store is a cache, so the run falls back to a private temporary store and says so once
    (:data:`fallback`: why)."""

    root: Path | None = None
    mode: str = "on"
    refresh_before: float | None = None
    durable: bool = True
    fallback: str = ""
    _store: Any = field(default=None, repr=False)
    _temp: Any = field(default=None, repr=False)

    def open(self) -> "ActivationStore":
        from ..store import ActivationStore
        from ..store.entries import unusable_reason

        if self._store is None:
            if self.mode != "off" and self.root is not None:
                self.fallback = unusable_reason(self.root)
                if not self.fallback:
                    self._store = ActivationStore(self.root, durable=self.durable)
                    return self._store
                _warn_fallback(self.root, self.fallback)
            self._temp = tempfile.TemporaryDirectory(prefix="robustaudit-store-")
            self._store = ActivationStore(self._temp.name, durable=False)
        return self._store

    @property
    def describe(self) -> str:
        """For the report: the store folder, or that there was none kept."""
        if self.fallback:
            return f"private temporary store ({self.root} cannot be used: {self.fallback})"
        if self.mode == "off" or self.root is None:
            return "off (private temporary store)"
        return os.fspath(self.root)

    def close(self) -> None:
        if self._temp is not None:
            with contextlib.suppress(OSError):
                self._temp.cleanup()
            self._temp = None
            self._store = None


def _warn_fallback(root: Path, why: str) -> None:
    import warnings

    from ..errors import RobustAuditWarning

    warnings.warn(RobustAuditWarning(
        f"the activation store folder {root} cannot be used ({why}); this run keeps its activations in a private "
        f"temporary store, removed at the end, so nothing is reused by the next run (and under pytest-xdist each "
        f"worker extracts for itself). Set a writable folder with --audit-cache-dir PATH, the ini key "
        f"audit_cache_dir or $ROBUSTAUDIT_CACHE_DIR (docs/store.md#where-it-lives-and-how-it-is-controlled)"), stacklevel=3)


@dataclass(frozen=True)
class ImageVariant:
    """A change made to every probe image on its way to the model, and its identity in the store keys.

    Why: a corrupted set (``corrupted.py``) is the probe set seen through another preprocess; its rows
    are stored, keyed and read exactly as the clean ones, so it reuses :func:`measure_layers` whole
    rather than a copy of it.  ``wrap`` turns the model's eval transform into the one to use (called
    only when the model runs); ``key`` (JSON) says everything that changes the rows besides what the
    clean key already says and enters the content key as ``extra["variant"]``; ``label`` is said by the
    progress line and kept in the entry's meta.  Without a variant the keys are the clean ones, unchanged.
    """

    label: str
    key: dict[str, Any]
    wrap: Callable[[Any], Any]


@dataclass(frozen=True)
class _SetSettings:
    """How one image set of an audit is read: the progress line's label and the ``data`` settings."""

    label: str
    data: Any


@dataclass
class Measured:
    """Per-layer statistics read from the store, and how the activations were obtained."""

    stats: dict[str, "LayerStats"]
    keys: dict[str, str]
    extracted: list[str]                 # layers extracted in this run (the rest came from the store)
    extraction_s: float                  # seconds spent running the model (0 when nothing was extracted)
    device: str
    precision: str
    batch_size: int
    n_found: int
    skipped: list["SkippedImage"]
    image_hashes: tuple[str, ...]        # content hashes of the images that have rows, in row order
    description: str
    fingerprint: str
    provenance: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    model: Callable[[], "LoadedModel"] | None = None   # builds (once) the model, for who needs it itself
    entries: dict[str, "Entry"] = field(default_factory=dict)   # the stored rows of each layer
    row_labels: list[str | None] | None = None   # the probe label of each stored row (None: not known)
    handle: Any = None   # the model as measure_layers held it: pass it back to measure another image set

    @property
    def from_store(self) -> bool:
        return not self.extracted


def resolve_workers(workers: int | str, device: str) -> int:
    """``data.workers``: an int as given; ``auto``: one decoding thread per spare core (at most 8)."""
    if workers == "auto":
        spare = max(1, (os.cpu_count() or 2) - 1)
        return min(8, spare)
    return int(workers)


@functools.lru_cache(maxsize=1)
def _cached_versions() -> tuple:
    from ..store import library_versions

    return tuple(library_versions(NUMBER_LIBRARIES).items())


def _versions() -> dict[str, str | None]:
    """Installed versions of NUMBER_LIBRARIES (read once per process: installing a library under a
    running process does not change the code it already imported)."""
    return dict(_cached_versions())


def _numerics(device: str, precision: str) -> dict[str, Any]:
    """The precision and math mode part of a key: device type, autocast dtype, TF32."""
    device_type = device.split(":")[0]
    autocast = {"fp16": "float16", "bf16": "bfloat16"}.get(precision)
    tf32 = False
    if autocast is not None and device_type == "cuda":
        import torch

        tf32 = bool(torch.backends.cuda.matmul.allow_tf32)
    return {"device_type": device_type, "autocast": autocast, "tf32": tf32}


_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


def transform_settings(model: "LoadedModel", overrides: dict[str, Any]) -> dict[str, Any]:
    """The resolved transform as text (object addresses removed, so a function keeps its identity)."""
    return {"transform": _ADDRESS.sub("", repr(model.preprocess)), "overrides": overrides}


def canary_hash(tensor: Any) -> str:
    """sha256 of a transformed image tensor (shape, dtype and bytes)."""
    import numpy as np

    array = np.ascontiguousarray(tensor.detach().cpu().numpy())
    digest = hashlib.sha256(f"{array.dtype.str}{array.shape}".encode())
    digest.update(memoryview(array).cast("B"))
    return digest.hexdigest()


def code_identity(model: Any, hasher: Any) -> dict[str, Any]:
    """What the weights fingerprint does not say about the model: its code.

    Two models with equal weights (or none: a parameter-free factory) but another architecture,
    other options or another factory give other rows.  The key therefore also names the source, the
    architecture, the options, the pretrained tag and, for a factory, the content hash of the file
    that defines it (a ``package.module:callable`` is hashed through the module's file, when it has
    one).  Code the factory imports from elsewhere is not followed: bump the factory file (or use
    ``--audit-cache refresh``) when only that changes.
    """
    factory = None
    if model.factory:
        target = str(model.factory).rpartition(":")[0]
        file = Path(target) if target.endswith(".py") else None
        if file is None:
            import importlib.util

            with contextlib.suppress(ImportError, ValueError, AttributeError):
                found = importlib.util.find_spec(target)
                file = Path(found.origin) if found is not None and found.origin else None
        digest = None
        if file is not None:
            with contextlib.suppress(OSError):
                digest = hasher.sha256(file)
        factory = {"target": str(model.factory), "file_sha256": digest}
    return {"source": model.source, "name": model.name, "pretrained": model.pretrained,
            "options": json.loads(json.dumps(model.options, sort_keys=True, default=str)), "factory": factory}


class _Model:
    """The spec's model, built only when something needs it, and what identifies it in keys."""

    def __init__(self, spec: "AuditSpec", registries: "Registries", store: "ActivationStore"):
        self.spec = spec
        self.registries = registries
        self.store = store
        self._loaded: LoadedModel | None = None
        self.recipe_key = self._recipe_key()
        self.memo = self._read_memo()

    # -- the recipe memo -------------------------------------------------------------------------
    def _recipe_key(self) -> str | None:
        model = self.spec.model
        if model.source not in RECIPE_SOURCES or model.pretrained not in (None, False):
            return None
        from ..store import content_key

        checkpoint = None
        if model.checkpoint is not None:
            # the file's name too: the memo keeps the model's description, which names the file
            checkpoint = {"sha256": self.store.hasher.sha256(model.checkpoint.path),
                          "match_keys": model.checkpoint.match_keys, "name": model.checkpoint.path.name}
        parts = {"source": model.source, "name": model.name, "checkpoint": checkpoint,
                 "options": json.loads(json.dumps(model.options, sort_keys=True, default=str)),
                 "preprocess": model.preprocess.overrides(), "versions": _versions(),
                 "extraction_format": EXTRACTION_FORMAT}
        return content_key({"recipe": parts})

    def _memo_path(self) -> Path | None:
        return self.store.root / MODELS / f"{self.recipe_key}.json" if self.recipe_key else None

    def _read_memo(self) -> dict[str, Any] | None:
        path = self._memo_path()
        if path is None:
            return None
        from ..files import read_json

        try:
            memo = read_json(path, 1 << 20)   # a regular file only: a FIFO here must not block the run
        except (OSError, ValueError):
            return None
        wanted = ("fingerprint", "description", "provenance", "preprocess", "canaries")
        if not isinstance(memo, dict) or memo.get("recipe") != self.recipe_key or any(k not in memo for k in wanted):
            return None
        return memo

    def _write_memo(self) -> None:
        path = self._memo_path()
        if path is None or self._loaded is None:
            return
        from ..atomic import write_text_atomic

        loaded = self._loaded
        canaries = dict((self.memo or {}).get("canaries", {}))
        canaries.update(self._canaries)
        memo = {"recipe": self.recipe_key, "fingerprint": loaded.fingerprint, "description": loaded.description,
                "provenance": json.loads(json.dumps(loaded.provenance, default=str)),
                "preprocess": self.preprocess, "canaries": canaries}
        with contextlib.suppress(OSError):
            write_text_atomic(path, json.dumps(memo, sort_keys=True))
        self.memo = memo

    # -- identity --------------------------------------------------------------------------------
    _canaries: dict[str, str | None]

    def loaded(self) -> "LoadedModel":
        if self._loaded is None:
            from ..models import load_model
            from .clock import phase

            with phase("model build"):
                self._loaded = load_model(self.spec.model, self.registries.sources)
                self._loaded.layers.check(self.spec.layers)
        return self._loaded

    @property
    def built(self) -> bool:
        return self._loaded is not None

    def identity(self, probe: "ProbeSet", image_hashes: Sequence[str]) -> tuple[str, dict, str]:
        """(weights fingerprint, transform settings, canary hash), from the memo when it knows them."""
        self._canaries = {}
        memo = self.memo
        if memo is not None:
            canary = self._canary(probe, image_hashes, memo["canaries"], None)
            if canary is not None:
                return memo["fingerprint"], memo["preprocess"], canary
        loaded = self.loaded()
        self.preprocess = transform_settings(loaded, self.spec.model.preprocess.overrides())
        canary = self._canary(probe, image_hashes, {}, loaded.preprocess)
        self._write_memo()
        return loaded.fingerprint, self.preprocess, canary or "no readable image"

    def _canary(self, probe, image_hashes, known: dict, preprocess) -> str | None:
        """The transformed-tensor hash of the first readable probe image (None: the memo cannot say)."""
        from ..data import load_rgb

        for image, digest in zip(probe.images, image_hashes):
            if digest in known:
                if known[digest] is None:
                    continue
                return known[digest]
            if preprocess is None:
                return None
            try:
                rgb = load_rgb(image.path)   # refuses what is not a regular file (a FIFO would block)
            except Exception:  # noqa: BLE001 - an unreadable file is skipped here as in decoding
                self._canaries[digest] = None
                continue
            value = canary_hash(preprocess(rgb))
            self._canaries[digest] = value
            return value
        return None

    def describe(self) -> tuple[str, str, dict[str, Any]]:
        if self._loaded is not None:
            return self._loaded.description, self._loaded.fingerprint, dict(self._loaded.provenance)
        memo = self.memo or {}
        return memo["description"], memo["fingerprint"], dict(memo["provenance"])


def measure_layers(ctx: "AuditContext", spec: "AuditSpec", probe: "ProbeSet", variant: ImageVariant | None = None,
                   model: Any = None, image_set: str = "probe", layers: Sequence[str] | None = None,
                   label: str | None = None, data: Any = None) -> Measured:
    """Every layer of ``spec`` summarised from stored rows, extracting once whatever is missing.

    ``variant``: the probe images changed on their way to the model (a corruption); its own keys.
    ``model``: the ``handle`` of an earlier :class:`Measured` of the same spec, so that a second image
    set (a concept bank) on the same model builds the model at most once.  ``image_set``: what the
    images are (``probe``, ``shift NAME``, ``concept bank``), for the time per phase.  ``layers`` (default the
    spec's), ``label`` (what the progress line calls the set; default the spec's name) and ``data`` (the
    batch size and decoding threads; default the spec's ``data``) let another image set of the same audit
    go through this one path without a copy of the spec."""
    from ..store import content_key, extraction_parts, hash_files

    store, device, progress, refresh_before = ctx.store, ctx.device, ctx.progress, ctx.refresh_before
    layers = tuple(layers) if layers is not None else tuple(spec.layers)
    settings = _SetSettings(label or spec.name, data if data is not None else spec.data)
    problems_before = len(store.problems)
    store_dtype = getattr(spec, "store_dtype", "float32")
    from .clock import phase

    with phase("hashing"):
        image_hashes = hash_files([image.path for image in probe.images], store.hasher, skip_unreadable=True)
    model = model if model is not None else _Model(spec, ctx.registries, store)
    weights, preprocess, canary = model.identity(probe, image_hashes)
    numerics = _numerics(device, spec.precision)
    versions = _versions()
    keys: dict[str, str] = {}
    parts_of: dict[str, dict] = {}
    extra: dict[str, Any] = {"code": code_identity(spec.model, store.hasher)}
    if variant is not None:
        extra["variant"] = dict(variant.key)
    for layer in layers:
        parts = extraction_parts(weights=weights, preprocess=preprocess, canary=canary, images=image_hashes,
                                 layers=[layer], precision=numerics, store_dtype=store_dtype,
                                 extraction_format=EXTRACTION_FORMAT, versions=versions, extra=extra)
        parts_of[layer] = parts
        keys[layer] = content_key(parts)

    def usable(entry: "Entry | None") -> bool:
        return entry is not None and (refresh_before is None or entry.created >= refresh_before)

    entries: dict[str, Entry] = {}
    for layer in layers:
        entry = store.open(keys[layer])
        if usable(entry):
            entries[layer] = entry
    extracted: list[str] = []
    extraction_s = 0.0
    run_info: dict[str, Any] = {"device": device, "batch_size": 0, "notes": []}
    missing = [layer for layer in layers if layer not in entries]
    if missing:
        from ..store.locks import key_lock

        with contextlib.ExitStack() as locks:
            for layer in sorted(missing, key=lambda name: keys[name]):
                locks.enter_context(key_lock(store.locks_dir, keys[layer], progress.note, store.lock_timeout,
                                             store.problems))
            still = []
            for layer in missing:  # look again under the locks: another process may have just written it
                entry = store.open(keys[layer])
                if usable(entry):
                    entries[layer] = entry
                elif entry is not None:
                    store.remove(keys[layer])
                    still.append(layer)
                else:
                    still.append(layer)
            if still:
                started = time.perf_counter()
                with phase(f"extraction: {variant.label if variant is not None else image_set}"):
                    made = _extract(ctx, spec, model, probe, image_hashes, still, keys, parts_of, run_info, variant,
                                    settings)
                extraction_s = time.perf_counter() - started
                entries.update(made)
                extracted = still
    first = entries[layers[0]]
    meta_skipped = first.meta.get("skipped", [])
    from ..data import SkippedImage

    skipped = [SkippedImage(probe.images[index].path, reason) for index, reason in meta_skipped]
    gone = {index for index, _ in meta_skipped}
    row_labels = [image.label for index, image in enumerate(probe.images) if index not in gone]
    with phase("summary"):
        stats = {layer: summarise_or_discard(store, entries[layer], layer, spec.seed, layer in extracted)
                 for layer in layers}
    if None in stats.values():   # an entry rotted on disk (its rows failed their checksum): set aside, compute again
        return measure_layers(ctx, spec, probe, variant, model, image_set, layers, label, data)
    description, fingerprint, provenance = model.describe()
    if run_info["batch_size"] == 0:
        run_info["batch_size"] = int(first.meta.get("batch_size", 0))
    return Measured(stats=stats, keys=keys, extracted=extracted, extraction_s=extraction_s, device=device,
                    precision=spec.precision, batch_size=run_info["batch_size"], n_found=len(probe.images),
                    skipped=skipped, image_hashes=first.images, description=description, fingerprint=fingerprint,
                    provenance=provenance, notes=list(run_info["notes"]) + list(store.problems[problems_before:]),
                    model=model.loaded, entries=dict(entries), handle=model,
                    row_labels=row_labels if len(row_labels) == len(first.images) else None)


def summarise(entry: "Entry", layer: str, seed: int, store: "ActivationStore | None" = None) -> "LayerStats":
    """A layer's :class:`LayerStats` from its stored rows, read in chunks (memory flat in N).

    With ``store`` the summary is kept beside the entry (``summaries/``, :func:`read_summary`): it is a
    pure function of the entry's rows and the rotation seed, and computing it is a pass over every row
    through torch's accumulator, which a warm run then neither pays nor imports (it still streams the
    rows through their checksum: a :class:`~..store.RottenEntry` is raised as from a full pass)."""
    import numpy as np

    if store is not None:
        found = read_summary(store, entry, layer, seed)
        if found is not None:
            # the rows behind it are still checked: streamed through their checksum (a read and a hash,
            # milliseconds per thousand images), so a rotten entry is found and recomputed on a warm run too
            for _ in entry.rows(layer, dtype=np.float32):
                pass
            return found
    from ..metrics.from_arrays import stats_from_chunks

    stats = stats_from_chunks(entry.rows(layer, dtype=np.float32), layer, seed)
    if store is not None:
        write_summary(store, entry, layer, seed, stats)
    return stats


#: bumped when the stored summary's content or the accumulator's definition changes
SUMMARY_FORMAT = 1
SUMMARIES = "summaries"
_SUMMARY_ARRAYS = ("kurtosis", "rotated_kurtosis", "profile", "feature_mean", "feature_var")


def _summary_path(store: "ActivationStore", entry: "Entry", layer: str, seed: int) -> Path:
    digest = hashlib.sha256(json.dumps([entry.key, layer, seed, SUMMARY_FORMAT]).encode()).hexdigest()[:32]
    return Path(store.root) / SUMMARIES / f"{digest}.npz"


def write_summary(store: "ActivationStore", entry: "Entry", layer: str, seed: int, stats: "LayerStats") -> None:
    """Keep ``stats`` for (entry, layer, seed), written atomically (not kept is only slower next time)."""
    import numpy as np

    from ..atomic import write_npz_atomic

    meta = {"format": SUMMARY_FORMAT, "entry": entry.key, "created": entry.created, "layer": layer, "seed": seed,
            "dim": int(stats.dim), "n_images": int(stats.n_images), "n_nonfinite": int(stats.n_nonfinite),
            "rotation_seed": int(stats.rotation_seed), "notes": list(stats.notes), "input_dtype": stats.input_dtype}
    with contextlib.suppress(OSError):   # a cache of a cache
        write_npz_atomic(_summary_path(store, entry, layer, seed), {k: np.asarray(getattr(stats, k))
                                                                    for k in _SUMMARY_ARRAYS}, meta)


def read_summary(store: "ActivationStore", entry: "Entry", layer: str, seed: int) -> "LayerStats | None":
    """The kept summary of (entry, layer, seed), or None: absent, of another entry (a refreshed one has
    another creation time), or damaged (the archive's CRCs fail; it is then recomputed and rewritten)."""
    import numpy as np

    from ..metrics.outlier_stats import LayerStats

    path = _summary_path(store, entry, layer, seed)
    try:
        if not path.is_file():
            return None
        with np.load(path, allow_pickle=False) as found:
            meta = json.loads(str(found["meta"]))
            arrays = {k: np.array(found[k]) for k in _SUMMARY_ARRAYS}
        if meta.get("entry") != entry.key or meta.get("created") != entry.created or \
                meta.get("layer") != layer or meta.get("seed") != seed or meta.get("format") != SUMMARY_FORMAT:
            return None
        return LayerStats(layer=layer, dim=int(meta["dim"]), n_images=int(meta["n_images"]),
                          n_nonfinite=int(meta["n_nonfinite"]), rotation_seed=int(meta["rotation_seed"]),
                          notes=[str(n) for n in meta["notes"]], input_dtype=str(meta["input_dtype"]), **arrays)
    except Exception:  # noqa: BLE001 - any damage: recompute from the rows
        return None


def summarise_or_discard(store: "ActivationStore", entry: "Entry", layer: str, seed: int,
                         fresh: bool) -> "LayerStats | None":
    """:func:`summarise` (a kept summary, or one pass over the rows), or None when the rows fail their
    checksum while streamed (bit rot the stat memo cannot see): the entry is then set aside, said in
    ``store.problems`` like any bad entry, for the caller to compute it again.  An entry written by this
    very call (``fresh``) that is already rotten is the disk's fault, not the cache's: its
    :class:`~..store.RottenEntry` is raised."""
    from ..store import RottenEntry

    try:
        return summarise(entry, layer, seed, store)
    except RottenEntry as rotten:
        if fresh:
            raise
        store.discard(rotten)
        return None


def _extract(ctx: "AuditContext", spec: "AuditSpec", model: _Model, probe: "ProbeSet", image_hashes: Sequence[str],
             layers: list[str], keys: dict[str, str], parts_of: dict[str, dict], run_info: dict[str, Any],
             variant: ImageVariant | None = None, settings: "_SetSettings | None" = None) -> dict[str, "Entry"]:
    """One forward pass over the probe set writing ``layers`` into new entries (committed together)."""
    from .. import data
    from .extract import run_model

    store, device, progress = ctx.store, ctx.device, ctx.progress
    store_dtype = getattr(spec, "store_dtype", "float32")
    loaded = model.loaded()
    skipped: list[data.SkippedImage] = []
    readable: list[str] = []
    settings = settings or _SetSettings(spec.name, spec.data)
    batch_size = settings.data.batch_size if isinstance(settings.data.batch_size, int) else 32
    workers = resolve_workers(settings.data.workers, device)
    preprocess = loaded.preprocess if variant is None else variant.wrap(loaded.preprocess)
    label = f"{settings.label}: {loaded.description}" + ("" if variant is None else f", {variant.label}")

    def batches():
        for images, indices in data.iter_batches(probe, preprocess, batch_size, workers, skipped):
            readable.extend(image_hashes[i] for i in indices)
            yield images

    with contextlib.ExitStack() as stack:
        writers = {}
        for layer in layers:
            meta = {"model": loaded.description, "fingerprint": loaded.fingerprint,
                    "data": f"{probe.root.name} ({len(probe.images)})", "layers": [layer],
                    "precision": spec.precision, "device": device, "batch_size": batch_size}
            if variant is not None:  # `cache list` shows the data column: say which set this is
                meta["variant"] = variant.label
                meta["data"] += f", {variant.label}"
            writers[layer] = stack.enter_context(
                store.create(keys[layer], parts_of[layer], meta, list(image_hashes), store_dtype))

        done = {"n": 0}

        def consume(outputs: dict) -> None:
            for layer in layers:
                writers[layer].append(layer, outputs[layer].detach().float().cpu().numpy())
            done["n"] += next(iter(outputs.values())).shape[0]
            progress.update(done["n"])

        started = time.perf_counter()
        progress.start(label, len(probe.images), device)
        try:
            ran = run_model(loaded, batches(), layers, device, spec.precision, consume)
        finally:
            progress.finish(done["n"], time.perf_counter() - started)
        index_of = {}
        for index, image in enumerate(probe.images):
            index_of.setdefault(image.path, index)
        skipped_meta = [[index_of[s.path], s.reason] for s in skipped]
        entries = {}
        for layer in layers:
            writer = writers[layer]
            writer.meta["skipped"] = skipped_meta
            writer.meta["batch_size"] = ran.batch_size
            entries[layer] = writer.commit(images=readable)
    run_info.update(device=ran.device, batch_size=ran.batch_size)
    run_info["notes"].extend(ran.notes)
    return entries
