"""The example specs of audits-online/ (hub weights), and open_clip checkpoints audited end to end.

No test here downloads anything: the specs are validated, then run with the hub forced unreachable
and an empty cache (they must fail fast and name the way out); the same architectures with random
weights are audited through the plugin from local checkpoint files.
"""

from __future__ import annotations

import re
import shutil
import textwrap
import time
from pathlib import Path

import pytest

from support import CLIP_ARCHS, PHOTOS, REPO
from pytest_robustaudit import load_spec, standalone
from pytest_robustaudit.models import hub

ONLINE = REPO / "audits-online"
SPECS = sorted(ONLINE.glob("*.yaml"))
#: an offline hub failure of one spec must come back within this many seconds (measured: about
#: 1 s for all three specs; huggingface_hub's own retries would take 30 s or more per spec)
FAST_S = 10.0


def run(pytester, *args):
    return pytester.runpytest("-p", "no:randomly", *args)


# -- (a) the specs are valid, and describe what the README says ---------------------------------
def test_online_specs_exist_outside_audits():
    assert {p.name for p in SPECS} == {"rn50_openai.yaml", "vit_b_32_laion2b.yaml", "resnet50_tv_in1k.yaml"}
    assert not list((REPO / "audits").glob("*online*"))


@pytest.mark.parametrize("path", SPECS, ids=[p.stem for p in SPECS])
def test_online_spec_validates(path):
    registries = standalone()
    spec = load_spec(path, registries, env={})  # no ROBUSTAUDIT_PROBE: the default photos
    assert spec.data.path == PHOTOS
    assert spec.model.checkpoint is None and spec.model.pretrained, "online specs download their weights"
    assert "representation" in spec.layers and spec.checks
    for check in spec.checks:
        assert check.min is not None or check.max is not None
    text = path.read_text()
    assert "NOT measured here" in text  # the bounds are documented expectations, and say so
    if spec.model.source == "open_clip":
        assert "pre_projection" in spec.layers
        assert any(c.metric == "kurtosis_mean" and c.min is not None for c in spec.checks)
    else:
        assert spec.model.describe() == "timm:resnet50/tv_in1k"
        assert any(c.metric == "kurtosis_mean" and c.max is not None for c in spec.checks)
    other = load_spec(path, registries, env={"ROBUSTAUDIT_PROBE": str(REPO / "audits")})
    assert other.data.path == REPO / "audits"


# -- (b) offline: every item fails fast with the way out ----------------------------------------
def test_online_specs_fail_fast_offline_with_the_way_out(pytester, monkeypatch, tmp_path):
    # as tests/test_models.py does: the probe says "unreachable", the cache is empty, so nothing is
    # ever downloaded, even on a machine with network
    monkeypatch.setattr(hub, "hub_reachable", lambda *a, **k: False)
    monkeypatch.setenv("ROBUSTAUDIT_PROBE", str(PHOTOS))
    empty = tmp_path / "empty-cache"
    empty.mkdir()
    folder = pytester.mkdir("audits-online")
    items = 0
    for path in SPECS:
        text = path.read_text()
        assert text.count("\nmodel:\n") == 1
        (folder / path.name).write_text(text.replace("\nmodel:\n", f"\nmodel:\n  cache_dir: {empty}\n"))
        items += len(load_spec(path, standalone(), env={}).checks)
    start = time.monotonic()
    result = run(pytester, "--audit", "audits-online", "--durations=0", "--durations-min=0")
    elapsed = time.monotonic() - start
    result.assert_outcomes(failed=items)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    out = result.stdout.str()
    durations = [float(s) for s in re.findall(r"^([\d.]+)s call ", out, flags=re.M)]
    assert durations and max(durations) < FAST_S, (durations, elapsed)
    assert elapsed < FAST_S * len(SPECS), elapsed
    for what in ("open_clip:RN50/openai", "open_clip:ViT-B-32/laion2b_s34b_b79k", "timm:resnet50/tv_in1k"):
        assert out.count(f"could not fetch the pretrained weights of {what}") >= 1, what
    # every item fails; each spec's first item carries the full message, the others point at it.
    # Counted in the failure reports only: on CI (the CI variable set) pytest's short summary repeats
    # every failure message whole, elsewhere it shows a line cut to the terminal's width
    failures = out.split(" FAILURES ", 1)[1].split(" short test summary info ", 1)[0]
    assert failures.count("Ways out:") == len(SPECS)
    assert failures.count("(the full message is under ") == items - len(SPECS)
    assert failures.count("point `model.checkpoint` in the spec at a local weights file") == len(SPECS)
    assert "set HF_HUB_OFFLINE=1" in out and f"the cache folder {empty}" in out
    assert "timm.create_model('resnet50.tv_in1k', pretrained=True" in out
    assert "open_clip.create_model_and_transforms('RN50', pretrained='openai'" in out
    assert "Traceback" not in out and "def runtest" not in out and "site-packages" not in out
    assert not any(empty.iterdir())  # nothing was written to the cache


