"""One live progress line per audit while its model runs, through pytest's terminal reporter.

Why through the terminal reporter: it owns the terminal (it knows whether it is a TTY, the
verbosity, where the current line stands), and what it writes is never captured with the tests'
output.  On a TTY the line is rewritten in place at most a few times a second (cut to the terminal's width:
a wrapped line cannot be rewritten); elsewhere (a CI log)
a new line is written at most every ``LOG_INTERVAL_S`` seconds, plus one when the model starts and
one when it ends, so a log never floods.  ``-q`` turns it off, and pytest-xdist workers (whose
output nobody sees) write nothing.

A progress line is written inside a test (an audit runs in its first check), after pytest has begun
that file's line of result letters (``audits/x.yaml ``) and before the letter: pytest would write the
letters on after the progress line, split from their file.  So a progress line first ends the letters'
line, and before pytest writes the next letter (:func:`resume_dot_line`) the file's prefix is written
again: ``audits/x.yaml ..F.`` stays one line, with the progress lines above it.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

import pytest

from ..measure.activations import Progress

#: seconds between progress lines in a non-TTY log (CI)
LOG_INTERVAL_S = 10.0
#: seconds between rewrites of the live line on a TTY
TTY_INTERVAL_S = 0.25
#: an analysis phase at least this long gets its own line ("analysis: concepts done in 12.3 s")
SLOW_PHASE_S = 2.0
#: the file whose line of result letters a progress line ended (its prefix is written again before the
#: next letter)
broken_key = pytest.StashKey[Path]()


def end_dot_line(config: pytest.Config, reporter) -> None:
    """Start a progress line on a fresh line, remembering the file whose letters' line this ends."""
    current = getattr(reporter, "currentfspath", None)
    if isinstance(current, os.PathLike) and broken_key not in config.stash:
        config.stash[broken_key] = Path(current)
    reporter.ensure_newline()


def resume_dot_line(config: pytest.Config, nodeid: str) -> None:
    """Before pytest writes the letter of ``nodeid``'s report (``pytest_runtest_logreport``, tryfirst): when
    a progress line ended that file's line of letters and nothing of pytest's has begun another, write the
    file's prefix again, as pytest does when it starts a file, so the letters are never split from it (a
    report of another file gets its own prefix from pytest)."""
    path = config.stash.get(broken_key, None)
    if path is None:
        return
    del config.stash[broken_key]
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None or reporter.currentfspath is not None or path != config.rootpath / nodeid.split("::", 1)[0]:
        return
    reporter.write(_relative(reporter.startpath, path) + " ")
    reporter.currentfspath = path


def fit_live(line: str, width: int) -> str:
    """A live (rewritten) line cut in its middle to less than the terminal's ``width``: a line that wraps
    cannot be rewritten in place (``\\r`` goes back to its last row only), so every rewrite would leave a
    row behind.  The end (images done, ETA, device; the phase's name) is kept whole where it can be."""
    room = max(width - 1, 10)
    if len(line) <= room:
        return line
    tail = (2 * (room - 1)) // 3
    return line[: room - 1 - tail] + "…" + line[len(line) - tail:]


def _width(reporter) -> int:
    """The terminal's width as pytest's terminal writer knows it (80 when it says nothing)."""
    width = getattr(getattr(reporter, "_tw", None), "fullwidth", None)
    return width if isinstance(width, int) and width > 0 else 80


def _relative(start: Path, path: Path) -> str:
    """``path`` as pytest writes a file's prefix (relative to where it started, when it can be)."""
    try:
        from _pytest.pathlib import bestrelpath   # the function pytest itself uses for the prefix
    except ImportError:  # pragma: no cover - a pytest that moved it
        return os.path.relpath(path, start)
    return bestrelpath(start, path)


def _format_duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    minutes, secs = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def progress_line(label: str, done: int, total: int, seconds: float, device: str, final: bool = False) -> str:
    """``robustaudit: <label>: 320/1000 images, 41.2 img/s, ETA 0:16, cpu`` (pure, for tests)."""
    rate = done / seconds if seconds > 0 and done else 0.0
    speed = f"{rate:.1f} img/s" if rate else "starting"
    if final:
        tail = f"done in {seconds:.1f} s"
    elif rate and total > done:
        tail = f"ETA {_format_duration((total - done) / rate)}"
    else:
        tail = "ETA --"
    return f"robustaudit: {label}: {done}/{total} images, {speed}, {tail}, {device}"


