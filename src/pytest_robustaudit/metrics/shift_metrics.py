"""Metrics of the head under distribution shift: accuracy per shift, drops, effective robustness.

Why here: the outlier metrics are proposed as indicators of ImageNet-shift robustness; these are the
thing itself, read from the shifts the spec names (:mod:`..shifts` scores them once per audit, from
stored rows).  Natural shifts (folders of ImageNet-V2/-R/-Sketch/-A/ObjectNet or a user's set, and
accuracies given in the spec) and synthetic corruptions (issue 18) are reported as separate
quantities: corruptions never enter effective robustness.

Intervals (docs/metrics.md#shifts): one measured accuracy is binomial (Clopper-Pearson on its
correct/total); a mean over sets has no single count, so it is resampled like the drops below.  The drops and effective
robustness resample the images (family ``resampled``): each measured set is redrawn independently
(a bootstrap of a mean of 0/1 values is a binomial draw, so it is drawn as one), a corruption drawn
jointly with the clean probe because they are the same images (a multinomial over the images'
per-image values), and accuracies given in the spec held fixed (their sampling error is unknown here,
said in the note).  Percentile interval of the replicates.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .directions import RANKINGS
from .types import (FRACTION, SIGNED_FRACTION, NEEDS_CORRUPTED, NEEDS_DIRECTIONS, NEEDS_HEAD, NEEDS_ROWS, NEEDS_SHIFTED, NEEDS_SUMMARY,
                    READS_HEAD, Evidence, Metric, MetricValue, NotApplicable, Param)

#: the parameter value asking for the mean over the shifts (or corruptions) of the spec
MEAN = "mean"


# --------------------------------------------------------------------------------------------------
# selecting shifts


def _natural(inputs: Any, shift: str) -> tuple[Any, list]:
    results = inputs.shift_results()
    natural = results.natural()
    if not natural:
        raise NotApplicable("the spec's shifts are all corruptions (see corruption_accuracy); no natural shift")
    if shift == MEAN:
        return results, natural
    score = results.scores.get(shift)
    if score is None or not score.natural:
        raise NotApplicable(f"no natural shift named '{shift}' (the spec has: {', '.join(s.name for s in natural)})")
    return results, [score]


def _corrupted(inputs: Any, corruption: str, severity: int) -> tuple[Any, list]:
    results = inputs.shift_results()
    found = results.corruptions()
    if not found:
        raise NotApplicable("the spec's shifts give no corruption (`- {corruption: gaussian_noise, severity: 3}`)")
    chosen = [s for s in found if (corruption == MEAN or s.corruption == corruption)
              and (severity == 0 or s.severity == severity)]
    if not chosen:
        have = ", ".join(s.name for s in found)
        raise NotApplicable(f"no corruption {corruption if corruption != MEAN else ''}"
                            f"{f' at severity {severity}' if severity else ''} among the spec's shifts ({have})")
    return results, chosen


def _clean(results: Any) -> float:
    """The clean accuracy a drop or ER compares with, or NotApplicable saying why there is none."""
    if not math.isfinite(results.clean):
        raise NotApplicable(f"the clean top-1 is {results.clean_source}")
    return results.clean


def _details(results: Any, scores: list) -> dict[str, Any]:
    details: dict[str, Any] = {"shifts": {s.name: s.describe() for s in scores}, "clean": results.clean,
                               "clean_source": results.clean_source, "layer": results.layer}
    if len(scores) == 1 and scores[0].correct is not None:
        details.update(correct=scores[0].n_correct, total=scores[0].n)
    return details


def _mean(scores: list) -> float:
    return float(np.mean([s.accuracy for s in scores]))


# --------------------------------------------------------------------------------------------------
# resampling (the ``resampled`` interval family)


def _redraw(score: Any, rng: np.random.Generator, resamples: int) -> np.ndarray:
    """Bootstrap replicates of one set's accuracy: a binomial draw (measured) or the value (given)."""
    if score.correct is None:
        return np.full(resamples, score.accuracy)
    return rng.binomial(score.n, score.accuracy, resamples) / score.n


