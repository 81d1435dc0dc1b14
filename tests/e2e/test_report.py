"""The HTML report, the terminal summary and their pytest glue.

The page is parsed (stdlib ``html.parser``) and checked against the JSON record: tables, one plot
per model × layer, numbers equal to the record's; hostile strings appear only escaped; a real
headless Chromium renders it to a non-blank screenshot (layout at two widths: test_report_browser.py)."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import time
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from pytest_robustaudit.analyse.checks import format_number
from pytest_robustaudit.results.record import dumps, loads, read_record
from pytest_robustaudit.report import render_report
from pytest_robustaudit.results import ReportSection
from pytest_robustaudit.report.table import terminal_table
from builders import REGISTRIES, make_result

HOSTILE = "<script>alert(1)</script>"
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class Node:
    def __init__(self, tag: str, attrs: dict, parent: "Node | None"):
        self.tag, self.attrs, self.parent, self.children, self.parts = tag, attrs, parent, [], []

    def text(self) -> str:
        return "".join(p if isinstance(p, str) else p.text() for p in self.parts)

    def iter(self):
        yield self
        for child in self.children:
            yield from child.iter()

    def find_all(self, tag: str | None = None, cls: str | None = None, **attrs) -> list["Node"]:
        return [n for n in self.iter() if (tag is None or n.tag == tag)
                and (cls is None or cls in n.attrs.get("class", "").split())
                and all(n.attrs.get(k.replace("_", "-")) == v for k, v in attrs.items())]


class TreeBuilder(HTMLParser):
    """A strict enough DOM: every non-void element must be closed in order."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.root = self.current = Node("#root", {}, None)

    def handle_starttag(self, tag, attrs):
        node = Node(tag, {k: (v or "") for k, v in attrs}, self.current)
        self.current.children.append(node)
        self.current.parts.append(node)
        if tag not in VOID:
            self.current = node

    def handle_startendtag(self, tag, attrs):
        node = Node(tag, {k: (v or "") for k, v in attrs}, self.current)
        self.current.children.append(node)
        self.current.parts.append(node)

    def handle_endtag(self, tag):
        if tag in VOID:
            return
        assert self.current.tag == tag, f"</{tag}> closes <{self.current.tag}>"
        self.current = self.current.parent

    def handle_data(self, data):
        self.current.parts.append(data)


def parse(html: str) -> Node:
    builder = TreeBuilder()
    builder.feed(html)
    builder.close()
    assert builder.current is builder.root, f"unclosed <{builder.current.tag}>"
    return builder.root


def no_foreign_script(html: str) -> bool:
    """The page's only script is its own sort/filter script, after the content (a hostile string
    shown on the page is escaped, so it can never add a second one)."""
    low = html.lower()
    return low.count("<script") == 1 and low.index("<script") > low.index("</main>") and "src=" not in \
        low[low.index("<script"):low.index("</script>")]


def as_float(raw: str) -> float:
    return float(raw)  # "NaN", "Infinity" and repr() all parse


def same(a: float | None, b: float | None) -> bool:
    return (a is None and b is None) or (a is not None and b is not None and
                                         ((math.isnan(a) and math.isnan(b)) or a == b))


@pytest.fixture(scope="module")
def results():
    return [make_result("clip-a", layers=("representation", "blocks.3")),
            make_result("plain", outliers=(), seed=5),
            make_result("wide", d=512, n=200, seed=9, checks=(("kurtosis_mean", {"min": 3.0, "max": 1000.0}, {}),
                                                               ("outlier_count", {"min": 1.0}, {"factor": 100.0})))]


@pytest.fixture(scope="module")
def page(results):
    """The report and the JSON record of the same results (as the plugin writes them)."""
    run = {"purpose": "test", "errors": [{"spec_path": "/audits/broken.yaml", "message": "checkpoint is truncated"}]}
    text = dumps(results, run)
    run_info, back = loads(text)
    html = render_report(back, REGISTRIES.metrics, run_info)
    return html, parse(html), json.loads(text)


