"""The terminal summary fits a 120-column terminal without ``-v`` whatever the spec (issue 26): long model
and layer names, many checks of one metric at several parameters, every status (pass, fail,
inconclusive, error, skipped), intervals, specs that could not run.  Columns that do not fit are
folded under their row as ``name: value`` items, never dropped.  Results are generated (seeded), built
by hand as the runner judges them (tests/builders.py)."""

from __future__ import annotations

import math
import random

import pytest

from pytest_robustaudit.analyse.checks import evaluate
from pytest_robustaudit.metrics.bootstrap import Interval
from pytest_robustaudit.metrics.types import MetricValue
from pytest_robustaudit.report.table import terminal_table
from pytest_robustaudit.results import CheckOutcome
from pytest_robustaudit.spec.schema import CheckSpec

from builders import REGISTRIES, make_result

#: the width docs/report.md promises without -v
WIDTH = 120
MARKS = "✓✗?"
WORDS = ["open_clip", "ViT-B-32", "laion2b_s34b_b79k", "fine-tuned", "on", "ImageNet-1k", "epoch", "10", "x" * 40,
         "efficientnet_lite0", "ra_in1k"]
LAYER_PARTS = ["visual", "transformer", "resblocks", "11", "mlp", "c_proj", "blocks", "6", "0", "conv_pwl", "y" * 30]
#: headline metrics and parameters a check may run them at
CHECKED = [("kurtosis_mean", {}), ("rotated_kurtosis_mean", {}), ("outlier_count", {"factor": 100.0}),
           ("outlier_count", {"factor": 10.0}), ("outlier_count", {"factor": 3.5, "tau": 12.0}), ("top1_accuracy", {})]


def _check(rng: random.Random, metric: str, params: dict, layer: str) -> CheckOutcome:
    """One check of ``metric`` with a random value, bounds and status."""
    kind = rng.choice(["pass", "fail", "inconclusive", "error", "skip", "interval"])
    value = rng.choice([0.0, 3.0, 0.7133, 12345.678, 1e-7, -42.5, 1e12])
    if kind == "skip":
        return CheckOutcome(metric, layer, math.nan, None, 1.0, False, "no baseline saved", dict(params),
                            skip_reason="no baseline saved yet: run with --audit-save-baseline")
    spec = CheckSpec(metric, layer, min=value - 1 if kind != "fail" else value + 1, max=None, params=dict(params))
    if kind == "error":
        return evaluate(spec, MetricValue(math.nan, {}, "could not compute: every feature is constant"), "model: m")
    if kind in ("inconclusive", "interval"):
        low, high = (value - 2, value + 2) if kind == "inconclusive" else (value - 0.5, value + 0.5)
        iv = Interval(value, low, high, 0.95, "BCa bootstrap", rng.choice(["lower", "two-sided"]), 1000, 11)
        return evaluate(spec, MetricValue(value), "model: m", interval=iv, confidence=0.95)
    return evaluate(spec, MetricValue(value), "model: m")


def _results(seed: int):
    rng = random.Random(seed)
    results = []
    for index in range(rng.randint(1, 4)):
        name = " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 8))) + f"-{seed}-{index}"
        layers = tuple(dict.fromkeys(".".join(rng.choice(LAYER_PARTS) for _ in range(rng.randint(1, 9))) + f".{i}"
                                     for i in range(rng.randint(1, 3))))
        result = make_result(name, layers=layers, checks=(), seed=index)
        for layer in layers:
            checkable = CHECKED[:-1]
            if rng.random() < 0.7:   # a labelled audit: a top-1 column, and top-1 may be checked
                result.layers[layer].metrics["top1_accuracy"] = MetricValue(rng.random(), {"correct": 1, "labelled": 2})
                checkable = CHECKED
            for metric, params in rng.sample(checkable, rng.randint(0, len(checkable))):
                for _ in range(rng.choice([1, 1, 2])):
                    result.checks.append(_check(rng, metric, params, layer))
        results.append(result)
    errors = {f"/audits/{'z' * rng.randint(1, 80)}.yaml": "checkpoint " + "w" * rng.randint(1, 300) + "\n    fix: again"
              for _ in range(rng.randint(0, 2))}
    return results, errors


