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
        return super().register(metric.name, metric, owner)  # type: ignore[arg-type]


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
    _call_each(hook.pytest_robustaudit_register_metrics, found.metrics, "metrics")
    _call_each(hook.pytest_robustaudit_register_model_sources, found.sources, "sources")
    return found


def _call_each(caller: Any, registry: Registry, argname: str) -> None:
    """Call every implementation in pluggy's order, telling the registry whose it is.

    One implementation at a time, so that a name registered twice is reported with both owners
    (e.g. ``robustaudit-builtin`` and ``/project/conftest.py``).
    """
    for impl in reversed(caller.get_hookimpls()):  # pluggy calls the last registered first
        registry.current_owner = impl.plugin_name
        try:
            impl.function(**{name: registry for name in impl.argnames if name == argname})
        finally:
            registry.current_owner = ""


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