def test_summary_table_has_one_row_per_model_with_each_check(page):
    html, root, record = page
    (table,) = root.find_all("table", id="summary")
    rows = table.find_all("tr", cls="model-row")
    failing_first = sorted(record["audits"], key=lambda a: a["passed"])  # stable: run order within each verdict
    assert [r.attrs["data-name"] for r in rows] == [a["name"] for a in failing_first]
    headers = [th.text().strip() for th in table.find_all("th")]
    assert headers == ["Model", "Verdict", "Checks: value checked vs bound", "Time", "Images", "Device", "Source",
                       "Weights fingerprint"]
    for row, audit in zip(rows, failing_first):
        cells = row.find_all("td")
        assert audit["model"] in cells[0].text() and cells[6].text() == audit["source"]
        assert cells[7].attrs["title"] == audit["fingerprint"]
        assert cells[4].text().startswith(f"{audit['n_images']} of {audit['n_found']}")
        assert cells[3].text() == f"{audit['seconds']:.1f} s" and float(cells[3].attrs["data-sort"]) == audit["seconds"]
        checks = row.find_all("li", cls="check")
        assert len(checks) == len(audit["checks"])
        for li, check in zip(checks, audit["checks"]):
            status = "pass" if check["passed"] else "fail"
            assert status in li.attrs["class"].split()
            (measured,) = li.find_all("b", cls="measured")
            assert as_float(measured.attrs["data-value"]) == check["value"]
            assert measured.text() == format_number(check["value"])
            assert check["metric"] in li.text() and f"@{check['layer']}" in li.text()
            params = ", ".join(f"{k}={v:g}" for k, v in check["params"].items())
            assert (f"({params})" in li.text()) == bool(params)  # the parameters it was checked at, always
            bound = check["min"] if check["value"] < (check["min"] if check["min"] is not None else -math.inf) \
                else check["max"]
            if not check["passed"]:
                side = "<" if check["min"] is not None and check["value"] < check["min"] else ">"
                assert f"{format_number(check['value'])} {side} {'min' if side == '<' else 'max'} {format_number(bound)}" \
                    in li.text()
        verdict = row.find_all("span", cls="badge")[0].text()
        assert verdict == ("PASS" if audit["passed"] else "FAIL")


def test_failures_come_first_with_the_value_checked(page):
    html, root, record = page
    sections = [n.attrs["id"] for n in root.find_all("section", cls="report-section")]
    assert sections[:3] == ["errors", "failures", "summary-section"]
    (failures,) = root.find_all("section", id="failures")
    failed = [(a["name"], c) for a in record["audits"] for c in a["checks"] if not c["passed"]]
    items = failures.find_all("li", cls="check")
    assert len(items) == len(failed) > 0
    for li, (name, check) in zip(items, failed):
        assert li.parent.parent.attrs["data-name"] == name
        assert as_float(li.find_all("b", cls="measured")[0].attrs["data-value"]) == check["value"]


def test_layer_tables_tick_only_the_values_checked(page):
    """A metric checked at other parameters than its default shows the checked value on its own
    labelled row; the default-parameter value carries no mark then."""
    html, root, record = page
    (wide,) = [s for s in root.find_all("section", cls="model") if s.attrs["data-name"] == "wide"]
    audit = next(a for a in record["audits"] if a["name"] == "wide")
    table = wide.find_all("table", cls="layer-metrics")[0]
    rows = {tr.find_all("td")[0].text().split(" ✓")[0].split(" ✗")[0]: tr for tr in table.find_all("tr")[1:]}
    default_row = rows["outlier_count (factor=10)"]
    assert not default_row.find_all("span", cls="mark"), "the factor-10 value was not checked: no mark"
    checked = rows["outlier_count (factor=100)"]
    (check,) = [c for c in audit["checks"] if c["metric"] == "outlier_count"]
    assert checked.find_all("span", cls="mark")[0].text() == ("✓" if check["passed"] else "✗")
    assert as_float(checked.find_all("td")[1].attrs["data-value"]) == check["value"]
    assert rows["kurtosis_mean"].find_all("span", cls="mark")


