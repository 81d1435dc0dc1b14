"""What the release history costs a warm audit: keeping the run, comparing with the last release, tracing trends.

Side by side, each a whole ``pytest --audit audits/`` process on the shipped EfficientNet-Lite0 audit with the
activation store warm (so the audit itself is the 0.3 s of a warm re-audit and the history's work is not
hidden under an extraction):

(a) the plain run (no report, no record);
(b) the same with ``--audit-history DIR --audit-compare last`` and the HTML report (the trend section reads
    the folder, the comparison reads the last release's record, the run is kept: two files written).

The history folder is first filled with ``--releases`` kept runs of the audit (copies of one real run
under new ids, as 30 releases would leave it), so (b) reads a folder of that size; each round of (b)
adds one run.  Prints the median over ``--rounds`` rounds of (b) − (a) and (b) / (a), the two sides
alternating round by round (a load spike between two single runs fakes any ratio).  Not part of the
test suite::

    nice python benchmarks/bench_history.py [--rounds 5] [--releases 30]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run(args: list[str], env: dict[str, str], cwd: Path) -> float:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--audit",
                           str(REPO / "audits"), *args], cwd=cwd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"pytest {' '.join(args)} exited {done.returncode}:\n{done.stdout[-2000:]}")
    return seconds


def fill(history: Path, releases: int) -> None:
    """``releases`` copies of the one kept run, each under its own id and label (as many releases leave it)."""
    (entry,) = list((history / "index").glob("*.json"))
    data = json.loads(entry.read_text())
    record = (history / "runs" / entry.name).read_text()
    stem = entry.stem
    for i in range(releases - 1):
        new_id = stem[:8] + f"T0000{i:02d}" + stem[15:]
        (history / "runs" / f"{new_id}.json").write_text(record)
        (history / "index" / f"{new_id}.json").write_text(json.dumps({**data, "id": new_id, "label": f"v1.{i}.0"}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--releases", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        env = {**os.environ, "ROBUSTAUDIT_CACHE_DIR": str(tmp / "store")}
        history = tmp / "history"
        plain = ["--no-audit-report"]
        kept = ["--audit-history", str(history), "--audit-compare", "last", "--audit-report", str(tmp / "r.html")]
        run(plain, env, tmp)                                   # fills the store: every later run is warm
        run(kept + ["--audit-label", "seed"], env, tmp)
        fill(history, args.releases)
        a, b = [], []
        for i in range(args.rounds):
            order = ((a, plain), (b, kept)) if i % 2 == 0 else ((b, kept), (a, plain))
            for out, extra in order:
                out.append(run(extra, env, tmp))
            print(f"round {i + 1}: plain {a[-1]:.2f} s, with history {b[-1]:.2f} s", flush=True)
        diffs = [y - x for x, y in zip(a, b)]
        ratios = [y / x for x, y in zip(a, b)]
        print(f"median over {args.rounds} rounds, {args.releases}+ kept releases: (b) - (a) = "
              f"{statistics.median(diffs):+.2f} s, (b) / (a) = {statistics.median(ratios):.2f}x "
              f"(plain {statistics.median(a):.2f} s)")
        shutil.rmtree(tmp / "store", ignore_errors=True)


if __name__ == "__main__":
    main()
