"""``validate`` on the shipped and online specs (issue 27): cold (an empty store: every timm and open_clip
architecture built without weights on the meta device) and cached (the architectures read from the store:
no model library imported).  Targets: cold <= 20 s, cached <= 3 s, whole processes, the network blocked.

Each round runs cold then cached, the next cached then cold (a fresh empty store for every cold run), so
a load spike cannot favour one side; the median over rounds is printed with every round's figures and the
load average.  Not a test (tests/e2e/test_validate.py asserts the behaviour, never the time)::

    nice python benchmarks/bench_validate.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

#: validate with every connection refused (as tests/e2e/test_validate.py does)
BLOCKED = """
import runpy, socket, sys
def refuse(*args, **kwargs):
    raise OSError("network blocked")
socket.socket.connect = socket.socket.connect_ex = refuse
socket.create_connection = socket.getaddrinfo = refuse
sys.argv = ["pytest_robustaudit", "validate", "audits/", "audits-online/"]
runpy.run_module("pytest_robustaudit", run_name="__main__")
"""


def once(store: Path) -> float:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", BLOCKED], cwd=REPO, capture_output=True, text=True,
                          env={**os.environ, "ROBUSTAUDIT_CACHE_DIR": str(store)})
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"validate failed:\n{done.stdout}\n{done.stderr}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    cold, cached = [], []
    with tempfile.TemporaryDirectory() as tmp:
        warm_store = Path(tmp) / "warm"
        once(warm_store)   # fill the store the cached side reads
        for i in range(args.rounds):
            fresh = Path(tmp) / f"cold-{i}"
            order = ("cold", "cached") if i % 2 == 0 else ("cached", "cold")
            for side in order:
                (cold if side == "cold" else cached).append(once(fresh if side == "cold" else warm_store))
            print(f"round {i + 1} ({' then '.join(order)}): cold {cold[-1]:.2f} s, cached {cached[-1]:.2f} s, "
                  f"load {os.getloadavg()[0]:.2f}")
    print(f"median over {args.rounds} rounds: cold {statistics.median(cold):.2f} s (target <= 20), "
          f"cached {statistics.median(cached):.2f} s (target <= 3)")


if __name__ == "__main__":
    main()
