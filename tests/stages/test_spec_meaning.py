"""A spec means what it says (issue 27): bounds that can never pass, parameters beyond their range, and
every built-in metric declaring the domain of its values."""

import math
import textwrap

import pytest

from pytest_robustaudit.errors import SpecError
from pytest_robustaudit.metrics.types import Domain
from pytest_robustaudit.registries import standalone
from pytest_robustaudit.spec import load_spec


@pytest.fixture(scope="module")
def registries():
    return standalone()


@pytest.fixture
def folder(tmp_path):
    from PIL import Image

    (tmp_path / "images").mkdir()
    Image.new("RGB", (8, 8), (40, 0, 0)).save(tmp_path / "images" / "a.png")
    return tmp_path


def problems(folder, registries, checks: str, extra: str = "") -> str:
    path = folder / "spec.yaml"
    path.write_text("model: {source: factory, factory: x.py:build}\ndata: images\n" + extra
                    + "checks:\n" + textwrap.indent(textwrap.dedent(checks), "  "))
    (folder / "x.py").write_text("def build(): pass\n")
    with pytest.raises(SpecError) as raised:
        load_spec(path, registries)
    return str(raised.value)


def test_every_builtin_metric_declares_its_domain_and_parameter_ranges(registries):
    metrics = registries.metrics
    for name in metrics.names():
        metric = metrics.get(name)
        assert isinstance(metric.domain, Domain), f"{name} declares no domain"
        assert metric.domain.low < metric.domain.high and metric.domain.what
        for pname, param in metric.params.items():
            if param.type in (int, float) and pname != "factor":   # τ may be any factor >= 1
                assert param.maximum is not None, f"{name}.{pname} declares no maximum"
            elif param.type is str and pname not in ("shift", "corruption"):   # those name the spec's shifts
                assert param.choices or param.check, f"{name}.{pname} declares neither choices nor a check"


@pytest.mark.parametrize("checks, expected", [
    ("top1_accuracy: {min: 70}", ["checks.top1_accuracy.min: min 70 can never be met", "did you mean 0.7?",
                                  "fix: write min: 0.7"]),
    ("shift_accuracy: {min: 42.5}", ["did you mean 0.425?"]),
    ("kurtosis_mean: {max: 0.5}", ["checks.kurtosis_mean.max: max 0.5 can never be met",
                                   "smallest value kurtosis_mean can take is 1"]),
    ("outlier_count: {max: -1}", ["checks.outlier_count.max: max -1 can never be met"]),
    ("importance_top_share: {min: 0.2, fraction: 1.5}", ["checks.importance_top_share.fraction: must be at most 1, got 1.5"]),
    ("accuracy_at_pruning: {min: 0.2, p: 80}", ["checks.accuracy_at_pruning.p: must be at most 1", "did you mean 0.8?"]),
    ("corruption_drop: {max: 0.3, severity: 7}", ["checks.corruption_drop.severity: must be at most 5, got 7"]),
    ("accuracy_at_pruning: {min: 0.2, ranking: importanse}", ["checks.accuracy_at_pruning.ranking: 'importanse' is "
                                                              "not one of importance, singular_value. Did you mean: importance?"]),
    ("prunable_fraction: {min: 0.2, grid: '0, 0.5, 80'}", ["checks.prunable_fraction.grid: grid '0, 0.5, 80' must hold "
                                                           "fractions in [0, 1)"]),
])
def test_a_bound_or_parameter_that_can_never_hold_is_a_located_error(folder, registries, checks, expected):
    message = problems(folder, registries, checks, extra="shifts: [{corruption: gaussian_noise}]\n"
                       if "corruption" in checks else "shifts: [{name: x, accuracy: 0.3, source: card}]\n"
                       if "shift_" in checks else "")
    for fragment in expected:
        assert fragment in message, message


def test_bounds_inside_the_domain_and_relative_bounds_are_accepted(folder, registries):
    path = folder / "spec.yaml"
    (folder / "x.py").write_text("def build(): pass\n")
    (folder / "base.json").write_text("{}")
    path.write_text(textwrap.dedent("""\
        model: {source: factory, factory: x.py:build}
        data: images
        reference: {baseline: base.json}
        checks:
          top1_accuracy: {min: 1}              # the top of the domain can still be met
          kurtosis_mean: {min: 0.5, max: 1}    # a harmless min below the domain's bottom
          basis_kurtosis_ratio: {min_ratio: 70}
          outlier_count: {max_delta: -3}
        """))
    spec = load_spec(path, registries)
    assert {c.metric for c in spec.checks} == {"top1_accuracy", "kurtosis_mean", "basis_kurtosis_ratio", "outlier_count"}


