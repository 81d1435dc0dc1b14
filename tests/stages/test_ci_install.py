"""The README's CPU install line is the one CI runs (issue 27): one source for both."""

import re
import subprocess

from support import REPO


def test_ci_runs_the_readmes_cpu_install_line_verbatim():
    line = subprocess.run([str(REPO / ".ci" / "readme-install")], capture_output=True, text=True, check=True,
                          timeout=30).stdout.strip()
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    marked = readme.split("<!-- ci: install -->", 1)[1]
    assert f"```bash\n{line}\n```" in marked            # the line printed is the README's, verbatim
    assert line.startswith("pip install -e \".[test]\"") and "download.pytorch.org/whl/cpu" in line   # a CPU build
    run = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    assert "install_line=$(.ci/readme-install)" in run and 'eval "$install_line"' in run
    commands = [raw for raw in run.splitlines() if raw.strip() and not raw.lstrip().startswith("#")]
    assert not [c for c in commands if re.search(r"\bpip install\b", c)], "CI installs only through the README's line"
