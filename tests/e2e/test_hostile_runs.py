"""Hostile inputs end to end: every run ends within seconds, says what went wrong where, and keeps
every good spec's results (issue 10).

Runs that would hang if a fix regressed (symlink loops, a FIFO) carry a pytest-timeout mark, which
interrupts a Python loop or a blocked open() with SIGALRM.
"""

from __future__ import annotations

import json
import os
import shutil
import textwrap

import pytest

FACTORY = '''
import os, sys, time, warnings
import torch
from torch import nn
from torchvision import transforms

BUILDS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "builds.txt")


class Tiny(nn.Module):
    def __init__(self, kind):
        super().__init__()
        self.kind, self.calls = kind, 0

    def forward(self, x):
        self.calls += 1
        p = x.mean(dim=(2, 3))
        if self.kind == "width" and self.calls > 1:
            return torch.cat([p, p], 1)
        return torch.cat([p, p ** 2, p ** 3, torch.sin(p * 7)], 1)


def build(kind="plain"):
    with open(BUILDS, "a") as log:
        log.write(kind + "\\n")
    if kind == "exit":
        sys.exit(2)
    if kind == "slow":
        time.sleep(4)
    if kind == "flaky" and open(BUILDS).read().count("flaky") == 1:
        raise ConnectionError("download interrupted")
    preprocess = transforms.Compose([transforms.Resize(16), transforms.CenterCrop(16), transforms.ToTensor()])
    if kind == "warn":
        def warned(image):
            warnings.warn("an old preprocessing API", UserWarning)
            return preprocess(image)
        return Tiny(kind), warned
    return Tiny(kind), preprocess
'''


def spec(kind: str = "plain", checks: str = "kurtosis_mean: {min: 0}\noutlier_count: {max: 100}\n",
         data: str = "photos", device: str = "cpu") -> str:
    return textwrap.dedent(f"""\
        model: {{source: factory, factory: factory.py:build, options: {{kind: {kind}}}}}
        data: {{path: {data}, batch_size: 2}}
        device: {device}
        checks:
        """) + textwrap.indent(checks, "  ")


@pytest.fixture
def audits(pytester):
    """audits/ with the factory, four tiny photos and one good spec; returns the folder."""
    from PIL import Image

    folder = pytester.mkdir("audits")
    (folder / "factory.py").write_text(FACTORY)
    (folder / "photos").mkdir()
    for i in range(4):
        Image.new("RGB", (20, 20), (60 * i, 30, 200 - 40 * i)).save(folder / "photos" / f"im{i}.png")
    (folder / "good.yaml").write_text(spec())
    return folder


def builds(audits, kind: str) -> int:
    log = audits / "builds.txt"
    return log.read_text().split().count(kind) if log.exists() else 0


# ---- collection ---------------------------------------------------------------------------


@pytest.mark.timeout(120)
def test_collection_skips_probe_folders_and_loops_keeps_tests_and_positional_paths(pytester, audits):
    photos = audits / "photos"
    for name, target in (("a", "."), ("b", ".."), ("c", "a")):
        os.symlink(target, photos / name)
    os.mkfifo(photos / "x.jpg")                          # opening it would block for ever
    (photos / "test_not_collected.py").write_text("def test_no():\n    assert False\n")
    (audits / "helpers").mkdir()
    (audits / "helpers" / "test_helpers.py").write_text("def test_helper():\n    pass\n")   # still collected
    os.symlink("..", audits / "helpers" / "up")
    pytester.makepyfile(test_other="def test_other():\n    pass\n")
    result = pytester.runpytest("--audit", "audits", "test_other.py")
    result.assert_outcomes(passed=4)                      # 2 checks + test_helper + test_other
    result.stdout.fnmatch_lines(["*good*PASS*"])
    record_run = pytester.runpytest("--audit", "audits", "--audit-json", "r.json", "-q")
    skipped = json.loads((pytester.path / "r.json").read_text())["audits"][0]["skipped"]
    assert [(s["path"].rsplit("/", 1)[-1], s["reason"]) for s in skipped] == [
        ("x.jpg", "not a regular file (a named pipe (FIFO)), so it is not opened")], record_run.stdout.str()


def test_node_ids_on_the_command_line_still_select(pytester, audits):
    result = pytester.runpytest("--audit", "audits", "audits/good.yaml::representation::kurtosis_mean")
    result.assert_outcomes(passed=1)


