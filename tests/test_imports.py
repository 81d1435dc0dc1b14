"""Loading the plugin must stay cheap: pytest imports it for every run, audits or not."""

import subprocess
import sys


def test_plugin_import_loads_no_heavy_library():
    code = ("import sys, pytest_robustaudit, pytest_robustaudit.plugin, pytest_robustaudit.spec; "
            "print(sorted(m for m in ('torch', 'timm', 'open_clip', 'jinja2', 'torchvision', 'PIL') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