def test_one_profile_and_one_kurtosis_plot_per_model_and_layer(page):
    html, root, record = page
    for audit in record["audits"]:
        (section,) = [s for s in root.find_all("section", cls="model") if s.attrs["data-name"] == audit["name"]]
        layers = section.find_all("div", cls="layer")
        assert [d.attrs["data-layer"] for d in layers] == [layer["name"] for layer in audit["layers"]]
        for div, layer in zip(layers, audit["layers"]):
            (profile,) = div.find_all("figure", cls="profile")
            (svg,) = profile.find_all("svg")
            assert svg.find_all("polyline"), "the sorted profile curve"
            outliers = layer["metrics"]["outlier_count"]["value"]
            for check in audit["checks"]:     # the plot marks the outliers at the factor a check judged
                if check["metric"] == "outlier_count" and check["layer"] == layer["name"] and "factor" in check["params"]:
                    outliers = check["value"]
            assert len(svg.find_all("circle", cls="outlier")) == min(outliers, 64)
            (kurt,) = div.find_all("figure", cls="kurtosis")
            (ksvg,) = kurt.find_all("svg")
            assert len(ksvg.find_all("rect")) > 4, "histogram bars of both bases"
            assert "rotated" in ksvg.text()
    total = sum(len(a["layers"]) for a in record["audits"])
    assert len(root.find_all("figure", cls="profile")) == total
    assert len(root.find_all("svg", cls="profile-plot")) == total


def test_values_shown_match_the_json_record(page):
    html, root, record = page
    by_name = {a["name"]: a for a in record["audits"]}
    compared = 0
    for table in root.find_all("table", cls="metric-table"):
        layer = table.attrs["data-layer"]
        for row in table.find_all("tr"):
            if "data-name" not in row.attrs:
                continue
            audit = by_name[row.attrs["data-name"]]
            metrics = next(l for l in audit["layers"] if l["name"] == layer)["metrics"]
            for td in row.find_all("td"):
                if "data-metric" in td.attrs:
                    expected = metrics[td.attrs["data-metric"]]["value"]
                    expected = float(expected) if isinstance(expected, str) else expected
                    assert same(as_float(td.attrs["data-value"]), expected)
                    assert td.text() == format_number(expected)
                    compared += 1
    from pytest_robustaudit.metrics import BUILTIN_METRICS

    # every built-in metric × (3 models on representation + 1 on blocks.3)
    assert compared == len(BUILTIN_METRICS) * (3 + 1)
    for section in root.find_all("section", cls="model"):
        audit = by_name[section.attrs["data-name"]]
        for div in section.find_all("div", cls="layer"):
            metrics = next(l for l in audit["layers"] if l["name"] == div.attrs["data-layer"])["metrics"]
            cells = [td for td in div.find_all("td", cls="num") if "data-metric" in td.attrs]
            assert {td.attrs["data-metric"] for td in cells} == set(metrics)
            for td in cells:
                expected = metrics[td.attrs["data-metric"]]["value"]
                expected = float(expected) if isinstance(expected, str) else expected  # "NaN" in the record
                assert same(as_float(td.attrs["data-value"]), expected)


def test_comparison_charts_draw_bounds(page):
    html, root, record = page
    charts = root.find_all("figure", cls="chart")
    titles = [c.find_all("figcaption")[0].text() for c in charts]
    assert "kurtosis_mean on layer 'representation'" in titles
    assert "outlier_count (factor=100) on layer 'representation'" in titles  # the "wide" model's own check
    kurt = charts[titles.index("kurtosis_mean on layer 'representation'")]
    assert len(kurt.find_all("circle", cls="value")) == 3
    # clip-a and plain: min 5; wide: min 3 and max 1000
    assert len(kurt.find_all("line", cls="bound")) == 4


def test_errors_glossary_and_run_info(page):
    html, root, record = page
    (errors,) = root.find_all("section", id="errors")
    assert "/audits/broken.yaml" in errors.text() and "checkpoint is truncated" in errors.text()
    assert root.find_all("span", id="overall")[0].text() == "FAIL"
    (glossary,) = root.find_all("section", id="metrics-explained")
    text = glossary.text()
    for name in REGISTRIES.metrics.names():
        assert name in text and REGISTRIES.metrics.get(name).formula in text
    assert "indicator" in text and "not" in text and "concepts" in text
    assert "control" in text
    assert "purpose" in root.find_all("section", id="run")[0].text()


