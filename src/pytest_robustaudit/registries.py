"""The metric and model-source registries, filled by calling the registration hooks.

Inside pytest the hooks are pytest's own (so conftest.py files take part); outside pytest
(``python -m pytest_robustaudit validate``, scripts) :func:`standalone` builds a plugin manager
with the built-ins and any extra plugin objects given.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

from .errors import RegistryError
from .registry import Registry


class MetricRegistry(Registry):
    """Metrics by name; ``register(metric)`` takes the name from the metric."""

    def __init__(self) -> None:
        super().__init__("metric")

    def register(self, metric, owner: str = ""):  # type: ignore[override]
        from .metrics import Metric

        if not isinstance(metric, Metric):
            raise RegistryError(f"register a pytest_robustaudit.Metric, not {type(metric).__name__}")
        return super().register(metric.name, metric, owner)


class SourceRegistry(Registry):
    """Model sources by name; ``register(source)`` takes the name from ``source.name``."""

    def __init__(self) -> None:
        super().__init__("model source")

    def register(self, source, owner: str = ""):  # type: ignore[override]
        missing = [a for a in ("name", "required", "load") if not hasattr(source, a)]
        if missing:
            raise RegistryError(f"a model source needs {', '.join(missing)} (got {source!r})")
        return super().register(source.name, source, owner)


@dataclass
class Registries:
    """The filled registries, and the hook relay they came from (for the other hooks at run time)."""

    metrics: MetricRegistry
    sources: SourceRegistry
    hook: Any = None


def collect(hook: Any) -> Registries:
    """Fill fresh registries by calling the registration hooks on ``hook`` (a pluggy hook relay)."""
    found = Registries(MetricRegistry(), SourceRegistry(), hook)
    hook.pytest_robustaudit_register_metrics(metrics=found.metrics)
    hook.pytest_robustaudit_register_model_sources(sources=found.sources)
    return found


def standalone(plugins: Iterable[object] = ()) -> Registries:
    """Registries outside pytest: the built-ins plus ``plugins`` (modules or objects with hookimpls)."""
    import pluggy

    from . import builtin, hookspecs

    manager = pluggy.PluginManager("pytest")
    manager.add_hookspecs(hookspecs)
    manager.register(builtin)
    for plugin in plugins:
        manager.register(plugin)
    return collect(manager.hook)