_ALL_GIVEN = "every accuracy it reads is given in the spec: no measured image to resample"


def _clean_given(results: Any) -> bool:
    return results.clean_source.startswith("given") or results.clean_correct is None


def _clean_redraw(results: Any, rng: np.random.Generator, resamples: int) -> np.ndarray:
    if _clean_given(results):
        return np.full(resamples, results.clean)
    n = results.clean_correct.size
    return rng.binomial(n, results.clean_correct.mean(), resamples) / n


def _paired_mean(per_image: np.ndarray, rng: np.random.Generator, resamples: int) -> np.ndarray:
    """Bootstrap replicates of the mean of ``per_image`` values: a multinomial over its distinct values
    (exactly the bootstrap over images, without an n x resamples index array)."""
    values, counts = np.unique(per_image, return_counts=True)
    draws = rng.multinomial(per_image.size, counts / per_image.size, resamples)
    return draws @ values / per_image.size


def _note(results: Any, scores: list) -> str:
    given = [s.name for s in scores if s.correct is None]
    if results.clean_source.startswith("given"):
        given.insert(0, "imagenet")
    return (f"given accuracies held fixed ({', '.join(given)}): their own sampling error is not known here"
            if given else "")


def _drop_replicates(inputs: Any, *, seed: int, resamples: int, shift: str = MEAN, **_: Any):
    results, scores = _natural(inputs, shift)
    rng = np.random.default_rng(seed)
    shifted = np.mean([_redraw(s, rng, resamples) for s in scores], axis=0)
    boot = _clean_redraw(results, rng, resamples) - shifted
    n = sum(s.n for s in scores) + (0 if _clean_given(results) else results.clean_correct.size)
    if n == 0:
        raise NotApplicable(_ALL_GIVEN)
    return boot, n, _note(results, scores)


def _on_rows(correct: np.ndarray, keep: np.ndarray | None, both: np.ndarray | None) -> np.ndarray:
    """Per-image values on the rows in ``both``: ``correct`` holds one value per row in ``keep``."""
    if both is None:
        return correct.astype(np.float64)
    full = np.zeros(keep.size)
    full[keep] = correct
    return full[both]


def _paired_rows(keeps: list) -> np.ndarray | None:
    """The probe rows scored in every one of ``keeps`` (masks over the same probe rows), or None when a
    mask is missing (then the sets must have the same rows, checked by count)."""
    if any(k is None for k in keeps) or len({k.size for k in keeps}) != 1:
        return None
    return np.logical_and.reduce(keeps)


def _corruption_matrix(results: Any, scores: list) -> np.ndarray:
    """Per probe image: clean correct minus the mean over ``scores`` of corrupted correct (paired on the
    images scored in every set: a row NaN in one set only drops out of the pair, never shifts it)."""
    clean = results.clean_correct
    if clean is None:
        raise NotApplicable("no clean top-1 per image to pair the corrupted images with")
    both = _paired_rows([getattr(results, "clean_keep", None)] + [s.keep for s in scores])
    if both is None and any(s.n != clean.size for s in scores):
        raise NotApplicable("the corrupted and clean rows do not pair image for image (different counts)")
    corrupted = np.mean([_on_rows(s.correct, s.keep, both) for s in scores], axis=0)
    return _on_rows(clean, getattr(results, "clean_keep", None), both) - corrupted


def _corruption_drop_replicates(inputs: Any, *, seed: int, resamples: int, corruption: str = MEAN,
                                severity: int = 0, **_: Any):
    results, scores = _corrupted(inputs, corruption, severity)
    rng = np.random.default_rng(seed)
    matrix = _corruption_matrix(results, scores)
    return _paired_mean(matrix, rng, resamples), matrix.size, "paired: the corrupted images are the probe images"


