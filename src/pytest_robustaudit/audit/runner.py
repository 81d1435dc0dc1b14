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
from typing import Any, Sequence

from ..analyse.checks import evaluate
from ..analyse.dropped import drop_reason, dropped_outcome
from .notices import add_notices, annotate
from ..errors import AuditError
from ..analyse.intervals import IntervalSettings, layer_intervals
from ..measure.head_source import HeadSource, head_wanted
from ..metrics.inputs import LayerInputs
from ..metrics.types import (NEEDS_CONCEPTS, NEEDS_CORRUPTED, NEEDS_DIRECTIONS, NEEDS_HEAD, NEEDS_SHIFTED, NEEDS_SUMMARY,
                             MetricValue)
from ..measure.context import RunSettings
from ..plan.plan import Request
from ..registries import Registries
from ..results import AuditResult, CheckOutcome, LayerResult
from ..spec.schema import AuditSpec, CheckSpec


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
        metric = registries.metrics.get(check.metric)
        recorded = layer.metrics.get(check.metric)
        if recorded is not None and recorded.version != metric.version:
            # never compare two definitions silently: the check fails with this reason (docs/metrics.md)
            return MetricValue(float("nan"), undefined_reason=(
                f"the {self.label} recorded {check.metric} under definition version {recorded.version}, this "
                f"pytest-robustaudit computes version {metric.version} (docs/metrics.md#definition-versions); the "
                f"two are not comparable: re-save the baseline with --audit-save-baseline"))
        return layer.evaluate(metric, check.params)


def measure(spec: AuditSpec, registries: Registries, store: Any = None, reference: "Reference | None" = None,
            settings: RunSettings | None = None, requests: Sequence[Request] = (),
            measure_all: bool = False) -> AuditResult:
    """Plan, then measure, then analyse ``spec``: the planned metrics on their layers; no verdicts yet.

    The plan (:func:`~..plan.plan.build_plan`: the checks, ``measure:``, the defaults and
    ``requests`` from outside the spec) says what is read; only that is measured: the probe's rows
    always, the shifted and corrupted sets, the concept bank and the head only when a planned metric
    reads them.  ``store`` is a :class:`~..measure.activations.StoreOptions` (None: a private temporary
    store for this call); layers missing from it are extracted once, in one forward pass, and written
    to it first (``reference``: what ``concept_overlap`` compares with; ``settings``: device, progress and
    interval settings, :class:`~..measure.context.RunSettings`)."""
    from .. import data
    from ..measure.activations import StoreOptions, measure_layers
    from ..measure.clock import PhaseClock
    from ..measure.context import AuditContext
    from ..measure.extract import resolve_device
    from ..plan.plan import build_plan

    settings = settings or RunSettings()
    progress = settings.progress
    started = time.perf_counter()
    # the analyses say what runs, as the extraction does (a concept null or resampled directions take minutes)
    clock = PhaseClock(lambda name, seconds: settings.progress.phase(spec.name, name, seconds)
                       if settings.progress is not None else None,
                       watched=("analysis:", "intervals", "head"))
    options = store if store is not None else StoreOptions(mode="off")
    layers: dict[str, LayerResult] = {}
    with clock.running():
        try:
            with clock.phase("plan"):
                probe = data.discover(spec.data) if spec.model.source != "activations" else None
                labelled = None if probe is None else any(image.label for image in probe.images)
                plan = build_plan(spec, registries, requests, labelled=labelled, measure_all=measure_all)
            target = resolve_device(settings.device or spec.device) if probe is not None else "cpu"
            ctx = AuditContext.open(registries, target, options, progress, options.refresh_before)
            said = len(ctx.store.problems)   # store problems from here on (probe, shifted sets, bank) go into the notes
            if probe is None:   # features from elsewhere: imported, no model, no images
                from ..measure.imported import measure_arrays

                with clock.phase("extraction: imported arrays"):
                    got = measure_arrays(spec, ctx.store, progress)
            else:
                got = measure_layers(ctx, spec, probe)
            intervals = settings.intervals or IntervalSettings()
            # one pass over each layer's stored rows for its intervals, while the store is open (no model runs)
            with clock.phase("intervals"):   # the resampled-profile pass runs here, or lazily in the intervals below
                samples = layer_samples(spec, registries, got, spec.resamples or intervals.resamples,
                                        spec.bootstrap_method or intervals.method, plan)
            head = HeadSource(ctx, spec, got.fingerprint, got.model, got.device)
            head.wanted = head.wanted or plan.needs(NEEDS_HEAD)   # `measure:` or a request reads it
            shifts = None
            if plan.needs(NEEDS_SHIFTED) or plan.needs(NEEDS_CORRUPTED):
                shifts = _shift_source(ctx, spec, probe, got)
            concepts = None
            if plan.needs(NEEDS_CONCEPTS) and spec.concepts is not None and probe is not None:
                from ..measure.concept_source import measure_concepts_or_failure, reference_lookup

                concepts = measure_concepts_or_failure(ctx, spec, got, reference_lookup(reference))
            for name, stats in got.stats.items():
                inputs = LayerInputs(stats, name, _rows_of(got.entries.get(name), name), got.row_labels, head,
                                     where=head.where, shifts=shifts,
                                     concepts=concepts.for_layer(name) if concepts else None)
                result = LayerResult(name, stats, inputs=inputs)
                for metric_name in plan.metrics_on(name):
                    metric = registries.metrics.get(metric_name)
                    with clock.phase(f"analysis: {analysis_family(metric)}"):
                        result.metrics[metric_name] = result.evaluate(metric)
                result.sample = samples.get(name)
                result.image_hashes = result.sample.hashes if result.sample is not None else ()
                with clock.phase("intervals"):
                    result.intervals = planned_intervals(spec, registries, result, intervals, ctx.store,
                                                         got.entries.get(name))
                if store is None:
                    inputs.keep_rows_in_memory()  # the private store goes now; checks at other parameters read them
                layers[name] = result
            if store is None and shifts is not None:
                shifts.keep_rows_in_memory()      # likewise the shifted sets' rows
        finally:
            if store is None:
                options.close()
        provenance: dict[str, Any] = {**got.provenance, "label_mode": probe.label_mode if probe else "none",
                                      "classes": len(probe.classes) if probe else 0,
                                      "notes": list(dict.fromkeys([*got.notes, *ctx.store.problems[said:]])),
                                      "head": head.describe()}
        if concepts is not None:
            provenance["concepts"] = concepts.describe()
        if got.model is not None and registries.hook is not None and \
                registries.hook.pytest_robustaudit_provenance.get_hookimpls():
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
            plan=plan.to_record(), phases=clock.seconds(),
        )


