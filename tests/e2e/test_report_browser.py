"""The report in a real browser (Chromium driven by Playwright), at a desktop and a phone width.

What only a layout engine can tell: the page never scrolls sideways at 420 px, no two texts of a
plot overlap, strip-chart labels stay readable, and the value beside every verdict is the value the
JSON record says was checked.  Playwright comes from PyPI (the ``test`` extra) and drives the
system's Chromium (``/usr/bin/chromium``, Debian's package, which .ci/run installs): no browser
download, no network.  Skipped, with the reason, when either is absent."""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from pytest_robustaudit.analyse.checks import format_number
from pytest_robustaudit.results.record import dumps, loads
from pytest_robustaudit.report import render_report
from pytest_robustaudit.report.values import check_label
from builders import REGISTRIES, make_result

CHROMIUM = os.environ.get("ROBUSTAUDIT_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser") \
    or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
WIDTHS = (1400, 420)
#: the smallest rendered size (px) of a comparison chart's model name at 420 px
MIN_LABEL_PX = 8.5

# every text of every SVG on the page as the four corners of its own box, on the screen (a rotated axis
# title or column label is a rotated rectangle, not its axis-aligned hull), grouped by SVG
QUADS_JS = """() => Array.from(document.querySelectorAll('svg')).filter(svg => !svg.parentElement.closest('svg'))
  .map((svg, i) => ({
    plot: (svg.getAttribute('aria-label') || svg.getAttribute('class') || ('svg ' + i)),
    box: (r => [r.left, r.top, r.right, r.bottom])(svg.getBoundingClientRect()),
    texts: Array.from(svg.querySelectorAll('text')).map(t => {
      const b = t.getBBox(), m = t.getScreenCTM();
      if (!m || b.width <= 0 || b.height <= 0) return null;
      const corner = (x, y) => [m.a * x + m.c * y + m.e, m.b * x + m.d * y + m.f];
      return {text: t.textContent, corners: [corner(b.x, b.y), corner(b.x + b.width, b.y),
              corner(b.x + b.width, b.y + b.height), corner(b.x, b.y + b.height)]};
    }).filter(q => q !== null)
  }))"""


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (apt-get install -y chromium; .ci/run installs it)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -e '.[test]')")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync"])
        yield browser
        browser.close()


def _results():
    long_name = "open_clip ViT-B-32 laion2b_s34b_b79k fine-tuned on ImageNet-1k, epoch 10 of 10"
    return [make_result("clip-a", layers=("representation", "blocks.3")),
            make_result("plain", outliers=(), seed=5),
            make_result(long_name, d=512, n=200, seed=9,
                        checks=(("kurtosis_mean", {"min": 3.0, "max": 1000.0}, {}),
                                ("outlier_count", {"max": 0.0}, {"factor": 100.0}),
                                ("outlier_count", {"max": 5.0}, {"factor": 10.0})))]


@pytest.fixture(scope="module", params=["three models", "one model"])
def report(request, tmp_path_factory):
    results = _results() if request.param == "three models" else _results()[:1]
    run = {"errors": [{"spec_path": "/audits/broken.yaml", "message": "checkpoint is truncated " + "x" * 300}],
           "checks_deselected": 2}
    text = dumps(results, run)
    run_info, back = loads(text)
    path = tmp_path_factory.mktemp("report") / "report.html"
    path.write_text(render_report(back, REGISTRIES.metrics, run_info), encoding="utf-8")
    return path, json.loads(text)


def _quads_overlap(a: list[list[float]], b: list[list[float]], slack: float) -> bool:
    """Whether two convex quadrilaterals overlap by more than ``slack`` px along every separating axis
    (the edge normals of both): the separating-axis test, exact for rotated rectangles."""
    for quad in (a, b):
        for i in range(4):
            (x0, y0), (x1, y1) = quad[i], quad[(i + 1) % 4]
            nx, ny = y0 - y1, x1 - x0
            norm = math.hypot(nx, ny)
            if norm == 0:
                continue
            nx, ny = nx / norm, ny / norm
            pa = [nx * x + ny * y for x, y in a]
            pb = [nx * x + ny * y for x, y in b]
            if min(max(pa), max(pb)) - max(min(pa), min(pb)) <= slack:
                return False
    return True


