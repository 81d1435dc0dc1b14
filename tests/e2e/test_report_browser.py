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

# every text box of every SVG plot on the page, in CSS pixels, grouped by plot
BOXES_JS = """() => Array.from(document.querySelectorAll('svg.plot')).map((svg, i) => ({
  plot: (svg.getAttribute('aria-label') || ('plot ' + i)),
  boxes: Array.from(svg.querySelectorAll('text')).map(t => { const r = t.getBoundingClientRect();
    return {text: t.textContent, x: r.left, y: r.top, w: r.width, h: r.height}; }).filter(b => b.w > 0 && b.h > 0)
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


def _overlaps(boxes: list[dict], slack: float = 0.5) -> list[tuple[str, str]]:
    found = []
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            if (a["x"] + a["w"] - slack > b["x"] and b["x"] + b["w"] - slack > a["x"]
                    and a["y"] + a["h"] - slack > b["y"] and b["y"] + b["h"] - slack > a["y"]):
                found.append((a["text"], b["text"]))
    return found


@pytest.mark.parametrize("width", WIDTHS)
def test_layout_in_chromium(browser, report, width):
    path, record = report
    page = browser.new_page(viewport={"width": width, "height": 900})
    try:
        page.goto(path.as_uri())
        scroll, viewport = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
        assert scroll == viewport, f"the page scrolls sideways at {width} px: {scroll} px wide"
        plots = page.evaluate(BOXES_JS)
        assert plots, "no plot rendered"
        for plot in plots:
            assert not _overlaps(plot["boxes"]), f"overlapping text in {plot['plot']}: {_overlaps(plot['boxes'])}"
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
