"""Features from elsewhere into the activation store: the measuring path of ``source: activations``.

Each layer's ``[N, d]`` array (``.npy`` memory-mapped, or a ``.safetensors`` tensor) is copied into
a store entry keyed by the file's content, in chunks, then summarised by the same code that
summarises extracted rows (:func:`~.activations.summarise`): a published array and a live
extraction of the same numbers give the same statistics.  Rows have no image files behind them;
their identities are ``<array sha256>:<row>``, so two audits of the same array pair row by row.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from ..errors import AuditError

if TYPE_CHECKING:
    from .activations import Measured, Progress
    from ..spec.schema import AuditSpec
    from ..store import ActivationStore

#: Bumped when importing changes what a stored row means.
IMPORT_FORMAT = 1
_CHUNK_ROWS = 4096


class ArrayError(AuditError):
    """An array file of ``source: activations`` cannot be read as ``[N, d]`` features."""


def _read(path: Path, layer: str, where: str) -> Any:
    """The array of ``layer`` in ``path``: a numpy array (memory-mapped for ``.npy``)."""
    import numpy as np

    try:
        if path.suffix == ".npy":
            array = np.load(path, mmap_mode="r", allow_pickle=False)
        else:
            from safetensors.numpy import safe_open

            with safe_open(str(path), framework="numpy") as handle:
                names = list(handle.keys())
                name = layer if layer in names else (names[0] if len(names) == 1 else None)
                if name is None:
                    raise ArrayError(f"{path.name} holds {len(names)} tensors ({', '.join(names[:6])}) and none is "
                                     f"named '{layer}'", where=where,
                                     fix=f"name the tensor '{layer}', or save one tensor per file")
                array = handle.get_tensor(name)
    except ArrayError:
        raise
    except Exception as error:  # noqa: BLE001 - any unreadable file is the user's input, explained
        raise ArrayError(f"{path} cannot be read as an array: {type(error).__name__}: {error}", where=where,
                         fix="save the features with numpy.save (.npy) or safetensors") from error
    if array.ndim != 2 or array.shape[0] < 1 or array.shape[1] < 1:
        raise ArrayError(f"{path.name} has shape {tuple(array.shape)}; an [images, features] array is expected",
                         where=where, fix="save one row per image: array.reshape(n_images, -1)")
    if array.dtype.kind not in "fiu":
        raise ArrayError(f"{path.name} holds {array.dtype} values, not numbers", where=where,
                         fix="save the features as float32 or float64")
    return array


def _chunks(array: Any) -> Iterator[Any]:
    """The array's rows in chunks, in their own dtype: the store's writer casts them, and refuses a
    finite value its storage dtype cannot hold (1e300 would become infinity and be dropped)."""
    import numpy as np

    for start in range(0, array.shape[0], _CHUNK_ROWS):
        yield np.asarray(array[start:start + _CHUNK_ROWS])


def measure_arrays(spec: "AuditSpec", store: "ActivationStore", progress: "Progress | None" = None) -> "Measured":
    """Every layer of ``spec`` (``source: activations``) summarised from its imported rows."""
    from .activations import Measured, Progress, summarise_or_discard
    from ..store import content_key

    progress = progress or Progress()
    problems_before = len(store.problems)
    store_dtype = getattr(spec, "store_dtype", "float32")
    keys: dict[str, str] = {}
    imported: list[str] = []
    stats = {}
    identities: tuple[str, ...] = ()
    entries = {}
    started = time.perf_counter()
    rows_of: dict[str, tuple[Path, int]] = {}
    for layer in spec.layers:
        path = spec.model.arrays[layer]
        where = f"{spec.path}: model.arrays.{layer}"
        array = _read(path, layer, where)
        first_layer, (first_path, first_rows) = next(iter(rows_of.items()), (layer, (path, array.shape[0])))
        if array.shape[0] != first_rows:   # row i is image i in every layer: the counts must agree
            raise ArrayError(f"{path.name} holds {array.shape[0]} rows but {first_path.name} (layer '{first_layer}') "
                             f"holds {first_rows}; every layer needs one row per image, in the same order",
                             where=where, fix="export every layer's features from the same images")
        rows_of[layer] = (path, array.shape[0])
        digest = store.hasher.sha256(path)
        parts = {"kind": "imported array", "array_sha256": digest, "layer": layer, "store_dtype": store_dtype,
                 "import_format": IMPORT_FORMAT}
        key = content_key(parts)
        keys[layer] = key
        images = [f"{digest}:{row}" for row in range(array.shape[0])]
        meta = {"model": spec.model.describe(), "data": f"{path.name} ({array.shape[0]} rows)", "layers": [layer],
                "precision": "as stored", "device": "none"}

        def build(writer, array=array, layer=layer, path=path, where=where):
            from ..store import StoreError

            try:
                for chunk in _chunks(array):
                    writer.append(layer, chunk)
            except StoreError as error:     # e.g. a float64 value beyond the float32 range
                raise ArrayError(f"{path.name}: {error.message}", where=where, fix=error.fix) from None

        for again in (False, True):   # again only when the stored copy rotted on disk (set aside by then)
            entry, created = store.get_or_create(key, parts, meta, images, build, progress.note, store_dtype)
            found = summarise_or_discard(store, entry, layer, spec.seed, created or again)
            if found is not None:
                break
        if created:
            imported.append(layer)
        identities = identities or entry.images
        entries[layer] = entry
        stats[layer] = found
    seconds = time.perf_counter() - started if imported else 0.0
    label = spec.model.describe()
    first = next(iter(spec.model.arrays.values()))
    return Measured(stats=stats, keys=keys, extracted=imported, extraction_s=seconds, device="none (stored features)",
                    precision="as stored", batch_size=0, n_found=len(identities), skipped=[],
                    image_hashes=tuple(identities), description=label,
                    fingerprint="sha256:" + store.hasher.sha256(first),
                    provenance={"source": "activations",
                                "arrays": {layer: str(p) for layer, p in spec.model.arrays.items()}},
                    notes=list(store.problems[problems_before:]), model=None, entries=entries)
