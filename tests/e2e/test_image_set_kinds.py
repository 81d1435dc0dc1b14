"""A kind of image set registered from a conftest (issue 24): `shifts: [{kind: jpeg, quality: 10}]` audits the
probe recompressed as JPEG through the same measuring path as a corruption, with located spec errors.

A tiny factory classifier (tests/support.py) on 9 generated labelled images; the conftest is what a user
would write (docs/extending.md#your-own-image-set)."""

from __future__ import annotations

import json
import textwrap

import numpy as np
import pytest

from support import tiny_classifier_factory

CONFTEST = '''
import io

import numpy as np
from PIL import Image

from pytest_robustaudit import ImageSetKind, Param


def recompress(crop, rng, quality):
    """The eval crop saved as a JPEG of the given quality and read back."""
    buffer = io.BytesIO()
    Image.fromarray(crop).save(buffer, format="JPEG", quality=quality)
    return np.asarray(Image.open(buffer).convert("RGB"))


def pytest_robustaudit_register_image_sets(image_sets):
    image_sets.register(ImageSetKind(
        "jpeg", "the probe images recompressed as JPEG",
        params={"quality": Param(int, 75, "JPEG quality, 1 (worst) to 95", minimum=1)},
        transform=recompress))
'''


@pytest.fixture
def project(pytester):
    from PIL import Image

    (pytester.path / "tiny_kind_factory.py").write_text(tiny_classifier_factory())
    rng = np.random.default_rng(0)
    for label in ("0", "1", "2"):
        (pytester.path / "images" / label).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)).save(
                pytester.path / "images" / label / f"{i}.png")
    pytester.makeconftest(CONFTEST)
    return pytester


def spec(shifts: str, checks: str) -> str:
    return textwrap.dedent("""\
        model: {source: factory, factory: tiny_kind_factory.py:build}
        data: {path: images, batch_size: 4}
        layers: [representation]
        device: cpu
        shifts:
        """) + textwrap.indent(shifts, "  ") + "checks:\n" + textwrap.indent(checks, "  ")


def test_a_registered_kind_is_measured_stored_and_scored_like_a_corruption(project):
    project.makefile(".yaml", spec=spec("- {kind: jpeg, quality: 5}\n",
                                        "corruption_drop: {corruption: jpeg/quality=5, min: -1, max: 1}\n"))
    args = ["-p", "no:randomly", "--audit", "spec.yaml", "--audit-cache-dir", "store", "--no-audit-report"]
    result = project.runpytest(*args, "--audit-json", "cold.json")
    result.assert_outcomes(passed=1)
    audit = json.loads((project.path / "cold.json").read_text())["audits"][0]
    metrics = audit["layers"][0]["metrics"]
    details = metrics["corruption_accuracy"]["details"]
    assert "jpeg/quality=5" in json.dumps(details), details
    assert "extraction: jpeg/quality=5" in audit["phases"]     # its own set, extracted once
    project.runpytest(*args, "--audit-json", "warm.json").assert_outcomes(passed=1)
    warm = json.loads((project.path / "warm.json").read_text())["audits"][0]
    assert "extraction: jpeg/quality=5" not in warm["phases"]  # read back from the store
    assert warm["layers"][0]["metrics"]["corruption_drop"]["value"] == metrics["corruption_drop"]["value"]


@pytest.mark.parametrize("entry, message", [
    ("- {kind: jpg, quality: 5}\n", "'jpg' is not a kind of image set. Did you mean: jpeg?"),
    ("- {kind: jpeg, quality: high}\n", "shifts[0].quality: expected int, got"),
    ("- {kind: jpeg, quality: 0}\n", "shifts[0].quality: 0 is below the minimum 1"),
    ("- {kind: jpeg, qualty: 5}\n", "shifts[0].qualty: unknown key 'qualty'. Did you mean: quality?"),
    ("- {kind: null}\n", "shifts[0].kind: expected the name of a kind of image set, got nothing (null)"),
])
def test_kind_entries_are_located_spec_errors(project, entry, message):
    project.makefile(".yaml", spec=spec(entry, "kurtosis_mean: {min: 0}\n"))
    result = project.runpytest("-p", "no:randomly", "--audit", "spec.yaml", "--no-audit-report")
    out = result.stdout.str()
    assert message in out and "spec.yaml:6" in out, out
    assert "Traceback" not in out