def _shift_accuracy_replicates(inputs: Any, *, seed: int, resamples: int, shift: str = MEAN, **_: Any):
    """A mean over natural shifts: each measured set redrawn independently, given ones held fixed."""
    results, scores = _natural(inputs, shift)
    n = sum(s.n for s in scores if s.correct is not None)
    if n == 0:
        raise NotApplicable(_ALL_GIVEN)
    rng = np.random.default_rng(seed)
    return np.mean([_redraw(s, rng, resamples) for s in scores], axis=0), n, _note(results, scores)


def _corruption_accuracy_replicates(inputs: Any, *, seed: int, resamples: int, corruption: str = MEAN,
                                    severity: int = 0, **_: Any):
    """A mean over corrupted sets: they are the same probe images, so the images are resampled jointly."""
    results, scores = _corrupted(inputs, corruption, severity)
    both = _paired_rows([s.keep for s in scores])
    if both is None and any(s.n != scores[0].n for s in scores):
        raise NotApplicable("the corrupted sets do not pair image for image (different counts)")
    per_image = np.mean([_on_rows(s.correct, s.keep, both) for s in scores], axis=0)
    return _paired_mean(per_image, np.random.default_rng(seed), resamples), per_image.size, \
        "paired: every corrupted set is the same probe images"


# --------------------------------------------------------------------------------------------------
# effective robustness


def _standard(scores: list) -> tuple[dict[str, float], list[str]]:
    """{standard set: accuracy (the mean of the spec's entries of that set)}, and the natural shifts
    left out of ER (no standard set, so no baseline)."""
    from .robustness import SHIFTS

    by_set: dict[str, list[float]] = {}
    left_out = []
    for s in scores:
        if s.set in SHIFTS:
            by_set.setdefault(s.set, []).append(s.accuracy)
        else:
            left_out.append(s.name)
    return {k: float(np.mean(v)) for k, v in by_set.items()}, left_out


def _er_of(clean: np.ndarray, per_set: dict[str, np.ndarray]) -> np.ndarray:
    """ER for arrays of replicates (the same formula as :func:`.robustness.effective_robustness`)."""
    from .robustness import MEAN5, SHIFTS, shipped_baseline

    def expected(name: str) -> np.ndarray:
        line = shipped_baseline(name)
        with np.errstate(divide="ignore", over="ignore"):
            z = line.b1 * (np.log(clean) - np.log1p(-clean)) + line.b0
            return 1.0 / (1.0 + np.exp(-z))

    if set(per_set) == set(SHIFTS):
        return np.mean([per_set[s] for s in SHIFTS], axis=0) - expected(MEAN5)
    return np.mean([per_set[s] - expected(s) for s in per_set], axis=0)


def _effective_robustness(inputs: Any) -> MetricValue:
    from .robustness import SHIFTS, RobustnessError, effective_robustness

    results, scores = _natural(inputs, MEAN)
    _clean(results)
    per_set, left_out = _standard(scores)
    if not per_set:
        raise NotApplicable(f"no standard natural shift among the spec's shifts ({', '.join(s.name for s in scores)}): "
                            "effective robustness needs a baseline, shipped for imagenet-v2, imagenet-r, "
                            "imagenet-sketch, objectnet and imagenet-a (give `set:`)")
    try:
        if set(per_set) == set(SHIFTS):
            er = effective_robustness(results.clean, float(np.mean([per_set[s] for s in SHIFTS])))
        else:
            er = effective_robustness(results.clean, per_set)
    except RobustnessError as error:
        raise NotApplicable(f"effective robustness is undefined here: {error.message}") from None
    details = _details(results, [s for s in scores if s.set in SHIFTS])
    details.pop("correct", None)
    details.pop("total", None)
    details.update(method=er.method, expected=er.expected, shift_accuracy=er.shift_accuracy,
                   per_shift=dict(er.per_shift), sets=sorted(per_set, key=SHIFTS.index),
                   baselines=[{"shift": b.shift, "b1": b.b1, "b0": b.b0, "n_models": b.n_models} for b in er.baselines])
    if left_out:
        details["left_out"] = left_out
    return MetricValue(float(er), details)


