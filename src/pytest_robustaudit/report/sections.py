"""The report page as a list of sections, each contributed by an analysis as typed data.

The page (``templates/report.html.j2``) never names a section: it renders, in ``order``, every
:class:`PageSection` that the registered builders return for the run, each through its own
template (``templates/sections/<name>.html.j2``, or a plugin's ``jinja2`` loader path) reading its
own typed ``view``.  An analysis to come (heads and pruning, shifts and effective robustness,
intervals, concepts) adds a builder and a template; the page and the other sections stay as they
are.  Plugins' :class:`~..results.ReportSection` (hook ``pytest_robustaudit_report_sections``) are
one more builder: a generic escaped table.  Free of pytest.

Built-in orders: errors 5, failures 10, summary 20, comparison 30, models 40, plugin tables 70,
glossary 80, run 90.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

from ..results import AuditResult, ReportSection


@dataclass(frozen=True)
class PageSection:
    """One section of the page: ``key`` (its HTML id), ``title`` (heading and table of contents),
    ``template`` (a template name under ``templates/``), ``view`` (the typed data that template
    reads as ``view``), ``order`` (position), ``nav`` (listed in the table of contents)."""

    key: str
    title: str
    template: str
    view: Any
    order: int = 50
    nav: bool = True


@dataclass
class PageContext:
    """What builders get: the run's results, metric declarations, run information and the views
    the page already built (models, in page order), plus plugins' sections."""

    results: Sequence[AuditResult]
    metrics: list[Any]
    run_info: dict[str, Any]
    models: list[Any] = field(default_factory=list)
    failed_specs: list[tuple[str, str]] = field(default_factory=list)
    plugin_sections: Sequence[ReportSection] = ()
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def by_name(self) -> dict[str, Any]:
        return {m.name: m for m in self.metrics}


SectionBuilder = Callable[[PageContext], Iterable[PageSection]]

_BUILDERS: dict[str, SectionBuilder] = {}


def register_section(name: str, builder: SectionBuilder) -> SectionBuilder:
    """Add (or replace, by ``name``) a builder of page sections; returns it (usable as a decorator
    factory's target)."""
    _BUILDERS[name] = builder
    return builder


def section_builders() -> dict[str, SectionBuilder]:
    return dict(_BUILDERS)


def build_sections(context: PageContext, extra: Iterable[SectionBuilder] = ()) -> list[PageSection]:
    """Every registered builder's sections (and ``extra`` builders'), sorted by order then key."""
    found: list[PageSection] = []
    for builder in [*_BUILDERS.values(), *extra]:
        found.extend(builder(context) or ())
    keys = [s.key for s in found]
    duplicates = {k for k in keys if keys.count(k) > 1}
    if duplicates:
        raise ValueError(f"two report sections share the id(s) {sorted(duplicates)}; give each a unique key")
    return sorted(found, key=lambda s: (s.order, s.key))