@pytest.mark.parametrize("seed", range(60))
def test_no_line_is_wider_than_the_terminal_and_nothing_is_dropped(seed):
    results, errors = _results(seed)
    lines = terminal_table(results, errors, REGISTRIES.metrics)
    too_wide = [line for line in lines if len(line) > WIDTH]
    assert not too_wide, "\n".join(lines)
    text = "\n".join(lines)
    # every judged check of a headline metric shows its mark, in the table or folded under its row
    judged = [c for r in results for c in r.checks if not c.skip_reason]
    assert sum(text.count(mark) for mark in MARKS) == len(judged), text
    verdict_rows = [line for line in lines[2:] if line.rstrip().endswith(("PASS", "FAIL", "INCONCLUSIVE", "SKIP", " -"))]
    assert len(verdict_rows) >= sum(len(r.layers) for r in results)
    assert sum("ERROR: checkpoint" in line for line in lines) == len(errors)


def test_with_v_the_intervals_make_it_as_wide_as_they_need():
    results, errors = _results(3)
    wide = terminal_table(results, errors, REGISTRIES.metrics, intervals=True, width=None)
    assert max(map(len, wide)) > WIDTH and not any(line.startswith(" " * 40) and ": " in line for line in wide[2:])


def test_a_labelled_spec_with_five_checks_folds_its_widest_column():
    """The case issue 26 measured at 124 columns: kurtosis, rotated, two outlier checks and top-1 on two layers."""
    checks = (("kurtosis_mean", {"min": 3.0}, {}), ("rotated_kurtosis_mean", {"max": 10.0}, {}),
              ("outlier_count", {"max": 0.0}, {"factor": 100.0}), ("outlier_count", {"max": 5.0}, {"factor": 10.0}))
    result = make_result("efficientnet_lite0-labelled", layers=("representation", "blocks.6.0.conv_pwl"), checks=checks)
    for layer in result.layers.values():
        layer.metrics["top1_accuracy"] = MetricValue(0.691, {"correct": 691, "labelled": 1000})
    lines = terminal_table([result], {"/a/broken.yaml": "checkpoint /tmp/bad.safetensors is truncated " + "x" * 200},
                           REGISTRIES.metrics)
    assert max(map(len, lines)) <= WIDTH, "\n".join(lines)
    assert lines[0].split() == ["model", "layer", "kurtosis", "rotated", "top-1", "passed/total", "verdict"]
    row, folded = lines[2], lines[3]
    assert row.startswith("efficientnet_lite0-labelled") and row.endswith("4/4           PASS") and "0.691" in row
    # folded under the layer column, set in, each value with its own label, mark and parameters
    assert folded.index("outliers") > lines[0].index("layer")
    assert [p.strip() for p in folded.split("   ") if p.strip()] == ["outliers: 0 ✓ (factor=100)", "outliers: 2 ✓ (factor=10)"]
    assert lines[-1].startswith("broken.yaml") and "ERROR: checkpoint /tmp/bad.safetensors" in lines[-1]
    # with -v every column stands in the table
    wide = terminal_table([result], None, REGISTRIES.metrics, intervals=True, width=None)
    assert "outliers" in wide[0].split()


def test_a_long_layer_name_keeps_its_start_and_its_end():
    result = make_result("m", layers=("visual.transformer.resblocks.10.mlp.c_fc", "visual.transformer.resblocks.11.mlp.c_fc"))
    lines = terminal_table([result])
    first, second = lines[2].split()[1], lines[3].split()[0]
    assert first != second and "…" in first and first.endswith("c_fc") and first.startswith("visual")


def test_a_model_name_stays_whole_while_the_table_has_room():
    """The shipped audit's name (44 characters) reads whole in 120 columns; a longer one is cut only when
    the columns would not fit beside it."""
    name = "efficientnet-lite0 (ImageNet-1k, supervised)"
    lines = terminal_table([make_result(name)], {}, REGISTRIES.metrics)
    assert lines[2].startswith(name) and max(map(len, lines)) <= 120
    longer = name + " fine-tuned on our in-house data, epoch 10 of 10"
    cut = terminal_table([make_result(longer)], {}, REGISTRIES.metrics)
    assert max(map(len, cut)) <= 120 and cut[2].split("…")[0] and not cut[2].startswith(longer)