def test_unreadable_folder_and_dangling_spec_links_are_collection_errors_naming_them(pytester, audits):
    (audits / "secret").mkdir()
    os.symlink("nowhere.yaml", audits / "dangling.yaml")
    os.symlink("loop.yaml", audits / "loop.yaml")
    # root reads every folder, so deny one the way `chmod 000` does for other users (during this run only)
    pytester.makeconftest("""
        import os
        _real = os.scandir

        def _deny(path="."):
            if os.fspath(path).endswith("secret"):
                raise PermissionError(13, "Permission denied", os.fspath(path))
            return _real(path)

        def pytest_configure(config):
            os.scandir = _deny

        def pytest_unconfigure(config):
            os.scandir = _real
    """)
    result = pytester.runpytest("--audit", "audits", "--continue-on-collection-errors")
    result.assert_outcomes(passed=2, errors=3)
    out = result.stdout.str()
    assert "audits/secret: cannot list the folder under --audit: Permission denied" in out
    assert "dangling.yaml: the symbolic link leads nowhere" in out and "loop.yaml: the symbolic link leads nowhere" in out
    assert "Traceback" not in out and "denied" in out
    result.stdout.fnmatch_lines(["*good*PASS*", "*secret*ERROR*cannot list the folder*"])
    named = pytester.runpytest("--audit", "audits/loop.yaml")
    assert named.ret == pytest.ExitCode.USAGE_ERROR
    named.stderr.fnmatch_lines(["*loop.yaml: a symbolic link that leads nowhere (a loop*"])


def test_a_deeply_nested_spec_is_a_located_error_not_internalerror(pytester, audits):
    (audits / "deep.yaml").write_text("model: " + "[" * 5000 + "]" * 5000 + "\n")
    result = pytester.runpytest("--audit", "audits/deep.yaml")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()
    result.stdout.fnmatch_lines(["*deep.yaml:1: the spec nests more than 50 levels*"])


def test_a_typo_in_audit_device_is_a_usage_error(pytester, audits):
    result = pytester.runpytest("--audit", "audits", "--audit-device", "tpu")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--audit-device 'tpu' is not a device; use auto, cpu, cuda, cuda:N or mps*"])


# ---- running ------------------------------------------------------------------------------


def test_model_faults_are_audit_errors_naming_spec_and_key_and_good_specs_keep_results(pytester, audits):
    import torch

    if torch.cuda.device_count() > 7:
        pytest.skip("this machine has a cuda:7")
    (audits / "width.yaml").write_text(spec("width"))
    (audits / "exits.yaml").write_text(spec("exit"))
    (audits / "gpu7.yaml").write_text(spec(device="cuda:7"))
    result = pytester.runpytest("--audit", "audits")
    result.assert_outcomes(passed=2, failed=6)
    out = result.stdout.str()
    assert "width: factory:" in out and "layer 'representation': batch has 6 features, earlier batches 12" in out
    assert "exits: factory '" in out and "(key model.factory) called sys.exit(2)" in out
    assert "gpu7: device 'cuda:7' (the spec's 'device:' key, or --audit-device)" in out
    assert "Traceback" not in out and out.count("(the full message is under") == 3
    assert builds(audits, "width") == 1 and builds(audits, "exit") == 1


def test_any_error_is_remembered_shown_trimmed_once_and_kept_short_in_the_record(pytester, audits):
    (audits / "warns.yaml").write_text(spec("warn", checks="kurtosis_mean: {min: 0}\noutlier_count: {max: 9}\n"
                                                         "profile_max_over_median: {min: 0}\n"))
    result = pytester.runpytest("--audit", "audits", "-W", "error::UserWarning", "--audit-json", "r.json")
    result.assert_outcomes(passed=2, failed=3)
    assert builds(audits, "warn") == 1                    # not rebuilt for each of its checks
    out = result.stdout.str()
    assert "UserWarning: an old preprocessing API" in out and out.count("(the full message is under") == 2
    assert "/_pytest/" not in out and "/pluggy/" not in out   # pytest's own frames are trimmed
    assert len(out.splitlines()) < 120
    errors = json.loads((pytester.path / "r.json").read_text())["run"]["errors"]
    assert len(errors) == 1 and errors[0]["message"].startswith("UserWarning: an old preprocessing API")
    assert "raised at" in errors[0]["message"] and len(errors[0]["message"]) < 1000


def test_a_timeout_is_remembered_for_the_audits_other_checks(pytester, audits):
    pytest.importorskip("pytest_timeout")
    (audits / "slow.yaml").write_text(spec("slow"))
    result = pytester.runpytest("--audit", "audits/slow.yaml", "--timeout", "1")
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(["*Timeout (>1.0s) from pytest-timeout*", "*(the full message is under*"])
    assert builds(audits, "slow") == 1


