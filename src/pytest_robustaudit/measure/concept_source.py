"""The audit's concept bank, measured through the activation store like any probe set (issue 20).

Why a module of its own: the concept metrics read a second image set (the bank) on the same model
and layers.  It goes through the same :func:`~.activations.measure_layers` as the probe images, so
its rows are content-addressed (model, transform, the bank's image hashes, layer, numerics) and
extracted once per content; the model the probe measurement built (or did not need) is reused.
The built-in bank is drawn at run time into a temporary folder, measured, and the folder removed:
nothing is committed, and a second run with the same seed writes byte-identical images, hence the
same keys, and reads the store.

Each layer's bank rows are read into memory once (the probe and the nulls need all of them at once:
N x d, e.g. 6000 x 1280 float32 = 31 MB) and handed to the concept metrics as :class:`ConceptInputs`.
Free of pytest; numpy and the store only.
"""

from __future__ import annotations

import contextlib
import hashlib
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..errors import AuditError


@dataclass
class ConceptInputs:
    """One layer's view of the bank: ``rows`` [N, d] float32 (images that reached the layer, bank order),
    each row's concept index ``labels``, the concepts' ``names`` and ``kinds``, the probe settings,
    ``bank`` (identity: kind, concepts, images, digest) and ``reference`` (``layer -> (encoded names,
    bank identity) or a reason string``: what ``concept_overlap`` compares with)."""

    layer: str
    rows: np.ndarray
    labels: np.ndarray
    names: tuple[str, ...]
    kinds: tuple[str, ...]
    settings: dict[str, Any]
    seed: int
    bank: dict[str, Any]
    reference: Callable[[str], Any] | None = None
    skipped: int = 0
    cache: dict[str, Any] = field(default_factory=dict)

    def cached(self, name: str, build: Callable[[], Any]) -> Any:
        if name not in self.cache:
            self.cache[name] = build()
        return self.cache[name]


@dataclass
class ConceptSource:
    """The measured bank: per layer rows and labels, and what the report and provenance say about it."""

    spec: Any
    names: tuple[str, ...]
    kinds: tuple[str, ...]
    rows: dict[str, np.ndarray]
    labels: np.ndarray
    bank: dict[str, Any]   # the bank's identity: description, concepts, images, digest of names and image hashes
    skipped: int
    reference: Callable[[str], Any] | None = None
    run: dict[str, Any] = field(default_factory=dict)   # how this run got the rows (provenance only)

    def for_layer(self, layer: str) -> ConceptInputs | None:
        if layer not in self.rows:
            return None
        c = self.spec.concepts
        settings = {"quantile": c.quantile, "null_repeats": c.null_repeats, "folds": c.folds, "alpha": c.alpha}
        return ConceptInputs(layer, self.rows[layer], self.labels, self.names, self.kinds, settings, self.spec.seed,
                             self.bank, self.reference, self.skipped)

    def describe(self) -> dict[str, Any]:
        """The bank's identity (what the metrics' details carry) and how this run got its rows."""
        return {**self.bank, **self.run}


def bank_of(concepts: Any, folder: Path | None = None) -> Any:
    """The :class:`~.data.concept_bank.ConceptBank` of a spec's ``concepts`` (the built-in bank written
    into ``folder`` first)."""
    from ..data.concept_bank import folder_bank, write_builtin_bank

    if concepts.builtin:
        return write_builtin_bank(folder, seed=concepts.bank_seed, images_per_concept=concepts.images_per_concept,
                                  size=concepts.size, concepts=concepts.names)
    return folder_bank(concepts.path, min_images=concepts.min_images)


def probe_set_of(bank: Any) -> Any:
    """The bank as a :class:`~.data.ProbeSet` labelled by concept (folder labels, sorted like ``discover``)."""
    from ..data import ProbeImage, ProbeSet

    images = tuple(ProbeImage(path, concept.name) for concept in bank.concepts for path in concept.paths)
    return ProbeSet(root=bank.root, images=images, label_mode="folder", classes=bank.names, total_found=len(images))


