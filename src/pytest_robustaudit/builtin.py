"""The built-in metrics and model sources, registered through the public hooks like any plugin."""

from __future__ import annotations

import pluggy

hookimpl = pluggy.HookimplMarker("pytest")


@hookimpl
def pytest_robustaudit_register_metrics(metrics):
    from .metrics import BUILTIN_METRICS

    for metric in BUILTIN_METRICS:
        metrics.register(metric)


@hookimpl
def pytest_robustaudit_register_model_sources(sources):
    from .models import BUILTIN_SOURCES

    for source in BUILTIN_SOURCES:
        sources.register(source)


@hookimpl
def pytest_robustaudit_register_image_sets(image_sets):
    from .measure.image_sets import BUILTIN

    for kind in BUILTIN:
        image_sets.register(kind)


@hookimpl(trylast=True)
def pytest_robustaudit_choose_device(requested, worker_index):
    from .measure.devices import default_device

    return default_device(requested, worker_index)