def test_domain_reads_in_words():
    assert str(Domain(0, 1, "a fraction")) == "a fraction, in [0, 1]"
    assert str(Domain(1, math.inf, "a non-excess kurtosis")) == "a non-excess kurtosis, in [1, ∞]"


# -- the model's architecture in validation: names, layers, the layers a head metric applies to ----------

LITE0 = """\
model:
  source: timm
  name: efficientnet_lite0
data: images
layers: [representation, blocks.-1]
checks:
"""


@pytest.fixture(scope="module")
def architectures(tmp_path_factory):
    from pytest_robustaudit.models.architecture import Architectures

    return Architectures(standalone().sources, tmp_path_factory.mktemp("store"), build="always")


def load(folder, registries, text, architectures=None):
    path = folder / "spec.yaml"
    path.write_text(text)
    return load_spec(path, registries, architectures=architectures)


def located(folder, registries, text, architectures) -> str:
    with pytest.raises(SpecError) as raised:
        load(folder, registries, text, architectures)
    return str(raised.value)


def test_a_checks_default_layers_are_those_where_its_metric_applies(folder, registries, architectures):
    """top1_accuracy and corruption_drop read the head (width 1280): without their own `layers:` they are
    checked on `representation` only, not on `blocks.-1` (width 320); kurtosis applies everywhere."""
    text = LITE0 + ("  kurtosis_mean: {min: 3}\n  top1_accuracy: {min: 0.1}\n"
                    "  corruption_drop: {max: 0.5, corruption: gaussian_noise}\n"
                    "shifts: [{corruption: gaussian_noise, severity: 3}]\n")
    spec = load(folder, registries, text, architectures)
    assert sorted((c.metric, c.layer) for c in spec.checks) == [
        ("corruption_drop", "representation"), ("kurtosis_mean", "blocks.-1"), ("kurtosis_mean", "representation"),
        ("top1_accuracy", "representation")]
    assert all(c.default_layer for c in spec.checks)
    # without the model's architecture (a factory, or validation without models) every layer stays a
    # candidate, marked as a default layer: the run drops the one the head does not fit
    blind = load(folder, registries, text)
    assert {(c.metric, c.layer) for c in blind.checks} >= {("top1_accuracy", "blocks.-1")}


@pytest.mark.parametrize("change, expected", [
    (("  top1_accuracy: {min: 0.1}\n", "  top1_accuracy: {min: 0.1, layers: [representation, blocks.-1]}\n"),
     ["checks.top1_accuracy.layers[1]: layer 'blocks.-1' has width 320 but the classifier head reads width 1280",
      "fix: leave `layers:` out"]),
    (("[representation, blocks.-1]", "[representation, blocks.9, pre_projection]"),
     ["layers[1]: layer 'blocks.9' does not exist for timm:efficientnet_lite0 (5 blocks",
      "layers[2]: layer 'pre_projection' is not available for timm:efficientnet_lite0"]),
    (("name: efficientnet_lite0", "name: efficientnet_lite00"),
     ["model.name: unknown timm model 'efficientnet_lite00'. Did you mean: efficientnet_lite0?"]),
    (("name: efficientnet_lite0", "name: efficientnet_lite0\n  pretrained: in1k_bogus"),
     ["model.pretrained: timm has no pretrained tag 'in1k_bogus' for 'efficientnet_lite0'"]),
    (("[representation, blocks.-1]", "[blocks.-1]"),
     ["checks.top1_accuracy: top1_accuracy reads the classification head, which reads width 1280, and no layer"]),
])
def test_what_only_the_model_can_say_is_a_located_spec_error(folder, registries, architectures, change, expected):
    text = (LITE0 + "  top1_accuracy: {min: 0.1}\n").replace(*change)
    message = located(folder, registries, text, architectures)
    for fragment in expected:
        assert fragment in message, message


def test_open_clip_layers_and_its_zero_shot_head_are_known(folder, registries, architectures):
    text = ("model: {source: open_clip, name: RN50, pretrained: openai}\ndata: images\n"
            "layers: [representation, pre_projection, blocks.9]\nchecks:\n  top1_accuracy: {min: 0.1}\n")
    message = located(folder, registries, text, architectures)
    assert "layers[2]: layer 'blocks.9' does not exist for open_clip:RN50/openai (5 blocks" in message
    spec = load(folder, registries, text.replace(", blocks.9", ""), architectures)
    assert [(c.metric, c.layer) for c in spec.checks] == [("top1_accuracy", "representation")]   # 1024, not 2048
    unknown = located(folder, registries, text.replace("RN50", "RN05"), architectures)
    assert "model.name: unknown open_clip architecture 'RN05'" in unknown


