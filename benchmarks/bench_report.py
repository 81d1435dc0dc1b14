"""How big and how slow is the report for a researcher's comparison: 30 models × 3 layers × 10 checks
(one metric checked at two parameter values), d = 2048, N = 1000 probe images.  Prints figures; not a test.

    .venv/bin/python benchmarks/bench_report.py [--models 30] [--layers 3] [--checks 10] [--dim 2048] [--images 1000] [--out DIR]

Measures: render time of the HTML (median of a few runs), its size (raw and gzipped), the JSON
record's size and write/read times with 7-digit and exact arrays side by side (ratio), and, when
Chromium is installed, how long a headless Chromium takes to load and screenshot the report against
a blank page in the same run (ratio); with Playwright too, the time to load and lay out the page at
1400 and 420 px, and whether it scrolls sideways at 420 px.  Also the Markdown summary and the
terminal table (size, time).  Figures: docs/performance.md.
"""

from __future__ import annotations

import argparse
import gzip
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


#: the checks every layer gets, (metric, min, max, params): ten, one metric at two parameter values
CHECKS = (("kurtosis_mean", 5.0, None, {}), ("kurtosis_median", 5.0, None, {}),
          ("rotated_kurtosis_mean", None, 4.0, {}), ("rotated_kurtosis_median", None, 4.0, {}),
          ("basis_kurtosis_ratio", 1.5, None, {}), ("profile_max_over_median", 10.0, None, {}),
          ("profile_max_over_mean", 5.0, None, {}), ("profile_kurtosis", 10.0, None, {}),
          ("outlier_count", 1.0, None, {"factor": 10.0}), ("outlier_count", None, 3.0, {"factor": 100.0}))


