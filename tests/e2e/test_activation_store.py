"""The activation store through pytest: options, progress lines, what the record and JUnit XML say,
the cache command, a run killed mid-extraction, and two processes on one entry."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

FACTORY = '''
import os, signal, time
import torch
from torch import nn
from torchvision import transforms

CALLS = {"n": 0}


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)

    def forward(self, x):
        CALLS["n"] += 1
        if os.environ.get("DIE_AT_BATCH") and CALLS["n"] >= int(os.environ["DIE_AT_BATCH"]):
            os.kill(os.getpid(), signal.SIGKILL)   # kill -9 mid-extraction
        time.sleep(float(os.environ.get("SLOW_BATCH_S", "0")))
        return torch.relu(self.conv(x)).mean(dim=(2, 3))


def build():
    return Tiny(), transforms.Compose([transforms.Resize(16), transforms.CenterCrop(16), transforms.ToTensor()])
'''


@pytest.fixture
def project(pytester):
    from PIL import Image

    pytester.makepyfile(store_factory=FACTORY)
    folder = pytester.mkdir("images")
    for i in range(8):
        Image.new("RGB", (20, 20), (30 * i, 40, 200 - 20 * i)).save(folder / f"im{i}.png")
    pytester.makefile(".yaml", spec=textwrap.dedent("""\
        model: {source: factory, factory: store_factory.py:build}
        data: {path: images, batch_size: 2}
        device: cpu
        checks:
          kurtosis_mean: {min: 0}
          outlier_count: {max: 100}
        """))
    return pytester


def record(pytester, name="record.json"):
    return json.loads((pytester.path / name).read_text())["audits"][0]


def test_cold_then_warm_run_progress_record_report_and_junit(project):
    store = project.path / "store"
    cold = project.runpytest("--audit", "spec.yaml", "--audit-cache-dir", str(store), "--audit-json", "record.json",
                             "--junitxml", "junit.xml", "--audit-report", "report.html")
    cold.assert_outcomes(passed=2)
    # not a TTY here: a start line and an end line, nothing in between for a run of under 10 s
    lines = [line for line in cold.outlines if line.startswith("robustaudit: spec:")]
    assert len(lines) == 2, cold.outlines
    assert "0/8 images" in lines[0] and lines[0].endswith(", cpu")
    assert "8/8 images" in lines[1] and "img/s" in lines[1] and "done in" in lines[1]
    first = record(project)
    assert first["activations"]["from_store"] is False and first["extraction_s"] > 0
    key = first["activations"]["keys"]["representation"]
    assert (store / "entries" / key / "manifest.json").is_file()
    junit = (project.path / "junit.xml").read_text()
    assert junit.count('name="extraction_s"') == 2, "every item of the audit carries the extraction time"
    assert "extracted (representation) in" in (project.path / "report.html").read_text()

    warm = project.runpytest("--audit", "spec.yaml", "--audit-cache-dir", str(store), "--audit-json", "record.json",
                             "--audit-report", "report.html")
    warm.assert_outcomes(passed=2)
    assert not [line for line in warm.outlines if line.startswith("robustaudit: spec:")], "no model ran"
    second = record(project)
    assert second["activations"] == {**first["activations"], "from_store": True, "extracted": []}
    assert second["extraction_s"] == 0
    assert second["layers"][0]["stats"] == first["layers"][0]["stats"]
    assert f"read from the activation store {store}" in (project.path / "report.html").read_text()


def test_quiet_runs_show_no_progress_and_off_keeps_nothing(project):
    result = project.runpytest("--audit", "spec.yaml", "-q", "--audit-cache", "off", "--audit-json", "record.json")
    result.assert_outcomes(passed=2)
    assert not [line for line in result.outlines if "images," in line], result.outlines
    assert record(project)["activations"]["store"].startswith("off")
    assert not (project.path / ".pytest_cache" / "d" / "robustaudit-store").exists()


def test_default_store_lives_in_pytest_cache_dir(project, monkeypatch):
    monkeypatch.delenv("ROBUSTAUDIT_CACHE_DIR")
    project.runpytest("--audit", "spec.yaml").assert_outcomes(passed=2)
    assert list((project.path / ".pytest_cache" / "d" / "robustaudit-store" / "entries").iterdir())


def test_cache_list_prune_clear(project, capsys):
    from pytest_robustaudit.__main__ import main

    store = project.path / "store"
    project.runpytest("--audit", "spec.yaml", "--audit-cache-dir", str(store)).assert_outcomes(passed=2)
    assert main(["cache", "--dir", str(store), "list"]) == 0
    out = capsys.readouterr().out
    assert "factory:" in out and "images (8)" in out and "representation" in out
    assert "1 entry" in out
    assert main(["cache", "--dir", str(store), "prune", "--older-than", "1d"]) == 0
    assert "removed 0 entries" in capsys.readouterr().out
    assert main(["cache", "--dir", str(store), "clear"]) == 0
    assert "removed 1 entry" in capsys.readouterr().out
    assert not list((store / "entries").glob("*")) if (store / "entries").exists() else True


def _pytest(project, *args, env=None):
    return subprocess.Popen([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args], cwd=project.path,
                            env={**os.environ, **(env or {})}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)


def test_kill_9_mid_extraction_then_two_processes_extract_once(project, monkeypatch):
    """A run killed with SIGKILL while writing leaves nothing a later run trusts; then two runs that
    need the same entry (another process and this one) extract it once: one waits, then reads."""
    store = project.path / "store"
    killed = _pytest(project, "--audit", "spec.yaml", "--audit-cache-dir", str(store), env={"DIE_AT_BATCH": "3"})
    out, _ = killed.communicate(timeout=300)
    assert killed.returncode == -9, out
    assert not list((store / "entries").glob("*")) if (store / "entries").exists() else True
    assert list((store / "incomplete").iterdir()), "the killed writer's folder is left, never read"
    other = _pytest(project, "--audit", "spec.yaml", "--audit-cache-dir", str(store), "--audit-json", "other.json")
    monkeypatch.setenv("SLOW_BATCH_S", "2")  # this run holds the lock for ~8 s while the other one starts
    here = project.runpytest("--audit", "spec.yaml", "--audit-cache-dir", str(store), "--audit-json", "here.json")
    out, _ = other.communicate(timeout=300)
    here.assert_outcomes(passed=2)
    assert other.returncode == 0, out
    extracted = [not record(project, name)["activations"]["from_store"] for name in ("here.json", "other.json")]
    assert extracted.count(True) == 1, (extracted, out)
    assert len(list((store / "entries").iterdir())) == 1
    assert record(project, "here.json")["layers"] == record(project, "other.json")["layers"]


def test_progress_lines_are_throttled_in_a_log_and_rewritten_on_a_tty(monkeypatch):
    from pytest_robustaudit.plugin import progress as module

    class Reporter:
        def __init__(self, tty):
            self.isatty, self.lines, self.rewrites = tty, [], []

        def ensure_newline(self):
            pass

        def write_line(self, line):
            self.lines.append(line)

        def write(self, text):
            self.lines.append(text)

        def rewrite(self, line, erase=False):
            self.rewrites.append(line)

        def flush(self):
            pass

    class Config:
        def __init__(self, reporter, verbosity=0):
            self.reporter, self.verbosity = reporter, verbosity
            self.pluginmanager = self

        def get_plugin(self, name):
            return {"terminalreporter": self.reporter, "capturemanager": capture}.get(name)

        def get_verbosity(self):
            return self.verbosity

    class Capture:
        """pytest's capture manager: a line is written only while the capture is suspended."""

        def __init__(self):
            self.suspended = 0

        def global_and_fixture_disabled(self):
            import contextlib

            @contextlib.contextmanager
            def off():
                self.suspended += 1
                yield
            return off()

    capture = Capture()
    clock = {"t": 0.0}
    monkeypatch.setattr(module.time, "monotonic", lambda: clock["t"])
    for tty in (False, True):
        reporter = Reporter(tty)
        shown = module.TerminalProgress(Config(reporter))
        shown.start("spec: model", 1000, "cpu")
        for step in range(1, 101):  # 100 batches over 50 s
            clock["t"] += 0.5
            shown.update(step * 10)
        shown.finish(1000, 50.0)
        if tty:
            assert len(reporter.lines) == 2 and len(reporter.rewrites) == 101  # start, "\n"; one per 0.5 s + end
        else:
            assert len(reporter.lines) == 2 + 5 and not reporter.rewrites  # start, every 10 s, end
            assert reporter.lines[2] == "robustaudit: spec: model: 400/1000 images, 20.0 img/s, ETA 0:30, cpu"
            # each line written with pytest's capture suspended (it runs inside a check), and only those:
            # not once per batch
            assert capture.suspended == len(reporter.lines)
    quiet = Reporter(False)
    silent = module.TerminalProgress(Config(quiet, verbosity=-1))
    silent.start("spec", 10, "cpu")
    silent.finish(10, 1.0)
    assert quiet.lines == []