def planned_intervals(spec: AuditSpec, registries: Registries, result: LayerResult, settings: IntervalSettings,
                      store: Any, entry: Any) -> dict[str, Any]:
    """Every computed metric's two-sided interval; the outlier family's read from the store when an earlier
    run of this audit on the same rows kept them (:mod:`..analyse.kept_intervals`), else computed and kept."""
    from ..analyse.kept_intervals import keepable, kept_key, read_kept, write_kept

    resamples, method = spec.resamples or settings.resamples, spec.bootstrap_method or settings.method
    keep = {n: registries.metrics.get(n) for n in result.metrics if keepable(registries.metrics.get(n))}
    key = kept_key(entry, spec.name, result.layer, resamples, method, settings.level, keep) \
        if keep and entry is not None and store is not None else None
    kept = read_kept(store, key) if key else None
    if kept is not None and set(kept) != set(keep):
        kept = None
    values = {n: v for n, v in result.metrics.items() if kept is None or n not in kept}
    out = layer_intervals(registries.metrics, result.stats, result.sample, values, settings.level, spec.name,
                          result.inputs)
    if kept is None and key:
        write_kept(store, key, {n: out[n] for n in keep if n in out})
    out.update(kept or {})
    return {n: out[n] for n in result.metrics if n in out}


def analysis_family(metric: Any) -> str:
    """The analysis a metric belongs to, for the time per phase: named after the most specific input it reads."""
    inputs = metric.inputs
    for need, family in ((NEEDS_CONCEPTS, "concepts"), (NEEDS_SHIFTED, "shifts"), (NEEDS_CORRUPTED, "corruptions"),
                         (NEEDS_DIRECTIONS, "directions"), (NEEDS_HEAD, "accuracy")):
        if need in inputs:
            return family
    return "outliers" if inputs <= {NEEDS_SUMMARY} else metric.name


def _shift_source(ctx: Any, spec: AuditSpec, probe: Any, got: Any) -> Any:
    """The audit's shifted sets, scored when a shift metric first asks (None: the spec has none)."""
    if probe is None:   # features from elsewhere: no images to score (the metrics say so)
        return None
    from ..measure.shifts import ShiftSource

    return ShiftSource(ctx, spec, probe, {n: s.dim for n, s in got.stats.items()}, got.handle)