def _er_replicates(inputs: Any, *, seed: int, resamples: int, **_: Any):
    from .robustness import SHIFTS

    results, scores = _natural(inputs, MEAN)
    rng = np.random.default_rng(seed)
    clean = _clean_redraw(results, rng, resamples)
    grouped: dict[str, list[np.ndarray]] = {}
    used = []
    for s in scores:
        if s.set in SHIFTS:
            grouped.setdefault(s.set, []).append(_redraw(s, rng, resamples))
            used.append(s)
    if not grouped:
        raise NotApplicable("no standard natural shift")
    boot = _er_of(clean, {k: np.mean(v, axis=0) for k, v in grouped.items()})
    n = sum(s.n for s in used) + (0 if _clean_given(results) else results.clean_correct.size)
    if n == 0:
        raise NotApplicable(_ALL_GIVEN)
    return boot[np.isfinite(boot)], n, _note(results, used)


# --------------------------------------------------------------------------------------------------
# the metrics


def _shift_accuracy(inputs: Any, shift: str = MEAN) -> MetricValue:
    results, scores = _natural(inputs, shift)
    details = _details(results, scores)
    if shift == MEAN:   # the pruning curve on each measured set, for the report (when the head has directions)
        try:
            curves = shift_pruning_curves(inputs)
        except NotApplicable:
            curves = {}
        if curves:
            details["pruning"] = curves
    return MetricValue(_mean(scores), details)


def _accuracy_drop(inputs: Any, shift: str = MEAN) -> MetricValue:
    results, scores = _natural(inputs, shift)
    details = _details(results, scores)
    details.pop("correct", None)
    details.pop("total", None)
    return MetricValue(_clean(results) - _mean(scores), details)


def _corruption_accuracy(inputs: Any, corruption: str = MEAN, severity: int = 0) -> MetricValue:
    results, scores = _corrupted(inputs, corruption, severity)
    return MetricValue(_mean(scores), _details(results, scores))


def _corruption_drop(inputs: Any, corruption: str = MEAN, severity: int = 0) -> MetricValue:
    """Against the clean top-1 on the same probe images (never a clean accuracy given in the spec)."""
    results, scores = _corrupted(inputs, corruption, severity)
    details = _details(results, scores)
    details.pop("correct", None)
    details.pop("total", None)
    if results.clean_correct is None or results.clean_correct.size == 0:
        raise NotApplicable("no labelled probe image: the clean top-1 the corruptions compare with is undefined")
    clean = float(results.clean_correct.mean())
    details.update(clean=clean, clean_source="top-1 on the probe images (the images corrupted)")
    return MetricValue(clean - _mean(scores), details)


# --------------------------------------------------------------------------------------------------
# pruning on the shifted sets (the directions' pruning curve, evaluated on a shift's stored rows)