def text_collisions(page, slack: float = 0.5) -> list[str]:
    """Every pair of texts inside one SVG of the open ``page`` whose boxes overlap by more than ``slack``
    px (``plot: 'a' over 'b'``), and every text that runs past its SVG's edge by more than ``slack`` px,
    where it is cut off (``plot: 'a' runs past the edge``); empty when there is none.  Reusable for any
    section of the report: the boxes are the texts' own (rotated with them), read from the layout engine."""
    found = []
    for svg in page.evaluate(QUADS_JS):
        texts = svg["texts"]
        left, top, right, bottom = svg["box"]
        for a in texts:
            xs, ys = [x for x, _ in a["corners"]], [y for _, y in a["corners"]]
            if min(xs) < left - slack or max(xs) > right + slack or min(ys) < top - slack or max(ys) > bottom + slack:
                found.append(f"{svg['plot']}: {a['text']!r} runs past the edge")
        for i, a in enumerate(texts):
            for b in texts[i + 1:]:
                if _quads_overlap(a["corners"], b["corners"], slack):
                    found.append(f"{svg['plot']}: {a['text']!r} over {b['text']!r}")
    return found


@pytest.mark.parametrize("width", WIDTHS)
def test_layout_in_chromium(browser, report, width):
    path, record = report
    page = browser.new_page(viewport={"width": width, "height": 900})
    try:
        page.goto(path.as_uri())
        scroll, viewport = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
        assert scroll == viewport, f"the page scrolls sideways at {width} px: {scroll} px wide"
        assert page.evaluate("document.querySelectorAll('svg.plot').length"), "no plot rendered"
        collisions = text_collisions(page)
        assert not collisions, "\n".join(collisions)
        if width == 420:
            sizes = page.evaluate("Array.from(document.querySelectorAll('svg.comparison-plot text.row-label'))"
                                  ".map(t => t.getBoundingClientRect().height)")
            assert all(h >= MIN_LABEL_PX for h in sizes), f"strip-chart labels too small at 420 px: {min(sizes)} px"
        # the value beside every verdict is the value the record says was checked
        shown = page.evaluate("""Array.from(document.querySelectorAll('[data-check] b.measured')).map(b => ({
            model: b.closest('[data-name]').getAttribute('data-name'),
            key: b.closest('[data-check]').getAttribute('data-check'), raw: b.getAttribute('data-value'),
            text: b.textContent, visible: b.getClientRects().length > 0}))""")
        checks = {(a["name"], f"{c['layer']}::{check_label(_outcome(c))}"): c for a in record["audits"] for c in a["checks"]}
        assert len(shown) >= len(checks)
        for item in shown:
            check = checks[(item["model"], item["key"])]
            value = check["value"] if not isinstance(check["value"], str) else float(check["value"])
            assert float(item["raw"]) == value or (math.isnan(value) and item["raw"] == "NaN")
            assert item["text"] == format_number(value)
    finally:
        page.close()


def _outcome(check: dict):
    from pytest_robustaudit.results import CheckOutcome

    return CheckOutcome(check["metric"], check["layer"], 0.0, None, None, True, "", check["params"])


