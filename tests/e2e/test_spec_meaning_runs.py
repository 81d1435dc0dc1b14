"""The spec means what it says, through pytest (issue 27): default layers where a metric applies (known at
collection for timm, dropped with a note at run time for a factory), random weights said in every output,
and a smoke run (``--audit-limit``) marked in every output.  One cheap run: timm's 0.5M-parameter
``test_resnet`` and a tiny factory on a few generated images."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from support import tiny_classifier_factory


def _images(folder, names):
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        Image.new("RGB", (24, 24), ((40 * i) % 255, 90, 200 - 20 * i)).save(folder / name)


@pytest.fixture
def two_specs(pytester):
    wnids = ["n01440764", "n01443537"]
    _images(pytester.path / "probe", [f"{wnids[i % 2]}_{i}.png" for i in range(6)])
    for label in ("0", "1", "2"):
        _images(pytester.path / "probe3" / label, [f"{label}_{i}.png" for i in range(2)])
    (pytester.path / "tiny.py").write_text(tiny_classifier_factory())
    # timm, random init, no `pretrained`: its architecture is known at collection, so top1_accuracy (the
    # head reads width 96) is collected on the layers of that width only
    (pytester.path / "random.yaml").write_text(
        "name: random-timm\nmodel: {source: timm, name: test_resnet}\ndata: {path: probe, labels: wnid}\n"
        "layers: [representation, blocks.1]\ndevice: cpu\n"
        "checks:\n  kurtosis_mean: {min: 1}\n  top1_accuracy: {min: 0}\n")
    # a factory: its layers are known only when it runs; module:conv (width 8) does not fit the head (6)
    (pytester.path / "factory.yaml").write_text(
        "name: tiny-factory\nmodel: {source: factory, factory: tiny.py:build}\ndata: {path: probe3, labels: folder}\n"
        "layers: [representation, module:conv]\ndevice: cpu\n"
        "checks:\n  top1_accuracy: {min: 0}\n")
    return pytester


def test_defaults_drops_notices_and_a_smoke_run_in_every_output(two_specs):
    pytester = two_specs
    result = pytester.runpytest("--audit", "random.yaml", "--audit", "factory.yaml", "--audit-limit", "4",
                                "--audit-json", "audit.json", "--audit-markdown", "audit.md", "-rs", "-v")
    out = result.stdout.str()
    # collection knew test_resnet's widths: no top1_accuracy item on blocks.1
    assert "random.yaml::representation::top1_accuracy PASSED" in out
    assert "random.yaml::blocks.1::top1_accuracy" not in out and "random.yaml::blocks.1::kurtosis_mean PASSED" in out
    # the factory's default layer module:conv was dropped at run time, with the reason
    assert "factory.yaml::module:conv::top1_accuracy SKIPPED" in out
    assert "dropped: top1_accuracy is not checked on layer 'module:conv'" in out
    result.assert_outcomes(passed=4, skipped=1)
    assert result.ret == 0
    # the terminal: the header and each notice
    assert "robustaudit: smoke run (--audit-limit 4)" in out
    assert "robustaudit: notice: random-timm: random weights: timm:test_resnet has neither `pretrained` nor" in out
    assert "robustaudit: notice: tiny-factory: dropped: top1_accuracy" in out
    # the record: provenance notices, the limit per audit and for the run, the dropped check's reason
    record = json.loads((pytester.path / "audit.json").read_text())
    assert record["run"]["audit_limit"] == 4
    audits = {a["name"]: a for a in record["audits"]}
    timm_audit, factory = audits["random-timm"], audits["tiny-factory"]
    assert any(n.startswith("random weights") for n in timm_audit["provenance"]["notices"])
    assert any(n.startswith("smoke run (--audit-limit 4)") for n in factory["provenance"]["notices"])
    assert timm_audit["provenance"]["audit_limit"] == 4 and timm_audit["n_images"] == 4
    dropped = [c for c in factory["checks"] if c["layer"] == "module:conv"]
    assert dropped and dropped[0]["skip_reason"].startswith("dropped: ")
    # the Markdown summary and the HTML report
    markdown = (pytester.path / "audit.md").read_text()
    assert "### Notices" in markdown and "random weights" in markdown and "smoke run" in markdown
    html = (pytester.path / "robustaudit-report.html").read_text()
    assert 'class="notice"' in html and "random weights" in html and "dropped: top1_accuracy" in html


def test_a_smoke_run_cannot_save_baselines_and_takes_a_whole_number(pytester):
    (pytester.path / "x.yaml").write_text("model: {source: timm, name: test_resnet}\ndata: .\n"
                                          "checks: {kurtosis_mean: {min: 1}}\n")
    saving = pytester.runpytest("--audit", "x.yaml", "--audit-limit", "5", "--audit-save-baseline")
    assert saving.ret == pytest.ExitCode.USAGE_ERROR
    assert "must not become a baseline" in saving.stderr.str()
    wrong = pytester.runpytest("--audit", "x.yaml", "--audit-limit", "ten")
    assert wrong.ret == pytest.ExitCode.USAGE_ERROR and "--audit-limit 'ten'" in wrong.stderr.str()
