"""The versioned JSON record: exact round trip of scalars, documented rounding of arrays, portable
NaN/Inf, and clear errors for files it cannot read.  (``make_result``, the hand-built AuditResult
the report tests and benchmarks/bench_report.py share, lives in tests/builders.py.)"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from pytest_robustaudit.analyse.checks import evaluate
from pytest_robustaudit.data import SkippedImage
from pytest_robustaudit.results.record import (FORMAT, SCHEMA_VERSION, RecordError, dumps, loads, read_record,
                                       record_to_dict, result_from_dict, result_to_dict, write_record)
from pytest_robustaudit.registries import standalone
from pytest_robustaudit.results import AuditResult, LayerResult
from pytest_robustaudit.spec.schema import CheckSpec
from pytest_robustaudit.metrics.outlier_stats import LayerStats

from builders import DEFAULT_CHECKS, REGISTRIES, kurtosis_rows, make_result, make_stats  # noqa: F401


def same_float(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return (math.isnan(a) and math.isnan(b)) or a == b


def assert_results_equal(a: AuditResult, b: AuditResult, rtol: float = 0.0) -> None:
    """Scalars exactly; arrays within ``rtol`` (0: exactly), NaN where NaN."""
    for field in ("spec_path", "name", "model", "source", "fingerprint", "device", "precision", "data_path",
                  "n_images", "n_found", "skipped", "seconds", "batch_size", "provenance", "spec_sha256"):
        assert getattr(a, field) == getattr(b, field), field
    assert list(a.layers) == list(b.layers)
    for name, la in a.layers.items():
        lb = b.layers[name]
        assert la.layer == lb.layer
        sa, sb = la.stats, lb.stats
        for field in ("layer", "dim", "n_images", "n_nonfinite", "rotation_seed", "notes"):
            assert getattr(sa, field) == getattr(sb, field), field
        for field in ("kurtosis", "rotated_kurtosis", "profile", "feature_mean", "feature_var"):
            x, y = getattr(sa, field), getattr(sb, field)
            assert x.shape == y.shape and x.dtype == y.dtype == np.float64, field
            np.testing.assert_array_equal(np.isnan(x), np.isnan(y))
            if rtol:
                np.testing.assert_allclose(x, y, rtol=rtol, atol=0, equal_nan=True, err_msg=field)
            else:
                np.testing.assert_array_equal(x, y, err_msg=field)
        assert list(la.metrics) == list(lb.metrics)
        for m, va in la.metrics.items():
            vb = lb.metrics[m]
            assert same_float(va.value, vb.value), m
            assert va.details == vb.details and va.undefined_reason == vb.undefined_reason, m
    assert len(a.checks) == len(b.checks)
    for ca, cb in zip(a.checks, b.checks):
        for field in ("metric", "layer", "passed", "message", "params", "skip_reason", "basis"):
            assert getattr(ca, field) == getattr(cb, field), field
        for field in ("value", "min", "max", "reference", "min_delta", "max_delta"):
            assert same_float(getattr(ca, field), getattr(cb, field)), field
        assert json.dumps(ca.details, default=repr) == json.dumps(cb.details, default=repr)


def strict_json(text: str):
    """Parse refusing NaN/Infinity literals: the record must be valid JSON for every tool."""
    def refuse(constant):
        raise AssertionError(f"non-standard JSON constant {constant}")
    return json.loads(text, parse_constant=refuse)


def test_round_trip_is_exact_with_full_digits():
    result = make_result(layers=("representation", "blocks.3"))
    back = result_from_dict(json.loads(json.dumps(result_to_dict(result, array_digits=None))))
    assert_results_equal(result, back)


def test_round_trip_default_rounds_arrays_to_7_digits_and_keeps_scalars_exact():
    result = make_result()
    text = dumps([result])
    _, (back,) = loads(text)
    assert_results_equal(result, back, rtol=5e-7)
    assert back.layers["representation"].metrics["kurtosis_mean"].value == result.layers["representation"].value("kurtosis_mean")
    # metrics recomputed from the stored arrays agree with the stored values far below any bound
    for name in REGISTRIES.metrics.names():
        stored = back.layers["representation"].metrics[name].value
        again = REGISTRIES.metrics.get(name).evaluate(back.layers["representation"].stats).value
        assert again == pytest.approx(stored, rel=1e-6, nan_ok=True), name


def test_nan_and_infinity_are_portable_and_come_back():
    result = make_result(checks=(("rotated_kurtosis_mean", {"min": 1.0}, {}),))
    stats = result.layers["representation"].stats
    stats.kurtosis[[0, 5]] = np.nan
    stats.rotated_kurtosis[:] = np.nan
    stats.notes.append("rotation control skipped: d=9000 exceeds 8192")
    result.layers["representation"].metrics["rotated_kurtosis_mean"] = REGISTRIES.metrics.get(
        "rotated_kurtosis_mean").evaluate(stats)
    check = result.checks[0]
    check.value, check.reference, check.min = math.nan, math.inf, -math.inf
    check.details = {"ratio": math.nan, "big": -math.inf, "words": "NaN", "nested": [1, {"x": math.inf}]}
    result.provenance["weird"] = "Infinity"
    text = dumps([result], array_digits=None)
    data = strict_json(text)
    layer = data["audits"][0]["layers"][0]
    assert layer["stats"]["rotated_kurtosis"][0] == "NaN"
    assert layer["metrics"]["rotated_kurtosis_mean"]["value"] == "NaN"
    assert "d=9000" in layer["metrics"]["rotated_kurtosis_mean"]["undefined_reason"]
    raw_check = data["audits"][0]["checks"][0]
    assert (raw_check["value"], raw_check["reference"], raw_check["min"], raw_check["max"]) == \
        ("NaN", "Infinity", "-Infinity", None)
    assert raw_check["details"]["ratio"] == {"$float": "NaN"} and raw_check["details"]["words"] == "NaN"
    _, (back,) = loads(text)
    assert_results_equal(result, back)
    assert back.checks[0].details["words"] == "NaN" and math.isnan(back.checks[0].details["ratio"])
    assert back.checks[0].details["nested"][1]["x"] == math.inf
    assert back.provenance["weird"] == "Infinity"


def test_numpy_values_in_details_and_provenance_become_plain_json():
    result = make_result()
    result.provenance.update({"arr": np.arange(3), "n": np.int64(4), "x": np.float32(0.5), "path": Path("/w"),
                              "flag": np.bool_(True), "tuple": (1, 2)})
    _, (back,) = loads(dumps([result]))
    assert back.provenance["arr"] == [0, 1, 2] and back.provenance["n"] == 4 and back.provenance["x"] == 0.5
    assert back.provenance["path"] == "/w" and back.provenance["flag"] is True and back.provenance["tuple"] == [1, 2]


def test_header_and_layout(tmp_path):
    path = write_record([make_result("a"), make_result("b", seed=3)], tmp_path / "sub" / "rec.json",
                        run_info={"purpose": "test", "errors": [{"spec_path": "/x.yaml", "message": "boom"}]})
    data = strict_json(path.read_text())
    assert data["format"] == FORMAT and data["schema_version"] == SCHEMA_VERSION == 5
    assert data["run"]["purpose"] == "test" and data["run"]["robustaudit_version"] and data["run"]["created"]
    assert [a["name"] for a in data["audits"]] == ["a", "b"]
    audit = data["audits"][0]
    assert audit["passed"] is False and audit["layers"][0]["name"] == "representation"
    assert len(audit["layers"][0]["stats"]["profile"]) == 64 and len(audit["layers"][0]["stats"]["kurtosis"]) == 40
    run, results = read_record(path)
    assert run["errors"] == [{"spec_path": "/x.yaml", "message": "boom"}]
    assert [r.name for r in results] == ["a", "b"]
    assert not list(path.parent.glob(".*.tmp")), "the atomic write left its temporary file"


def test_record_of_a_large_layer_stays_reasonable():
    result = make_result(d=2048, n=1000, layers=("representation",))
    size = len(dumps([result]).encode())
    exact = len(dumps([result], array_digits=None).encode())
    # 3 × 2048 per-feature and 2 × 1000 per-image values at ≤ ~14 characters each
    assert size < 130_000, size
    assert size < 0.75 * exact


@pytest.mark.parametrize("content, expected", [
    ("{not json", r"is not valid JSON \(line 1, column 2"),
    ("[1, 2]", "is not a pytest-robustaudit record"),
    ('{"format": "something-else"}', "is not a pytest-robustaudit record"),
    (json.dumps({"format": FORMAT, "schema_version": "1", "audits": []}), "invalid schema_version '1'"),
    (json.dumps({"format": FORMAT, "schema_version": SCHEMA_VERSION + 1, "audits": []}),
     rf"schema_version {SCHEMA_VERSION + 1}, newer than this pytest-robustaudit reads \({SCHEMA_VERSION}\); upgrade pytest-robustaudit"),
    (json.dumps({"format": FORMAT, "schema_version": 1}), "malformed at record: missing 'audits'"),
])
def test_unreadable_files_give_clear_errors(tmp_path, content, expected):
    path = tmp_path / "rec.json"
    path.write_text(content)
    with pytest.raises(RecordError, match=expected) as info:
        read_record(path)
    assert str(path) in str(info.value)


def test_malformed_field_is_located(tmp_path):
    data = record_to_dict([make_result()])
    del data["audits"][0]["layers"][0]["stats"]["profile"]
    data["audits"][0]["checks"][1]["value"] = "lots"
    path = tmp_path / "rec.json"
    path.write_text(json.dumps(data))
    with pytest.raises(RecordError) as info:
        read_record(path)
    message = str(info.value)
    assert f"record {path} is malformed at audits[0].layers[0].stats: missing 'profile'" in message
    assert "regenerate it with pytest --audit" in message
    data["audits"][0]["layers"][0]["stats"]["profile"] = [1.0] * 64
    path.write_text(json.dumps(data))
    with pytest.raises(RecordError, match=r"audits\[0\]\.checks\[1\]\.value: expected a number, got 'lots'"):
        read_record(path)


def test_missing_file_names_the_fix(tmp_path):
    with pytest.raises(RecordError, match="does not exist; write it with pytest --audit"):
        read_record(tmp_path / "nowhere.json")


def test_record_error_is_an_audit_error():
    from pytest_robustaudit import AuditError

    assert issubclass(RecordError, AuditError)
    with pytest.raises(RecordError, match="malformed audit record: audit: missing 'layers'"):
        result_from_dict({"name": "x"})
