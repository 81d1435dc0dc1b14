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
        return registries.metrics.get(check.metric).evaluate(layer.stats, check.params)


def measure(spec: AuditSpec, registries: Registries, device: str | None = None) -> AuditResult:
    """Load, extract and compute every metric on every layer of ``spec``; no verdicts yet."""
    from . import data
    from .extract import extract, resolve_device
    from .models import load_model

    started = time.perf_counter()
    loaded = load_model(spec.model, registries.sources)
    loaded.layers.check(spec.layers)
    probe = data.discover(spec.data)
    skipped: list[data.SkippedImage] = []
    target = resolve_device(device or spec.device)
    batches = (images for images, _ in data.iter_batches(probe, loaded.preprocess, spec.data.batch_size,
                                                          spec.data.workers, skipped))
    extraction = extract(loaded, batches, spec.layers, target, spec.precision, seed=spec.seed)
    layers: dict[str, LayerResult] = {}
    for name, stats in extraction.layers.items():
        result = LayerResult(name, stats)
        for metric_name in registries.metrics.names():
            result.metrics[metric_name] = registries.metrics.get(metric_name).evaluate(stats)
        layers[name] = result
    provenance: dict[str, Any] = {**loaded.provenance, "label_mode": probe.label_mode,
                                  "classes": len(probe.classes), "notes": extraction.notes}
    if registries.hook is not None:
        for extra in registries.hook.pytest_robustaudit_provenance(spec=spec, model=loaded):
            provenance.update(extra or {})
    return AuditResult(
        spec_path=spec.path, name=spec.name, model=loaded.description, source=spec.model.source,
        fingerprint=loaded.fingerprint, device=extraction.device, precision=extraction.precision,
        data_path=spec.data.path, n_images=len(probe.images) - len(skipped), n_found=len(probe.images),
        skipped=skipped, seconds=time.perf_counter() - started, layers=layers, checks=[],
        batch_size=extraction.batch_size, provenance=provenance,
    )


def judge(spec: AuditSpec, result: AuditResult, registries: Registries, reference: Reference | None) -> None:
    """Evaluate every check of ``spec`` on ``result`` (in place), against ``reference`` if relative."""
    skipped_note = f", {len(result.skipped)} unreadable skipped" if result.skipped else ""
    result.checks = []
    for check in spec.checks:
        stats = result.layers[check.layer].stats
        if check.relative and reference is not None and reference.skip_reason:
            result.checks.append(CheckOutcome(check.metric, check.layer, float("nan"), None, None, True,
                                              reference.skip_reason, dict(check.params),
                                              skip_reason=reference.skip_reason))
            continue
        measured = registries.metrics.get(check.metric).evaluate(stats, check.params)
        excluded = (f", {stats.n_nonfinite} with NaN/Inf activations excluded"
                    if stats.n_nonfinite and not measured.undefined_reason else "")
        context = (f"model: {result.model} ({result.fingerprint[:19]})\n"
                   f"  images: {stats.n_images} from {result.data_path}{skipped_note}{excluded}; "
                   f"device {result.device}, {result.precision}")
        ref_value = reference.value(check, registries) if (reference and check.relative) else None
        result.checks.append(evaluate(check, measured, context, ref_value, reference.label if reference else ""))


def run_audit(spec: AuditSpec, registries: Registries, device: str | None = None,
              reference: Reference | None = None) -> AuditResult:
    """Audit ``spec`` (``device`` overrides the spec's, e.g. from ``--audit-device``)."""
    result = measure(spec, registries, device)
    if result.n_images == 0:
        first = result.skipped[0]
        raise AuditError(f"none of the {result.n_found} images in {spec.data.path} could be read "
                         f"(first: {first.path.name}: {first.reason}); check the folder's contents")
    judge(spec, result, registries, reference)
    return result


@dataclass
class Failure:
    """An audit that raised: the error and its original traceback, raised again for every check.

    Any exception is remembered, not only an :class:`AuditError`: a timeout raised by
    pytest-timeout, a warning turned into an error by ``-W error``, a bug in a factory.  Running
    the audit again for each of its N checks would rebuild the model N times and, after an import
    interrupted half-way, show unrelated errors that hide the cause.  ``KeyboardInterrupt`` is never
    caught: Ctrl-C stops the run.
    """

    error: BaseException
    traceback: Any

    def raise_again(self) -> None:
        raise self.error.with_traceback(self.traceback)


def _attempt(run: Any) -> AuditResult | Failure:
    try:
        return run()
    except KeyboardInterrupt:
        raise
    except SystemExit as exit_:   # sys.exit() in a factory or a model's forward: an audit error, not the end of pytest
        error = AuditError(f"the model's code called sys.exit({exit_.code!r}) while the audit ran",
                           fix="a factory or a model's forward must return or raise, never exit the process")
        error.__cause__ = exit_
        return Failure(error, _without_locals(exit_.__traceback__))
    except BaseException as error:  # noqa: BLE001 - remembered for every check (see Failure)
        return Failure(error, _without_locals(error.__traceback__))


def _without_locals(tb: Any) -> Any:
    """``tb`` with its finished frames' local variables dropped: a remembered error must not keep a
    model, its activations or a batch alive for the rest of the session (its text and lines stay)."""
    import traceback

    traceback.clear_frames(tb)
    return tb


class AuditSession:
    """Runs each spec once per session and hands the same result (or error) to all its items."""

    def __init__(self, registries: Registries, device: str | None = None, saving_baselines: bool = False,
                 worker: int | None = None):
        self.registries = registries
        self.device = device
        #: the pytest-xdist worker index (gwK → K), for the device choice; None in one process
        self.worker = worker
        self.saving_baselines = saving_baselines
        self._done: dict[Path, AuditResult | Failure] = {}
        self._specs: dict[Path, AuditSpec] = {}
        self._references: dict[Any, AuditResult | Failure] = {}
        self._retried: set[Path] = set()

    def result(self, spec: AuditSpec, rerun: bool = False) -> AuditResult:
        """The audit's result, run on first use; raises the audit's error (the same one for every check).

        ``rerun``: the check runs again because a rerun was asked for (pytest-rerunfailures).  An
        audit that failed with an error is then run once more (a transient download, say), once per
        session however many checks rerun; a result, even with failed verdicts, is never re-extracted.
        """
        key = spec.path.resolve()
        if rerun and isinstance(self._done.get(key), Failure) and key not in self._retried:
            self._retried.add(key)
            del self._done[key]
        if key not in self._done:
            self._specs[key] = spec
            self._done[key] = _attempt(lambda: run_audit(spec, self.registries, self.device_for(spec),
                                                         self.reference_for(spec)))
        outcome = self._done[key]
        if isinstance(outcome, Failure):
            outcome.raise_again()
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
                self._references[key] = _attempt(lambda: run_audit(twin, self.registries, self.device_for(twin)))
            found = self._references[key]
            if isinstance(found, Failure):
                if not isinstance(found.error, AuditError):
                    found.raise_again()
                raise AuditError(f"the reference model {ref.model.describe()} could not be audited: {found.error}")
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

    def results(self) -> list[AuditResult]:
        return [r for r in self._done.values() if isinstance(r, AuditResult)]

    def errors(self) -> dict[Path, str]:
        """Specs whose run failed, with their message: an AuditError's text, or for any other error its
        type, message and location (never a traceback: the record and the report stay small)."""
        from .errors import describe_error

        return {path: describe_error(f.error, f.traceback) for path, f in self._done.items() if isinstance(f, Failure)}

    def spec(self, path: Path) -> AuditSpec:
        return self._specs[path.resolve()]
