"""``python -m pytest_robustaudit validate``: checks specs without loading anything (pre-commit)."""

from __future__ import annotations

import os
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


# -- issue 27: validate speaks its own language, knows models, and needs no network -----------------------

def test_a_path_typo_or_a_file_that_is_no_spec_is_said_in_our_words():
    typo = validate("audit/", cwd=REPO)
    assert typo.returncode == 2
    assert "robustaudit validate: audit/: no such file or folder. Did you mean: audits/?" in typo.stderr
    assert "--audit" not in typo.stdout + typo.stderr          # a flag the user never typed
    readme = validate("README.md", cwd=REPO)
    assert readme.returncode == 2
    assert "README.md: not an audit spec (specs are YAML files ending in .yaml or .yml)" in readme.stderr
    for internal in ("rootdir", "collected", "<Dir", "no match in any of", "ERROR:"):
        assert internal not in readme.stdout + readme.stderr


def test_validate_knows_the_model_and_says_random_weights(tmp_path):
    (tmp_path / "images").mkdir()
    from PIL import Image

    Image.new("RGB", (8, 8)).save(tmp_path / "images" / "a.png")
    (tmp_path / "bad.yaml").write_text("model: {source: timm, name: efficientnet_lite0}\ndata: images\n"
                                       "layers: [representation, blocks.9, pre_projection]\n"
                                       "checks: {kurtosis_mean: {min: 3}}\n")
    (tmp_path / "ok.yaml").write_text("model: {source: timm, name: efficientnet_lite0}\ndata: images\n"
                                      "checks: {kurtosis_mean: {min: 3}}\n")
    done = subprocess.run([sys.executable, "-m", "pytest_robustaudit", "validate", "bad.yaml", "ok.yaml"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "ROBUSTAUDIT_CACHE_DIR": str(tmp_path / "store")})
    assert done.returncode == 1, done.stdout + done.stderr
    assert "robustaudit validate: bad.yaml: invalid" in done.stdout
    assert "bad.yaml:3: layers[1]: layer 'blocks.9' does not exist for timm:efficientnet_lite0" in done.stdout
    assert "bad.yaml:3: layers[2]: layer 'pre_projection' is not available" in done.stdout
    assert "robustaudit validate: ok.yaml: valid (1 check on 1 layer)" in done.stdout
    assert "robustaudit validate: notice: ok.yaml: random weights" in done.stdout
    assert "Traceback" not in done.stdout + done.stderr


_NO_NETWORK = """
import runpy, socket, sys

def refuse(*args, **kwargs):
    raise OSError("the network is blocked by this test")

socket.socket.connect = socket.socket.connect_ex = refuse
socket.create_connection = socket.getaddrinfo = refuse
sys.argv = ["pytest_robustaudit", "validate", "audits/", "audits-online/"]
try:
    runpy.run_module("pytest_robustaudit", run_name="__main__")
except SystemExit as done:
    code = done.code
print("model libraries imported:", sorted(m for m in ("torch", "timm", "open_clip") if m in sys.modules))
sys.exit(code)
"""


def test_validate_builds_the_shipped_models_offline_then_reads_them_from_the_store(tmp_path):
    """Every connection refused: the shipped and online specs validate (their models built without weights,
    timm and open_clip names checked); a second validate reads the architectures from the store and imports
    no model library (the 3 s target: benchmarks/bench_validate.py)."""
    env = {**os.environ, "ROBUSTAUDIT_CACHE_DIR": str(tmp_path / "store")}
    cold = subprocess.run([sys.executable, "-c", _NO_NETWORK], cwd=REPO, capture_output=True, text=True,
                          timeout=300, env=env)
    assert cold.returncode == 0, cold.stdout + cold.stderr
    assert "robustaudit: specs valid (audits/, audits-online/)" in cold.stdout
    assert "audits-online/rn50_openai.yaml: valid" in cold.stdout
    warm = subprocess.run([sys.executable, "-c", _NO_NETWORK], cwd=REPO, capture_output=True, text=True,
                          timeout=300, env=env)
    assert warm.returncode == 0, warm.stdout + warm.stderr
    assert "model libraries imported: []" in warm.stdout


def test_list_says_what_a_spec_may_name():
    metrics = subprocess.run([sys.executable, "-m", "pytest_robustaudit", "list", "metrics"], cwd=REPO,
                             capture_output=True, text=True, timeout=120)
    assert metrics.returncode == 0
    assert "top1_accuracy: a fraction, in [0, 1]" in metrics.stdout
    assert "    fraction = 0.1 in [0, 1]:" in metrics.stdout      # importance_top_share's parameter range
    corruptions = subprocess.run([sys.executable, "-m", "pytest_robustaudit", "list", "corruptions"], cwd=REPO,
                                 capture_output=True, text=True, timeout=120)
    assert corruptions.returncode == 0 and "gaussian_noise (noise; severity 1-5)" in corruptions.stdout
    layers = subprocess.run([sys.executable, "-m", "pytest_robustaudit", "list", "layers",
                             "audits/efficientnet_lite0.yaml"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert layers.returncode == 0, layers.stderr
    assert "representation     1280   (head, in the spec)" in layers.stdout
    assert "blocks.4            320   (in the spec)" in layers.stdout
    missing = subprocess.run([sys.executable, "-m", "pytest_robustaudit", "list", "layers"], cwd=REPO,
                             capture_output=True, text=True, timeout=120)
    assert missing.returncode == 2 and "`list layers` needs a spec" in missing.stderr


def test_a_factory_is_called_only_when_asked(tmp_path):
    from PIL import Image

    from support import tiny_classifier_factory

    (tmp_path / "images").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "images" / "a.png")
    (tmp_path / "tiny.py").write_text(tiny_classifier_factory() + "\nopen('called', 'w').write('yes')\n")
    (tmp_path / "spec.yaml").write_text("model: {source: factory, factory: tiny.py:build}\ndata: images\n"
                                        "layers: [representation, module:cnov]\nchecks: {kurtosis_mean: {min: 1}}\n")
    plain = validate("spec.yaml", cwd=tmp_path)
    assert plain.returncode == 0 and not (tmp_path / "called").exists(), plain.stdout + plain.stderr
    asked = subprocess.run([sys.executable, "-m", "pytest_robustaudit", "validate", "--factories", "spec.yaml"],
                           cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert asked.returncode == 1 and (tmp_path / "called").exists()
    assert "layers[1]: layer 'module:cnov': factory:" in asked.stdout and "Did you mean: conv?" in asked.stdout
