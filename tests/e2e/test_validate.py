"""``python -m pytest_robustaudit validate``: checks specs without loading anything (pre-commit)."""

from __future__ import annotations

import subprocess
import sys

from support import REPO


def validate(*paths, cwd):
    return subprocess.run([sys.executable, "-m", "pytest_robustaudit", "validate", *map(str, paths)],
                          cwd=cwd, capture_output=True, text=True, timeout=120)


def test_shipped_specs_are_valid():
    done = validate("audits/", cwd=REPO)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "specs valid" in done.stdout and "Warning" not in done.stdout


def test_broken_spec_fails_with_located_message(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "bad.yaml").write_text("model: {source: timm, name: resnet18}\ndata: images\n"
                                       "checks: {kurtosis_mean: {min: 5, max: 1}}\n")
    done = validate("bad.yaml", cwd=tmp_path)
    assert done.returncode == 1
    assert "bad.yaml:2: data.path: no image files found" in done.stdout
    assert "bad.yaml:3: checks.kurtosis_mean: min 5 is greater than max 1" in done.stdout
    assert "Traceback" not in done.stdout + done.stderr


def test_nothing_to_validate(tmp_path):
    assert validate("missing/", cwd=tmp_path).returncode == 2
    (tmp_path / "empty").mkdir()
    done = validate("empty", cwd=tmp_path)
    assert done.returncode == 1 and "no audit spec found" in done.stderr