# -- (c) the same architectures, random weights, audited from checkpoint files ------------------
CHECKS = """\
kurtosis_mean: {min: 1}
rotated_kurtosis_mean: {min: 2, max: 4, layers: [representation]}
outlier_count: {max: 0, factor: 100}
"""


def clip_spec(arch: str, checkpoint: Path, layers: str = "[representation, pre_projection, blocks.-1]") -> str:
    return textwrap.dedent(f"""\
        model:
          source: open_clip
          name: {arch}
          checkpoint: {checkpoint}
        data: {{path: {PHOTOS}, limit: 4}}
        layers: {layers}
        device: cpu
        checks:
        """) + textwrap.indent(CHECKS, "  ")


SAME_WEIGHTS = """
def test_both_formats_same_weights_same_numbers(audit):
    pt, st = audit("audits/pt.yaml"), audit("audits/safetensors.yaml")
    for fmt, run in (("pt", pt), ("safetensors", st)):
        # content-addressed: the same weights in either format, the same fingerprint
        assert run.result.fingerprint == {fingerprint!r}, fmt
        assert run.result.model == "open_clip:{arch} [clip." + fmt + "]"
        assert run.result.provenance["weights"] == "checkpoint"
        assert run.result.provenance["checkpoint_layout"] == "full model"
        assert run.result.n_images == 4
    dims = {{layer: pt.stats(layer).dim for layer in ("representation", "pre_projection", "blocks.-1")}}
    assert dims == {dims!r}
    assert st.stats("representation").dim == dims["representation"]
    for metric in ("kurtosis_mean", "rotated_kurtosis_mean", "profile_max_over_median"):
        assert pt.value(metric) == st.value(metric), metric
"""
DIMS = {"RN50": {"representation": 1024, "pre_projection": 2048, "blocks.-1": 2048},
        "ViT-B-32": {"representation": 512, "pre_projection": 768, "blocks.-1": 768}}


@pytest.mark.parametrize("arch", CLIP_ARCHS)
def test_open_clip_checkpoints_audited_end_to_end(pytester, clip_checkpoints, arch):
    ckpt = clip_checkpoints[arch]
    folder = pytester.mkdir("audits")
    (folder / "pt.yaml").write_text(clip_spec(arch, ckpt["pt"]))
    # the second format on the representation only: the random rotations of wide layers cost seconds
    (folder / "safetensors.yaml").write_text(clip_spec(arch, ckpt["safetensors"], "[representation]"))
    pytester.makepyfile(test_same_weights=SAME_WEIGHTS.format(fingerprint=ckpt["fingerprint"], arch=arch,
                                                              dims=DIMS[arch]))
    result = run(pytester, "--audit", "audits", "audits", "test_same_weights.py", "-v")
    # pt: 3 layers x 2 metrics + 1 representation-only check; safetensors: 3 checks; the fixture test
    # reuses their runs
    result.assert_outcomes(passed=7 + 3 + 1)
    result.stdout.fnmatch_lines([
        "audits/pt.yaml::representation::kurtosis_mean PASSED*",
        "audits/pt.yaml::representation::rotated_kurtosis_mean PASSED*",
        "audits/pt.yaml::representation::outlier_count PASSED*",
        "audits/pt.yaml::pre_projection::kurtosis_mean PASSED*",
        "audits/pt.yaml::pre_projection::outlier_count PASSED*",
        "audits/pt.yaml::blocks.-1::kurtosis_mean PASSED*",
        "audits/pt.yaml::blocks.-1::outlier_count PASSED*",
        "audits/safetensors.yaml::representation::kurtosis_mean PASSED*",
    ])