def test_summary_sorts_and_filters(browser, tmp_path):
    results = [make_result(f"model-{i}", seed=i, outliers=() if i % 2 else (3, 17)) for i in range(6)]
    path = tmp_path / "many.html"
    path.write_text(render_report(results, REGISTRIES.metrics, {}), encoding="utf-8")
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    try:
        page.goto(path.as_uri())
        names = "Array.from(document.querySelectorAll('#summary tbody tr')).filter(r => !r.hidden).map(r => r.dataset.name)"
        first = page.evaluate(names)
        assert sorted(first) == sorted(r.name for r in results)
        page.fill("#summary-filter", "model-3")
        assert page.evaluate(names) == ["model-3"]
        page.fill("#summary-filter", "")
        page.select_option("#summary-status", "fail")
        assert set(page.evaluate(names)) == {r.name for r in results if not r.passed}
        page.select_option("#summary-status", "all")
        page.click("#summary th:first-child")
        assert page.evaluate(names) == sorted(r.name for r in results)
    finally:
        page.close()


# --------------------------------------------------------------------------------------------
# a report with every section: no two texts of one chart overlap (issue 26)
# --------------------------------------------------------------------------------------------

#: the sections a report of :func:`every_section_results` must show (their HTML ids)
EVERY_SECTION = ("errors", "failures", "summary", "changes", "trends", "comparison", "models", "directions", "shifts",
                 "concepts")


def _concept_details(i: int, names: tuple[str, ...]) -> dict:
    """concepts_encoded / unique_concepts / polysemanticity / concept_overlap values as the metrics record them."""
    from pytest_robustaudit.metrics import MetricValue

    encoded = sorted(names[k] for k in range(len(names)) if (k + i) % 3 == 0)
    bank = {"bank": "builtin (colours and shapes)", "digest": "d1", "concepts": len(names)}
    kinds = {"colour": {"found": [n for n in encoded if n < "c06"], "total": 6},
             "shape": {"found": [n for n in encoded if n >= "c06"], "total": 6}}
    directions = {"directions": 64, "count": 3, "null": 0.2, "threshold": 0.93}
    return {
        "concepts_encoded": MetricValue(float(len(encoded)), {
            "encoded": encoded, "concepts": len(names), "null": 0.12, "threshold": 0.81, "quantile": 0.99,
            "null_repeats": 40, "bank": bank, "by_kind": kinds}),
        "unique_concepts": MetricValue(3.0, {"unique": encoded[:3], "null": 0.4, "by_kind": kinds,
                                             "neurons": directions, "head": {**directions, "threshold": 1.0}}),
        "polysemanticity": MetricValue(0.047, {
            "histogram": [61, 2, 1, 0, 1000 * (i + 1)], "null_histogram": [63.5, 0.004, 0.0, 0.5, 2.0],
            "null": 0.002, "directions": "neurons", "count": 64, "active": 3, "mean_active": 1.3,
            "null_mean_active": 1.0}),
        "concept_overlap": MetricValue(0.5, {"null": 0.1, "intersection": 2, "union": 4}),
    }


