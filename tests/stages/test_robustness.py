"""Effective robustness, its baselines, the Spearman interval and the shifted sets' class subsets.

The reference values are public: the ER sanity values of the design brief (open_clip RN50/openai and
torchvision ResNet-50, whose accuracies are in imagenet-testbed and the CLIP paper), the baselines
refitted from the shipped imagenet-testbed table, and timm's own copies of the ImageNet-1k, -R and -A
synset lists (an independent source for the class files).
"""

from __future__ import annotations

import math
from importlib import resources

import numpy as np
import pytest

from pytest_robustaudit.errors import AuditError
from pytest_robustaudit.metrics.robustness import (
    MEAN5,
    SHIFTS,
    Baseline,
    RobustnessError,
    effective_robustness,
    fit_baseline,
    fit_baseline_csv,
    imagenet1k_wnids,
    logit,
    objectnet_mapping,
    shift_class_subset,
    shift_class_wnids,
    shipped_accuracies_path,
    shipped_baseline,
    spearman_with_interval,
)


def _logit(p):
    p = np.asarray(p, dtype=np.float64)
    return np.log(p) - np.log1p(-p)


def _timm_synsets(name: str) -> list[str]:
    text = resources.files("timm").joinpath("data", "_info", name).read_text()
    return [line.strip() for line in text.splitlines() if line.strip()]


# ---------------------------------------------------------------------------------------------- ER


def test_reference_effective_robustness_with_the_shipped_mean_of_five_baseline():
    clip = effective_robustness(0.598, 0.427)  # open_clip RN50/openai, zero-shot
    resnet = effective_robustness(0.761, 0.318)  # torchvision ResNet-50
    assert clip == pytest.approx(0.24, abs=0.005)
    assert resnet == pytest.approx(-0.02, abs=0.005)
    # the same numbers from the brief's rounded coefficients, written out by hand
    by_hand = 0.427 - 1 / (1 + math.exp(-(1.0446 * math.log(0.598 / 0.402) - 1.8946)))
    assert float(clip) == pytest.approx(by_hand, abs=1e-4)
    assert clip.per_shift_averaged is False and clip.baselines[0].shift == MEAN5
    assert clip.expected == pytest.approx(0.427 - float(clip))


def test_shipped_mean_of_five_baseline_is_the_published_fit():
    line = shipped_baseline()
    assert line.shift == MEAN5 and line.n_models == 82
    assert line.b1 == pytest.approx(1.0446, abs=5e-5)
    assert line.b0 == pytest.approx(-1.8946, abs=5e-5)
    assert "least squares in logit space" in line.method
    assert "imagenet-testbed" in line.source


@pytest.mark.parametrize("shift", [MEAN5, *SHIFTS])
def test_refitting_the_shipped_table_reproduces_the_shipped_coefficients(shift):
    shipped = shipped_baseline(shift)
    refit = fit_baseline_csv(shipped_accuracies_path(), shift, where={"type": "STANDARD"})
    assert refit.n_models == shipped.n_models
    assert refit.b1 == pytest.approx(shipped.b1, rel=1e-9)
    assert refit.b0 == pytest.approx(shipped.b0, rel=1e-9)
    if shift == "imagenet_a":  # torchvision ResNet-50 scores 0 on ImageNet-A: no finite logit
        assert any(entry.startswith("resnet50 ") for entry in refit.left_out)


def test_per_shift_accuracies_are_each_taken_against_their_own_baseline_then_averaged():
    accuracies = {"imagenet_r": 0.69, "objectnet": 0.41, "imagenet_sketch": 0.42}
    er = effective_robustness(0.76, accuracies)
    expected = [acc - shipped_baseline(name).expected(0.76) for name, acc in accuracies.items()]
    assert float(er) == pytest.approx(sum(expected) / 3, abs=1e-12)
    assert er.per_shift_averaged is True
    assert set(er.per_shift) == set(accuracies)
    assert "each shift against its own baseline" in er.method
    # a user's line for one shift replaces the shipped one for that shift only
    mine = Baseline(b1=1.0, b0=0.0, source="test", n_models=3, shift="imagenet_r")
    er2 = effective_robustness(0.76, accuracies, baseline={"imagenet_r": mine})
    assert er2.per_shift["imagenet_r"] == pytest.approx(0.69 - 0.76)
    assert er2.per_shift["objectnet"] == pytest.approx(er.per_shift["objectnet"])