def measure_concepts(ctx: Any, spec: Any, got: Any, reference: Callable[[str], Any] | None = None) -> ConceptSource:
    """Measure ``spec.concepts``' bank on every layer of ``spec`` (through the store; the model of ``got``
    reused) and read each layer's rows into memory."""
    from .activations import measure_layers
    from ..data.concept_bank import ConceptBankError

    started = time.perf_counter()
    temp = tempfile.mkdtemp(prefix="robustaudit-concepts-") if spec.concepts.builtin else None
    try:
        try:
            bank = bank_of(spec.concepts, Path(temp) / "bank" if temp else None)
        except ConceptBankError as error:   # the folder changed since the spec was validated
            raise AuditError(error.message, where=spec.concepts.where or error.where, fix=error.fix) from None
        probe = probe_set_of(bank)
        measured = measure_layers(ctx, spec, probe, model=got.handle, image_set="concept bank",
                                  label=f"{spec.name} (concept bank)")
        index = {name: i for i, name in enumerate(bank.names)}
        row_labels = measured.row_labels or []
        if len(row_labels) != len(measured.image_hashes):
            raise AuditError(f"the concept bank's stored rows ({len(measured.image_hashes)}) do not match its images "
                             f"({len(row_labels)} labelled)", where=spec.concepts.where,
                             fix="run once with --audit-cache refresh")
        labels = np.asarray([index[label] for label in row_labels], dtype=np.int64)
        rows = {}
        for layer, entry in measured.entries.items():
            chunks = list(entry.rows(layer, dtype=np.float32))
            rows[layer] = np.concatenate(chunks) if chunks else np.zeros((0, 0), dtype=np.float32)
        digest = hashlib.sha256("\n".join(bank.names).encode())
        for h in measured.image_hashes:
            digest.update(h.encode())
        kinds = tuple(c.kind for c in bank.concepts)
        identity = {"bank": spec.concepts.describe(), "builtin": bool(spec.concepts.builtin),
                    "concepts": len(bank.names), "images": len(measured.image_hashes), "digest": digest.hexdigest()}
        run = {"skipped": len(measured.skipped), "extracted": bool(measured.extracted),
               "seconds": round(time.perf_counter() - started, 3)}
        return ConceptSource(spec, bank.names, kinds, rows, labels, identity, len(measured.skipped), reference, run)
    finally:
        if temp is not None:
            with contextlib.suppress(OSError):
                shutil.rmtree(temp)


class _Unmeasured:
    """A layer's concept inputs when the bank could not be measured: any use raises the reason, so each
    concept metric is undefined with it (informational metrics never fail the audit, metrics/types.py)."""

    def __init__(self, reason: str):
        self._reason = reason

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):     # copy, pickle and friends ask for protocol methods: it has none
            raise AttributeError(name)
        raise AuditError(f"the concept bank could not be measured: {self._reason}")


@dataclass
class BankFailure:
    """The stand-in for a :class:`ConceptSource` whose measurement failed (what the runner holds instead)."""

    reason: str

    def for_layer(self, layer: str) -> Any:
        return _Unmeasured(self.reason)

    def describe(self) -> dict[str, Any]:
        return {"error": self.reason}


def measure_concepts_or_failure(*args: Any, **kwargs: Any) -> "ConceptSource | BankFailure":
    """:func:`measure_concepts`, or a :class:`BankFailure` carrying why it failed.  The concept metrics
    are informational: a bank that cannot be measured (changed since validation, out of memory) makes
    them undefined with the reason and never takes the audit's other verdicts with it."""
    from ..errors import describe_error, headline

    try:
        return measure_concepts(*args, **kwargs)
    except Exception as error:  # noqa: BLE001 - informational: said in the metrics, never the audit's failure
        return BankFailure(headline(describe_error(error)))


def reference_lookup(reference: Any) -> Callable[[str], Any] | None:
    """``layer -> (encoded concept names, bank identity)`` of a runner ``Reference`` (its recorded
    ``concepts_encoded`` details), or a reason string when it has none; None without a reference."""
    if reference is None:
        return None

    def lookup(layer: str) -> Any:
        if reference.result is None:
            return reference.skip_reason or f"the {reference.label} has no result yet"
        found = reference.result.layers.get(layer)
        if found is None:
            return f"the {reference.label} has no layer '{layer}'"
        value = found.metrics.get("concepts_encoded")
        if value is None or value.undefined_reason:
            why = value.undefined_reason if value is not None else "it recorded no concepts_encoded"
            return f"the {reference.label} has no encoded concepts on layer '{layer}' ({why})"
        details = value.details or {}
        return tuple(details.get("encoded", ())), dict(details.get("bank", {}))
    return lookup
