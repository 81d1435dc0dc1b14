"""The classification head of one audit: resolved from the spec, read from the store, built once.

Why stored: a zero-shot head of 1000 classes x 80 templates is minutes to an hour of text-tower
time on a CPU, and even a classifier head needs the model built, which a warm run (every layer read
from the activation store) otherwise avoids.  So a head is kept in the activation store folder,
``heads/<key>.npz`` (float64 weight and bias, and the head's JSON description; written to a
temporary file and renamed, under the key's lock so two processes build it once):

* a classifier head's key is a function of the model's weights fingerprint;
* a zero-shot head's key is :func:`~.models.zero_shot.head_cache_parts`: the text tower's weights,
  the classes, the templates, the tokenizer and the recipe (two checkpoints sharing a text tower
  share it).  Finding that key needs the model built, so an alias ``heads/alias-<key>.json``
  maps (weights fingerprint, architecture, classes, templates) to it: a second run reads the head
  without building the text tower.

The head is built lazily, when a metric asks for it: ``head: auto`` on an open_clip model builds the
zero-shot head only when a check reads it or the spec writes ``head:``; otherwise the head metrics
say why they are not applicable.  Free of pytest; torch and open_clip are imported inside functions.
"""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from ..metrics.types import READS_HEAD, NotApplicable

if TYPE_CHECKING:
    from ..models.heads import Head
    from ..registries import Registries
    from .context import AuditContext
    from ..spec.schema import AuditSpec
    from ..store import ActivationStore

HEADS = "heads"
#: bumped when what a stored head file holds changes
HEAD_FILE_FORMAT = 1
#: counts of heads built (not read from the store) by this process, for tests and benchmarks
HEADS_BUILT = {"classifier": 0, "zero-shot": 0}


def resolved_kind(spec: "AuditSpec") -> str:
    """``none``, ``classifier`` or ``zero-shot`` (``auto``: zero-shot for open_clip, else classifier)."""
    kind = spec.head.kind
    if kind == "auto":
        return "zero-shot" if spec.model.source == "open_clip" else "classifier"
    return kind


def head_wanted(spec: "AuditSpec", registries: "Registries") -> bool:
    """True when the spec asks for the head: it writes ``head:``, one of its checks reads the head, or a
    check of a concept metric probes the head's directions (``directions: head`` or ``all``)."""
    if spec.head.explicit or getattr(spec, "shifts", ()):   # shifted sets are scored with the head
        return True
    metrics = registries.metrics
    for check in spec.checks:
        metric = metrics.get(check.metric) if check.metric in metrics else None
        if metric is None:
            continue
        if metric.reads == READS_HEAD:
            return True
        declared = metric.params.get("directions")
        if declared is not None and str(check.params.get("directions", declared.default)) in ("head", "all"):
            return True
    return False