def test_a_rerun_retries_an_errored_audit_once_and_never_re_extracts_a_verdict(pytester, audits):
    pytest.importorskip("pytest_rerunfailures")
    (audits / "flaky.yaml").write_text(spec("flaky"))
    (audits / "failing.yaml").write_text(spec("failing", checks="kurtosis_mean: {max: 1}\noutlier_count: {max: 100}\n"))
    result = pytester.runpytest("--audit", "audits/flaky.yaml", "--audit", "audits/failing.yaml", "--reruns", "1")
    outcomes = result.parseoutcomes()
    assert (outcomes["passed"], outcomes["failed"], outcomes["rerun"]) == (3, 1, 2), outcomes
    assert builds(audits, "flaky") == 2                   # the download error was retried once, then passed
    assert builds(audits, "failing") == 1                 # a failed verdict is not a reason to run the model again


# ---- outputs ------------------------------------------------------------------------------


def test_non_utf8_file_names_never_cost_the_outputs(pytester, audits):
    photos = audits / "photos"
    shutil.copy(photos / "im0.png", os.fsdecode(bytes(photos) + b"/caf\xe9.png"))
    (photos / os.fsdecode(b"\xff.jpg")).write_text("not an image")
    shutil.copy(audits / "good.yaml", os.fsdecode(bytes(audits) + b"/g\xf6od.yaml"))
    # pytest's own cache cannot store such node ids (its UnicodeEncodeError, after our outputs are written)
    result = pytester.runpytest("--audit", "audits", "--audit-json", "r.json", "--audit-markdown", "s.md",
                                "-p", "no:cacheprovider")
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(["*g\\udcf6od*PASS*"])   # escaped in the terminal, as pytest shows node ids
    assert (pytester.path / "robustaudit-report.html").exists() and (pytester.path / "s.md").exists()
    from pytest_robustaudit.results.record import read_record

    _, results = read_record(pytester.path / "r.json")
    assert sorted(r.name for r in results) == ["good", os.fsdecode(b"g\xf6od")]
    assert {s.path.name for r in results for s in r.skipped} == {os.fsdecode(b"\xff.jpg")}


def test_one_output_that_fails_costs_no_other(pytester, audits):
    pytester.makeconftest("""
        def pytest_robustaudit_report_sections(results):
            raise RuntimeError("a broken report plugin")
    """)
    result = pytester.runpytest("--audit", "audits", "--audit-json", "r.json", "--audit-markdown", "s.md")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*could not write the report to*RuntimeError: a broken report plugin*"])
    assert (pytester.path / "r.json").exists() and (pytester.path / "s.md").exists()


def test_an_unexpected_error_in_a_registering_hook_is_reported_not_internalerror(pytester, audits):
    """A metrics plugin that raises while registering stops the run with its error shown once, and the
    outputs are still written (no INTERNALERROR from the summary or the report)."""
    pytester.makeconftest("""
        def pytest_robustaudit_register_metrics(metrics):
            raise RuntimeError("a broken metrics plugin")
    """)
    result = pytester.runpytest("--audit", "audits/good.yaml", "--audit-json", "record.json")
    out = result.stdout.str() + result.stderr.str()
    assert "INTERNALERROR" not in out and "RuntimeError: a broken metrics plugin" in out
    assert result.ret in (pytest.ExitCode.INTERRUPTED, pytest.ExitCode.TESTS_FAILED)
    assert (pytester.path / "record.json").exists()


def test_resamples_beyond_the_limit_in_the_ini_is_a_usage_error_not_a_failure_per_audit(pytester, audits):
    result = pytester.runpytest("--audit", "audits", "-o", "audit_resamples=100000000")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "ini key audit_resamples must be at most 100000, got 100000000" in result.stderr.str()
    assert builds(audits, "plain") == 0, "refused before any model is built"


def test_an_unusable_store_folder_costs_no_audit_and_no_output_that_can_be_written(pytester, audits):
    """As a user whose home and checkout are read-only (simulated with a path through a regular file,
    which root cannot write either): a private store, one warning, every writable output written."""
    (pytester.path / "blocker").write_text("")
    result = pytester.runpytest("--audit", "audits", "--audit-cache-dir", "blocker/store", "--audit-json", "r.json",
                                "--audit-report", "blocker/report.html")
    result.assert_outcomes(passed=2)
    out = result.stdout.str()
    assert out.count("the activation store folder") == 1 and "cannot be used" in out and "--audit-cache-dir" in out
    assert "could not write the report to" in out and "blocker/report.html" in out
    record = json.loads((pytester.path / "r.json").read_text())
    assert record["audits"][0]["activations"]["store"].startswith("private temporary store (")
