"""The metric and model-source registries, filled by calling the registration hooks.

Inside pytest the hooks are pytest's own (so conftest.py files take part); outside pytest
(``python -m pytest_robustaudit validate``, scripts) :func:`standalone` builds a plugin manager
with the built-ins and any extra plugin objects given.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

from .errors import RegistryError
from .registry import Registry


def _check_metric(metric: Any) -> str:
    from .metrics.types import Metric

    return "" if isinstance(metric, Metric) else f"register a pytest_robustaudit.Metric, not {type(metric).__name__}"


def _check_source(source: Any) -> str:
    missing = [a for a in ("name", "required", "load") if not hasattr(source, a)]
    return f"a model source needs {', '.join(missing)} (got {source!r})" if missing else ""


def MetricRegistry() -> Registry:  # noqa: N802 - reads as the type it builds
    """Metrics by name; ``register(metric)`` takes the name from the metric."""
    return Registry("metric", check=_check_metric)


def SourceRegistry() -> Registry:  # noqa: N802
    """Model sources by name; ``register(source)`` takes the name from ``source.name``."""
    return Registry("model source", check=_check_source)


@dataclass
class Registries:
    """The filled registries, and the hook relay they came from (for the other hooks at run time)."""

    metrics: Registry
    sources: Registry
    hook: Any = None
    #: kinds of image set a spec's ``shifts:`` can name (measure/image_sets.py)
    image_sets: Registry = field(default_factory=lambda: _image_set_registry())


def _image_set_registry() -> Registry:
    from .measure.image_sets import ImageSetRegistry

    return ImageSetRegistry()


def collect(hook: Any) -> Registries:
    """Fill fresh registries by calling the registration hooks on ``hook`` (a pluggy hook relay)."""
    found = Registries(MetricRegistry(), SourceRegistry(), hook)
    _call_each(hook.pytest_robustaudit_register_metrics, found.metrics, "metrics")
    _call_each(hook.pytest_robustaudit_register_model_sources, found.sources, "sources")
    if hasattr(hook, "pytest_robustaudit_register_image_sets"):
        _call_each(hook.pytest_robustaudit_register_image_sets, found.image_sets, "image_sets")
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
    """Registries outside pytest: the built-ins plus ``plugins`` (modules or objects with hookimpls).

    As in a conftest.py, a plugin's ``pytest_robustaudit_*`` functions count as hook
    implementations whether or not they carry ``@hookimpl``.
    """
    import pluggy

    from . import builtin, hookspecs

    class StandaloneManager(pluggy.PluginManager):
        """pluggy's manager, reading unmarked ``pytest_robustaudit_*`` functions as pytest does."""

        def parse_hookimpl_opts(self, plugin: object, name: str):  # type: ignore[override]
            opts = super().parse_hookimpl_opts(plugin, name)
            if opts is None and name.startswith("pytest_robustaudit_") and callable(getattr(plugin, name, None)):
                opts = {}
            return opts

    manager = StandaloneManager("pytest")
    manager.add_hookspecs(hookspecs)
    manager.register(builtin)
    for plugin in plugins:
        manager.register(plugin)
    return collect(manager.hook)
