"""Run one audit spec end to end: model → probe data → extraction → metrics → verdicts.

Free of pytest, so fixtures, the ``validate`` command and scripts use the same path as the
collected items.  :class:`AuditSession` runs each spec at most once per session and remembers a
failure too, so twenty items of a broken spec report one clear error without reloading the model
twenty times.
"""

from __future__ import annotations

import time
from pathlib import Path

from .checks import evaluate
from .errors import AuditError
from .registries import Registries
from .results import AuditResult, LayerResult
from .specmodel import AuditSpec


def run_audit(spec: AuditSpec, registries: Registries, device: str | None = None) -> AuditResult:
    """Audit ``spec``; ``device`` overrides the spec's own device (e.g. from ``--audit-device``)."""
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
    n_images = len(probe.images) - len(skipped)
    if n_images == 0:
        raise AuditError(f"none of the {len(probe.images)} images in {spec.data.path} could be read "
                         f"(first: {skipped[0].path.name}: {skipped[0].reason}); check the folder's contents")

    layers: dict[str, LayerResult] = {}
    for name, stats in extraction.layers.items():
        result = LayerResult(name, stats)
        for metric_name in registries.metrics.names():
            result.metrics[metric_name] = registries.metrics.get(metric_name).evaluate(stats)
        layers[name] = result

    skipped_note = f", {len(skipped)} unreadable skipped" if skipped else ""
    checks = []
    for check in spec.checks:
        stats = extraction.layers[check.layer]
        measured = registries.metrics.get(check.metric).evaluate(stats, check.params)
        extra = ""
        if stats.n_nonfinite and not measured.undefined_reason:
            extra = f", {stats.n_nonfinite} with NaN/Inf activations excluded"
        context = (f"model: {loaded.description} ({loaded.fingerprint[:19]})\n"
                   f"  images: {stats.n_images} from {spec.data.path}{skipped_note}{extra}; "
                   f"device {extraction.device}, {extraction.precision}")
        checks.append(evaluate(check, measured, context))

    return AuditResult(
        spec_path=spec.path, name=spec.name, model=loaded.description, source=spec.model.source,
        fingerprint=loaded.fingerprint, device=extraction.device, precision=extraction.precision,
        data_path=spec.data.path, n_images=n_images, n_found=len(probe.images), skipped=skipped,
        seconds=time.perf_counter() - started, layers=layers, checks=checks,
        batch_size=extraction.batch_size,
        provenance={**loaded.provenance, "label_mode": probe.label_mode, "classes": len(probe.classes),
                    "notes": extraction.notes},
    )


class AuditSession:
    """Runs each spec once per session and hands the same result (or error) to all its items."""

    def __init__(self, registries: Registries, device: str | None = None):
        self.registries = registries
        self.device = device
        self._done: dict[Path, AuditResult | AuditError] = {}

    def result(self, spec: AuditSpec) -> AuditResult:
        key = spec.path.resolve()
        if key not in self._done:
            try:
                self._done[key] = run_audit(spec, self.registries, self.device)
            except AuditError as error:
                self._done[key] = error
        outcome = self._done[key]
        if isinstance(outcome, AuditError):
            raise outcome
        return outcome

    def results(self) -> list[AuditResult]:
        return [r for r in self._done.values() if isinstance(r, AuditResult)]
