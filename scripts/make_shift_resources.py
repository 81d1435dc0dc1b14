"""Rebuild ``src/pytest_robustaudit/resources/shifts/`` from the public sources it is derived from.

Why a script: the class subsets and the effective-robustness baselines are facts taken from other
projects' repositories, so anyone must be able to regenerate them and see that nothing was typed in
by hand.  Run it with checkouts (or ``git show`` exports) of

* modestyachts/imagenet-testbed  (MIT): ``robustness_top1s.csv``, ``plotting/model_types.py``,
  ``src/eval_settings/{imagenet_r,imagenet_a}.py`` and ``src/eval_settings/objectnet_metadata/``
* hendrycks/imagenet-r           (MIT): ``eval.py`` (``all_wnids``, ``imagenet_r_wnids``)
* hendrycks/natural-adv-examples (MIT): ``eval.py`` (``thousand_k_to_200``)

    python scripts/make_shift_resources.py --testbed T --imagenet-r R --natural-adv A \\
        [--commits testbed=SHA,imagenet-r=SHA,natural-adv=SHA]

The Python sources are read with ``ast`` (literals only, nothing is executed).  The fit here is
written independently of ``pytest_robustaudit.metrics.robustness`` (it works on the testbed's
percentages), so the package's refit of the shipped CSV is a real cross-check.
"""

from __future__ import annotations

import argparse
import ast
import csv
import json
from decimal import Decimal
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parents[1] / "src" / "pytest_robustaudit" / "resources" / "shifts"

#: our shift name -> imagenet-testbed column (top-1, percent)
TESTBED_COLUMNS = {
    "imagenet_v2": "imagenetv2-matched-frequency-format-val",
    "imagenet_r": "imagenet-r",
    "imagenet_sketch": "imagenet-sketch",
    "objectnet": "objectnet-1.0-beta",
    "imagenet_a": "imagenet-a",
}
SHIFTS = tuple(TESTBED_COLUMNS)


def literal(path: Path, name: str):
    """The value of the module-level assignment ``name = <literal>`` in a Python file."""
    tree = ast.parse(path.read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == name for t in node.targets):
            return ast.literal_eval(node.value)
    raise SystemExit(f"{path}: no literal assignment to {name}")


def model_types(path: Path) -> dict[str, str]:
    """model name -> ModelTypes member name, read from model_types.py: its dict literal, then its
    ``for i in range(N): model_types_map[f"...{i}..."] = ModelTypes.X`` loops (read, not run)."""
    tree = ast.parse(path.read_text())
    types: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == "model_types_map":
            types = {ast.literal_eval(k): v.attr for k, v in zip(node.value.keys, node.value.values)}
        elif isinstance(node, ast.For) and types:
            (count,) = [ast.literal_eval(a) for a in node.iter.args]
            (assign,) = node.body
            template = assign.targets[0].slice
            for i in range(count):
                name = "".join(str(i) if isinstance(part, ast.FormattedValue) else part.value
                               for part in template.values)
                types[name] = assign.value.attr
    if not types:
        raise SystemExit(f"{path}: no model_types_map")
    return types


