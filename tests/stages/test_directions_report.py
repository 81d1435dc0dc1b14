"""The report's privileged-directions figures, drawn from the metrics' details (as in a record)."""

from __future__ import annotations

from builders import make_result

from pytest_robustaudit.metrics import MetricValue
from pytest_robustaudit.report.directions import direction_figures, importance_spectrum_svg, pruning_curve_svg
from pytest_robustaudit.report.page import render_report


def test_pruning_and_importance_figures_from_details():
    result = make_result("clip-a")
    layer = result.layers["representation"]
    curve = {"grid": [0.0, 0.5, 0.9], "importance": [0.7, 0.69, 0.4], "singular_value": [0.7, 0.6, 0.2],
             "labelled": 10}
    layer.metrics["prunable_fraction"] = MetricValue(0.5, {"curve": curve, "unpruned": 0.7, "tolerance": 0.01})
    layer.metrics["importance_top_share"] = MetricValue(0.4, {"importance": [5.0, 3.0, 1.0, 0.5],
                                                              "outlier_directions": [0, 2]})
    figures = direction_figures([result])
    assert [f.key for f in figures] == ["prune-0-0", "importance-0-0"]
    assert "curve-importance" in figures[0].svg and "curve-singular_value" in figures[0].svg
    assert "2 on outlier features" in figures[1].svg
    html = render_report([result])
    assert 'id="directions"' in html and 'id="prune-0-0"' in html
    assert 'id="directions"' not in render_report([make_result("plain")])  # nothing to draw: no section
    assert "no pruning curve" in pruning_curve_svg({}, "t") and "no importance" in importance_spectrum_svg([], [], "t")
