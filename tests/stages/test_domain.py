"""Intervals respect their metric's domain and say when they are uninformative (issue 26)."""

from __future__ import annotations

from pytest_robustaudit.analyse.domain import respect_domain
from pytest_robustaudit.metrics import BUILTIN_METRICS
from pytest_robustaudit.metrics.bootstrap import Interval
from pytest_robustaudit.report.markdown import render_markdown
from pytest_robustaudit.report.table import terminal_table

from builders import make_result

DOMAIN = {m.name: m.domain for m in BUILTIN_METRICS}


def test_a_ratio_of_at_least_one_is_clipped_to_its_domain_with_a_note():
    drawn = Interval(13.15, -5.873, 15.58, 0.95, "m-out-of-n bootstrap", "two-sided", 1000, 11)
    iv = respect_domain(drawn, DOMAIN["profile_max_over_median"])
    assert (iv.low, iv.high) == (1.0, 15.58) and iv.uninformative
    assert "clipped to the metric's domain [1, ∞] (the bootstrap drew low -5.873)" in iv.describe()
    assert "uninformative at 11 images" in iv.describe()


def test_an_interval_far_wider_than_its_value_is_uninformative_and_a_good_one_is_untouched():
    dead = respect_domain(Interval(3.0, 3.0, 1272.0, 0.95, "per-feature exceedance", "two-sided", 1000, 11),
                          DOMAIN["dead_units"])
    assert (dead.low, dead.high) == (3.0, 1272.0) and "wider than the value" in dead.uninformative
    good = Interval(14.11, 11.99, 16.81, 0.95, "BCa bootstrap", "two-sided", 1000, 200)
    assert respect_domain(good, DOMAIN["kurtosis_mean"]) is good


def test_the_summaries_say_uninformative_beside_the_ends():
    result = make_result("m", checks=())
    layer = result.layers["representation"]
    layer.intervals["kurtosis_mean"] = respect_domain(
        Interval(layer.metrics["kurtosis_mean"].value, 0.2, 30.0, 0.95, "BCa bootstrap", "two-sided", 1000, 11),
        DOMAIN["kurtosis_mean"])
    assert "[1, 30] (uninformative at 11 images)" in render_markdown([result])
    assert "[1, 30] (uninformative at 11 images)" in terminal_table([result], intervals=True)[2]


def test_every_interval_the_audit_draws_passes_through_the_domain():
    import dataclasses

    from pytest_robustaudit.analyse import intervals as wiring
    from test_interval_wiring import rows_and_stats, sample_of

    h, stats = rows_and_stats()
    metric = next(m for m in BUILTIN_METRICS if m.name == "kurtosis_mean")
    measured = metric.evaluate(stats)
    free = wiring.metric_interval(metric, stats, sample_of(h), measured)
    narrow = dataclasses.replace(metric, domain=(measured.value, free.high))   # the low end now lies outside
    clipped = wiring.metric_interval(narrow, stats, sample_of(h), measured)
    assert free.low < measured.value and clipped.low == measured.value and clipped.high == free.high
    assert clipped.note.startswith("clipped to the metric's domain") and clipped.uninformative
