"""The record as a flat CSV table (results/csv_table.py): exact floats, ``nan``/``inf`` as such, one row
per audit × layer × metric × parameters with checks on the row of their parameters, and the generic
writer ``diff`` reuses.  Hand-built results (tests/builders.py): no model runs.  The run's
``--audit-csv`` is in tests/e2e/test_ci_outputs.py, ``merge --csv`` in test_hostile_merge.py."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
from pathlib import Path

import pytest

from pytest_robustaudit.metrics.bootstrap import Interval
from pytest_robustaudit.metrics.types import MetricValue
from pytest_robustaudit.results.csv_table import (RECORD_COLUMNS, UNKNOWN_PARAMS, format_cell, params_json, read_float,
                                                  record_rows, render_table, write_record_csv, write_table)

from builders import REGISTRIES, make_result

#: values a float64 column must carry exactly: 17 significant digits, subnormal, huge, signed zero, non-finite
AWKWARD = (0.1 + 0.2, 1 / 3, 2.2250738585072014e-308, 5e-324, 1.7976931348623157e308, -0.0, math.nan, math.inf,
           -math.inf, 123456789.12345679)


def read_rows(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def same(a: float | None, b: float | None) -> bool:
    """Equal as float64 bit patterns would be: NaN equals NaN, and -0.0 is not 0.0."""
    if a is None or b is None:
        return a is b
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)


def awkward_result():
    """make_result whose representation layer holds AWKWARD as metric values, in metric order."""
    result = make_result(layers=("representation", "blocks.3"))
    layer = result.layers["representation"]
    for name, value in zip(list(layer.metrics), AWKWARD):
        layer.metrics[name] = dataclasses.replace(layer.metrics[name], value=value)
    return result


def test_every_value_reads_back_as_the_same_float64(tmp_path):
    result = awkward_result()
    path = write_record_csv([result], tmp_path / "out" / "values.csv", {"label": "v1.2", "created": "2026-12-05"})
    rows = read_rows(path)
    assert list(rows[0]) == list(RECORD_COLUMNS)
    by_key = {(r["layer"], r["metric"]): r for r in rows}
    assert len(by_key) == len(rows) == sum(len(layer.metrics) for layer in result.layers.values())
    for name, layer in result.layers.items():
        for metric, measured in layer.metrics.items():
            assert same(read_float(by_key[name, metric]["value"]), measured.value), (name, metric)
    cells = [by_key["representation", m]["value"] for m in list(result.layers["representation"].metrics)[:len(AWKWARD)]]
    assert cells[:2] == ["0.30000000000000004", "0.3333333333333333"]          # 17 digits where needed
    assert cells[5:9] == ["-0.0", "nan", "inf", "-inf"]
    assert {r["label"] for r in rows} == {"v1.2"} and {r["audit"] for r in rows} == {"clip-a"}
    assert {r["fingerprint"] for r in rows} == {result.fingerprint}


def test_checks_sit_on_the_row_of_their_parameters_and_others_get_rows_of_their_own():
    result = make_result(checks=(("kurtosis_mean", {"min": 5.0}, {}),
                                 ("outlier_count", {"max": 1.0}, {"factor": 10.0}),     # the default factor
                                 ("outlier_count", {"max": 0.0}, {"factor": 100.0})))
    rows = record_rows([result], metrics=REGISTRIES.metrics)
    outliers = [r for r in rows if r["metric"] == "outlier_count"]
    assert [r["params"] for r in outliers] == ['{"factor":10.0}', '{"factor":100.0}']
    default, strict = outliers
    layer = result.layers["representation"]
    assert default["value"] == layer.metrics["outlier_count"].value and default["status"] == "fail"
    assert default["max"] == 1.0 and default["version"] == layer.metrics["outlier_count"].version
    check = result.check("outlier_count", "representation", {"factor": 100.0})
    assert strict["value"] == check.value and strict["status"] == check.record_status and strict["max"] == 0.0
    assert rows.index(strict) == rows.index(default) + 1                  # beside its default row
    unchecked = next(r for r in rows if r["metric"] == "kurtosis_median")
    assert unchecked.get("status") is None and "min" not in unchecked    # empty cells once written
    assert next(r for r in rows if r["metric"] == "kurtosis_mean")["status"] == "pass"


def test_statuses_bounds_and_intervals_of_checks():
    result = make_result(checks=(("kurtosis_mean", {"min": 5.0}, {}),))
    layer = result.layers["representation"]
    two_sided = Interval(44.0, 40.0, 48.0, 0.95, "BCa bootstrap", "two-sided", 1000, 40)
    layer.intervals["kurtosis_mean"] = two_sided
    one_sided = Interval(44.0, 41.0, math.inf, 0.95, "BCa bootstrap", "lower", 1000, 40)
    check = result.checks[0]
    result.checks[0] = dataclasses.replace(check, interval=one_sided, confidence=0.95, basis="interval",
                                           inconclusive=True, passed=False, nodeid="a.yaml::representation::k")
    result.checks.append(dataclasses.replace(check, metric="kurtosis_median", skip_reason="no baseline saved",
                                             basis="", min=None, reference=None))
    rows = {r["metric"]: r for r in record_rows([result], metrics=REGISTRIES.metrics)}
    gated = rows["kurtosis_mean"]
    # the value's own two-sided interval (as in an unchecked run), the check's gate beside it
    assert (gated["interval_low"], gated["interval_high"], gated["interval_sided"]) == (40.0, 48.0, "two-sided")
    assert (gated["status"], gated["basis"], gated["confidence"]) == ("inconclusive", "interval", 0.95)
    assert gated["nodeid"] == "a.yaml::representation::k"
    assert rows["kurtosis_median"]["status"] == "skipped" and rows["kurtosis_median"]["min"] is None
    del layer.intervals["kurtosis_mean"]    # no layer interval: the one the check saw, one-sided
    gated = next(r for r in record_rows([result], metrics=REGISTRIES.metrics) if r["metric"] == "kurtosis_mean")
    assert (gated["interval_low"], gated["interval_high"], gated["interval_sided"]) == (41.0, math.inf, "lower")
    text = render_table(RECORD_COLUMNS, [gated])
    assert ",41.0,inf,0.95,lower,BCa bootstrap,inconclusive," in text


def test_a_metric_the_registry_does_not_know_keeps_its_values_and_checks_apart():
    result = make_result(checks=())
    layer = result.layers["representation"]
    layer.metrics["plugin_metric"] = MetricValue(1.5, version=3)
    check = dataclasses.replace(make_result().checks[0], metric="plugin_metric", params={"k": 2}, value=1.5)
    result.checks.append(check)
    rows = [r for r in record_rows([result], metrics=REGISTRIES.metrics) if r["metric"] == "plugin_metric"]
    assert [(r["params"], r.get("status")) for r in rows] == [(UNKNOWN_PARAMS, None), ('{"k":2}', check.record_status)]
    assert rows[1]["version"] == 3


def test_a_check_of_a_layer_the_audit_does_not_hold_is_still_a_row():
    result = make_result(checks=())
    result.checks.append(dataclasses.replace(make_result().checks[0], layer="blocks.9", skip_reason="dropped: no such"))
    rows = record_rows([result], metrics=REGISTRIES.metrics)
    assert (rows[-1]["layer"], rows[-1]["metric"], rows[-1]["status"]) == ("blocks.9", "kurtosis_mean", "skipped")


def test_cells():
    assert [format_cell(v) for v in (None, 3, 0.1, math.nan, -math.inf, True, Path("a/b"), "x,y")] == \
           ["", "3", "0.1", "nan", "-inf", "true", "a/b", "x,y"]
    assert params_json({"z": 1, "a": math.nan}) == '{"a":{"$float":"NaN"},"z":1}'   # sorted; NaN tagged as in the record
    assert read_float("") is None and math.isinf(read_float("inf"))


def test_write_table_takes_any_columns_and_refuses_a_key_it_would_lose(tmp_path):
    rows = [{"audit": "a", "value": 1.0, "change": -0.25}, {"audit": "b, \"quoted\"\nline", "change": math.nan}]
    path = write_table(tmp_path / "diff.csv", ("audit", "value", "change"), rows)
    back = read_rows(path)
    assert back == [{"audit": "a", "value": "1.0", "change": "-0.25"},
                    {"audit": "b, \"quoted\"\nline", "value": "", "change": "nan"}]
    assert path.read_bytes().count(b"\r") == 0
    with pytest.raises(ValueError, match="row 0 has keys that are not columns: change"):
        render_table(("audit", "value"), rows)
    with pytest.raises(ValueError, match="columns named twice"):
        render_table(("audit", "audit"), [])


def test_no_audit_gives_a_header_alone(tmp_path):
    assert render_table(RECORD_COLUMNS, record_rows([])) == ",".join(RECORD_COLUMNS) + "\n"


def test_pandas_reads_the_values_as_floats(tmp_path):
    pd = pytest.importorskip("pandas", reason="pandas is not installed (not a dependency); csv + float() are "
                                              "tested above")
    result = awkward_result()
    path = write_record_csv([result], tmp_path / "values.csv", {"label": "v1"})
    frame = pd.read_csv(path)
    assert frame["value"].dtype.kind == "f" and frame["interval_low"].dtype.kind == "f"
    expected = [m.value for layer in result.layers.values() for m in layer.metrics.values()]
    assert all(same(float(a), b) for a, b in zip(frame["value"], expected)) and len(frame) == len(expected)
    assert [json.loads(p) for p in frame["params"][:1]] == [{}]
    assert (frame["status"].fillna("") != "").sum() == len(result.checks)


def test_text_is_utf8_with_a_header(tmp_path):
    result = make_result(name="modèle-α", checks=())
    path = write_record_csv([result], tmp_path / "v.csv")
    text = path.read_bytes().decode("utf-8")
    assert text.splitlines()[0] == ",".join(RECORD_COLUMNS) and "modèle-α" in text
    assert io.StringIO(text).readline().startswith("label,created,audit,")