def test_online_spec_runs_from_a_local_checkpoint(pytester, clip_checkpoints, monkeypatch):
    """Way out (a): the shipped RN50 spec with `pretrained` swapped for `checkpoint` runs offline."""
    from pytest_robustaudit.models import open_clip_source

    monkeypatch.setattr(open_clip_source, "hub_download", lambda *a, **k: pytest.fail("must not try to download"))
    text = (ONLINE / "rn50_openai.yaml").read_text()
    assert "  pretrained: openai" in text
    # docs/models.md: a local copy of OpenAI weights needs the tag's QuickGELU spelled out
    local = re.sub(r"  pretrained: openai.*\n", f"  checkpoint: {clip_checkpoints['RN50']['safetensors']}\n"
                   "  options: {force_quick_gelu: true}\n", text)
    local = local.replace("device: auto", "device: cpu")
    folder = pytester.mkdir("audits")
    (folder / "rn50_local.yaml").write_text(local)
    shutil.copy(PHOTOS / "astronaut.jpg", pytester.path / "probe.jpg")
    monkeypatch.setenv("ROBUSTAUDIT_PROBE", str(pytester.path))  # one image: quick
    result = run(pytester, "--audit", "audits", "-rA")
    out = result.stdout.str()
    # random weights are not OpenAI CLIP: the outlier-feature checks fail, each with measured vs bound
    assert result.ret == pytest.ExitCode.TESTS_FAILED, out
    assert "model: open_clip:RN50 [clip.safetensors]" in out
    assert "could not fetch" not in out and "Traceback" not in out


# -- (d) the paper's comparison (audits-online/paper/): valid, sourced bands, offline fail fast ------
PAPER = sorted((ONLINE / "paper").glob("*.yaml"))


def test_paper_specs_validate_with_sourced_accuracy_bands():
    registries = standalone()
    assert {p.stem for p in PAPER} == {"rn50_openai_zero_shot", "vit_b_32_laion2b_zero_shot", "resnet50_tv_in1k",
                                      "vit_b_16_clip_openai_ft_in1k"}
    for path in PAPER:
        spec = load_spec(path, registries, env={})
        text = path.read_text()
        assert "Source:" in text and "NOT measured here" in text, path.name
        top1 = [c for c in spec.checks if c.metric == "top1_accuracy"]
        assert top1 and top1[0].min is not None and top1[0].max is not None, path.name
        assert spec.head.explicit and spec.head.kind == ("zero-shot" if spec.model.source == "open_clip" else "classifier")
        assert spec.model.pretrained and spec.model.checkpoint is None
    rn50 = load_spec(ONLINE / "paper" / "rn50_openai_zero_shot.yaml", registries, env={})
    band = next(c for c in rn50.checks if c.metric == "top1_accuracy")
    assert band.min < 0.598 < band.max  # open_clip's published zero-shot top-1 of RN50/openai


def test_paper_specs_fail_fast_offline_with_the_way_out(pytester, monkeypatch, tmp_path):
    monkeypatch.setattr(hub, "hub_reachable", lambda *a, **k: False)
    monkeypatch.setenv("ROBUSTAUDIT_IMAGENET", str(PHOTOS))
    empty = tmp_path / "empty-cache"
    empty.mkdir()
    folder = pytester.mkdir("paper")
    items = 0
    for path in PAPER:
        text = path.read_text()
        (folder / path.name).write_text(text.replace("\nmodel:\n", f"\nmodel:\n  cache_dir: {empty}\n"))
        items += len(load_spec(path, standalone(), env={}).checks)
    start = time.monotonic()
    result = run(pytester, "--audit", "paper")
    elapsed = time.monotonic() - start
    result.assert_outcomes(failed=items)
    out = result.stdout.str()
    assert elapsed < FAST_S * len(PAPER), elapsed
    assert out.count("Ways out:") == len(PAPER)
    assert "Traceback" not in out and not any(empty.iterdir())