def synthetic_results(models: int, layers: int, dim: int, images: int, checks: int = len(CHECKS)):
    from pytest_robustaudit.analyse.checks import evaluate
    from pytest_robustaudit.results import AuditResult, LayerResult
    from pytest_robustaudit.registries import standalone
    from pytest_robustaudit.spec.schema import CheckSpec
    from pytest_robustaudit.metrics.outlier_stats import LayerStats

    registries = standalone()
    rng = np.random.default_rng(0)
    rotation, _ = np.linalg.qr(rng.normal(size=(dim, dim)))

    def kurt(h):
        c = h - h.mean(axis=1, keepdims=True)
        return (c ** 4).mean(axis=1) / ((c ** 2).mean(axis=1)) ** 2

    base = rng.normal(size=(images, dim))
    base_rotated = base @ rotation     # planted outliers change a few columns: rotate only the change
    names = ["representation", "pre_projection", *(f"blocks.{i}" for i in range(11, 11 - layers + 2, -1))][:layers]
    results = []
    for m in range(models):
        per_layer = {}
        for li, layer in enumerate(names):
            h = base.copy()
            planted = rng.choice(dim, size=(m + li) % 7, replace=False)
            change = h[:, planted] * (10.0 ** (1 + m / 10) - 1)
            h[:, planted] += change
            h_rotated = base_rotated + change @ rotation[planted, :]   # (base + change) @ Q
            stats = LayerStats(layer, dim, images, 0, kurt(h), kurt(h_rotated), np.abs(h).mean(0), h.mean(0),
                               h.var(0), 0, [])
            per_layer[layer] = LayerResult(layer, stats, {n: registries.metrics.get(n).evaluate(stats)
                                                          for n in registries.metrics.names()})
        result = AuditResult(Path(f"/audits/model-{m:02d}.yaml"), f"model-{m:02d}", f"open_clip:ViT-B-32 [ckpt-{m}.pt]",
                             "open_clip", f"sha256:{m:064x}", "cuda:0", "fp32", Path("/data/imagenet-val-1k"), images,
                             images, [], 30.0 + m, per_layer, [], 256, {"library": "open_clip 3.3.0"})
        for layer in names:
            for metric, low, high, params in CHECKS[:checks]:
                spec = CheckSpec(metric, layer, low, high, params=params)
                value = registries.metrics.get(metric).evaluate(per_layer[layer].stats, params)
                result.checks.append(evaluate(spec, value, f"model: {result.model}"))
        results.append(result)
    return results, registries


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=30)
    parser.add_argument("--layers", type=int, default=3)
    parser.add_argument("--checks", type=int, default=len(CHECKS), help=f"checks per layer (at most {len(CHECKS)})")
    parser.add_argument("--dim", type=int, default=2048)
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--out", type=Path, default=None, help="keep the report and record in this folder")
    args = parser.parse_args(argv)

    from pytest_robustaudit.results.record import read_record, write_record
    from pytest_robustaudit.report import render_report, write_report

    t0 = time.perf_counter()
    results, registries = synthetic_results(args.models, args.layers, args.dim, args.images, args.checks)
    print(f"setup: {args.models} models × {args.layers} layers × {args.checks} checks "
          f"({sum(len(r.checks) for r in results)} checks), d = {args.dim}, N = {args.images} "
          f"(synthetic, {time.perf_counter() - t0:.1f} s)")

    times, cpu, html = [], [], ""
    for _ in range(args.repeat):
        start, start_cpu = time.perf_counter(), time.process_time()
        html = render_report(results, registries.metrics, {"purpose": "benchmark"})
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    size = len(html.encode())
    print(f"HTML render: median {statistics.median(times) * 1000:.0f} ms wall, {statistics.median(cpu) * 1000:.0f} ms CPU "
          f"(min {min(times) * 1000:.0f} ms wall, {args.repeat} runs, first {times[0] * 1000:.0f} ms incl. template compile)")
    print(f"HTML size: {size / 1e6:.2f} MB ({size / (args.models * args.layers) / 1e3:.1f} kB per model×layer), "
          f"gzip {len(gzip.compress(html.encode())) / 1e6:.2f} MB, {html.count('<svg')} SVGs")

    from pytest_robustaudit.report.markdown import render_markdown
    from pytest_robustaudit.report.table import terminal_table

    start = time.perf_counter()
    summary = render_markdown(results, {}, "robustaudit-report.html", registries.metrics)
    md_s = time.perf_counter() - start
    start = time.perf_counter()
    table = terminal_table(results, {}, registries.metrics)
    table_s = time.perf_counter() - start
    print(f"Markdown summary: {len(summary.encode()) / 1e3:.1f} kB, {md_s * 1000:.0f} ms; "
          f"terminal table: {len(table)} lines, {max(map(len, table))} columns, {table_s * 1000:.0f} ms")

    folder = args.out or Path(tempfile.mkdtemp(prefix="bench-report-"))
    folder.mkdir(parents=True, exist_ok=True)
    report = folder / "report.html"
    write_report(html, report)
    measured = {}
    for digits, label in ((7, "7 significant digits (default)"), (None, "exact")):
        path = folder / f"record-{digits or 'exact'}.json"
        start = time.perf_counter()
        write_record(results, path, {"purpose": "benchmark"}, array_digits=digits)
        wrote = time.perf_counter() - start
        start = time.perf_counter()
        read_record(path)
        read = time.perf_counter() - start
        measured[digits] = (path.stat().st_size, wrote, read)
        print(f"JSON record, arrays {label}: {path.stat().st_size / 1e6:.2f} MB, write {wrote:.2f} s, read {read:.2f} s")
    (s7, w7, r7), (sx, wx, rx) = measured[7], measured[None]
    print(f"ratio 7 digits / exact: size {s7 / sx:.2f}x, write {w7 / wx:.2f}x, read {r7 / rx:.2f}x")

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium:
        blank = folder / "blank.html"
        blank.write_text("<!doctype html><title>blank</title>", encoding="utf-8")

        def shoot(page: Path) -> float:
            start = time.perf_counter()
            subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                            "--disable-background-networking", "--disable-component-update", "--disable-sync",
                            f"--user-data-dir={folder / 'chromium-profile'}", f"--screenshot={page.with_suffix('.png')}",
                            "--window-size=1280,2000", page.as_uri()], capture_output=True, timeout=300)
            return time.perf_counter() - start

        shoot(blank)  # warm the profile and the page cache
        page_s, blank_s = shoot(report), shoot(blank)
        print(f"headless Chromium load + screenshot: report {page_s:.2f} s, blank page {blank_s:.2f} s "
              f"(browser start included in both): ratio {page_s / blank_s:.2f}x")
        _playwright(chromium, report)
    else:
        print("headless Chromium: not installed, skipped")
    print(f"files in {folder}")
    return 0


def _playwright(chromium: str, report: Path) -> None:
    """Load and lay out the report in Chromium through Playwright at 1400 and 420 px (if installed)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        print("Playwright: not installed, skipped (pip install -e '.[test]')")
        return
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu",
                                                                     "--disable-dev-shm-usage"])
        for width in (1400, 420):
            page = browser.new_page(viewport={"width": width, "height": 900})
            start = time.perf_counter()
            page.goto(report.as_uri(), wait_until="load")
            scroll, height = page.evaluate("[document.documentElement.scrollWidth, document.documentElement.scrollHeight]")
            loaded = time.perf_counter() - start
            print(f"Chromium (Playwright) at {width} px: load and layout {loaded:.2f} s, page {scroll} × {height} px"
                  f"{' (no sideways scroll)' if scroll == width else ' (SCROLLS SIDEWAYS)'}")
            page.close()
        browser.close()


if __name__ == "__main__":
    sys.exit(main())
