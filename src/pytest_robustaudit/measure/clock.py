"""Seconds per phase of one audit (model build, hashing, extraction per image set, each analysis).

Why: "the audit took 22 s" does not say whether the model, the disk or an analysis is slow.  Each
phase is timed where it runs and the record, JUnit properties and the report show the table.
Phases nest (building the head inside the accuracy analysis): a phase's seconds exclude the phases
timed inside it, so the seconds add up to the audit's time without counting anything twice.
"""

from __future__ import annotations

import contextlib
import contextvars
import time
from typing import Callable, Iterator

#: the clock of the audit running in this thread (set by the runner for the audit's duration)
_CURRENT: contextvars.ContextVar["PhaseClock | None"] = contextvars.ContextVar("robustaudit_clock", default=None)


class PhaseClock:
    """Accumulates exclusive seconds per phase name, in the order phases first ran."""

    def __init__(self, listener: "Callable[[str, float | None], None] | None" = None,
                 watched: tuple[str, ...] = ()) -> None:
        self._seconds: dict[str, float] = {}
        self._stack: list[list[float]] = []   # per open phase: [start, seconds of the phases inside it]
        #: told when a phase whose name starts with one of ``watched`` starts (None) and ends (its seconds)
        self._listener = listener
        self._watched = watched

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        frame = [time.perf_counter(), 0.0]
        self._stack.append(frame)
        told = self._listener is not None and name.startswith(self._watched) if self._watched else False
        if told:
            self._listener(name, None)
        try:
            yield
        finally:
            self._stack.pop()
            total = time.perf_counter() - frame[0]
            if told:
                self._listener(name, total)
            self._seconds[name] = self._seconds.get(name, 0.0) + max(0.0, total - frame[1])
            if self._stack:
                self._stack[-1][1] += total

    @contextlib.contextmanager
    def running(self) -> Iterator["PhaseClock"]:
        """Make this the clock that :func:`phase` charges, for the duration of the block."""
        token = _CURRENT.set(self)
        try:
            yield self
        finally:
            _CURRENT.reset(token)

    def seconds(self) -> dict[str, float]:
        """Phase -> exclusive seconds, rounded to the millisecond (what the record keeps)."""
        return {name: round(s, 3) for name, s in self._seconds.items()}


def phase(name: str) -> contextlib.AbstractContextManager:
    """Time ``name`` on the running audit's clock (nothing when no audit keeps one: a stage called alone).

    A context variable rather than an argument: extraction, hashing and head building are timed where
    they happen, deep in the measuring stage, without a clock travelling through every signature."""
    clock = _CURRENT.get()
    return clock.phase(name) if clock is not None else contextlib.nullcontext()
