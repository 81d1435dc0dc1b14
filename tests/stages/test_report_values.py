"""What every output shows beside a verdict, the bound in words, provenance in words, the plots'
axes, and the page's sections: pure functions, no browser, no model."""

from __future__ import annotations

import re
import textwrap

import numpy as np
import pytest

from pytest_robustaudit.analyse.checks import bound_text, verdict_text
from pytest_robustaudit.report import render_report
from pytest_robustaudit.report import svg
from pytest_robustaudit.report.markdown import render_markdown
from pytest_robustaudit.report.page import TableView
from pytest_robustaudit.report.provenance import readable
from pytest_robustaudit.report.sections import PageSection
from pytest_robustaudit.report.table import terminal_table
from pytest_robustaudit.report.values import shown_values
from builders import REGISTRIES, make_result

#: outlier_count checked at τ = 1000 only (measured 0 there, 2 at the default τ = 10)
AT_1000 = (("kurtosis_mean", {"min": 5.0, "max": 15.0}, {}), ("outlier_count", {"max": 0.0}, {"factor": 1000.0}))
TWO_TAUS = (("outlier_count", {"max": 0.0}, {"factor": 1000.0}), ("outlier_count", {"max": 5.0}, {"factor": 10.0}))


@pytest.mark.parametrize("value, low, high, expected", [
    (20.59, None, 15.0, "20.59 > max 15, +37%"),
    (3.1, 5.0, None, "3.1 < min 5, -38%"),
    (3.0, None, 0.0, "3 > max 0"),               # no percentage of a 0 bound
    (0.0, None, 0.0, "0 ≤ max 0"),
    (335.0, 3.0, 1000.0, "335, between min 3 and max 1000"),
    (50.0, 5.0, None, "50 ≥ min 5"),
    (500.0, None, 10.0, "500 > max 10, ×50"),
    (float("nan"), 5.0, None, "undefined"),
])
def test_verdict_in_plain_words(value, low, high, expected):
    assert verdict_text(value, low, high) == expected


def test_bound_text():
    assert (bound_text(5.0, 60.0), bound_text(5.0, None), bound_text(None, 0.0)) == ("min 5, max 60", "min 5", "max 0")


def test_the_value_beside_a_verdict_is_the_value_checked():
    result = make_result(outliers=(3, 17), checks=AT_1000)
    default = result.layers["representation"].metrics["outlier_count"].value
    (check,) = [c for c in result.checks if c.metric == "outlier_count"]
    assert default == 2 and check.value == 0 and check.passed   # the case: 1 shown, 0 checked
    (shown,) = shown_values(result, "representation", "outlier_count", REGISTRIES.metrics.get("outlier_count"))
    assert shown.plain() == "0 ✓ (factor=1000)"
    # unchecked: the default value, labelled with its parameters, no mark
    unchecked = make_result(checks=())
    (plain,) = shown_values(unchecked, "representation", "outlier_count", REGISTRIES.metrics.get("outlier_count"))
    assert plain.plain() == "2 (factor=10)" and not plain.status
    lines = terminal_table([result])
    assert "0 ✓ (factor=1000)" in lines[2] and " 2 " not in lines[2]


def test_a_metric_checked_at_two_parameter_values_shows_both_labelled():
    result = make_result(checks=TWO_TAUS)
    row = terminal_table([result])[2]
    assert "0 ✓ (factor=1000); 2 ✓ (factor=10)" in row
    text = render_markdown([result], report="robustaudit-report.html")
    assert "| 0 ✓ (factor=1000); 2 ✓ (factor=10) |" in text
    html = render_report([result], REGISTRIES.metrics, {})
    assert "outlier_count (factor=1000)" in html and "outlier_count (factor=10)" in html


def test_markdown_reads_raw_and_rendered():
    result = make_result(name="a <b>bold</b> | name", checks=(
        ("kurtosis_mean", {"max": 15.0}, {}),))
    result.checks[0] = result.checks[0].__class__(**{**result.checks[0].__dict__, "why": "supervised: <expected> low"})
    result.checks[0].message += "\n  why: supervised: <expected> low"
    text = render_markdown([result], report="reports/robustaudit-report.html", not_shown=(2, 1))
    assert "&lt;=" not in text and "&gt;" not in text
    assert "a &lt;b>bold&lt;/b> \\| name" in text          # no tag can open; a pipe cannot split the cell
    assert re.search(r"= \d+\.?\d* > max 15, \+\d+%\n  - required: at most 15 \(lower values pass\)\n"
                     r"  - why: supervised: &lt;expected> low\n", text), text
    assert "_2 checks deselected, 1 check not run: left out of this summary._" in text
    assert text.rstrip().endswith("Full report: `reports/robustaudit-report.html` (the job's artefact)")
    assert "[Full report](https://ci.example/a)" in render_markdown([result], report="https://ci.example/a")
    assert "Full report" not in render_markdown([result], report="")