def layer_samples(spec: AuditSpec, registries: Registries, got: Any, resamples: int,
                  method: str = "auto", plan: Any = None) -> dict[str, Any]:
    """Each layer's :class:`~.intervals.LayerSample` (docs/intervals.md): its resampled-profile pass over the
    stored rows runs when an interval first reads it (at once when a row is not finite)."""
    import numpy as np

    from ..analyse.intervals import sample_layer

    names = list(plan.planned) if plan is not None else registries.metrics.names()
    signed = any(isinstance(m.interval_input, tuple) and "signed" in m.interval_input
                 for m in (registries.metrics.get(n) for n in names))
    out = {}
    for layer, entry in got.entries.items():
        def chunks(entry=entry, layer=layer):
            return entry.rows(layer, dtype=np.float32)
        stats = got.stats.get(layer)
        out[layer] = sample_layer(spec.name, layer, entry.images, chunks, resamples, signed=signed, method=method,
                                  all_finite=stats is not None and stats.n_nonfinite == 0)
    return out


def _rows_of(entry: Any, layer: str) -> Any:
    """A callable streaming ``layer``'s stored rows (float32 chunks), or None without an entry."""
    if entry is None:
        return None
    import numpy as np

    return lambda: entry.rows(layer, dtype=np.float32)


def judge(spec: AuditSpec, result: AuditResult, registries: Registries, reference: Reference | None,
          intervals: IntervalSettings | None = None) -> None:
    """Evaluate every check of ``spec`` on ``result`` (in place), against ``reference`` if relative.

    Each check sees its value's interval (docs/intervals.md); with ``confidence`` (the check's, the
    spec's, or ``intervals.confidence``) it gates on it; a relative check also sees candidate −
    reference on the images both measured (paired by content hash when the rows allow)."""
    from ..analyse.checks import effective_bounds, min_images_outcome
    from ..analyse.intervals import metric_interval, relative_difference, setup_differences
    from ..metrics.verdicts import sided_for

    settings = intervals or IntervalSettings()
    skipped_note = f", {len(result.skipped)} unreadable skipped" if result.skipped else ""
    result.checks = []
    for check in spec.checks:
        layer_result = result.layers[check.layer]
        stats = layer_result.stats
        if check.relative and reference is not None and reference.skip_reason:
            result.checks.append(CheckOutcome(check.metric, check.layer, float("nan"), None, None, True,
                                              reference.skip_reason, dict(check.params),
                                              skip_reason=reference.skip_reason))
            continue
        metric = registries.metrics.get(check.metric)
        dropped = drop_reason(check, metric, layer_result)
        if dropped:   # a default layer the metric cannot be computed on (analyse/dropped.py)
            result.checks.append(dropped_outcome(check, dropped))
            add_notices(result, [dropped])
            continue
        measured = layer_result.evaluate(metric, check.params)
        excluded = (f", {stats.n_nonfinite} with NaN/Inf activations excluded"
                    if stats.n_nonfinite and not measured.undefined_reason else "")
        context = (f"model: {result.model} ({result.fingerprint[:19]})\n"
                   f"  images: {stats.n_images} from {result.data_path}{skipped_note}{excluded}; "
                   f"device {result.device}, {result.precision}")
        if spec.min_images is not None and stats.n_images < spec.min_images:
            result.checks.append(min_images_outcome(check, stats.n_images, spec.min_images, context))
            continue
        ref_value = reference.value(check, registries) if (reference and check.relative) else None
        confidence = next((c for c in (check.confidence, spec.confidence, settings.confidence) if c is not None), None)
        ref_number = ref_value.value if ref_value is not None and not ref_value.undefined_reason else None
        low, high = effective_bounds(check, ref_number)
        level = confidence or settings.level
        sided = sided_for(low.value if low else None, high.value if high else None) if confidence else "two-sided"
        shown = layer_result.intervals.get(check.metric)
        if sided == "two-sided" and level == settings.level and shown is not None and \
                dict(check.params) in ({}, metric.defaults()):
            interval = shown      # the interval the layer shows is the one this check reads: not drawn twice
        else:
            interval = metric_interval(metric, stats, layer_result.sample, measured, check.params, level=level,
                                       sided=sided, audit=spec.name, inputs=layer_result.inputs)
        difference, notes = None, ()
        ref_layer = reference.result.layers.get(check.layer) if (reference and check.relative and reference.result) else None
        if ref_layer is not None and ref_value is not None:
            hashes = ref_layer.image_hashes or (ref_layer.sample.hashes if ref_layer.sample is not None else ())
            diff_sided = sided_for(check.min_delta, check.max_delta) if confidence else "two-sided"
            recorded = ref_layer.intervals.get(check.metric)
            difference = relative_difference(metric, check.params, (stats, layer_result.sample, measured),
                                             (ref_layer.stats, ref_layer.sample, ref_value, tuple(hashes)),
                                             level=level, sided=diff_sided, audit=spec.name, recorded=recorded)
            drift = setup_differences(result, reference.result)
            if drift:
                notes = (f"the reference was measured with another setup ({'; '.join(drift)}): expect drift "
                         f"beyond sampling error (bf16 vs fp32 on CPU moves the outlier metrics by 0.1-1%, "
                         f"docs/measured.md)",)
        result.checks.append(evaluate(check, measured, context, ref_value, reference.label if reference else "",
                                      interval=interval, confidence=confidence, difference=difference, notes=notes,
                                      inconclusive_policy=settings.inconclusive_policy))