def pruned_shift_correct(inputs: Any, score: Any, ps: Any, ranking: str = "importance") -> np.ndarray:
    """Per scored image of ``score``'s set, whether the head pruned to its top ``ceil((1 - p) r)``
    directions (ranked on the probe, :func:`.directions.directions`) classifies it right, logits
    restricted to the set's classes: bool ``[n, len(ps)]`` (cached per layer)."""
    from .directions import directions, keep_count

    if ranking not in RANKINGS:
        raise NotApplicable(f"unknown ranking {ranking!r}; use one of {', '.join(RANKINGS)}")
    ps = tuple(float(p) for p in ps)
    if any(not 0.0 <= p < 1.0 for p in ps):
        raise NotApplicable(f"pruning fractions must lie in [0, 1), got {ps}")
    if score.rows is None:
        raise NotApplicable(f"shift '{score.name}' is an accuracy given in the spec: no rows to prune on")

    def build():
        found = directions(inputs)
        head = inputs.head()
        order = found["order"][ranking]
        vt, us = found["vt"][order], found["us"][:, order]
        ks = [keep_count(p, found["r"]) for p in ps]
        columns = score.columns
        blocks, offset, scored = [], 0, 0
        try:
            chunks = list(score.rows())
        except OSError as error:
            raise NotApplicable(f"the stored rows of shift '{score.name}' are gone ({error}); use a kept "
                                "activation store (--audit-cache on)") from None
        for chunk in chunks:
            n = chunk.shape[0]
            keep = score.keep[offset:offset + n]
            offset += n
            if not keep.any():
                continue
            proj = head.features(np.asarray(chunk)[keep]) @ vt.T
            wanted = score.targets[scored:scored + int(keep.sum())]
            scored += int(keep.sum())
            block = np.zeros((len(wanted), len(ps)), dtype=bool)
            for i, k in enumerate(ks):
                logits = proj[:, :k] @ us[:, :k].T
                if head.logit_scale != 1.0:
                    logits *= head.logit_scale
                if head.bias is not None:
                    logits += head.bias
                restricted = logits if columns is None else logits[:, columns]
                picked = np.argmax(restricted, axis=1)
                predicted = picked if columns is None else columns[picked]
                block[:, i] = [int(c) in a for c, a in zip(predicted, wanted)]
            blocks.append(block)
        return np.concatenate(blocks) if blocks else np.zeros((0, len(ps)), dtype=bool)
    return inputs.cached(f"shift-pruned:{score.name}:{ranking}:{ps!r}", build)


def shift_pruning_curves(inputs: Any, grid: Any = None) -> dict[str, dict[str, Any]]:
    """Per measured natural shift: top-1 at each grid p, ranked by importance (for the report)."""
    from .directions import DEFAULT_GRID

    grid = tuple(DEFAULT_GRID if grid is None else grid)
    out = {}
    for score in inputs.shift_results().natural():
        if score.rows is None:
            continue
        correct = pruned_shift_correct(inputs, score, grid)
        out[score.name] = {"grid": [float(p) for p in grid], "importance": correct.mean(axis=0).tolist(),
                           "unpruned": score.accuracy, "labelled": int(correct.shape[0])}
    return out


def _shift_accuracy_at_pruning(inputs: Any, shift: str = MEAN, p: float = 0.5, ranking: str = "importance") -> MetricValue:
    results, scores = _natural(inputs, shift)
    measured = [s for s in scores if s.rows is not None]
    if not measured:
        raise NotApplicable("no measured natural shift (accuracies given in the spec have no rows to prune on)")
    accuracies = [float(pruned_shift_correct(inputs, s, (p,), ranking)[:, 0].mean()) for s in measured]
    details = {"p": p, "ranking": ranking, "shifts": {s.name: a for s, a in zip(measured, accuracies)},
               "unpruned": {s.name: s.accuracy for s in measured}}
    if len(measured) == 1:
        details.update(correct=int(round(accuracies[0] * measured[0].n)), total=measured[0].n)
    return MetricValue(float(np.mean(accuracies)), details)


_SHIFT = {"shift": Param(str, MEAN, "a natural shift's name from the spec's `shifts`, or `mean` over them")}
_CORRUPTION = {"corruption": Param(str, MEAN, "a corruption of the spec's `shifts`, or `mean` over them"),
               "severity": Param(int, 0, "a severity 1-5, or 0 for every severity the spec gives", minimum=0,
                                 maximum=5)}
_MEASURED = Evidence("informational", "What the outlier metrics are meant to predict, measured on the spec's "
                                      "shifted sets with the same head; not itself an indicator.")
_ER = Evidence("informational", "Effective robustness (Taori et al. 2020): the robustness the paper's outlier "
                                "features are said to indicate, measured; the report relates the two across models.")