def test_self_contained_no_external_resource_one_inline_script(page):
    html, root, record = page
    low = html.lower()
    assert no_foreign_script(html)
    script = low[low.index("<script"):low.index("</script>")]
    assert not any(word in script for word in ("fetch", "xmlhttprequest", "import", "http", "localstorage", "eval("))
    assert "<link" not in low and "@import" not in low and "url(" not in low
    for node in root.iter():
        for attr in ("src", "href"):
            value = node.attrs.get(attr, "")
            assert not value or value.startswith("#"), (node.tag, attr, value)
        assert not any(a.startswith("on") for a in node.attrs), node.attrs
    assert low.count("http") == low.count("http://www.w3.org/2000/svg")


def test_hostile_strings_are_escaped_everywhere():
    bad = make_result(HOSTILE, model=HOSTILE, path=f"/audits/{HOSTILE}.yaml",
                      layers=("representation", f"module:{HOSTILE}"))
    bad.provenance[HOSTILE] = HOSTILE
    bad.checks[0].message = HOSTILE
    bad.checks[0].passed = False
    bad.skipped.append(bad.skipped[0].__class__(Path(HOSTILE), HOSTILE))
    html = render_report([bad], REGISTRIES.metrics, {"args": [HOSTILE], "errors": [{"spec_path": HOSTILE, "message": HOSTILE}]},
                         sections=[ReportSection(HOSTILE, HOSTILE, (HOSTILE,), ((HOSTILE, 1.5),))])
    assert no_foreign_script(html)
    escaped = "&lt;script&gt;alert(1)&lt;/script&gt;"
    assert html.count(escaped) >= 15
    root = parse(html)
    assert root.find_all("tr", cls="model-row")[0].attrs["data-name"] == HOSTILE
    assert any(HOSTILE in t.text() for t in root.find_all("title"))  # inside the SVG plots too
    ids = [n.attrs["id"] for n in root.iter() if "id" in n.attrs]
    assert len(ids) == len(set(ids)) and all("<" not in i and '"' not in i for i in ids)


def test_plugin_sections_are_rendered_as_escaped_tables():
    html = render_report([make_result()], REGISTRIES.metrics, {},
                         sections=[ReportSection("Effective robustness", "from the testbed", ("model", "ER"),
                                                 (("clip-a", 24.123456), ("<b>x</b>", None)))])
    root = parse(html)
    (section,) = root.find_all("div", cls="plugin-section")
    cells = [td.text() for td in section.find_all("td")]
    assert cells == ["clip-a", "24.12", "<b>x</b>", "None"]
    assert "&lt;b&gt;x&lt;/b&gt;" in html


def test_undefined_metrics_show_the_reason():
    result = make_result(d=1, n=5, outliers=(), checks=(("kurtosis_mean", {"min": 1.0}, {}),))
    stats = result.layers["representation"].stats
    stats.kurtosis[:] = np.nan
    stats.rotated_kurtosis[:] = np.nan
    result.layers["representation"].metrics = {m: REGISTRIES.metrics.get(m).evaluate(stats)
                                               for m in REGISTRIES.metrics.names()}
    root = parse(render_report([result], REGISTRIES.metrics, {}))
    cell = next(td for td in root.find_all("td", cls="undefined") if td.attrs["data-metric"] == "kurtosis_mean")
    assert cell.text() == "undefined" and cell.attrs["data-value"] == "NaN" and "d = 1" in cell.attrs["title"]
    assert "undefined for every image" in root.find_all("figure", cls="kurtosis")[0].text()


def test_only_errors_and_no_metrics_registry_still_render():
    root = parse(render_report([], None, {"errors": [{"spec_path": "/a.yaml", "message": "no weights"}]}))
    assert root.find_all("section", id="errors") and not root.find_all("table", id="summary")
    root = parse(render_report([make_result()], [REGISTRIES.metrics.get("kurtosis_mean")], {}))
    glossary = root.find_all("section", id="metrics-explained")[0].text()
    assert "outlier_count" in glossary  # used by the result although not passed: listed as not registered