def header(lines: list[str]) -> str:
    return "".join(f"# {line}\n" if line else "#\n" for line in lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--testbed", type=Path, required=True)
    parser.add_argument("--imagenet-r", type=Path, required=True)
    parser.add_argument("--natural-adv", type=Path, required=True)
    parser.add_argument("--commits", default="", help="name=sha,... recorded in the files' headers")
    args = parser.parse_args()
    commits = dict(item.split("=", 1) for item in args.commits.split(",") if item)

    def at(repo: str) -> str:
        return f"github.com/{repo}" + (f" at {commits[repo.split('/')[1]]}" if repo.split("/")[1] in commits else "")

    testbed, hendrycks_r, hendrycks_a = args.testbed, args.imagenet_r, args.natural_adv
    OUT.mkdir(parents=True, exist_ok=True)

    # -- ImageNet-1k wnids in class-index order, and the -R / -A subsets -----------------------------
    all_wnids = literal(hendrycks_r / "eval.py", "all_wnids")
    assert len(all_wnids) == 1000 and len(set(all_wnids)) == 1000
    r_wnids = literal(hendrycks_r / "eval.py", "imagenet_r_wnids")
    r_indices = sorted(all_wnids.index(w) for w in r_wnids)
    a_map = literal(hendrycks_a / "eval.py", "thousand_k_to_200")
    a_indices = sorted(k for k, v in a_map.items() if v != -1)
    # the testbed lists the same subsets as index lists: they must agree
    assert r_indices == literal(testbed / "src/eval_settings/imagenet_r.py", "class_sublist")
    assert a_indices == literal(testbed / "src/eval_settings/imagenet_a.py", "class_sublist")
    assert len(r_indices) == len(a_indices) == 200

    (OUT / "imagenet1k_wnids.txt").write_text(header([
        "ImageNet-1k (ILSVRC-2012) class wnids, one per line, line i (0-based, comments skipped) = class index i.",
        f"Source: all_wnids in eval.py of {at('hendrycks/imagenet-r')} (MIT).",
    ]) + "".join(f"{w}\n" for w in all_wnids))
    for name, title, indices, source in (
        ("imagenet_r", "ImageNet-R", r_indices, f"imagenet_r_wnids in eval.py of {at('hendrycks/imagenet-r')} (MIT)"),
        ("imagenet_a", "ImageNet-A", a_indices, f"thousand_k_to_200 in eval.py of {at('hendrycks/natural-adv-examples')} (MIT)"),
    ):
        (OUT / f"{name}_wnids.txt").write_text(header([
            f"The 200 ImageNet-1k classes of {title}, "
            "one wnid per line, in ImageNet-1k class-index order.",
            f"Source: {source}.",
            f"Identical to class_sublist in src/eval_settings/{name}.py of {at('modestyachts/imagenet-testbed')} (MIT).",
        ]) + "".join(f"{all_wnids[i]}\n" for i in indices))

    # -- ObjectNet -> ImageNet-1k --------------------------------------------------------------------
    meta = testbed / "src/eval_settings/objectnet_metadata"
    on_to_in = json.loads((meta / "objectnet_to_imagenet_1k.json").read_text())
    label_of_index = {int(k): v for k, v in json.loads((meta / "imagenet_to_labels.json").read_text()).items()}
    index_of_label = {v: k for k, v in label_of_index.items()}
    folder_of = {v: k for k, v in json.loads((meta / "folder_to_objectnet_label.json").read_text()).items()}
    classes = {}
    for on_name, in_names in sorted(on_to_in.items()):
        indices = sorted(index_of_label[n] for n in in_names.split("; "))
        classes[on_name] = {
            "folder": folder_of[on_name],
            "imagenet_indices": indices,
            "imagenet_wnids": [all_wnids[i] for i in indices],
            "imagenet_names": [label_of_index[i] for i in indices],
        }
    assert len(classes) == 113
    (OUT / "objectnet_to_imagenet.json").write_text(json.dumps({
        "about": "The 113 ObjectNet classes that overlap ImageNet-1k, each with the ImageNet-1k classes it "
                 "stands for. A prediction (argmax over the union of these ImageNet-1k classes) is correct "
                 "when it is one of the image's class's imagenet_indices.",
        "source": f"src/eval_settings/objectnet_metadata/{{objectnet_to_imagenet_1k,imagenet_to_labels,"
                  f"folder_to_objectnet_label}}.json of {at('modestyachts/imagenet-testbed')} (MIT), "
                  "copies of the mapping files distributed with ObjectNet (objectnet.dev); "
                  "wnids from imagenet1k_wnids.txt",
        "classes": classes,
    }, indent=1) + "\n")

    # -- accuracies and baselines ---------------------------------------------------------------------
    types = model_types(testbed / "plotting/model_types.py")
    with open(testbed / "robustness_top1s.csv", newline="") as f:
        rows = list(csv.DictReader(f))

    def fraction(text: str) -> str:
        return "" if text == "" else str(Decimal(text) / 100)

    with open(OUT / "imagenet_testbed_accuracies.csv", "w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["model", "type", "imagenet", *SHIFTS])
        for row in rows:
            writer.writerow([row["model"], types.get(row["model"], ""), fraction(row["val"]),
                             *(fraction(row[TESTBED_COLUMNS[s]]) for s in SHIFTS)])

    standard = [r for r in rows if types.get(r["model"]) == "STANDARD"]
    complete = [r for r in standard if r["val"] and all(r[c] for c in TESTBED_COLUMNS.values())]

    def logit(p):
        return np.log(p / (1 - p))

    def fit(x_percent, y_percent):
        x, y = np.asarray(x_percent, dtype=np.float64) / 100, np.asarray(y_percent, dtype=np.float64) / 100
        design = np.column_stack([logit(x), np.ones_like(x)])
        (b1, b0), *_ = np.linalg.lstsq(design, logit(y), rcond=None)
        residual = logit(y) - (b1 * logit(x) + b0)
        return {"b1": float(b1), "b0": float(b0), "n_models": int(len(x)),
                "residual_sd_logit": float(np.std(residual, ddof=2))}

    x_all = [float(r["val"]) for r in complete]
    baselines = {"mean5": {
        **fit(x_all, [np.mean([float(r[c]) for c in TESTBED_COLUMNS.values()]) for r in complete]),
        "y": "mean of the five shifts' top-1 (accuracy space), then logit",
        "excluded": [],
    }}
    # per shift: every STANDARD model with that shift (not only the 82 with all five), so that
    # fit_baseline_csv(..., where={"type": "STANDARD"}) on the shipped CSV reproduces each line
    for shift, column in TESTBED_COLUMNS.items():
        present = [r for r in standard if r["val"] and r[column]]
        usable = [r for r in present if 0 < float(r[column]) < 100]
        baselines[shift] = {
            **fit([float(r["val"]) for r in usable], [float(r[column]) for r in usable]),
            "y": f"{shift} top-1",
            "excluded": [f"{r['model']} ({shift} top-1 {r[column]}%: logit undefined)"
                         for r in present if r not in usable],
        }
    excluded_incomplete = [f"{r['model']} (no {', '.join(s for s, c in TESTBED_COLUMNS.items() if not r[c])})"
                           for r in standard if r not in complete]
    (OUT / "baselines.json").write_text(json.dumps({
        "about": "Effective-robustness baselines: logit(shift top-1) = b1 * logit(ImageNet top-1) + b0, "
                 "fitted over the imagenet-testbed models of type STANDARD (standard ImageNet-1k training): "
                 "mean5 over those with all five shift accuracies, each shift over those with that shift.",
        "source": f"robustness_top1s.csv and plotting/model_types.py of {at('modestyachts/imagenet-testbed')} "
                  "(MIT); the same accuracies as fractions are in imagenet_testbed_accuracies.csv",
        "method": "ordinary least squares in logit space (float64, numpy.linalg.lstsq; the same line as "
                  "scipy.stats.linregress, which the testbed's plots use); x = logit(ImageNet val top-1)",
        "models": "type == STANDARD; mean5: every one of imagenet, " + ", ".join(SHIFTS) + " present; "
                  "per shift: imagenet and that shift present, its top-1 strictly between 0 and 1",
        "mean5_models_left_out": excluded_incomplete,
        "columns": {"imagenet": "val", **TESTBED_COLUMNS},
        "baselines": baselines,
    }, indent=1) + "\n")
    for name, b in baselines.items():
        print(f"{name:16s} b1={b['b1']:.6f} b0={b['b0']:.6f} n={b['n_models']}")


if __name__ == "__main__":
    main()