class HeadSource:
    """The head of one audit, obtained at most once (a callable for :class:`~.metrics.inputs.LayerInputs`).

    ``fingerprint``: the model's weights fingerprint (known without building it on a warm run);
    ``loaded``: builds (once) the model.  Raises :class:`NotApplicable` with the reason when there is
    no head; a head the spec asked for explicitly that cannot be built raises its HeadError."""

    def __init__(self, ctx: "AuditContext", spec: "AuditSpec", fingerprint: str, loaded: Callable[[], Any] | None,
                 device: str | None = None):
        self.spec = spec
        self.store = ctx.store
        self.fingerprint = fingerprint
        self.loaded = loaded
        self.progress = ctx.progress
        self.device = device or ctx.device
        self.kind = resolved_kind(spec)
        self.wanted = head_wanted(spec, ctx.registries)
        self.strict = spec.head.explicit
        self.from_store: bool | None = None   # after a head was obtained: read (True) or built (False)
        self._got: tuple[Any, BaseException | None] | None = None

    @property
    def where(self) -> str:
        return str(self.spec.head.where) if self.spec.head.where else f"{self.spec.path}: head"

    def __call__(self) -> "Head":
        if self._got is None:
            try:
                self._got = (self._obtain(), None)
            except (NotApplicable, Exception) as error:  # noqa: BLE001 - remembered and raised to every asker
                self._got = (None, error)
        head, error = self._got
        if error is not None:
            raise error
        return head

    def svd(self, head: "Head") -> dict:
        """The head's SVD, from the store when an earlier run computed it (:func:`stored_svd`)."""
        from .clock import phase

        with phase("head SVD"):
            return stored_svd(self.store, head)

    def describe(self) -> dict[str, Any]:
        """For the result's provenance: what head was used and where it came from."""
        if self._got is None:
            return {"kind": self.kind, "status": "not built (no metric asked for it)"}
        head, error = self._got
        if head is None:
            return {"kind": self.kind, "status": f"none: {error}"}
        return {"kind": head.kind, "description": head.description, "fingerprint": head.fingerprint,
                "classes": head.num_classes, "width": head.width, "from_store": self.from_store,
                "route": dict(head.details).get("route")}

    # -- resolution --------------------------------------------------------------------------------
    def _obtain(self) -> "Head":
        from .clock import phase

        with phase("head"):
            return self._resolve()

    def _resolve(self) -> "Head":
        from ..models.heads import HeadError

        if self.kind == "none":
            raise NotApplicable("the spec sets `head: none`")
        if self.loaded is None:
            raise NotApplicable("this audit has no model (source: activations, features from elsewhere), so no head")
        if self.kind == "zero-shot" and not self.wanted:
            raise NotApplicable("the zero-shot head is built only when a check reads it or the spec sets `head:` "
                                "(1000 classes x 80 templates is minutes of text-tower time on a CPU)")
        try:
            if self.kind == "classifier":
                return self._classifier()
            return self._zero_shot()
        except HeadError as error:
            if self.spec.head.explicit:
                raise HeadError(f"{self.where}: {error}") from None
            raise NotApplicable(str(error)) from None

    def _classifier(self) -> "Head":
        from ..models.heads import classifier_head
        from ..store import content_key

        key = content_key({"kind": "classifier-head", "weights": self.fingerprint, "format": HEAD_FILE_FORMAT})
        found = read_head(self.store, key)
        if found is not None:
            self.from_store = True
            return found
        from ..store.locks import key_lock

        with key_lock(self.store.locks_dir, key, self._note, self.store.lock_timeout, self.store.problems):
            found = read_head(self.store, key)
            if found is not None:
                self.from_store = True
                return found
            loaded = self.loaded()
            head = classifier_head(loaded.module, name=loaded.description)
            HEADS_BUILT["classifier"] += 1
            write_head(self.store, key, head)
        self.from_store = False
        return head

    def _zero_shot(self) -> "Head":
        from ..models.zero_shot import HEAD_RECIPE, describe_tokenizer, head_cache_parts, text_tower_fingerprint
        from ..files import read_json
        from ..store import content_key

        head_spec = self.spec.head
        alias_parts = {"kind": "zero-shot-alias", "weights": self.fingerprint, "model": self.spec.model.name,
                       "options": json.loads(json.dumps(self.spec.model.options, sort_keys=True, default=str)),
                       "classes": list(head_spec.classes) if head_spec.classes else "imagenet-1k",
                       "templates": head_spec.templates if isinstance(head_spec.templates, str)
                       else list(head_spec.templates), "recipe": HEAD_RECIPE, "format": HEAD_FILE_FORMAT}
        alias = alias_path(self.store, content_key(alias_parts))
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            found = read_head(self.store, read_json(alias, 1 << 20)["key"])   # never blocks on a FIFO
            if found is not None:
                self.from_store = True
                return found
        import open_clip

        from ..models.heads import imagenet_class_names, imagenet_wnids
        from ..models.zero_shot import resolve_templates

        loaded = self.loaded()
        model = loaded.module
        arch = loaded.provenance.get("architecture") or self.spec.model.name
        tokenizer = open_clip.get_tokenizer(arch)
        templates = resolve_templates(head_spec.templates if isinstance(head_spec.templates, str)
                                      else list(head_spec.templates))
        names = head_spec.classes or imagenet_class_names()
        ids = None if head_spec.classes else imagenet_wnids()
        parts = head_cache_parts(text_tower_fingerprint(model), names, templates, class_ids=ids,
                                 tokenizer=describe_tokenizer(tokenizer))
        key = content_key(parts)
        from ..atomic import write_text_atomic
        from ..store.locks import key_lock

        with key_lock(self.store.locks_dir, key, self._note, self.store.lock_timeout, self.store.problems):
            head = read_head(self.store, key)
            self.from_store = head is not None
            if head is None:
                head = self._build_zero_shot(model, tokenizer, names, ids, templates, loaded.description)
                write_head(self.store, key, head)
        with contextlib.suppress(OSError):
            write_text_atomic(alias, json.dumps({"key": key, "parts": alias_parts}, sort_keys=True))
        return head

    def _build_zero_shot(self, model, tokenizer, names, ids, templates, label) -> "Head":
        from ..models.zero_shot import zero_shot_head

        progress = self.progress
        total = len(names) * len(templates)
        started = time.perf_counter()
        done = {"n": 0}
        if progress is not None:
            progress.start(f"{self.spec.name}: zero-shot head, {len(names)} classes x {len(templates)} templates "
                           f"(prompts as 'images')", total, self.device or "cpu")

        def report(n: int, _total: int) -> None:
            done["n"] = n
            if progress is not None:
                progress.update(n)
        try:
            head = zero_shot_head(model, tokenizer, names, list(templates), progress=report, class_ids=ids, name=label)
        finally:
            if progress is not None:
                progress.finish(done["n"], time.perf_counter() - started)
        HEADS_BUILT["zero-shot"] += 1
        return head

    def _note(self, message: str) -> None:
        if self.progress is not None:
            self.progress.note(message.replace("activation store entry", "stored head"))