def test_twenty_models_three_layers_stay_small_and_fast():
    template = make_result("m", layers=("representation", "pre_projection", "blocks.11"), d=2048, n=1000)
    many = []
    for i in range(20):
        copy = json.loads(dumps([template], array_digits=None))
        copy["audits"][0]["name"] = f"model-{i:02d}"
        copy["audits"][0]["spec_path"] = f"/audits/model-{i:02d}.yaml"
        many.append(copy["audits"][0])
    _, results = loads(json.dumps({"format": "pytest-robustaudit/record", "schema_version": 1, "audits": many}))
    started = time.perf_counter()
    html = render_report(results, REGISTRIES.metrics, {})
    seconds = time.perf_counter() - started
    assert len(html.encode()) < 2_000_000, len(html.encode())
    assert seconds < 10, seconds
    assert html.count("<svg") == 20 * 3 * 2 + len(parse(html).find_all("figure", cls="chart"))


# --------------------------------------------------------------------------------------------
# terminal summary
# --------------------------------------------------------------------------------------------


def test_a_head_column_shows_where_one_audit_has_a_head_and_n_a_elsewhere():
    from pytest_robustaudit.metrics.types import MetricValue

    labelled = make_result("labelled")
    labelled.layers["representation"].metrics["top1_accuracy"] = MetricValue(0.691, {"correct": 691, "labelled": 1000})
    lines = terminal_table([labelled, make_result("plain", outliers=(), seed=5)])
    assert lines[0].split()[5] == "top-1" and "prunable" not in lines[0]
    assert "0.691" in lines[2] and " n/a " in lines[3]


def test_terminal_table_columns_and_rows():
    lines = terminal_table([make_result("clip-a", layers=("representation", "blocks.3")), make_result("plain", outliers=(), seed=5)],
                           {"/audits/broken.yaml": "checkpoint /x is truncated\n    fix: download again"})
    header = lines[0].split()
    # made from the summary alone: the head metrics apply nowhere, so their columns are left out
    assert header == ["model", "layer", "kurtosis", "rotated", "outliers", "passed/total", "verdict"]
    assert set(lines[1]) == {"-"}
    widths = {len(line) for line in lines[:2]}
    assert len(widths) == 1
    clip, blocks, plain, broken = lines[2:]
    assert clip.startswith("clip-a") and clip.split()[-1] == "FAIL" and "1/2" in clip
    assert blocks.startswith(" ") and "blocks.3" in blocks
    assert plain.split()[-1] == "FAIL"  # kurtosis ≈ 3 < min 5
    assert "broken.yaml" in broken and "ERROR: checkpoint /x is truncated" in broken and "fix" not in broken
    # numbers right-aligned in the header's columns
    col = lines[0].index("kurtosis") + len("kurtosis")
    assert clip[col - 1] != " " and plain[col - 1] != " "
    assert terminal_table([], {}) == []


def test_terminal_table_clips_long_names():
    lines = terminal_table([make_result("x" * 80, checks=())])
    assert "…" in lines[2] and len(lines[2].split()[0]) == 36
    assert lines[2].split()[-2:] == ["-", "-"]


