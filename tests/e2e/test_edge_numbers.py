"""Numeric edge cases end to end: each is a failing check with an explanation, never a crash or a silent NaN."""

from __future__ import annotations

import textwrap

import pytest

FACTORY = '''
import torch
from torch import nn
from torchvision import transforms


class Fixed(nn.Module):
    """Maps an image to a chosen kind of representation, for edge cases."""

    def __init__(self, kind):
        super().__init__()
        self.kind = kind
        self.scale = nn.Parameter(torch.ones(1))

    def forward(self, x):
        pooled = x.mean(dim=(2, 3))                       # [B, 3], differs per image
        if self.kind == "nan":
            out = torch.cat([pooled, pooled * 2, pooled * 3], dim=1)
            out[:, 0] = float("nan")
            return out
        if self.kind == "half_nan":
            out = torch.cat([pooled, pooled * 2, pooled ** 2], dim=1)
            out[::2, 0] = float("inf")
            return out
        if self.kind == "constant":
            return torch.ones(x.shape[0], 16) * self.scale
        if self.kind == "d1":
            return pooled[:, :1]
        if self.kind == "interrupt" and not __import__("os").environ.get("LET_IT_RUN"):
            raise KeyboardInterrupt
        if self.kind == "raise":
            raise RuntimeError("mat1 and mat2 shapes cannot be multiplied (4x3 and 5x2)")
        if self.kind == "die":  # a worker killed mid-extraction (out of memory, a segfault)
            import os, signal
            os.kill(os.getpid(), signal.SIGKILL)
        return torch.cat([pooled, pooled ** 2, pooled ** 3, torch.sin(pooled * 7)], dim=1)


def build(kind="plain"):
    preprocess = transforms.Compose([transforms.Resize(16), transforms.CenterCrop(16), transforms.ToTensor()])
    return Fixed(kind), preprocess
'''


def write_spec(pytester, kind: str, checks: str, data: str = "images") -> None:
    pytester.makepyfile(edge_factory=FACTORY)
    pytester.makefile(".yaml", spec=textwrap.dedent(f"""\
        model:
          source: factory
          factory: edge_factory.py:build
          options: {{kind: {kind}}}
        data: {data}
        device: cpu
        checks:
        """) + textwrap.indent(textwrap.dedent(checks), "  "))


@pytest.fixture
def images(pytester):
    from PIL import Image

    folder = pytester.mkdir("images")
    for i in range(4):
        Image.new("RGB", (20, 20), (60 * i, 30, 200 - 40 * i)).save(folder / f"im{i}.png")
    return folder


def test_all_nan_activations_fail_with_explanation(pytester, images):
    write_spec(pytester, "nan", "kurtosis_mean: {min: 0}\n")
    result = pytester.runpytest("--audit", "spec.yaml")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*could not be measured: all 4 images produced NaN/Inf activations*"])


def test_some_nonfinite_images_are_excluded_and_said(pytester, images):
    write_spec(pytester, "half_nan", "kurtosis_mean: {min: 0}\nprofile_kurtosis: {max: 1}\n")
    result = pytester.runpytest("--audit", "spec.yaml")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*images: 2 from*2 with NaN/Inf activations excluded*"])


def test_constant_representation(pytester, images):
    write_spec(pytester, "constant", "kurtosis_mean: {min: 0}\noutlier_count: {max: 0}\n")
    result = pytester.runpytest("--audit", "spec.yaml")
    result.assert_outcomes(failed=1, passed=1)   # no feature stands out: 0 outliers is a defined answer
    result.stdout.fnmatch_lines(["*kurtosis is undefined: every image's feature vector*is constant*"])


def test_single_feature(pytester, images):
    write_spec(pytester, "d1", "kurtosis_mean: {min: 0}\n")
    result = pytester.runpytest("--audit", "spec.yaml")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*single feature (d = 1)*"])


def test_single_image(pytester):
    from PIL import Image

    folder = pytester.mkdir("one")
    Image.new("RGB", (20, 20), (10, 200, 30)).save(folder / "only.png")
    write_spec(pytester, "plain", "kurtosis_mean: {min: 1}\nprofile_max_over_median: {min: 1}\n", data="one")
    result = pytester.runpytest("--audit", "spec.yaml")
    result.assert_outcomes(passed=2)