class TerminalProgress(Progress):
    """The plugin's :class:`~pytest_robustaudit.measure.activations.Progress`: see the module docstring."""

    def __init__(self, config: pytest.Config):
        self.config = config
        self.label = ""
        self.total = 0
        self.device = ""
        self.started = 0.0
        self.last = 0.0
        self.live = False
        #: an analysis phase's live line is on the terminal (TTY only)
        self.phase_live = False

    def _reporter(self):
        if hasattr(self.config, "workerinput") or self.config.get_verbosity() < 0:
            return None
        return self.config.pluginmanager.get_plugin("terminalreporter")

    def _uncaptured(self):
        """pytest captures what a test writes while it runs, and an audit runs inside its first check:
        suspend the capture while a progress line is written, so the line reaches the terminal or the CI
        log (instead of vanishing with a passing check's output, or landing inside a failure's)."""
        capman = self.config.pluginmanager.get_plugin("capturemanager")
        return capman.global_and_fixture_disabled() if capman is not None else contextlib.nullcontext()

    @staticmethod
    def _tty(reporter) -> bool:
        return bool(getattr(reporter, "isatty", False))

    def start(self, label: str, total: int, device: str) -> None:
        with self._uncaptured():
            self.label, self.total, self.device = label, total, device
            self.started = self.last = time.monotonic()
            reporter = self._reporter()
            if reporter is None:
                return
            line = progress_line(label, 0, total, 0.0, device)
            end_dot_line(self.config, reporter)
            if self._tty(reporter):
                reporter.write(fit_live(line, _width(reporter)))
                reporter.flush()
                self.live = True
            else:
                reporter.write_line(line)

    def update(self, done: int) -> None:
        reporter = self._reporter()
        if reporter is None:
            return
        now = time.monotonic()
        interval = TTY_INTERVAL_S if self.live else LOG_INTERVAL_S
        if now - self.last < interval:    # called per batch: nothing to write most of the time
            return
        self.last = now
        line = progress_line(self.label, done, self.total, now - self.started, self.device)
        with self._uncaptured():
            if self.live:
                reporter.rewrite(fit_live(line, _width(reporter)), erase=True)
                reporter.flush()
            else:
                end_dot_line(self.config, reporter)
                reporter.write_line(line)

    def finish(self, done: int, seconds: float) -> None:
        with self._uncaptured():
            reporter = self._reporter()
            if reporter is None:
                return
            line = progress_line(self.label, done, self.total, seconds, self.device, final=True)
            if self.live:
                reporter.rewrite(fit_live(line, _width(reporter)), erase=True)
                reporter.write("\n")
                reporter.flush()
                self.live = False
            else:
                end_dot_line(self.config, reporter)
                reporter.write_line(line)

    def note(self, message: str) -> None:
        with self._uncaptured():
            reporter = self._reporter()
            if reporter is not None:
                end_dot_line(self.config, reporter)
                reporter.write_line(f"robustaudit: {message}")

    def phase(self, label: str, name: str, seconds: float | None) -> None:
        """An analysis phase: on a TTY a live line while it runs (erased if it was quick); in a log one
        line when a phase took at least SLOW_PHASE_S, so a long analysis is visible without flooding."""
        reporter = self._reporter()
        if reporter is None:
            return
        if seconds is None:                    # started
            if not self._tty(reporter) or self.live:   # nothing in a log; never over the extraction's live line
                return
            with self._uncaptured():
                if self.phase_live:
                    reporter.rewrite(fit_live(f"robustaudit: {label}: {name} ...", _width(reporter)), erase=True)
                else:
                    end_dot_line(self.config, reporter)
                    reporter.write(fit_live(f"robustaudit: {label}: {name} ...", _width(reporter)))
                reporter.flush()
            self.phase_live = True
            return
        slow = seconds >= SLOW_PHASE_S
        if not self.phase_live and not slow:   # ended quickly, with no line of its own to finish
            return
        line = f"robustaudit: {label}: {name} done in {seconds:.1f} s"
        with self._uncaptured():
            if self.phase_live:
                reporter.rewrite(fit_live(line, _width(reporter)) if slow else "", erase=True)
                # after the line, a new one; after an erased line, back to its start (the erasing spaces
                # leave the cursor at the end of the row: the next line would be written on after them)
                reporter.write("\n" if slow else "\r")
                reporter.flush()
            else:
                end_dot_line(self.config, reporter)
                reporter.write_line(line)
        self.phase_live = False