# -- the files -------------------------------------------------------------------------------------
def head_path(store: "ActivationStore", key: str) -> Path:
    return Path(store.root) / HEADS / f"{key}.npz"


def alias_path(store: "ActivationStore", key: str) -> Path:
    return Path(store.root) / HEADS / f"alias-{key}.json"


def write_head(store: "ActivationStore", key: str, head: "Head") -> None:
    """Write ``head`` as ``heads/<key>.npz`` (temporary file renamed into place: all or nothing)."""
    from ..models.heads import head_to_arrays

    arrays, meta = head_to_arrays(head)
    _write_npz(store, head_path(store, key), arrays, meta, "the head")


def _write_npz(store: "ActivationStore", path: Path, arrays: dict, meta: dict, what: str) -> None:
    """``arrays`` and a JSON ``meta`` as ``path``, written atomically; a failure is a store problem."""
    from ..atomic import write_npz_atomic

    try:
        write_npz_atomic(path, arrays, meta)
    except OSError as error:
        store.problems.append(f"cannot store {what} in {path} ({error}); it is rebuilt next run")


def read_head(store: "ActivationStore", key: str) -> "Head | None":
    """The stored head ``key``, or None (absent, unreadable or corrupt: then it is set aside)."""
    import numpy as np

    from ..models.heads import head_from_arrays

    path = head_path(store, key)
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as found:
            meta = json.loads(str(found["meta"]))
            arrays = {name: found[name] for name in found.files if name != "meta"}
        return head_from_arrays(arrays, meta)
    except Exception as error:  # noqa: BLE001 - a damaged file is rebuilt, never trusted
        store.problems.append(f"stored head {path.name} is unreadable ({type(error).__name__}: {error}); rebuilt")
        with contextlib.suppress(OSError):
            path.unlink()
        return None


#: bumped when what a stored SVD holds changes
SVD_FILE_FORMAT = 1


def stored_svd(store: "ActivationStore", head: "Head") -> dict:
    """The head's thin SVD (:func:`~..metrics.directions.head_svd`), read from ``heads/svd-<head>.npz``
    or computed once and stored there.

    Why stored: it depends on the head's weights alone (1000 x 1280: 0.2 s quiet, seconds on a busy
    machine), yet every run of a direction metric needed it.  Keyed by the head's content fingerprint;
    a damaged or foreign file is recomputed, never trusted."""
    import numpy as np

    from ..metrics.directions import head_svd

    digest = head.fingerprint.split(":")[-1] if head.fingerprint else ""
    if not digest:
        return head_svd(head)
    path = Path(store.root) / HEADS / f"svd-{digest}.npz"
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as found:
                meta = json.loads(str(found["meta"]))
                arrays = {name: np.array(found[name]) for name in ("s", "vt", "us")}
            if meta == {"format": SVD_FILE_FORMAT, "head": head.fingerprint} and \
                    arrays["vt"].shape[1:] == (head.width,) and arrays["us"].shape[0] == head.num_classes:
                return arrays
        except Exception:  # noqa: BLE001 - recomputed below and written again
            pass
    svd = head_svd(head)
    _write_npz(store, path, svd, {"format": SVD_FILE_FORMAT, "head": head.fingerprint}, "the head's SVD")
    return svd
