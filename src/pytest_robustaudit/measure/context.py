"""The audit context: what every measurement of one audit shares, in one object.

Why: the registries, the resolved device, the opened activation store, the progress reporter and the
refresh horizon used to travel as five loose arguments through a dozen signatures (measure the probe,
a shifted set, a corruption, the concept bank, build the head ...).  Each measuring function now takes
the context and the thing it measures; adding something every measurement shares touches this module
and the runner that builds it, not every signature.  ``tests/stages/test_import_graph.py`` keeps it so:
no function outside this module takes three or more of those five.

:class:`RunSettings` is the part a caller chooses before an audit runs (device, progress, intervals):
what ``run_audit`` and the session accept beside the registries and the store.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..registries import Registries
    from ..store import ActivationStore


@dataclass(frozen=True)
class RunSettings:
    """How audits run, chosen by the caller: ``device`` (overrides the spec's; None: the spec's),
    ``progress`` (a :class:`~.activations.Progress`; None: silent) and ``intervals`` (an
    :class:`~..analyse.intervals.IntervalSettings`; None: the defaults)."""

    device: str | None = None
    progress: Any = None
    intervals: Any = None


@dataclass
class AuditContext:
    """One audit's shared measuring state: registries, the resolved device, the opened store, progress
    and the refresh horizon (``--audit-cache refresh``: entries created before it are recomputed)."""

    registries: "Registries"
    device: str
    store: "ActivationStore"
    progress: Any = None
    refresh_before: float | None = None
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.progress is None:
            from .activations import Progress

            self.progress = Progress()

    @classmethod
    def open(cls, registries: "Registries", device: str, store: Any, progress: Any = None,
             refresh_before: float | None = None) -> "AuditContext":
        """The context of one audit: ``store`` a :class:`~.activations.StoreOptions` (opened here)."""
        return cls(registries, device, store.open(), progress, refresh_before)