def every_section_results():
    """Five audits that exercise every section and chart of the report: kurtosis from Gaussian to
    thousands (log ticks past 1000), an outlier check at factor 100 (the profile's threshold line),
    checks with intervals, one inconclusive, one skipped, natural shifts and corruptions with ER and the
    outlier-ER relation (two audits side by side in the scatters), pruning curves and importance spectra (``prunable_fraction``), concept banks and
    their overlap matrix, a long model name.  Hand-built (tests/builders.py), no model."""
    from pytest_robustaudit.analyse.checks import evaluate
    from pytest_robustaudit.metrics import MetricValue
    from pytest_robustaudit.metrics.bootstrap import Interval
    from pytest_robustaudit.results import CheckOutcome
    from pytest_robustaudit.spec.schema import CheckSpec

    names = tuple(f"c{k:02d}" for k in range(12))
    long_name = "open_clip ViT-B-32 laion2b_s34b_b79k fine-tuned on ImageNet-1k, epoch 10 of 10"
    plan = [("clip-a", 3.1, -0.0213, 0.76, 0.004), ("resnet50-supervised", 41.0, 0.1, 0.65, 0.3),
            (long_name, 12900.0, 0.24, 0.61, 12.0), ("vit-b-16", 12.0, 0.05, 0.7, 0.09),
            ("vit-b-16 (fine-tuned)", 12.4, 0.052, 0.702, 0.1)]   # next to vit-b-16 in both scatters
    results = []
    for i, (name, kurtosis, er, clean, scale) in enumerate(plan):
        result = make_result(name, layers=("representation", "blocks.11.mlp.fc2"), d=256, n=60, seed=i,
                             outliers=(3, 17, 40)[: i + 1],
                             checks=(("kurtosis_mean", {"min": 5.0, "max": 1000.0}, {}),
                                     ("outlier_count", {"max": 0.0}, {"factor": 100.0})))
        for layer in result.layers.values():   # mean |activation| from 0.004 to 1000s: ticks at every decade
            layer.stats.profile[:] = layer.stats.profile * scale
        layer = result.layers["representation"]
        metrics = layer.metrics
        metrics["kurtosis_mean"] = MetricValue(kurtosis)
        layer.intervals["kurtosis_mean"] = Interval(kurtosis, kurtosis * 0.8, kurtosis * 1.3, 0.95, "BCa bootstrap",
                                                    "two-sided", 1000, 60)
        iv = Interval(0.7133, 0.6464, 0.7738, 0.95, "BCa bootstrap", "lower", 1000, 60)
        result.checks.append(evaluate(CheckSpec("rotated_kurtosis_mean", "representation", min=0.7),
                                      MetricValue(0.7133), "model: m", interval=iv, confidence=0.95))
        result.checks.append(CheckOutcome("effective_robustness", "representation", math.nan, 0.0, None, False,
                                          "no baseline", {}, skip_reason="no baseline saved yet"))
        shifts = {"imagenet-r": {"kind": "folder", "set": "imagenet_r", "accuracy": clean - 0.3, "correct": 40,
                                 "total": 100, "classes": 200, "from_store": True},
                  "objectnet": {"kind": "given", "set": "objectnet", "accuracy": 0.3, "source": "paper, table 2"}}
        common = {"clean": clean, "clean_source": "top-1 on the probe images", "layer": "representation"}
        top = clean if i else 0.0046   # a head near chance: the accuracy axis ticks at 0.001 steps
        curve = {"grid": [0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99], "labelled": 100, "unpruned": top,
                 "importance": [top * f for f in (1, 1, 0.99, 0.93, 0.4, 0.13, 0.005)],
                 "singular_value": [top * f for f in (1, 0.87, 0.66, 0.4, 0.13, 0.013, 0.001)]}
        metrics["shift_accuracy"] = MetricValue(clean - 0.3, {"shifts": shifts, "pruning": {"imagenet-r": curve},
                                                               **common})
        metrics["effective_robustness"] = MetricValue(er, {"shift_accuracy": clean - 0.3, "method": "each shift "
                                                           "against its own baseline, then averaged", **common})
        layer.intervals["effective_robustness"] = Interval(er, er - 0.05, er + 0.04, 0.95, "resampled", "two-sided",
                                                           1000, 60)
        corrupted = {"gaussian_noise-3": {"kind": "corruption", "set": "probe", "accuracy": clean - 0.2,
                                          "correct": 30, "total": 60}}
        metrics["corruption_accuracy"] = MetricValue(clean - 0.2, {"shifts": corrupted, **common})
        metrics["corruption_drop"] = MetricValue(0.2, {"clean": clean, **common})
        metrics["prunable_fraction"] = MetricValue(0.5 + 0.1 * i, {"curve": curve, "unpruned": clean,
                                                                    "tolerance": 0.01})
        metrics["importance_top_share"] = MetricValue(0.4, {"importance": list(np.geomspace(5000, 1.5e-5, 300)),
                                                            "outlier_directions": [0, 2, 7]})
        metrics["top1_accuracy"] = MetricValue(clean, {"correct": int(clean * 100), "labelled": 100})
        metrics.update(_concept_details(i, names))
        result.checks.append(evaluate(CheckSpec("prunable_fraction", "representation", max=0.55),
                                      metrics["prunable_fraction"], "model: m"))
        results.append(result)
    return results