def test_progress_lines_in_a_pipe_stay_off_the_dot_line_and_out_of_captured_output(project):
    """Issue 26: with stdout a pipe (CI), a progress line written inside a check ends pytest's line of
    result letters and pytest's file prefix is written again after it, so ``spec.yaml ..`` is never split
    (pytest writes a letter on after whatever is on the line) and no progress line is in a failure's
    captured output."""
    import re

    (project.path / "failing.yaml").write_text((project.path / "spec.yaml").read_text().replace(
        "outlier_count: {max: 100}", "outlier_count: {max: 100}\n  rotated_kurtosis_mean: {max: 1}"))
    done = _pytest(project, "--audit", "failing.yaml", "--audit", "spec.yaml", "--audit-cache", "off",
                   "--no-audit-report")
    out, _ = done.communicate(timeout=300)
    lines = out.splitlines()
    progress = [i for i, line in enumerate(lines) if "images, " in line]
    assert len(progress) == 2, out       # a start and an end line, in the first check (the same model serves both)
    assert all(lines[i].startswith("robustaudit: ") for i in progress), out
    letters = re.compile(r"^(?:(\S+\.yaml) )?([.FEsx]+)(?:\s+\[\s*\d+%\])?$")
    rows = [letters.match(line) for line in lines]
    rows = [m for m in rows if m]
    assert rows and all(m.group(1) for m in rows), f"a line of letters without its file:\n{out}"
    by_file: dict[str, str] = {}
    for m in rows:
        by_file[m.group(1)] = by_file.get(m.group(1), "") + m.group(2)
    assert by_file == {"spec.yaml": "..", "failing.yaml": "..F"}, out
    assert "Captured" not in out, out
    assert done.returncode == 1