# --------------------------------------------------------------------------------------------
# headless browser
# --------------------------------------------------------------------------------------------

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install -y chromium; .ci/run installs it)")
def test_report_renders_in_headless_chromium(page, tmp_path):
    from PIL import Image

    html, _, _ = page
    report = tmp_path / "report.html"
    report.write_text(html, encoding="utf-8")
    shot = tmp_path / "shot.png"
    command = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}", "--window-size=1280,2000",
               report.as_uri()]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "HOME": str(tmp_path)})
    assert shot.exists(), f"no screenshot (exit {done.returncode}):\n{done.stderr[-2000:]}"
    image = Image.open(shot).convert("RGB")
    assert image.size == (1280, 2000)
    pixels = np.asarray(image).reshape(-1, 3)
    non_white = float((pixels.min(axis=1) < 235).mean())
    colours = len(np.unique(pixels[:: 7] // 16, axis=0))
    assert non_white > 0.05, f"only {non_white:.1%} of the page is not white"
    assert colours > 30, f"only {colours} distinct colours: the plots and badges did not render"
    red = ((pixels[:, 0] > 180) & (pixels[:, 1] < 90) & (pixels[:, 2] < 90)).mean()
    blue = ((pixels[:, 2] > 180) & (pixels[:, 0] < 90)).mean()
    assert red > 0 and blue > 0, "the FAIL marks (red) and the plots (blue) are visible"


# --------------------------------------------------------------------------------------------
# pytest glue, end to end
# --------------------------------------------------------------------------------------------

PASSING = """\
kurtosis_mean: {min: 1}
outlier_count: {max: 0, factor: 10}
"""


def run(pytester, *args):
    return pytester.runpytest("-p", "no:randomly", "-p", "no:cacheprovider", *args)


def check_report_against_record(html_path: Path, json_path: Path, names: list[str]) -> Node:
    root = parse(html_path.read_text(encoding="utf-8"))
    _, results = read_record(json_path)
    assert sorted(r.name for r in results) == sorted(names)
    rows = {r.attrs["data-name"]: r for r in root.find_all("tr", cls="model-row")}
    assert sorted(rows) == sorted(names)
    for result in results:
        for li, check in zip(rows[result.name].find_all("li", cls="check"), result.checks):
            assert same(as_float(li.find_all("b", cls="measured")[0].attrs["data-value"]), check.value)
        assert len([s for s in root.find_all("section", cls="model") if s.attrs["data-name"] == result.name]) == 1
    return root


def test_e2e_report_json_and_terminal_summary(pytester, tiny_checkpoints, tmp_path):
    from support import spec_text

    pytester.mkdir("audits")
    hostile_ckpt = tmp_path / f"{HOSTILE.replace('/', '_')}.safetensors"
    shutil.copy(tiny_checkpoints["planted"], hostile_ckpt)
    (pytester.path / "audits" / "plain.yaml").write_text(spec_text(tiny_checkpoints["plain"], PASSING,
                                                                   layers="[representation, blocks.5]"))
    (pytester.path / "audits" / "planted.yaml").write_text(
        f'name: "{HOSTILE}"\n' + spec_text(hostile_ckpt, PASSING))
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(tiny_checkpoints["plain"].read_bytes()[:1000])
    (pytester.path / "audits" / "broken.yaml").write_text(spec_text(bad, PASSING))
    result = run(pytester, "--audit", "audits", "--audit-json", "out/record.json")
    result.assert_outcomes(passed=5, failed=3)
    report = pytester.path / "robustaudit-report.html"
    record = pytester.path / "out" / "record.json"
    out = result.stdout.str()
    assert f"robustaudit: report: {report}" in out and f"robustaudit: JSON record: {record}" in out
    result.stdout.fnmatch_lines([
        "*= robustaudit summary =*",
        "model * layer * kurtosis * rotated * outliers * passed/total * verdict",
        "plain * representation * 2/2 * PASS",
        "* blocks.5 * 2/2 * PASS",
        "<script>alert(1)</script> * representation * 3 ✗ (factor=10) * 1/2 * FAIL",
        "broken.yaml * ERROR: checkpoint /*",  # clipped to 90 characters: the file name may be cut in a deep tmp path
    ])
    html = report.read_text()
    assert no_foreign_script(html) and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    root = check_report_against_record(report, record, ["plain", HOSTILE])
    assert "bad.safetensors" in root.find_all("section", id="errors")[0].text()
    run_info, _ = read_record(record)
    assert run_info["errors"][0]["spec_path"].endswith("broken.yaml") and run_info["exit_status"] == 1
    assert oct(report.stat().st_mode & 0o777) == oct(0o666 & ~_umask())
    # every line of the summary table fits a 120-column terminal, the error row included (issue 26)
    lines = out.splitlines()
    first = next(i for i, line in enumerate(lines) if "robustaudit summary" in line) + 1
    table = lines[first:next(i for i in range(first, len(lines)) if lines[i].startswith("robustaudit:"))]
    assert len(table) == 6 and max(len(line) for line in table) <= 120, "\n".join(table)
    verbose = run(pytester, "--audit", "audits/plain.yaml", "-v", "--no-audit-report")   # from the store: fast
    verbose.stdout.fnmatch_lines(["plain * representation * 2.836 [[]2.704, 2.937] ✓ * 0 [[]0, 0] ✓ (factor=10) * PASS"])


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_e2e_report_options(pytester, tiny_checkpoints):
    from support import spec_text

    pytester.makefile(".yaml", spec=spec_text(tiny_checkpoints["plain"], PASSING))
    run(pytester, "--audit", "spec.yaml", "--no-audit-report").assert_outcomes(passed=2)
    run(pytester, "--audit", "spec.yaml", "--audit-report=none").assert_outcomes(passed=2)
    assert not list(pytester.path.glob("*.html"))
    result = run(pytester, "--audit", "spec.yaml", "--audit-report", "reports/r.html")
    assert (pytester.path / "reports" / "r.html").is_file()
    assert "robustaudit: JSON record" not in result.stdout.str()
    # an output that cannot be written is said at the end; the audit verdicts stand, the others are written
    (pytester.path / "blocker").write_text("a file, not a folder")
    result = run(pytester, "--audit", "spec.yaml", "--audit-report", "blocker/r.html", "--audit-json", "ok.json",
                 "--audit-markdown", "blocker/s.md")
    result.assert_outcomes(passed=2)
    assert result.ret == 0
    result.stdout.fnmatch_lines(["robustaudit: JSON record: *ok.json",
                                 "robustaudit: could not write the report to *blocker/r.html: *",
                                 "robustaudit: could not write the Markdown summary to *blocker/s.md: *"])
    assert read_record(pytester.path / "ok.json")[1][0].name == "spec"


def test_e2e_nothing_written_when_no_audit_ran(pytester):
    pytester.makepyfile(test_x="def test_x():\n    assert True\n")
    result = run(pytester, "--audit-report", "r.html", "--audit-json", "r.json")
    result.assert_outcomes(passed=1)
    assert not (pytester.path / "r.html").exists() and not (pytester.path / "r.json").exists()
    assert "robustaudit summary" not in result.stdout.str()


def test_e2e_fixture_audits_are_reported_when_asked(pytester, tiny_checkpoints):
    from support import spec_text

    pytester.makefile(".yaml", spec=spec_text(tiny_checkpoints["plain"], PASSING))
    pytester.makepyfile(test_fx="""
        def test_fx(audit):
            assert audit("spec.yaml").value("kurtosis_mean") > 1
    """)
    run(pytester).assert_outcomes(passed=1)
    assert not (pytester.path / "robustaudit-report.html").exists()  # the default needs --audit
    run(pytester, "--audit-json", "r.json").assert_outcomes(passed=1)
    _, (found,) = read_record(pytester.path / "r.json")
    assert found.name == "spec"


def test_e2e_xdist_controller_writes_every_workers_results(pytester, tiny_checkpoints):
    pytest.importorskip("xdist", reason="pytest-xdist is not installed")
    from support import spec_text

    pytester.mkdir("audits")
    for name in ("one", "two", "three"):
        (pytester.path / "audits" / f"{name}.yaml").write_text(spec_text(tiny_checkpoints["plain"], PASSING))
    result = run(pytester, "-n", "2", "--dist", "loadgroup", "--audit", "audits", "--audit-json", "r.json")
    result.assert_outcomes(passed=6)
    root = check_report_against_record(pytester.path / "robustaudit-report.html", pytester.path / "r.json",
                                       ["one", "two", "three"])
    assert len(root.find_all("svg", cls="profile-plot")) == 3
    run_info, _ = read_record(pytester.path / "r.json")
    assert run_info["workers"] == 2
    assert result.stdout.str().count("robustaudit: report:") == 1


def test_e2e_xdist_baselines_are_saved_and_said_by_the_controller(pytester, tiny_checkpoints):
    pytest.importorskip("xdist", reason="pytest-xdist is not installed")
    from support import spec_text

    pytester.mkdir("audits")
    (pytester.path / "blocker").write_text("a file where a folder should be")
    for name, baseline in (("one", "baselines/one.json"), ("two", "baselines/two.json"), ("bad", "blocker/b.json")):
        (pytester.path / "audits" / f"{name}.yaml").write_text(
            spec_text(tiny_checkpoints["plain"], "kurtosis_mean: {min_ratio: 0.9}\n",
                      extra=f"reference: {{baseline: ../{baseline}}}\n"))
    result = run(pytester, "-n", "2", "--dist", "loadgroup", "--audit", "audits", "--audit-save-baseline")
    result.assert_outcomes(skipped=3)  # first run: nothing to compare with yet
    assert result.ret == pytest.ExitCode.TESTS_FAILED  # one baseline could not be saved
    out = result.stdout.str()
    assert out.count("robustaudit: baseline saved to") == 2
    result.stdout.fnmatch_lines(["robustaudit: could not save the baseline *blocker/b.json of *bad.yaml*"])
    for name in ("one", "two"):
        assert read_record(pytester.path / "baselines" / f"{name}.json")[1][0].name == name
    rerun = run(pytester, "-n", "2", "--dist", "loadgroup", "--audit", "audits/one.yaml", "--audit", "audits/two.yaml")
    rerun.assert_outcomes(passed=2)


@pytest.mark.parametrize("xdist", [False, True], ids=["single", "xdist"])
def test_e2e_invalid_spec_is_listed_as_an_audit_that_could_not_run(pytester, tiny_checkpoints, xdist):
    from support import spec_text

    if xdist:
        pytest.importorskip("xdist", reason="pytest-xdist is not installed")
    pytester.mkdir("audits")
    (pytester.path / "audits" / "good.yaml").write_text(spec_text(tiny_checkpoints["plain"], PASSING))
    (pytester.path / "audits" / "invalid.yaml").write_text(
        spec_text(tiny_checkpoints["plain"], "kurtoss_mean: {min: 1}\noutlier_count: {min: 3, max: 1}\n"))
    workers = ("-n", "2") if xdist else ()
    result = run(pytester, *workers, "--audit", "audits", "--continue-on-collection-errors", "--audit-json", "r.json")
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(["invalid.yaml * ERROR: invalid audit spec (2 problems): *invalid.yaml:*: "
                                 "checks.kurtoss_mean: unknown met*"])
    run_info, found = read_record(pytester.path / "r.json")
    assert [r.name for r in found] == ["good"]
    (error,) = run_info["errors"]
    assert error["spec_path"].endswith("invalid.yaml") and "Did you mean: kurtosis_mean?" in error["message"]
    assert "min 3 is greater than max 1" in error["message"]
    section = parse((pytester.path / "robustaudit-report.html").read_text()).find_all("section", id="errors")[0]
    assert "Did you mean: kurtosis_mean?" in section.text() and "min 3 is greater than max 1" in section.text()
    # without --continue-on-collection-errors pytest stops (xdist: fails); the report still says why
    result = run(pytester, *workers, "--audit", "audits")
    assert result.ret == (pytest.ExitCode.TESTS_FAILED if xdist else pytest.ExitCode.INTERRUPTED)
    html = (pytester.path / "robustaudit-report.html").read_text()
    assert "Did you mean: kurtosis_mean?" in html


def test_the_profile_plot_draws_the_factor_its_check_judged():
    """Issue 26: a check at factor 100 gets the 100x line, not the default metric's 10x."""
    from builders import make_result

    checked = make_result("gated", checks=(("outlier_count", {"max": 5.0}, {"factor": 100.0}),))
    html = render_report([checked], REGISTRIES.metrics, {})
    assert "100× s" in html and "10× s" not in html
    plain = make_result("plain", checks=())
    assert "10× s" in render_report([plain], REGISTRIES.metrics, {})


def test_comparison_strips_show_their_values():
    """Issue 26: each model's strip says its value in text, not only as a dot's tooltip."""
    from pytest_robustaudit.report import svg

    drawn = svg.comparison_svg([svg.Row("a-model-with-a-long-name" * 3, 12.3456), svg.Row("b", 0.5)], "t", "x")
    assert '<text class="row-value"' in drawn and ">12.35</text>" in drawn and ">0.5</text>" in drawn
    assert "…" in drawn       # the long name is shortened to leave the value its room
