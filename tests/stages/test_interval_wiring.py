"""The interval wiring without a model (issue 19): families per metric, one profile pass per layer,
check verdicts with confidence, paired differences by content hash, the record round trip."""

from __future__ import annotations

import json
import math
import textwrap

import numpy as np
import pytest

from pytest_robustaudit.analyse import intervals as wiring
from pytest_robustaudit.analyse.checks import evaluate
from pytest_robustaudit.metrics import bootstrap as bs
from pytest_robustaudit.metrics.outliers import BUILTIN_METRICS
from pytest_robustaudit.results.record import result_from_dict, result_to_dict
from pytest_robustaudit.registries import standalone
from pytest_robustaudit.spec import load_spec
from pytest_robustaudit.spec.schema import CheckSpec

from support import PHOTOS
from builders import REGISTRIES, kurtosis_rows, make_result
from pytest_robustaudit.metrics.outlier_stats import LayerStats


def rows_and_stats(n=60, d=32, outliers=(3, 17), scale=30.0, seed=0, layer="representation"):
    rng = np.random.default_rng(seed)
    h = rng.normal(size=(n, d))
    h[:, list(outliers)] *= scale
    q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    stats = LayerStats(layer, d, n, 0, kurtosis_rows(h), kurtosis_rows(h @ q), np.abs(h).mean(0), h.mean(0),
                       h.var(0), 0, [])
    return h, stats


def sample_of(h, audit="a", layer="representation", hashes=None, resamples=300):
    hashes = hashes or [f"h{i}" for i in range(len(h))]
    return wiring.sample_layer(audit, layer, hashes, lambda: (h[i:i + 16] for i in range(0, len(h), 16)), resamples)


def test_every_builtin_metric_declares_a_family_and_gets_an_interval_around_its_value():
    h, stats = rows_and_stats()
    sample = sample_of(h)
    values = {m.name: m.evaluate(stats) for m in BUILTIN_METRICS}
    got = wiring.layer_intervals(REGISTRIES.metrics, stats, sample, values, 0.95, "a")
    for metric in BUILTIN_METRICS:
        iv = got[metric.name]
        assert metric.interval is not None and iv.has_interval, (metric.name, iv)
        assert iv.low <= values[metric.name].value <= iv.high or metric.interval in ("extreme", "smooth"), iv
    assert got["outlier_count"].describe().startswith("2 [2, 2]")
    assert got["outlier_fraction"].value == pytest.approx(2 / 32)


def test_a_layer_pass_is_identical_for_the_same_seed_and_skips_non_finite_rows():
    h, stats = rows_and_stats()
    h[5] = np.nan
    a, b = sample_of(h), sample_of(h)
    assert np.array_equal(a.profiles[0].resampled, b.profiles[0].resampled)
    assert 5 not in a.rows and "h5" not in a.hashes and len(a.hashes) == 59
    assert sample_of(h, audit="other").seed != a.seed


def test_undeclared_exact_and_informational_metrics_carry_no_interval_and_say_so():
    import dataclasses

    metric = dataclasses.replace(BUILTIN_METRICS[0], interval=None)
    h, stats = rows_and_stats()
    iv = wiring.metric_interval(metric, stats, sample_of(h), metric.evaluate(stats))
    assert not iv.has_interval and "declares no interval" in iv.describe()
    exact = dataclasses.replace(metric, interval="exact")
    assert "(exact" in wiring.metric_interval(exact, stats, None, metric.evaluate(stats)).describe()


def test_confidence_gates_pass_fail_and_inconclusive_in_the_check_message():
    check = CheckSpec("kurtosis_mean", "representation", min=10.0)
    from pytest_robustaudit.metrics.types import MetricValue

    def run(low, high):
        iv = bs.Interval(12.0, low, high, 0.95, "BCa bootstrap", "lower", 1000, 40)
        return evaluate(check, MetricValue(12.0), "ctx", interval=iv, confidence=0.95)

    assert run(11.0, 13.0).passed and "lies within" in run(11.0, 13.0).message
    inconclusive = run(9.0, 15.0)
    assert not inconclusive.passed and inconclusive.inconclusive and inconclusive.images_needed > 40
    assert "is inconclusive at 95%" in inconclusive.message and "straddles the minimum 10" in inconclusive.message
    plain = evaluate(check, MetricValue(12.0), "ctx", interval=bs.Interval(12.0, 9.0, 15.0, 0.95, "BCa", "two-sided", 9, 40))
    assert plain.passed and "interval: 12 [9, 15]" in plain.message and not plain.inconclusive


