"""Loading the plugin must stay cheap: pytest imports it for every run, audits or not."""

import subprocess
import sys

HEAVY = ('torch', 'timm', 'open_clip', 'jinja2', 'torchvision', 'PIL')


def _loaded(code: str, names: tuple[str, ...]) -> str:
    probe = f"import sys; {code}; print(sorted(m for m in {names!r} if m in sys.modules))"
    return subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.strip()


def test_plugin_import_loads_no_heavy_library():
    assert _loaded("import pytest_robustaudit, pytest_robustaudit.plugin, pytest_robustaudit.spec", HEAVY) == "[]"


def test_a_run_without_audit_imports_nothing_of_ours_beyond_the_glue():
    """What pytest_configure registers in every run (the glue modules) imports neither numpy nor yaml,
    so a pytest run without --audit in an environment where the plugin is installed pays nothing."""
    code = ("import pytest_robustaudit.plugin, pytest_robustaudit.plugin.collect, pytest_robustaudit.plugin.fixtures, "
            "pytest_robustaudit.plugin.outputs, pytest_robustaudit.plugin.xdist, pytest_robustaudit.builtin")
    assert _loaded(code, ("numpy", "yaml", *HEAVY)) == "[]"