def test_a_shift_accuracy_of_zero_is_allowed_but_an_imagenet_accuracy_of_one_is_not():
    assert float(effective_robustness(0.761, {"imagenet_a": 0.0})) < 0
    with pytest.raises(RobustnessError, match="strictly between 0 and 1"):
        effective_robustness(1.0, 0.5)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: effective_robustness(59.8, 0.427), "looks like a percentage.*0.598"),
        (lambda: effective_robustness(0.598, 42.7), "looks like a percentage"),
        (lambda: effective_robustness(0.598, -0.1), r"in \[0, 1\]"),
        (lambda: effective_robustness(0.598, float("nan")), "NaN"),
        (lambda: effective_robustness(0.598, "0.4"), "not a number"),
        (lambda: effective_robustness(0.598, {"imagenet-r": 0.4}), "Did you mean 'imagenet_r'"),
        (lambda: effective_robustness(0.598, {"imagenet_r": 0.4}, baseline=shipped_baseline()), "its own baseline"),
        (lambda: shipped_baseline("objectnett"), "Did you mean 'objectnet'"),
        (lambda: logit(0.0), "strictly between 0 and 1"),
    ],
)
def test_bad_accuracies_and_names_are_audit_errors_that_say_the_way_out(call, match):
    with pytest.raises(AuditError, match=match):
        call()


# ------------------------------------------------------------------------------------------- fits


def _user_table(rng, n=25):
    x = rng.uniform(0.55, 0.85, n)
    y = 1 / (1 + np.exp(-(1.2 * _logit(x) - 1.5 + rng.normal(0, 0.1, n))))
    return x, y


def test_a_user_csv_refits_what_an_independent_least_squares_in_logit_space_gives(tmp_path):
    x, y = _user_table(np.random.default_rng(7))
    path = tmp_path / "mine.csv"
    lines = ["# my models, top-1 as fractions", "model,imagenet,my_shift"]
    lines += [f"m{i},{float(a)!r},{float(b)!r}" for i, (a, b) in enumerate(zip(x, y))]
    lines += ["no_shift_run,0.7,"]  # empty cell: left out, and said so
    path.write_text("\n".join(lines) + "\n")
    fitted = fit_baseline_csv(path, "my_shift")
    slope, intercept = np.polyfit(_logit(x), _logit(y), 1)
    (b1, b0), *_ = np.linalg.lstsq(np.column_stack([_logit(x), np.ones(len(x))]), _logit(y), rcond=None)
    assert fitted.b1 == pytest.approx(slope, rel=1e-10) and fitted.b0 == pytest.approx(intercept, rel=1e-10)
    assert fitted.b1 == pytest.approx(b1, rel=1e-12) and fitted.b0 == pytest.approx(b0, rel=1e-12)
    assert fitted.n_models == len(x) and fitted.shift == "my_shift"
    assert fitted.left_out == ("no_shift_run (no my_shift)",)
    # the same points as pairs give the same line
    pairs = fit_baseline(list(zip(x, y)))
    assert (pairs.b1, pairs.b0) == pytest.approx((fitted.b1, fitted.b0), rel=1e-12)


def test_a_user_baseline_drives_effective_robustness():
    line = fit_baseline([(0.6, 0.5), (0.7, 0.6), (0.8, 0.7)])
    er = effective_robustness(0.7, 0.65, baseline=line)
    assert float(er) == pytest.approx(0.65 - line.expected(0.7), abs=1e-15)