def test_provenance_in_words():
    fields = dict(readable({
        "library": {"torch": "2.4.1", "timm": "1.0.9"}, "architecture": "efficientnet_lite0", "pretrained": False,
        "weights": "checkpoint", "options": {}, "notes": [], "quick_gelu": False,
        "checkpoint": "/work/main/.venv/lib/python3.11/site-packages/effnet_pkg/models/w.pth",
        "transform": "Compose(\n    Resize(size=256)\n    ToTensor()\n)"}))
    assert fields["library"] == "torch 2.4.1, timm 1.0.9"
    assert "pretrained" not in fields and "options" not in fields and "notes" not in fields
    assert fields["checkpoint"] == "effnet_pkg/models/w.pth" and fields["quick gelu"] == "no"
    assert fields["transform"] == "Compose( Resize(size=256) ToTensor() )"
    assert not any(v.startswith("{") or v.startswith("[") for v in fields.values())
    assert dict(readable({"pretrained": "openai", "weights": "hub"}))["pretrained"] == "openai"



def test_kurtosis_axes_are_the_same_from_run_to_run():
    rng = np.random.default_rng(0)
    a = svg.kurtosis_hist_svg(3 + rng.gamma(2, 4, 100), 3 + rng.normal(0, 0.1, 100), "a")
    b = svg.kurtosis_hist_svg(3 + rng.gamma(3, 9, 100), 3 + rng.normal(0, 0.1, 100), "b")
    ticks = lambda s: re.findall(r'text-anchor="middle" fill="#6b7280">(\d[^<]*)</text>', s)
    assert ticks(a) == ticks(b) == ["1", "10", "100"]
    rows = [svg.Row("m1", 3.5), svg.Row("m2", 4.0)]                   # within a decade: still log (declared)
    declared = REGISTRIES.metrics.get("kurtosis_mean")
    chart = svg.comparison_svg(rows, "t", "kurtosis_mean", scale=declared.chart_scale)
    assert "kurtosis_mean (log)" in chart
    assert ticks(chart)[:2] == ["1", "2"] and "10" in ticks(chart)


def test_counts_tick_at_whole_numbers():
    rows = [svg.Row("m1", 0.0), svg.Row("m2", 1.0)]
    chart = svg.comparison_svg(rows, "t", "outlier_count", integer=REGISTRIES.metrics.get("outlier_count").integer)
    labels = re.findall(r'text-anchor="middle" fill="#6b7280">(-?[\d.]+)</text>', chart)
    assert labels and all(float(x) == int(float(x)) for x in labels), labels


def test_full_model_names_in_strip_charts():
    name = "open_clip ViT-B-32 laion2b_s34b_b79k fine-tuned, epoch 10"
    chart = svg.comparison_svg([svg.Row(name, 3.0), svg.Row("b", 5.0)], "t", "x")
    assert f">{name}</text>" in chart


def test_one_model_gets_no_single_dot_charts_and_sections_are_pluggable():
    one = render_report([make_result()], REGISTRIES.metrics, {})
    assert 'class="chart"' not in one and "metric-table" in one
    two = render_report([make_result(), make_result("b", seed=3)], REGISTRIES.metrics, {})
    assert two.count('class="chart"') >= 2

    def extra(context):
        return [PageSection("pruning", "Pruning curves", "sections/table.html.j2",
                            TableView("per model", ["model"], [[r.name] for r in context.results]), order=35)]

    html = render_report([make_result()], REGISTRIES.metrics, {}, builders=[extra])
    order = [m.group(1) for m in re.finditer(r'<section id="([\w-]+)" class="report-section">', html)]
    assert order.index("comparison") < order.index("pruning") < order.index("models")
    assert '<a href="#pruning">Pruning curves</a>' in html
    with pytest.raises(ValueError, match="share the id"):
        render_report([make_result()], REGISTRIES.metrics, {}, builders=[extra, extra])


def test_why_is_a_spec_key(tmp_path):
    from pytest_robustaudit.errors import SpecError
    from pytest_robustaudit.registries import standalone
    from pytest_robustaudit.spec import load_spec

    from PIL import Image

    (tmp_path / "images").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "images" / "a.png")
    text = textwrap.dedent("""\
        model: {source: timm, name: resnet18}
        data: images
        checks:
          kurtosis_mean: {max: 15, why: "a supervised CNN:  expected on the non-robust side"}
        """)
    (tmp_path / "s.yaml").write_text(text)
    (check,) = load_spec(tmp_path / "s.yaml", standalone()).checks
    assert check.why == "a supervised CNN: expected on the non-robust side"
    (tmp_path / "s.yaml").write_text(text.replace('"a supervised CNN:  expected on the non-robust side"', "[1]"))
    with pytest.raises(SpecError, match=r"checks.kurtosis_mean.why: expected a sentence"):
        load_spec(tmp_path / "s.yaml", standalone())


def test_a_long_grid_parameter_is_left_out_of_summary_cells_only():
    from pytest_robustaudit.analyse.checks import params_label
    from pytest_robustaudit.report.values import cell_params

    params = {"tolerance": 0.01, "grid": "0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99"}
    assert cell_params(params) == "tolerance=0.01"
    assert params_label(params).endswith("0.95, 0.99")          # messages keep every value
    assert cell_params({"factor": 100.0, "grid": "0, 0.5"}) == "factor=100, grid=0, 0.5"
