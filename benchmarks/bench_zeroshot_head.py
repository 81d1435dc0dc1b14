"""How fast is our zero-shot head next to the builders users run today, and is it the same head?

Side by side in one run, on the same random-init open_clip model (no network) and the same
N ImageNet classes (evenly spaced over the 1000) x the 80 OpenAI templates:

(a) CLIP_benchmark 1.6.2's approach: one class at a time, its 80 prompts padded to 77 tokens,
    encode, normalise, mean, normalise (open_clip's ``build_zero_shot_classifier_legacy``, the same
    loop; equivalent to ``build_zero_shot_classifier(num_classes_per_batch=1)``);
(b) open_clip's ``build_zero_shot_classifier`` with its defaults (10 classes per forward);
(c) ours, ``pytest_robustaudit.models.zero_shot.zero_shot_head`` (prompts sorted by length, each batch
    trimmed to its longest prompt on a causal tower).

The three run interleaved, round after round, so that load from other processes on a shared
machine falls on all of them alike; the best round of each is reported.  Prints seconds per class,
the ratios (a)/(c) and (b)/(c), and the largest absolute difference between the weights.
Not part of the test suite:

    python benchmarks/bench_zeroshot_head.py [--classes 20] [--model RN50] [--rounds 1]
"""

from __future__ import annotations

import argparse
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--classes", type=int, default=20, help="number of ImageNet classes (default 20)")
    parser.add_argument("--model", default="RN50", help="open_clip architecture, random init (default RN50)")
    parser.add_argument("--templates", default="openai", help="template set: openai (80) or simple (7)")
    parser.add_argument("--rounds", type=int, default=1, help="interleaved rounds; the best is kept")
    parser.add_argument("--batch-size", type=int, default=256, help="prompts per forward for (c)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    args = parser.parse_args()

    import numpy as np
    import open_clip
    import torch
    from open_clip.zero_shot_classifier import build_zero_shot_classifier, build_zero_shot_classifier_legacy

    from pytest_robustaudit.models.heads import imagenet_class_names
    from pytest_robustaudit.models.zero_shot import _pool_index, _trim_plan, resolve_templates, zero_shot_head

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = open_clip.create_model(args.model, pretrained=None).eval()
    tokenizer = open_clip.get_tokenizer(args.model)
    every = max(1, 1000 // args.classes)
    classes = imagenet_class_names()[::every][: args.classes]
    templates = resolve_templates(args.templates)
    prompts = len(classes) * len(templates)

    tower, why = _trim_plan(model)
    tokens = tokenizer([t.format(c) for c in classes for t in templates])
    if tower is not None:
        lengths = (_pool_index(tokens, tower.pool_type, tower.eos_id) + 1).float()
        print(f"prompt lengths (tokens up to end-of-text): mean {lengths.mean():.1f}, "
              f"max {int(lengths.max())} of {tokens.shape[1]}")
    print(f"{args.model} (random init), {len(classes)} classes x {len(templates)} templates = {prompts} prompts, "
          f"torch {torch.__version__}, open_clip {open_clip.__version__}, {torch.get_num_threads()} threads; "
          f"our route: {why}")

    runs = {
        "a": ("CLIP_benchmark 1.6.2 (per class)",
              lambda: build_zero_shot_classifier_legacy(model, tokenizer, classes, templates).T.double().numpy()),
        "b": ("open_clip build_zero_shot_classifier (defaults)",
              lambda: build_zero_shot_classifier(model, tokenizer, classes, templates).T.double().numpy()),
        "c": ("pytest-robustaudit zero_shot_head",
              lambda: zero_shot_head(model, tokenizer, classes, templates, batch_size=args.batch_size).weight),
    }
    best = {key: float("inf") for key in runs}
    weights = {}
    for round_ in range(args.rounds):
        for key, (label, run) in runs.items():
            start = time.perf_counter()
            weights[key] = run()
            seconds = time.perf_counter() - start
            best[key] = min(best[key], seconds)
            print(f"  round {round_ + 1} ({key}) {label}: {seconds:.1f} s ({seconds / len(classes):.3f} s/class)",
                  flush=True)

    print()
    for key, (label, _) in runs.items():
        print(f"({key}) {label:50s} {best[key] / len(classes):7.3f} s/class  "
              f"(1000 classes: {best[key] / len(classes) * 1000 / 60:5.1f} min)")
    print(f"speed-up (a)/(c) = {best['a'] / best['c']:.2f}x, (b)/(c) = {best['b'] / best['c']:.2f}x")
    for pair in (("a", "c"), ("b", "c"), ("a", "b")):
        diff = float(np.abs(weights[pair[0]] - weights[pair[1]]).max())
        print(f"max |W({pair[0]}) - W({pair[1]})| = {diff:.2e}")


if __name__ == "__main__":
    main()
