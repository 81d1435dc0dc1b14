"""Run one audit spec end to end: model → probe data → extraction → metrics → verdicts.

Free of pytest, so fixtures, the ``validate`` command and scripts use the same path as the
collected items.  :class:`AuditSession` runs each spec at most once per session and remembers a
failure too, so twenty items of a broken spec report one clear error without reloading the model
twenty times.  Relative bounds get their reference here: a reference model is audited on the same
probe data and layers (once, however many specs share it), a baseline is read from its record.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .checks import evaluate
from .errors import AuditError
from .head_source import HeadSource
from .metrics.inputs import LayerInputs
from .metrics.types import MetricValue
from .registries import Registries
from .results import AuditResult, CheckOutcome, LayerResult
from .spec.schema import AuditSpec, CheckSpec


@dataclass
class Reference:
    """What relative bounds of one spec compare against (``result`` None when there is none yet)."""

    label: str
    result: AuditResult | None
    skip_reason: str = ""

    def value(self, check: CheckSpec, registries: Registries) -> MetricValue | None:
        if self.result is None:
            return None
        layer = self.result.layers.get(check.layer)
        if layer is None:
            return MetricValue(float("nan"), undefined_reason=f"the {self.label} has no layer '{check.layer}'")
        return layer.evaluate(registries.metrics.get(check.metric), check.params)


def measure(spec: AuditSpec, registries: Registries, device: str | None = None, store: Any = None,
            progress: Any = None) -> AuditResult:
    """Compute every metric on every layer of ``spec`` from the activation store; no verdicts yet.

    ``store`` is a :class:`~.activations.StoreOptions` (None: a private temporary store for this
    call); layers missing from it are extracted once, in one forward pass, and written to it first."""
    import torch  # noqa: F401 - imported before the clock starts: a cost of the process, not of this audit

    from . import data
    from .activations import StoreOptions, measure_layers
    from .extract import resolve_device

    started = time.perf_counter()
    options = store if store is not None else StoreOptions(mode="off")
    layers: dict[str, LayerResult] = {}
    try:
        probe = data.discover(spec.data)
        target = resolve_device(device or spec.device)
        opened = options.open()
        got = measure_layers(spec, registries, probe, target, opened, progress, options.refresh_before)
        head = HeadSource(spec, registries, opened, got.fingerprint, got.model, progress, got.device)
        for name, stats in got.stats.items():
            inputs = LayerInputs(stats, name, _rows_of(got.entries.get(name), name), got.row_labels, head,
                                 where=head.where)
            result = LayerResult(name, stats, inputs=inputs)
            for metric_name in registries.metrics.names():
                result.metrics[metric_name] = result.evaluate(registries.metrics.get(metric_name))
            if store is None:
                inputs.keep_rows_in_memory()  # the private store goes now; checks at other parameters read them
            layers[name] = result
    finally:
        if store is None:
            options.close()
    provenance: dict[str, Any] = {**got.provenance, "label_mode": probe.label_mode,
                                  "classes": len(probe.classes), "notes": got.notes, "head": head.describe()}
    if registries.hook is not None and registries.hook.pytest_robustaudit_provenance.get_hookimpls():
        loaded = got.model()  # a plugin asks about the model itself: built now if the store made it unnecessary
        for extra in registries.hook.pytest_robustaudit_provenance(spec=spec, model=loaded):
            provenance.update(extra or {})
    return AuditResult(
        spec_path=spec.path, name=spec.name, model=got.description, source=spec.model.source,
        fingerprint=got.fingerprint, device=got.device, precision=got.precision,
        data_path=spec.data.path, n_images=len(got.image_hashes), n_found=got.n_found,
        skipped=got.skipped, seconds=time.perf_counter() - started, layers=layers, checks=[],
        batch_size=got.batch_size, provenance=provenance, extraction_s=got.extraction_s,
        activations={"from_store": got.from_store, "extracted": got.extracted, "keys": got.keys,
                     "store": options.describe, "mode": options.mode},
    )


def _rows_of(entry: Any, layer: str) -> Any:
    """A callable streaming ``layer``'s stored rows (float32 chunks), or None without an entry."""
    if entry is None:
        return None
    import numpy as np

    return lambda: entry.rows(layer, dtype=np.float32)


def judge(spec: AuditSpec, result: AuditResult, registries: Registries, reference: Reference | None) -> None:
    """Evaluate every check of ``spec`` on ``result`` (in place), against ``reference`` if relative."""
    skipped_note = f", {len(result.skipped)} unreadable skipped" if result.skipped else ""
    result.checks = []
    for check in spec.checks:
        layer = result.layers[check.layer]
        stats = layer.stats
        if check.relative and reference is not None and reference.skip_reason:
            result.checks.append(CheckOutcome(check.metric, check.layer, float("nan"), None, None, True,
                                              reference.skip_reason, dict(check.params),
                                              skip_reason=reference.skip_reason))
            continue
        measured = layer.evaluate(registries.metrics.get(check.metric), check.params)
        excluded = (f", {stats.n_nonfinite} with NaN/Inf activations excluded"
                    if stats.n_nonfinite and not measured.undefined_reason else "")
        context = (f"model: {result.model} ({result.fingerprint[:19]})\n"
                   f"  images: {stats.n_images} from {result.data_path}{skipped_note}{excluded}; "
                   f"device {result.device}, {result.precision}")
        ref_value = reference.value(check, registries) if (reference and check.relative) else None
        result.checks.append(evaluate(check, measured, context, ref_value, reference.label if reference else ""))