def release_history_run(results) -> dict:
    """``run.comparison`` and ``run.history`` as --audit-compare and --audit-history write them: the change of
    every value between two of ``results``, and 30 kept releases of two checked metrics (long labels, every
    status, intervals, bounds), as a release history of a real project reaches them (issue 28)."""
    from pytest_robustaudit.analyse.compare import compare_audits, comparison_to_json

    comparison = compare_audits(results[1], results[0], REGISTRIES.metrics, reference_label="v1.3.0 (2026-11-02)")
    rng = np.random.default_rng(3)
    series = []
    for metric, bound, centre in (("kurtosis_mean", {"min": 5.0}, 12.0), ("top1_accuracy", {"min": 0.7}, 0.74)):
        points = []
        for i in range(30):
            value = float(centre * (1 + 0.05 * rng.normal()))
            half = abs(centre) * 0.03
            points.append({"entry": f"e{i}", "label": f"v1.{i}.0-rc.{i % 4}+build.{1000 + i}", "created": f"2026-{1 + i % 12:02d}-01",
                           "value": value, "low": value - half, "high": value + half,
                           "status": ("pass", "fail", "inconclusive")[i % 3], "current": i == 29})
        series.append({"audit": results[0].name, "key": f"audits/{results[0].name}.yaml::{results[0].name}",
                       "metric": metric, "layer": "representation", "params": {}, "min": bound["min"], "max": None,
                       "points": points})
    return {"comparison": {"reference": "last", "audits": [comparison_to_json(comparison)]},
            "history": {"folder": "/ci/audit-history", "entry": "e29", "series": series}}


@pytest.fixture(scope="module")
def every_section_report(tmp_path_factory):
    results = every_section_results()
    run = {"errors": [{"spec_path": "/audits/broken.yaml", "message": "checkpoint is truncated " + "x" * 300}],
           "checks_deselected": 2, **release_history_run(results)}
    run_info, back = loads(dumps(results, run))
    path = tmp_path_factory.mktemp("every") / "report.html"
    path.write_text(render_report(back, REGISTRIES.metrics, run_info), encoding="utf-8")
    return path


@pytest.mark.parametrize("width", WIDTHS)
def test_no_two_texts_of_a_chart_overlap_in_a_report_with_every_section(browser, every_section_report, width):
    page = browser.new_page(viewport={"width": width, "height": 900})
    try:
        page.goto(every_section_report.as_uri())
        present = page.evaluate("ids => ids.filter(id => document.getElementById(id) !== null)", list(EVERY_SECTION))
        assert present == list(EVERY_SECTION), f"sections missing: {set(EVERY_SECTION) - set(present)}"
        kinds = set(page.evaluate("Array.from(document.querySelectorAll('svg.plot')).map(s => s.classList[1])"))
        assert {"profile-plot", "kurtosis-plot", "comparison-plot", "pruning-plot", "importance-plot", "er-scatter",
                "relation-scatter", "polysemanticity-plot", "overlap-plot", "trend-plot"} <= kinds, kinds
        collisions = text_collisions(page)
        assert not collisions, f"{len(collisions)} overlapping texts at {width} px:\n" + "\n".join(collisions)
        # 30 releases: the newest (this run) always labelled, and the labels thinned, not crowded
        labels = page.evaluate("Array.from(document.querySelectorAll('svg.trend-plot')).map(s => "
                               "Array.from(s.querySelectorAll('text.x-label')).map(t => t.textContent))")
        assert labels and all(2 <= len(shown) < 30 and shown[-1].startswith("v1.29") for shown in labels), labels
    finally:
        page.close()