def test_paired_difference_matches_images_by_hash_and_detects_a_planted_feature():
    h, stats = rows_and_stats(outliers=())
    planted = h.copy()
    planted[:, [1, 2, 3, 4]] *= 30.0
    _, stats_b = rows_and_stats(outliers=())
    stats_p = LayerStats("representation", 32, 60, 0, kurtosis_rows(planted), stats.rotated_kurtosis,
                         np.abs(planted).mean(0), planted.mean(0), planted.var(0), 0, [])
    order = np.random.default_rng(3).permutation(60)          # the reference stored its rows in another order
    ref_rows, ref_hashes = h[order], [f"h{i}" for i in order]
    ref_stats = LayerStats("representation", 32, 60, 0, kurtosis_rows(ref_rows), stats.rotated_kurtosis[order],
                           np.abs(ref_rows).mean(0), ref_rows.mean(0), ref_rows.var(0), 0, [])
    cand, ref = sample_of(planted), sample_of(ref_rows, audit="ref", hashes=ref_hashes)
    for metric in (m for m in BUILTIN_METRICS if m.name in ("kurtosis_mean", "profile_max_over_median")):
        diff = wiring.relative_difference(metric, {}, (stats_p, cand, metric.evaluate(stats_p)),
                                          (ref_stats, ref, metric.evaluate(ref_stats), ref.hashes), level=0.95)
        assert diff.excludes(0) and diff.low > 0 and "paired" in diff.method, (metric.name, diff)
        same = wiring.relative_difference(metric, {}, (ref_stats, ref, metric.evaluate(ref_stats)),
                                          (stats, sample_of(h), metric.evaluate(stats), sample_of(h).hashes), level=0.95)
        # the same rows in another store order: matched by hash, the paired interval collapses to 0 (rounding only)
        assert max(abs(same.low), abs(same.high)) < 1e-9, (metric.name, same)


def test_a_reference_without_rows_is_compared_unpaired_and_says_so():
    h, stats = rows_and_stats()
    metric = next(m for m in BUILTIN_METRICS if m.name == "profile_max_over_median")
    recorded = wiring.metric_interval(metric, stats, sample_of(h), metric.evaluate(stats))
    diff = wiring.relative_difference(metric, {}, (stats, sample_of(h), metric.evaluate(stats)),
                                      (stats, None, metric.evaluate(stats), ()), level=0.95, recorded=recorded)
    assert diff.note.startswith("unpaired") and "no per-image rows" in diff.note


def test_setup_differences_name_device_precision_and_batch_size():
    a, b = make_result(), make_result()
    b.precision, b.batch_size, b.device = "bf16", 64, "cuda:1"
    drift = wiring.setup_differences(a, b)
    assert drift == ["device cuda:1 (reference) vs cpu (this run)", "precision bf16 (reference) vs fp32 (this run)",
                     "batch size 64 (reference) vs 8 (this run)"]
    c = make_result()
    c.device = "cpu"
    assert wiring.setup_differences(a, c) == []


def test_record_round_trip_keeps_intervals_and_old_records_still_read():
    result = make_result()
    layer = result.layers["representation"]
    h, stats = rows_and_stats()
    layer.intervals = {"kurtosis_mean": bs.Interval(3.5, 3.1, 3.9, 0.95, "BCa bootstrap", "two-sided", 1000, 40),
                       "outlier_count": bs.Interval(2.0, 2.0, 3.0, 0.95, "per-feature exceedance", settle_n=77, n=40),
                       "spectrum": bs.no_interval(1.0, exact=True, note="SVD")}
    layer.image_hashes = ("a" * 64, "b" * 64)
    result.checks[0].interval = layer.intervals["kurtosis_mean"]
    result.checks[0].inconclusive, result.checks[0].images_needed, result.checks[0].confidence = True, 90, 0.95
    data = json.loads(json.dumps(result_to_dict(result)))
    back = result_from_dict(data)
    got = back.layers["representation"]
    assert got.intervals["kurtosis_mean"] == layer.intervals["kurtosis_mean"]
    assert got.intervals["outlier_count"].settle_n == 77
    assert got.intervals["spectrum"].exact and math.isnan(got.intervals["spectrum"].low)
    assert got.image_hashes == layer.image_hashes
    assert back.checks[0].interval == layer.intervals["kurtosis_mean"]
    assert (back.checks[0].inconclusive, back.checks[0].images_needed, back.checks[0].confidence) == (True, 90, 0.95)
    for audit_layer in data["layers"]:                  # a schema-1 record: no intervals anywhere
        audit_layer.pop("intervals"), audit_layer.pop("image_hashes")
    for check in data["checks"]:
        for key in ("interval", "difference", "confidence", "inconclusive", "images_needed"):
            check.pop(key)
    old = result_from_dict(data)
    assert old.layers["representation"].intervals == {} and old.checks[0].interval is None


def test_spec_keys_confidence_min_images_resamples(tmp_path):
    from pytest_robustaudit.errors import SpecError

    text = textwrap.dedent("""\
        model: {source: timm, name: vit_tiny_patch16_224}
        data: {path: PHOTOS}
        confidence: 0.9
        min_images: 200
        resamples: 500
        checks:
          kurtosis_mean: {min: 3, confidence: 0.99}
          outlier_count: {max: 0}
        """).replace("PHOTOS", str(PHOTOS))
    spec = load_spec(tmp_path / "spec.yaml", standalone(), text=text)
    assert (spec.confidence, spec.min_images, spec.resamples) == (0.9, 200, 500)
    assert [c.confidence for c in spec.checks] == [0.99, None]
    with pytest.raises(SpecError, match="strictly between 0.5 and 1"):
        load_spec(tmp_path / "spec.yaml", standalone(), text=text.replace("confidence: 0.99", "confidence: 95"))