def run_audit(spec: AuditSpec, registries: Registries, store: Any = None, reference: Reference | None = None,
              settings: RunSettings | None = None, requests: Sequence[Request] = (),
              measure_all: bool = False) -> AuditResult:
    """Audit ``spec``: ``store`` the :class:`~..measure.activations.StoreOptions` (None: a private temporary
    store); ``settings`` the device (overriding the spec's, e.g. ``--audit-device``), progress and interval
    settings (:class:`~..measure.context.RunSettings`); ``requests``: metrics something outside the spec
    will read, added to its plan; ``measure_all``: every metric."""
    settings = settings or RunSettings()
    intervals = settings.intervals
    result = measure(spec, registries, store, reference, settings, requests, measure_all)
    annotate(result, spec)   # random weights, a smoke run (audit/notices.py)
    if result.n_images == 0:
        first = result.skipped[0]
        raise AuditError(f"none of the {result.n_found} images in {spec.data.path} could be read "
                         f"(first: {first.path.name}: {first.reason}); check the folder's contents")
    judge(spec, result, registries, reference, intervals)
    if spec.checks:
        # the resampled profiles (resamples x d per layer) served the checks: do not hold them for the
        # whole session; a reference model's audit (no checks) keeps them for the specs compared with it
        for layer in result.layers.values():
            if layer.sample is not None:
                layer.sample.profiles = None
                layer.sample._paired.clear()
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

    def __init__(self, registries: Registries, settings: RunSettings | None = None, store: Any = None,
                 saving_baselines: bool = False, worker: int | None = None, history: Any = None):
        from ..measure.activations import StoreOptions

        settings = settings or RunSettings()
        self.registries = registries
        self.device = settings.device
        #: the pytest-xdist worker index (gwK → K), for the device choice; None in one process
        self.worker = worker
        self.saving_baselines = saving_baselines
        #: where activations are kept (:class:`~.activations.StoreOptions`); one store for every audit
        self.store = store if store is not None else StoreOptions(mode="off")
        self.progress = settings.progress
        #: level, resamples and default confidence of intervals (ini audit_confidence, audit_resamples)
        self.intervals = settings.intervals or IntervalSettings()
        self._done: dict[Path, AuditResult | Failure] = {}
        self._specs: dict[Path, AuditSpec] = {}
        self._references: dict[Any, AuditResult | Failure] = {}
        self._retried: set[Path] = set()
        #: metrics read from outside every spec (a relation file's metric and ER): added to each plan
        self.requests: list[Request] = []
        #: per spec, metrics asked for on demand (``run.value``) after its audit ran
        self._asked: dict[Path, list[Request]] = {}
        #: the release history (:class:`~.results.history.ReleaseHistory`) for ``reference: {history: ...}``;
        #: None when the run keeps none (``--audit-history`` not given)
        self.history = history

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
            self._done[key] = _attempt(lambda: run_audit(spec, self.registries, self.store, self.reference_for(spec),
                                                         self.settings_for(spec),
                                                         self.requests + self._asked.get(key, []),
                                                         measure_all=self.saving_baselines))
        outcome = self._done[key]
        if isinstance(outcome, Failure):
            outcome.raise_again()
        return outcome

    def on_demand(self, spec: AuditSpec, metric: str, layer: str) -> AuditResult:
        """The audit's result with ``metric`` computed on ``layer`` too, though its plan left it out
        (the ``audit`` fixture's ``run.value``).  A metric that reads only the probe's rows, its labels
        and the head is computed from the audit's layer inputs; one that reads another image set (a
        shifted set, a corruption, the concept bank) re-plans the audit, which reads the probe from the
        store and measures only the new set."""
        result = self.result(spec)
        found = result.layers.get(layer)
        if found is None or metric in found.metrics or metric not in self.registries.metrics:
            return result
        declared = self.registries.metrics.get(metric)
        from ..metrics.types import NEEDS_CONCEPTS

        if found.inputs is not None and not declared.inputs & {NEEDS_SHIFTED, NEEDS_CORRUPTED, NEEDS_CONCEPTS}:
            found.metrics[metric] = found.evaluate(declared)
            return result
        key = spec.path.resolve()
        self._asked.setdefault(key, []).append(Request(metric, "asked on demand (run.value)", (layer,)))
        del self._done[key]
        return self.result(spec)

    def settings_for(self, spec: AuditSpec) -> RunSettings:
        """The run settings of ``spec``'s audit: its device as the device hook chooses it, the session's
        progress and interval settings."""
        return RunSettings(self.device_for(spec), self.progress, self.intervals)

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
            # the reference audits what the candidate audits: its head (built when the candidate's checks
            # read one, though the reference itself has no check), shifts, concept bank and intervals
            wanted = head_wanted(spec, self.registries)
            head = dataclasses.replace(spec.head, where=None, explicit=spec.head.explicit or wanted)
            # the twin computes what the candidate's relative checks will read of it
            reads = tuple(Request(c.metric, f"reference of {spec.name}", (c.layer,)) for c in spec.checks if c.relative)
            # the same reference model on the same probe setup is audited once, whichever spec asks
            key = repr((sorted((r.metric, r.layers) for r in reads), dataclasses.replace(ref.model, where=None), dataclasses.replace(spec.data, where=None),
                        spec.layers, spec.precision, spec.seed, head,
                        tuple(dataclasses.replace(s, where=None) for s in spec.shifts),
                        spec.resamples, spec.bootstrap_method,
                        dataclasses.replace(spec.concepts, where=None) if spec.concepts else None))
            if key not in self._references:
                twin = dataclasses.replace(spec, name=f"{spec.name} (reference)", model=ref.model, checks=(),
                                           reference=None, head=head)
                self._references[key] = _attempt(lambda: run_audit(twin, self.registries, self.store,
                                                                   settings=self.settings_for(twin),
                                                                   requests=reads + tuple(self.requests)))
            found = self._references[key]
            if isinstance(found, Failure):
                if not isinstance(found.error, AuditError):
                    found.raise_again()
                raise AuditError(f"the reference model {ref.model.describe()} could not be audited: {found.error}")
            return Reference(f"reference model {ref.model.describe()}", found)
        if ref.history is not None:
            return self._release(spec)
        return self._baseline(spec)

    def _release(self, spec: AuditSpec) -> Reference:
        """An earlier run of this audit in the release history; none yet (or no history): the relative checks
        are skipped with the reason, as with a baseline not saved yet."""
        wanted = spec.reference.history
        what = "the last release" if wanted == "last" else f"release {wanted}"
        if self.history is None:
            return Reference(what, None, skip_reason=f"{spec.path} compares with {what} (reference.history) but this "
                             "run keeps no history: give --audit-history DIR (or the ini key audit_history)")
        found = self.history.reference_audit(spec.path, spec.name, wanted)
        if found is None:
            return Reference(what, None, skip_reason=f"no earlier run of this audit{'' if wanted == 'last' else f' labelled {wanted}'}"
                             f" in the history {self.history.folder.folder} yet: this run is kept there, and the next "
                             "one compares with it")
        entry, result = found
        return Reference(f"release {entry.shown}, {result.model} ({result.fingerprint[:19]})", result)

    def _baseline(self, spec: AuditSpec) -> Reference:
        from ..results.record import read_record

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
        """Specs whose run failed, with their message: an AuditError's text, or for any other error its
        type, message and location (never a traceback: the record and the report stay small)."""
        from ..errors import describe_error

        return {path: describe_error(f.error, f.traceback) for path, f in self._done.items() if isinstance(f, Failure)}

    def spec(self, path: Path) -> AuditSpec:
        return self._specs[path.resolve()]
