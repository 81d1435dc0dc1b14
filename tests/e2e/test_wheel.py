"""The built wheel (not the editable install) carries the package data: templates and data files."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def test_the_wheel_holds_every_package_data_file(tmp_path):
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                           "-w", str(tmp_path), str(REPO)], capture_output=True, text=True)
    if done.returncode != 0 and "No module named" in done.stderr and "setuptools" in done.stderr:
        pytest.skip("setuptools is not installed in this environment, so no wheel can be built offline")
    assert done.returncode == 0, done.stderr
    wheel = next(tmp_path.glob("pytest_robustaudit-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    package = REPO / "src" / "pytest_robustaudit"
    data = [p for p in package.rglob("*") if p.is_file() and p.suffix not in (".py", ".pyc") and "__pycache__" not in p.parts]
    assert data, "the package has data files (the report template at least)"
    missing = [str(p.relative_to(package.parent)) for p in data
               if str(p.relative_to(package.parent)).replace("\\", "/") not in names]
    assert missing == [], f"package data left out of the wheel: {missing} (add them to [tool.setuptools.package-data])"
    assert "pytest_robustaudit/report/templates/report.html.j2" in names