def test_live_lines_on_a_tty_fit_the_terminal_and_an_erased_line_returns_to_its_start():
    """A live line longer than the terminal wraps, and ``\\r`` then rewrites only its last row (each
    rewrite left a row behind); an erased phase line (spaces to the row's end) must return to the row's
    start, or the next line is written on after the spaces."""
    from pytest_robustaudit.plugin import progress as module

    class Writer:
        fullwidth = 60

    class Reporter:
        isatty, currentfspath, _tw = True, None, Writer()

        def __init__(self):
            self.calls = []

        def ensure_newline(self):
            pass

        def write(self, text):
            self.calls.append(("write", text))

        def rewrite(self, line, erase=False):
            self.calls.append(("rewrite", line))

        def write_line(self, line):
            self.calls.append(("line", line))

        def flush(self):
            pass

    class Config:
        def __init__(self, reporter):
            self.reporter, self.pluginmanager = reporter, self

        def get_plugin(self, name):
            return self.reporter if name == "terminalreporter" else None

        def get_verbosity(self):
            return 0

    reporter = Reporter()
    shown = module.TerminalProgress(Config(reporter))
    label = "a model with a long name: timm:efficientnet_lite0 [efficientnet-lite0-57934424.pth]"
    shown.start(label, 1000, "cpu")
    shown.finish(1000, 50.0)
    shown.phase(label, "analysis: outliers", None)
    shown.phase(label, "analysis: outliers", 0.1)        # quick: erased
    shown.phase(label, "intervals", None)
    texts = [text for _, text in reporter.calls]
    assert all(len(text) < 60 for text in texts), texts
    assert texts[0].endswith("0/1000 images, starting, ETA --, cpu") and "…" in texts[0]
    assert texts[1].endswith("done in 50.0 s, cpu") and texts[2] == "\n"
    erased = texts.index("")
    assert texts[erased + 1] == "\r" and texts[erased + 2].endswith("intervals ...")