def test_architectures_are_cached_in_the_store_and_read_without_building(folder, registries, tmp_path):
    from pytest_robustaudit.models.architecture import Architectures
    from pytest_robustaudit.spec.schema import ModelSpec

    first = Architectures(registries.sources, tmp_path, build="always")
    found = first(ModelSpec("timm", "efficientnet_lite0"))
    assert first.built == 1 and found.width("blocks.-1") == 320 and found.head_width("classifier") == 1280
    assert list((tmp_path / "models").glob("architecture-*.json"))
    again = Architectures(registries.sources, tmp_path, build="always")
    assert again(ModelSpec("timm", "efficientnet_lite0")) == found and again.built == 0
    # another option is another architecture
    assert again(ModelSpec("timm", "efficientnet_lite0", options={"num_classes": 10})).classifier_width == 1280
    assert again.built == 1


def test_collection_builds_no_architecture_for_a_model_the_store_has_built(registries, tmp_path):
    """A warm run builds nothing: with the recipe memo of the model in the store (it ran before), an
    architecture absent from the cache is left unknown rather than built."""
    import json

    from pytest_robustaudit.measure.activations import _Model
    from pytest_robustaudit.models.architecture import Architectures
    from pytest_robustaudit.spec.schema import ModelSpec
    from pytest_robustaudit.store import ActivationStore
    from types import SimpleNamespace

    model = ModelSpec("timm", "efficientnet_lite0")
    key = _Model(SimpleNamespace(model=model), None, ActivationStore(tmp_path)).recipe_key
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / f"{key}.json").write_text(json.dumps({"recipe": key, "fingerprint": "f", "description": "d",
                                                                  "provenance": {}, "preprocess": {}, "canaries": {}}))
    collecting = Architectures(registries.sources, tmp_path, build="new")
    assert collecting(model) is None and collecting.built == 0
    assert Architectures(registries.sources, tmp_path, build="always")(model) is not None


def test_random_weights_are_a_notice_unless_pretrained_false_is_written(folder, registries):
    from pytest_robustaudit.audit.notices import spec_notices

    base = "data: images\nchecks: {kurtosis_mean: {min: 3}}\n"
    for model, noticed in (("{source: timm, name: resnet18}", True), ("{source: open_clip, name: RN50}", True),
                           ("{source: timm, name: resnet18, pretrained: false}", False),
                           ("{source: open_clip, name: RN50, pretrained: openai}", False)):
        spec = load(folder, registries, f"model: {model}\n" + base)
        notices = spec_notices(spec)
        assert bool(notices) is noticed, model
        if noticed:
            assert "random weights" in notices[0] and "pretrained: false" in notices[0]


def test_a_smoke_limit_takes_the_smaller_limit_of_the_probe_and_each_shifted_folder(folder, registries):
    from pytest_robustaudit.spec.smoke import with_limit

    (folder / "shifted").mkdir()
    (folder / "shifted" / "a.png").write_bytes((folder / "images" / "a.png").read_bytes())
    spec = load(folder, registries, "model: {source: timm, name: resnet18}\ndata: {path: images, limit: 3}\n"
                "shifts: [{path: shifted, limit: 50}, {corruption: gaussian_noise}]\n"
                "checks: {kurtosis_mean: {min: 3}}\n")
    smoke = with_limit(spec, 10)
    assert smoke.data.limit == 3 and smoke.smoke_limit == 10 and smoke.data.seed == spec.data.seed
    assert smoke.shifts[0].limit == 10 and smoke.shifts[1] == spec.shifts[1]
    assert with_limit(spec, 2).data.limit == 2


def test_an_architecture_that_cannot_be_built_leaves_the_layers_to_the_run(folder, registries, tmp_path, monkeypatch):
    """Not a traceback at collection: a skeleton that raises something other than a ModelLoadError (a warning
    turned into an error by -W error, say) leaves the model's layers unknown until the audit runs."""
    from pytest_robustaudit.models.architecture import Architectures
    from pytest_robustaudit.models.timm_source import TimmSource

    def broken(self, spec):
        raise DeprecationWarning("turned into an error by -W error")

    monkeypatch.setattr(TimmSource, "skeleton", broken)
    lookup = Architectures(registries.sources, tmp_path, build="always")
    spec = load(folder, registries, LITE0 + "  top1_accuracy: {min: 0.1}\n", lookup)
    assert {c.layer for c in spec.checks} == {"representation", "blocks.-1"}   # the run drops what does not fit
    assert "DeprecationWarning: turned into an error" in lookup.unknown["timm:efficientnet_lite0"]