def test_unreadable_images_are_skipped_and_counted(pytester, images):
    (images / "broken.jpg").write_text("not a jpeg")
    write_spec(pytester, "plain", "kurtosis_mean: {max: 1}\n")
    result = pytester.runpytest("--audit", "spec.yaml")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*images: 4 from*1 unreadable skipped*"])


def test_a_failing_forward_is_one_plain_message(pytester, images):
    write_spec(pytester, "raise", "kurtosis_mean: {min: 0}\noutlier_count: {max: 3}\n")
    result = pytester.runpytest("--audit", "spec.yaml")
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(["*the forward pass of factory:*edge_factory.py:build failed on a batch of shape "
                                 "[[]4, 3, 16, 16[]]: RuntimeError: mat1 and mat2 shapes cannot be multiplied*"
                                 "(raised at *edge_factory.py:*)"])
    assert "Traceback" not in result.stdout.str()


def test_interrupted_run_saves_no_baseline_and_a_rerun_completes(pytester, images, monkeypatch):
    write_spec(pytester, "interrupt", "kurtosis_mean: {min_ratio: 0.5}\n")
    spec = pytester.path / "spec.yaml"
    spec.write_text(spec.read_text().replace("device: cpu", "device: cpu\nreference: {baseline: base.json}"))
    result = pytester.runpytest_subprocess("--audit", "spec.yaml", "--audit-save-baseline")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["*run interrupted, no baseline saved*"])
    assert not (pytester.path / "base.json").exists()
    assert not list(pytester.path.glob(".base.json*"))
    monkeypatch.setenv("LET_IT_RUN", "1")
    rerun = pytester.runpytest_subprocess("--audit", "spec.yaml", "--audit-save-baseline")
    rerun.assert_outcomes(skipped=1)
    assert (pytester.path / "base.json").exists()
    pytester.runpytest_subprocess("--audit", "spec.yaml").assert_outcomes(passed=1)


def test_a_baseline_that_cannot_be_saved_fails_the_run_with_the_reason(pytester, images, monkeypatch):
    monkeypatch.setenv("LET_IT_RUN", "1")
    write_spec(pytester, "interrupt", "kurtosis_mean: {min_ratio: 0.5}\n")
    spec = pytester.path / "spec.yaml"
    (pytester.path / "blocker").write_text("a file where the baseline's folder should be")
    spec.write_text(spec.read_text().replace("device: cpu", "device: cpu\nreference: {baseline: blocker/base.json}"))
    result = pytester.runpytest("--audit", "spec.yaml", "--audit-save-baseline")
    result.assert_outcomes(skipped=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["robustaudit: could not save the baseline *blocker/base.json of *spec.yaml "
                                 "(key reference.baseline): *; point it at a writable path"])
    assert "Traceback" not in result.stdout.str()


def test_a_worker_killed_mid_extraction_is_listed_and_the_rest_reported(pytester, images):
    pytest.importorskip("xdist", reason="pytest-xdist is not installed")
    write_spec(pytester, "die", "kurtosis_mean: {min: 0}\n")
    (pytester.path / "spec.yaml").rename(pytester.path / "dies.yaml")
    write_spec(pytester, "plain", "kurtosis_mean: {min: 0}\n")
    result = pytester.runpytest_subprocess("-n", "2", "--dist", "loadgroup", "--max-worker-restart", "1",
                                           "--audit", "dies.yaml", "--audit", "spec.yaml", "--audit-json", "r.json",
                                           "-p", "no:cacheprovider")
    outcomes = result.parseoutcomes()
    assert outcomes["passed"] == 1 and outcomes["failed"] >= 1  # xdist may retry it on the replacement worker
    result.stdout.fnmatch_lines(["dies.yaml * ERROR: worker 'gw*' crashed while running 'dies.yaml::*"])
    from pytest_robustaudit.results.record import read_record

    run_info, found = read_record(pytester.path / "r.json")
    assert [r.spec_path.name for r in found] == ["spec.yaml"]
    (error,) = run_info["errors"]
    assert error["spec_path"].endswith("dies.yaml")
    assert error["message"].startswith("worker 'gw") and error["message"].splitlines()[0].endswith(
        "crashed while running 'dies.yaml::representation::kurtosis_mean' (no audit result reached the report)")
    assert "dies.yaml" in (pytester.path / "robustaudit-report.html").read_text()
