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
