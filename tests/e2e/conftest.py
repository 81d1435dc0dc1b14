"""End-to-end tests: pytest runs of specs through the installed plugin (pytester)."""

# In-process pytester runs restore sys.modules afterwards; a C extension first imported inside
# one run cannot be imported again in the next.  Import the heavy libraries up front, here only:
# the stage tests import what each needs.
import timm  # noqa: F401
import torch  # noqa: F401
import torchvision  # noqa: F401

# The same for the plugin's public classes: `from pytest_robustaudit import Metric` in a pytester
# conftest caches the class on the package, so the module defining it must outlive every run (else a
# later run's registry checks against a re-imported, different Metric class).
import pytest_robustaudit.metrics.types  # noqa: F401,E402


import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _not_ci_for_inner_runs(monkeypatch):
    """pytester runs read this process's environment: with CI set (CI machines set it), pytest's short
    summary repeats every failure message whole, so the tests that count messages in an inner run's
    output would count them twice.  Inner runs behave as on a developer's machine."""
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.delenv("BUILD_NUMBER", raising=False)