#: what the shift metrics read besides the probe's rows, labels and head: the spec's measured sets (given
#: accuracies need none); computed by default on a spec with `shifts:` (the sets are what it asks for)
#: (not the probe's labels: a shifted folder has its own, and the clean top-1 may be given; a corrupted set
#: of an unlabelled probe is refused with its reason when the audit runs)
_SHIFTED = (NEEDS_SUMMARY, NEEDS_ROWS, NEEDS_HEAD, NEEDS_SHIFTED)
_CORRUPTED = (NEEDS_SUMMARY, NEEDS_ROWS, NEEDS_HEAD, NEEDS_CORRUPTED)

SHIFT_METRICS: tuple[Metric, ...] = (
    Metric("shift_accuracy", _shift_accuracy,
           "Top-1 of the head on a natural shifted set of the spec (its class subset), or the mean over them.",
           "#{x in S : argmax_{c in C_S} logit_c(h(x)) in Y(x)} / #S (C_S: the set's classes); mean: average over the sets",
           unit="fraction", domain=FRACTION, direction="higher", params=dict(_SHIFT), reads=READS_HEAD, needs=_SHIFTED, default=True, evidence=_MEASURED,
           interval="binomial", interval_input=_shift_accuracy_replicates),
    Metric("accuracy_drop", _accuracy_drop, "Clean top-1 minus the top-1 under a natural shift (or their mean).",
           "clean top-1 - shift_accuracy", unit="fraction", domain=SIGNED_FRACTION, direction="lower", params=dict(_SHIFT),
           reads=READS_HEAD, needs=_SHIFTED, default=True, evidence=_MEASURED, interval="resampled", interval_input=_drop_replicates),
    Metric("effective_robustness", _effective_robustness,
           "Mean shifted accuracy minus what standard ImageNet models of the same clean accuracy reach.",
           "ER = mean_s acc_s - sigmoid(b1 logit(clean) + b0) (all five: mean-of-five baseline; otherwise each set "
           "against its own baseline, then averaged)", unit="fraction", domain=SIGNED_FRACTION, direction="higher", reads=READS_HEAD, needs=_SHIFTED, default=True,
           evidence=_ER, headline="ER", chart_scale="linear", interval="resampled", interval_input=_er_replicates),
    Metric("shift_accuracy_at_pruning", _shift_accuracy_at_pruning,
           "Top-1 on a measured natural shift of the head pruned to its top ceil((1-p) r) directions (ranked on the "
           "probe), or the mean over the measured shifts.",
           "acc_S(h V_k V_k^T W^T + b), k = ceil((1 - p) r), logits restricted to C_S", unit="fraction",
           domain=FRACTION, direction="higher", params={**_SHIFT, "p": Param(float, 0.5, "fraction of the directions removed, in [0, 1]",
                                                            minimum=0.0, maximum=1.0),
                                       "ranking": Param(str, "importance", "importance or singular_value", choices=RANKINGS)},
           reads=READS_HEAD, needs=_SHIFTED + (NEEDS_DIRECTIONS,), evidence=_MEASURED, interval="binomial"),
    Metric("corruption_accuracy", _corruption_accuracy,
           "Top-1 of the head on the probe images corrupted (ImageNet-C), at one corruption and severity or the mean.",
           "#{x : argmax_c logit_c(h(corrupt(x))) = y(x)} / #labelled; mean over the chosen (corruption, severity)",
           unit="fraction", domain=FRACTION, direction="higher", params=dict(_CORRUPTION), reads=READS_HEAD, needs=_CORRUPTED, default=True, evidence=_MEASURED,
           interval="binomial", interval_input=_corruption_accuracy_replicates),
    Metric("corruption_drop", _corruption_drop, "Clean top-1 minus the corrupted top-1 on the same images.",
           "clean top-1 - corruption_accuracy (paired image for image)", unit="fraction", domain=SIGNED_FRACTION, direction="lower",
           params=dict(_CORRUPTION), reads=READS_HEAD, needs=_CORRUPTED, default=True, evidence=_MEASURED, interval="resampled",
           interval_input=_corruption_drop_replicates),
)