def run_audit(spec: AuditSpec, registries: Registries, device: str | None = None,
              reference: Reference | None = None, store: Any = None, progress: Any = None) -> AuditResult:
    """Audit ``spec`` (``device`` overrides the spec's, e.g. from ``--audit-device``; ``store``: the
    :class:`~.activations.StoreOptions`, None for a private temporary store)."""
    result = measure(spec, registries, device, store, progress)
    if result.n_images == 0:
        first = result.skipped[0]
        raise AuditError(f"none of the {result.n_found} images in {spec.data.path} could be read "
                         f"(first: {first.path.name}: {first.reason}); check the folder's contents")
    judge(spec, result, registries, reference)
    return result


class AuditSession:
    """Runs each spec once per session and hands the same result (or error) to all its items."""

    def __init__(self, registries: Registries, device: str | None = None, saving_baselines: bool = False,
                 worker: int | None = None, store: Any = None, progress: Any = None):
        from .activations import StoreOptions

        self.registries = registries
        self.device = device
        #: the pytest-xdist worker index (gwK → K), for the device choice; None in one process
        self.worker = worker
        self.saving_baselines = saving_baselines
        #: where activations are kept (:class:`~.activations.StoreOptions`); one store for every audit
        self.store = store if store is not None else StoreOptions(mode="off")
        self.progress = progress
        self._done: dict[Path, AuditResult | AuditError] = {}
        self._specs: dict[Path, AuditSpec] = {}
        self._references: dict[Any, AuditResult | AuditError] = {}

    def result(self, spec: AuditSpec) -> AuditResult:
        key = spec.path.resolve()
        if key not in self._done:
            self._specs[key] = spec
            try:
                self._done[key] = run_audit(spec, self.registries, self.device_for(spec), self.reference_for(spec),
                                            self.store, self.progress)
            except AuditError as error:
                self._done[key] = error
        outcome = self._done[key]
        if isinstance(outcome, AuditError):
            raise outcome
        return outcome

    def device_for(self, spec: AuditSpec) -> str:
        """The device ``spec`` runs on: ``--audit-device`` or the spec's, as the device hook chooses it
        (built in: ``auto`` on pytest-xdist worker K → ``cuda:K mod count``)."""
        requested = self.device or spec.device
        hook = self.registries.hook
        chosen = hook.pytest_robustaudit_choose_device(requested=requested, worker_index=self.worker) \
            if hook is not None and hasattr(hook, "pytest_robustaudit_choose_device") else None
        return chosen or requested

    def reference_for(self, spec: AuditSpec) -> Reference | None:
        ref = spec.reference
        if ref is None:
            return None
        if ref.model is not None:
            # the same reference model on the same probe setup is audited once, whichever spec asks
            key = repr((dataclasses.replace(ref.model, where=None), dataclasses.replace(spec.data, where=None),
                        spec.layers, spec.precision, spec.seed))
            if key not in self._references:
                twin = dataclasses.replace(spec, name=f"{spec.name} (reference)", model=ref.model, checks=(),
                                           reference=None)
                try:
                    self._references[key] = run_audit(twin, self.registries, self.device_for(twin), store=self.store,
                                                      progress=self.progress)
                except AuditError as error:
                    self._references[key] = error
            found = self._references[key]
            if isinstance(found, AuditError):
                raise AuditError(f"the reference model {ref.model.describe()} could not be audited: {found}")
            return Reference(f"reference model {ref.model.describe()}", found)
        return self._baseline(spec)

    def _baseline(self, spec: AuditSpec) -> Reference:
        from .record import read_record

        ref = spec.reference
        entry = ref.entry or spec.name
        if not ref.baseline.exists():
            if self.saving_baselines:
                return Reference(f"baseline {ref.baseline}", None,
                                 skip_reason=f"no baseline at {ref.baseline} yet: this run saves one")
            raise AuditError(f"baseline {ref.baseline} does not exist (spec {spec.path}, key reference.baseline); "
                             f"write it with: pytest --audit {spec.path} --audit-save-baseline")
        _, results = read_record(ref.baseline)
        matches = [r for r in results if r.name == entry] or (results if len(results) == 1 and not ref.entry else [])
        if not matches:
            names = ", ".join(r.name for r in results) or "(none)"
            raise AuditError(f"baseline {ref.baseline} holds no audit named '{entry}' (it has: {names}); "
                             f"set reference.entry in {spec.path} to one of them")
        found = matches[0]
        return Reference(f"baseline {ref.baseline.name}, {found.model} ({found.fingerprint[:19]})", found)

    def close(self) -> None:
        """Remove a private temporary store (``--audit-cache off``)."""
        self.store.close()

    def results(self) -> list[AuditResult]:
        return [r for r in self._done.values() if isinstance(r, AuditResult)]

    def errors(self) -> dict[Path, str]:
        """Specs whose run failed, with the message every one of their items showed."""
        return {path: str(e) for path, e in self._done.items() if isinstance(e, AuditError)}

    def spec(self, path: Path) -> AuditSpec:
        return self._specs[path.resolve()]