@pytest.mark.parametrize(
    "text, match",
    [
        ("model,imagenet,shift\na,0.7,0.5\nb,0.8,oops\n", r"mine.csv:3: column 'shift': 'oops' is not a number"),
        ("model,imagenet,shift\na,0.7,0.5\nb,80.1,0.6\n", r"mine.csv:3: column 'imagenet': 80.1 looks like a percentage"),
        ("model,imagenet,shift\na,0.7,0.5\nb,0.8,-0.2\n", r"mine.csv:3: column 'shift'.*\[0, 1\]"),
        ("# comment\nmodel,top1,shift\na,0.7,0.5\n", r"mine.csv:2: header has no column 'imagenet'.*imagenet_column="),
        ("model,imagenet,shift\na,0.7,0.5,0.1\n", r"mine.csv:2: 4 fields where the header has 3"),
        ("model,imagenet,shift\na,0.7,0.5\n", r"1 usable model"),
        ("", r"empty"),
    ],
)
def test_a_bad_baseline_csv_is_an_error_naming_file_line_and_column(tmp_path, text, match):
    path = tmp_path / "mine.csv"
    path.write_text(text)
    with pytest.raises(RobustnessError, match=match):
        fit_baseline_csv(path, "shift")


def test_a_missing_baseline_csv_says_what_it_should_hold(tmp_path):
    with pytest.raises(RobustnessError, match="cannot read the baseline CSV.*'imagenet'"):
        fit_baseline_csv(tmp_path / "absent.csv")


# --------------------------------------------------------------------------------------- Spearman


def test_a_planted_monotone_relation_gives_rho_one_and_shuffled_values_about_zero():
    rng = np.random.default_rng(0)
    kurtosis = rng.lognormal(2.0, 1.5, 12)
    er = 0.05 * np.log(kurtosis) ** 3 - 0.1  # monotone, far from linear
    planted = spearman_with_interval(kurtosis, er)
    assert planted.rho == 1.0 and planted.n == 12 and (planted.low, planted.high) == (1.0, 1.0)
    assert spearman_with_interval(kurtosis, -er).rho == -1.0

    x = rng.normal(size=400)
    shuffled = spearman_with_interval(x, rng.permutation(0.05 * x**3))
    assert abs(shuffled.rho) < 0.1
    assert shuffled.low < 0 < shuffled.high


def test_spearman_matches_scipy_with_ties_and_its_interval_is_the_fisher_z_formula():
    from scipy.stats import norm, spearmanr

    x = [1.0, 2.0, 2.0, 3.0, 5.0, 4.0, 7.0, 7.0, 9.0, 8.0]
    y = [0.1, 0.3, 0.2, 0.2, 0.6, 0.4, 0.5, 0.9, 0.8, 0.8]
    result = spearman_with_interval(x, y, level=0.9)
    reference = spearmanr(x, y).statistic
    assert result.rho == pytest.approx(reference, abs=1e-12)
    z, se = math.atanh(reference), math.sqrt(1.06 / (len(x) - 3))
    q = norm.ppf(0.95)
    assert (result.low, result.high) == pytest.approx((math.tanh(z - q * se), math.tanh(z + q * se)), abs=1e-12)
    assert "Fisher z" in result.method and result.level == 0.9


def test_spearman_is_undefined_with_a_reason_for_too_few_or_constant_models():
    two = spearman_with_interval([1, 2], [3, 4])
    assert two.rho is None and two.n == 2 and "at least 3" in two.reason
    three = spearman_with_interval([1, 2, 3], [3, 1, 2])
    assert three.rho == pytest.approx(-0.5) and three.low is None and "at least 4" in three.reason
    flat = spearman_with_interval([1, 2, 3, 4], [5, 5, 5, 5])
    assert flat.rho is None and "same for every model" in flat.reason
    with pytest.raises(RobustnessError, match="one of each per model"):
        spearman_with_interval([1, 2, 3], [1, 2])


# ---------------------------------------------------------------------------------- class subsets


