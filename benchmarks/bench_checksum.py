"""What the store's checksum-while-streaming costs an audit's pass over a layer (issue 25: bit rot).

``Entry.rows`` hashes the bytes of a layer file as it streams them (sha256, compared with the
manifest's before the last chunk is handed out), so rotten rows never give numbers.  The audit reads
every row anyway (its statistics, the bootstrap pass, the head metrics); this benchmark measures what
the hashing adds to such a pass, side by side with the same reads without it:

(a) plain: the rows read in the same ~8 MiB chunks into fresh arrays, no hash (the reader before
    this change);
(b) checked: ``Entry.rows`` as audits use it.

Each side is timed twice: the reads alone, and the reads feeding the audit's first pass
(``summarise``: the float64 streaming statistics).  Rounds alternate which side goes first
(a, b, then b, a, ...); every round prints its two times and their ratio b/a, and the median ratio
over the rounds is the figure.  The file is in the page cache (read once before the rounds), so the
figures are the CPU cost of the hash, the worst case for it (a cold disk read makes it smaller).
A warm-up call of each side is not counted.  The load average is printed before and after.  Not part of the test suite::

    nice python benchmarks/bench_checksum.py [--images 1000 50000] [--features 1280] [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from pytest_robustaudit.measure.activations import summarise
from pytest_robustaudit.store import ActivationStore, content_key
from pytest_robustaudit.store.entries import CHUNK_BYTES, STORE_DTYPES, _read_npy_header


def plain_rows(entry, layer: str):
    """The rows as the reader before the checksum read them: the same chunks, no hash."""
    info = entry.info(layer)
    n, d = info.shape
    chunk_rows = max(1, CHUNK_BYTES // (d * 4))
    path = entry.path / info.file
    with open(path, "rb") as handle:
        handle.seek(_read_npy_header(path)[2])
        for start in range(0, n, chunk_rows):
            chunk = np.empty((min(chunk_rows, n - start), d), dtype=STORE_DTYPES[info.dtype])
            handle.readinto(memoryview(chunk).cast("B"))
            yield chunk


class _Plain:
    """The entry seen through :func:`plain_rows` (what ``summarise`` reads)."""

    def __init__(self, entry):
        self.entry = entry

    def rows(self, layer, dtype=np.float32):
        return plain_rows(self.entry, layer)


def make_entry(root: Path, n: int, d: int):
    store = ActivationStore(root, durable=False)
    parts = {"bench": "checksum", "n": n, "d": d}
    rng = np.random.default_rng(0)
    with store.create(content_key(parts), parts, {"model": "bench"}, [f"{i:064x}" for i in range(n)]) as writer:
        for start in range(0, n, 4096):
            writer.append("representation", rng.normal(size=(min(4096, n - start), d)).astype(np.float32))
        return writer.commit()


def timed(call) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def consume(rows) -> None:
    for _ in rows:
        pass


def run(n: int, d: int, rounds: int) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-checksum-") as folder:
        entry = make_entry(Path(folder), n, d)
        size = n * d * 4
        consume(entry.rows("representation"))   # into the page cache
        sides = {
            "read": (lambda: consume(plain_rows(entry, "representation")),
                     lambda: consume(entry.rows("representation"))),
            "read + statistics": (lambda: summarise(_Plain(entry), "representation", 0),
                                  lambda: summarise(entry, "representation", 0)),
        }
        print(f"\n{n} images x {d} features, float32: {size / 1e6:.0f} MB")
        for what, (plain, checked) in sides.items():
            plain(), checked()              # warm-up, not counted (first-call costs: imports, allocator)
            ratios = []
            for r in range(rounds):
                if r % 2 == 0:
                    a, b = timed(plain), timed(checked)
                else:
                    b, a = timed(checked), timed(plain)
                ratios.append(b / a)
                print(f"  {what:18s} round {r + 1}: plain {a:7.3f} s  checked {b:7.3f} s  ratio {b / a:.3f}")
            print(f"  {what:18s} median ratio checked/plain over {rounds} rounds: {statistics.median(ratios):.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, nargs="+", default=[1000, 50000])
    parser.add_argument("--features", type=int, default=1280)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}, {os.cpu_count()} cores")
    for n in args.images:
        run(n, args.features, args.rounds)
    print(f"\nload average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