def test_the_imagenet1k_wnid_list_is_timms():
    assert list(imagenet1k_wnids()) == _timm_synsets("imagenet_synsets.txt")


@pytest.mark.parametrize("shift, timm_file", [("imagenet_r", "imagenet_r_synsets.txt"), ("imagenet_a", "imagenet_a_synsets.txt")])
def test_the_200_class_subsets_are_valid_distinct_in_index_order_and_agree_with_timm(shift, timm_file):
    indices = shift_class_subset(shift)
    wnids = shift_class_wnids(shift)
    valid = set(_timm_synsets("imagenet_synsets.txt"))
    assert len(indices) == len(set(indices)) == 200
    assert list(indices) == sorted(indices)
    assert len(set(wnids)) == 200 and set(wnids) <= valid
    assert sorted(wnids) == sorted(_timm_synsets(timm_file))


def test_objectnet_maps_its_113_overlapping_classes_to_valid_imagenet_classes():
    mapping = objectnet_mapping()
    assert len(mapping) == 113
    wnids = imagenet1k_wnids()
    valid = set(_timm_synsets("imagenet_synsets.txt"))
    seen = []
    for name, entry in mapping.items():
        assert entry["imagenet_indices"], name
        assert [wnids[i] for i in entry["imagenet_indices"]] == entry["imagenet_wnids"], name
        assert set(entry["imagenet_wnids"]) <= valid
        seen += entry["imagenet_indices"]
    assert len(seen) == len(set(seen))  # no ImageNet class stands for two ObjectNet classes
    assert shift_class_subset("objectnet") == tuple(sorted(seen))
    assert len(mapping["Alarm clock"]["imagenet_indices"]) == 2  # analog clock; digital clock


def test_v2_and_sketch_use_all_classes_and_unknown_names_are_errors():
    assert shift_class_subset("imagenet_v2") is None and shift_class_subset("imagenet_sketch") is None
    assert shift_class_wnids("imagenet_v2") is None
    with pytest.raises(RobustnessError, match="Did you mean 'imagenet_a'"):
        shift_class_subset("imagenet-a")


def test_the_shipped_table_holds_every_testbed_model_typed_and_in_fractions():
    import csv

    with open(shipped_accuracies_path(), newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 338 and all(row["type"] for row in rows)
    assert sum(row["type"] == "STANDARD" for row in rows) == 87
    values = [float(row[c]) for row in rows for c in ("imagenet", *SHIFTS) if row[c]]
    assert min(values) >= 0 and max(values) <= 1


def test_subset_top1_restricts_the_argmax_to_the_sets_classes():
    from pytest_robustaudit.metrics.robustness import subset_top1

    subset = shift_class_subset("imagenet_r")
    outside = next(i for i in range(1000) if i not in subset)
    logits = np.zeros((3, 1000))
    logits[:, outside] = 10.0  # the best class overall is not one ImageNet-R scores
    for row, target in enumerate(subset[:3]):
        logits[row, target] = 5.0 if row < 2 else 0.0  # third image: its class is not the subset argmax
    logits[2, subset[10]] = 1.0
    assert subset_top1(logits, list(subset[:3]), subset) == pytest.approx(2 / 3)
    assert subset_top1(logits, list(subset[:3]), None) == 0.0  # over all 1000 the outside class wins
    with pytest.raises(RobustnessError, match="not within the set's classes"):
        subset_top1(logits, [outside, subset[1], subset[2]], subset)


def test_subset_top1_counts_an_objectnet_image_right_on_any_of_its_classes_imagenet_classes():
    from pytest_robustaudit.metrics.robustness import subset_top1

    clock = objectnet_mapping()["Alarm clock"]["imagenet_indices"]  # analog clock, digital clock
    logits = np.zeros((2, 1000))
    logits[0, clock[1]] = 3.0
    logits[1, next(i for i in shift_class_subset("objectnet") if i not in clock)] = 3.0
    assert subset_top1(logits, [clock, clock], shift_class_subset("objectnet")) == 0.5
