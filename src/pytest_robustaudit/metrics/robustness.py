"""Effective robustness against the ImageNet distribution shifts, and the rank correlation that relates
an outlier metric to it across models.

Why this module exists: the plugin's outlier metrics are proposed as *indicators* of robustness to
ImageNet shifts (Crabbé et al. 2024).  To check an indicator a user needs the thing itself, and the
field's measure of it is **effective robustness** (Taori et al. 2020): how much better a model does
under shift than standard ImageNet models of the same ImageNet accuracy would.  Standard models lie
on a line in logit space,

    logit(shift accuracy) = b1 * logit(ImageNet accuracy) + b0,

so ER = shift accuracy - sigmoid(b1 * logit(ImageNet accuracy) + b0).  The package ships that line
fitted over imagenet-testbed's standard models (``resources/shifts/baselines.json``, built by
``scripts/make_shift_resources.py``; docs/robustness.md gives the fit) for the mean of the five
natural shifts and for each shift alone, so ER is defined for any subset of them.

Accuracies are fractions in [0, 1] everywhere (never percent).  Everything here is pure
numpy/stdlib: it runs on accuracies and metric values, never on a model.
"""

from __future__ import annotations

import csv
import difflib
import json
import math
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from pytest_robustaudit.errors import AuditError, display_path

#: The five natural shifts of the standard effective-robustness suite, in the usual order.
SHIFTS = ("imagenet_v2", "imagenet_r", "imagenet_sketch", "objectnet", "imagenet_a")
#: The baseline fitted on the mean of the five shifts' accuracies.
MEAN5 = "mean5"
#: How every baseline here is fitted.
FIT_METHOD = "ordinary least squares in logit space (float64, numpy.linalg.lstsq)"
#: How :func:`spearman_with_interval` builds its interval.
SPEARMAN_METHOD = "Fisher z with the Fieller-Hartley-Pearson variance 1.06/(n-3)"

_SHIFT_FILES = {"imagenet_r": "imagenet_r_wnids.txt", "imagenet_a": "imagenet_a_wnids.txt"}


class RobustnessError(AuditError):
    """Accuracies, a baseline or a baseline CSV that effective robustness cannot be computed from."""


# --------------------------------------------------------------------------------------------------
# numbers


def _fraction(value: object, what: str, *, open_interval: bool) -> float:
    """``value`` as a float accuracy, or a RobustnessError that names it and the way out."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) and not hasattr(value, "__float__"):
        raise RobustnessError(f"{what}: {value!r} is not a number; give the accuracy as a fraction (0.598)")
    number = float(value)  # type: ignore[arg-type]
    if math.isnan(number):
        raise RobustnessError(f"{what}: is NaN; give the accuracy as a fraction (0.598)")
    if 1 < number <= 100:
        raise RobustnessError(
            f"{what}: {number:g} looks like a percentage; accuracies are fractions here "
            f"(write {number / 100:g} for {number:g} %)"
        )
    low_ok = number > 0 if open_interval else number >= 0
    high_ok = number < 1 if open_interval else number <= 1
    if not (low_ok and high_ok):
        interval = "strictly between 0 and 1 (its logit must be finite)" if open_interval else "in [0, 1]"
        raise RobustnessError(f"{what}: {number:g} is not a fraction {interval}")
    return number


def logit(p: float, what: str = "accuracy") -> float:
    """log(p / (1 - p)) of an accuracy strictly between 0 and 1 (a clear error otherwise)."""
    p = _fraction(p, what, open_interval=True)
    return math.log(p) - math.log1p(-p)


def sigmoid(z: float) -> float:
    """1 / (1 + exp(-z)), without overflow for large |z|."""
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


# --------------------------------------------------------------------------------------------------
# baselines


@dataclass(frozen=True)
class Baseline:
    """The line standard ImageNet models follow: logit(shift acc) = b1 * logit(ImageNet acc) + b0.

    ``shift`` names what the y axis is (``mean5``, one of :data:`SHIFTS`, or a user's name);
    ``source`` says where the points came from; ``left_out`` lists rows a CSV fit skipped and why.
    """

    b1: float
    b0: float
    source: str
    n_models: int
    shift: str
    method: str = FIT_METHOD
    left_out: tuple[str, ...] = ()

    def expected(self, imagenet_accuracy: float) -> float:
        """The shift accuracy a standard model with this ImageNet accuracy is predicted to have."""
        return sigmoid(self.b1 * logit(imagenet_accuracy, "imagenet_accuracy") + self.b0)


def _resource(name: str):
    return resources.files("pytest_robustaudit").joinpath("resources", "shifts", name)


def shipped_accuracies_path() -> Path:
    """Path of the shipped imagenet-testbed accuracy table (fractions), for :func:`fit_baseline_csv`."""
    return Path(str(_resource("imagenet_testbed_accuracies.csv")))


@lru_cache(maxsize=1)
def _baselines_json() -> dict:
    return json.loads(_resource("baselines.json").read_text(encoding="utf-8"))


def _unknown(kind: str, name: object, known: Sequence[str]) -> RobustnessError:
    close = difflib.get_close_matches(str(name), list(known), n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return RobustnessError(f"unknown {kind} {name!r}.{hint} Known: {', '.join(known)}")


def shipped_baseline(shift: str = MEAN5) -> Baseline:
    """The baseline shipped for ``shift`` (``mean5`` or one of :data:`SHIFTS`), fitted over
    imagenet-testbed's standard ImageNet models (see ``resources/shifts/baselines.json``)."""
    data = _baselines_json()
    entries = data["baselines"]
    if shift not in entries:
        raise _unknown("shift baseline", shift, list(entries))
    entry = entries[shift]
    return Baseline(
        b1=float(entry["b1"]),
        b0=float(entry["b0"]),
        source=f"imagenet-testbed standard models ({data['source']})",
        n_models=int(entry["n_models"]),
        shift=shift,
        method=data["method"],
        left_out=tuple(entry.get("excluded", ())),
    )


def fit_baseline(rows: Iterable[Sequence[float]], *, shift: str = "user", source: str = "user rows") -> Baseline:
    """Fit a baseline to ``(imagenet_accuracy, shift_accuracy)`` pairs: float64 least squares of
    logit(shift) on logit(imagenet).  Both accuracies of every row must lie strictly in (0, 1)."""
    import numpy as np

    xs, ys = [], []
    for number, row in enumerate(rows):
        try:
            imagenet, shifted = row
        except (TypeError, ValueError):
            raise RobustnessError(
                f"{source}: row {number}: {row!r} is not a pair (imagenet_accuracy, shift_accuracy)"
            ) from None
        xs.append(logit(imagenet, f"{source}: row {number}: imagenet accuracy"))
        ys.append(logit(shifted, f"{source}: row {number}: shift accuracy"))
    return _least_squares(np.asarray(xs, dtype=np.float64), np.asarray(ys, dtype=np.float64),
                          shift=shift, source=source)


def _least_squares(x, y, *, shift: str, source: str, left_out: tuple[str, ...] = ()) -> Baseline:
    import numpy as np

    if len(x) < 2:
        raise RobustnessError(
            f"{source}: {len(x)} usable model(s); a baseline line needs at least 2 models with different "
            "ImageNet accuracies (the published baselines use 80+)"
        )
    if np.ptp(x) == 0:
        raise RobustnessError(f"{source}: every model has the same ImageNet accuracy; the line's slope is undefined")
    design = np.column_stack([x, np.ones_like(x)])
    (b1, b0), *_ = np.linalg.lstsq(design, y, rcond=None)
    return Baseline(b1=float(b1), b0=float(b0), source=source, n_models=int(len(x)), shift=shift,
                    left_out=left_out)


def fit_baseline_csv(
    path: str | Path,
    shift: str = MEAN5,
    *,
    imagenet_column: str = "imagenet",
    shift_columns: Sequence[str] | None = None,
    where: Mapping[str, str] | None = None,
) -> Baseline:
    """Fit a baseline to a CSV of model accuracies (fractions), one model per row.

    The CSV has a header row; lines starting with ``#`` are comments.  ``shift`` picks the y axis:
    ``mean5`` averages the five columns of :data:`SHIFTS` (in accuracy space, then logit); any other
    name reads the column of that name, unless ``shift_columns`` names the column(s) to average.
    ``where`` keeps only rows whose columns equal the given values (``{"type": "STANDARD"}`` on the
    shipped table).  A row with an empty needed cell is left out, and so is one whose ImageNet or
    (mean) shift accuracy is exactly 0 or 1 (no finite logit); both are listed in ``left_out``.
    Anything else that is not a fraction is an error naming the file, line and column.
    """
    import numpy as np

    path = Path(path)
    shown = display_path(path)
    columns = tuple(shift_columns) if shift_columns else (SHIFTS if shift == MEAN5 else (shift,))
    where = dict(where or {})
    try:
        handle = open(path, newline="", encoding="utf-8")
    except OSError as error:
        raise RobustnessError(
            f"{shown}: cannot read the baseline CSV ({error.strerror or error}); give the path of a CSV "
            f"with a header row holding {imagenet_column!r} and {', '.join(map(repr, columns))}"
        ) from None
    with handle:
        lines = [(n, line) for n, line in enumerate(handle, start=1) if line.strip() and not line.lstrip().startswith("#")]
    if not lines:
        raise RobustnessError(f"{shown}: the baseline CSV is empty; it needs a header row and one row per model")
    header_line, _ = lines[0]
    records = list(csv.reader([line for _, line in lines]))
    header = [name.strip() for name in records[0]]
    needed = [imagenet_column, *columns, *where]
    missing = [name for name in needed if name not in header]
    if missing:
        raise RobustnessError(
            f"{shown}:{header_line}: header has no column {', '.join(map(repr, missing))} "
            f"(it has {', '.join(map(repr, header))}); name the columns with imagenet_column=/shift_columns=, "
            "or add them to the header"
        )
    position = {name: header.index(name) for name in needed}
    xs, ys, left_out = [], [], []
    for (line, _), record in zip(lines[1:], records[1:]):
        if len(record) != len(header):
            raise RobustnessError(
                f"{shown}:{line}: {len(record)} fields where the header has {len(header)}; "
                "quote cells that contain commas"
            )
        if any(record[position[name]].strip() != str(value) for name, value in where.items()):
            continue
        label = record[header.index("model")].strip() if "model" in header else f"line {line}"
        cells = {name: record[position[name]].strip() for name in (imagenet_column, *columns)}
        empty = [name for name, cell in cells.items() if cell == ""]
        if empty:
            left_out.append(f"{label} (no {', '.join(empty)})")
            continue
        values = {}
        for name, cell in cells.items():
            try:
                number = float(cell)
            except ValueError:
                raise RobustnessError(
                    f"{shown}:{line}: column {name!r}: {cell!r} is not a number; write the accuracy as a "
                    "fraction (0.598), or leave the cell empty to leave the model out"
                ) from None
            values[name] = _fraction(number, f"{shown}:{line}: column {name!r}", open_interval=False)
        x = values[imagenet_column]
        y = float(np.mean([values[name] for name in columns]))
        if not 0 < x < 1:
            left_out.append(f"{label} ({imagenet_column} accuracy {x:g}: logit undefined)")
            continue
        if not 0 < y < 1:
            left_out.append(f"{label} ({shift} accuracy {y:g}: logit undefined)")
            continue
        xs.append(logit(x))
        ys.append(logit(y))
    described = f"{shown}" + (f" where {where}" if where else "")
    return _least_squares(np.asarray(xs, dtype=np.float64), np.asarray(ys, dtype=np.float64), shift=shift,
                          source=described, left_out=tuple(left_out))


# --------------------------------------------------------------------------------------------------
# effective robustness


class EffectiveRobustness(float):
    """An effective-robustness value (a float, so ``assert er > 0.1`` works) that also carries how it
    was computed: ``per_shift_averaged`` says whether each shift was taken against its own baseline
    and the results averaged (True) or one accuracy against one baseline (False)."""

    imagenet_accuracy: float
    shift_accuracy: float
    expected: float
    per_shift_averaged: bool
    per_shift: Mapping[str, float]
    baselines: tuple[Baseline, ...]

    def __new__(cls, value: float, **details: object) -> "EffectiveRobustness":
        self = super().__new__(cls, value)
        self.__dict__.update(details)
        return self

    @property
    def method(self) -> str:
        """One sentence for a report: how this value was computed."""
        if self.per_shift_averaged:
            return (f"each shift against its own baseline, then averaged ({', '.join(self.per_shift)})")
        (baseline,) = self.baselines
        return f"against the {baseline.shift} baseline ({baseline.n_models} models)"

    def __repr__(self) -> str:
        return f"EffectiveRobustness({float(self):+.4f}, {self.method})"


def effective_robustness(
    imagenet_accuracy: float,
    shift_accuracy: float | Mapping[str, float],
    baseline: Baseline | str | Mapping[str, Baseline] | None = None,
) -> EffectiveRobustness:
    """ER = shift accuracy - sigmoid(b1 * logit(imagenet accuracy) + b0), in fractions.

    * ``shift_accuracy`` a number: compared with ``baseline`` (a :class:`Baseline`, the name of a
      shipped one, or by default the shipped mean-of-five baseline, which expects the mean of
      ImageNet-V2, -R, -Sketch, ObjectNet and -A).
    * ``shift_accuracy`` a mapping ``{shift: accuracy}``: each shift against its own baseline
      (``baseline`` may map shifts to :class:`Baseline`; shipped ones fill the rest), and the
      per-shift ERs averaged; the result says so (``per_shift_averaged``).
    """
    x = _fraction(imagenet_accuracy, "imagenet_accuracy", open_interval=True)
    if isinstance(shift_accuracy, Mapping):
        if not shift_accuracy:
            raise RobustnessError("shift_accuracy: the mapping is empty; give at least one {shift: accuracy}")
        if isinstance(baseline, (Baseline, str)):
            raise RobustnessError(
                "baseline: one baseline given for a mapping of per-shift accuracies; each shift is compared "
                "with its own baseline, so give {shift: Baseline} (or none for the shipped ones), or pass "
                "the mean accuracy as a number with the one baseline"
            )
        given = dict(baseline or {})
        per_shift, expected, used = {}, [], []
        for name, accuracy in shift_accuracy.items():
            y = _fraction(accuracy, f"shift_accuracy[{name!r}]", open_interval=False)
            line = given[name] if name in given else _per_shift_baseline(name)
            e = line.expected(x)
            per_shift[name] = y - e
            expected.append(e)
            used.append(line)
        value = sum(per_shift.values()) / len(per_shift)
        return EffectiveRobustness(
            value,
            imagenet_accuracy=x,
            shift_accuracy=sum(float(a) for a in shift_accuracy.values()) / len(shift_accuracy),
            expected=sum(expected) / len(expected),
            per_shift_averaged=True,
            per_shift=per_shift,
            baselines=tuple(used),
        )
    y = _fraction(shift_accuracy, "shift_accuracy", open_interval=False)
    if baseline is None:
        line = shipped_baseline(MEAN5)
    elif isinstance(baseline, str):
        line = shipped_baseline(baseline)
    elif isinstance(baseline, Baseline):
        line = baseline
    else:
        raise RobustnessError(
            f"baseline: {type(baseline).__name__} given for one shift accuracy; give a Baseline, the name of "
            f"a shipped one ({MEAN5}, {', '.join(SHIFTS)}), or pass a {{shift: accuracy}} mapping"
        )
    e = line.expected(x)
    return EffectiveRobustness(
        y - e, imagenet_accuracy=x, shift_accuracy=y, expected=e, per_shift_averaged=False,
        per_shift={}, baselines=(line,),
    )


def _per_shift_baseline(name: str) -> Baseline:
    if name not in SHIFTS:
        raise _unknown("shift", name, SHIFTS)
    return shipped_baseline(name)


# --------------------------------------------------------------------------------------------------
# rank correlation across models


@dataclass(frozen=True)
class SpearmanResult:
    """Spearman's rho across ``n`` models with a ``level`` interval; ``rho`` or the interval is None
    with ``reason`` when it is undefined (fewer than 3 models, constant values, n = 3 for the interval)."""

    rho: float | None
    low: float | None
    high: float | None
    n: int
    level: float
    method: str = SPEARMAN_METHOD
    reason: str = ""


def _average_ranks(values):
    """Ranks 1..n with ties sharing their mean rank (as scipy.stats.rankdata's default)."""
    import numpy as np

    order = np.argsort(values, kind="mergesort")
    sorted_values = values[order]
    ranks = np.empty(len(values), dtype=np.float64)
    start = 0
    for end in range(1, len(values) + 1):
        if end == len(values) or sorted_values[end] != sorted_values[start]:
            ranks[order[start:end]] = (start + end + 1) / 2.0
            start = end
    return ranks


def spearman_with_interval(x: Sequence[float], y: Sequence[float], level: float = 0.95) -> SpearmanResult:
    """Spearman's rank correlation of ``x`` and ``y`` (one value per model) with a confidence interval.

    The interval is Fisher's z transform with the variance Fieller, Hartley and Pearson (1957) give
    for Spearman's rho: z = atanh(rho), se = sqrt(1.06 / (n - 3)), rho in tanh(z -+ q * se) with q
    the normal quantile for ``level``.  It is an asymptotic interval; with the handful of models a
    run audits it is wide, which is the honest answer.  rho = +-1 gives the degenerate interval
    [rho, rho].  Fewer than 3 models, or a constant column: rho undefined (``reason`` says why);
    exactly 3: rho given, interval undefined (n - 3 = 0).
    """
    import numpy as np
    from statistics import NormalDist

    if not 0 < level < 1:
        raise RobustnessError(f"level: {level!r} must be strictly between 0 and 1 (e.g. 0.95)")
    a = np.asarray(x, dtype=np.float64).ravel()
    b = np.asarray(y, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise RobustnessError(f"spearman: {a.size} x values but {b.size} y values; give one of each per model")
    n = int(a.size)
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise RobustnessError("spearman: a value is NaN or infinite; leave that model out or fix its metric")
    if n < 3:
        return SpearmanResult(None, None, None, n, level,
                              reason=f"{n} model(s): a rank correlation needs at least 3")
    ra, rb = _average_ranks(a), _average_ranks(b)
    if np.ptp(ra) == 0 or np.ptp(rb) == 0:
        return SpearmanResult(None, None, None, n, level,
                              reason="one of the two is the same for every model: no ranking to correlate")
    rho = float(np.corrcoef(ra, rb)[0, 1])
    if abs(abs(rho) - 1.0) < 1e-12:  # identical (or reversed) rankings: exactly +-1, not 0.9999999999999999
        rho = math.copysign(1.0, rho)
    if n == 3:
        return SpearmanResult(rho, None, None, n, level,
                              reason="3 models: the Fisher-z interval needs at least 4 (variance 1.06/(n-3))")
    if abs(rho) == 1.0:
        return SpearmanResult(rho, rho, rho, n, level)
    q = NormalDist().inv_cdf(0.5 + level / 2)
    z, se = math.atanh(rho), math.sqrt(1.06 / (n - 3))
    return SpearmanResult(rho, math.tanh(z - q * se), math.tanh(z + q * se), n, level)


# --------------------------------------------------------------------------------------------------
# class subsets of the shifted sets


def _wnid_lines(name: str) -> tuple[str, ...]:
    text = _resource(name).read_text(encoding="utf-8")
    return tuple(line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#"))


@lru_cache(maxsize=None)
def imagenet1k_wnids() -> tuple[str, ...]:
    """The 1000 ImageNet-1k wnids; position i is class index i."""
    return _wnid_lines("imagenet1k_wnids.txt")


@lru_cache(maxsize=1)
def objectnet_mapping() -> Mapping[str, Mapping[str, object]]:
    """ObjectNet's 113 ImageNet-overlapping classes: name -> ``folder`` (the dataset's directory),
    ``imagenet_indices``, ``imagenet_wnids``, ``imagenet_names``.  An ObjectNet image counts as
    correct when the argmax over :func:`shift_class_subset` ("objectnet") is one of its class's
    ``imagenet_indices``."""
    return json.loads(_resource("objectnet_to_imagenet.json").read_text(encoding="utf-8"))["classes"]


@lru_cache(maxsize=None)
def shift_class_subset(name: str) -> tuple[int, ...] | None:
    """The ImageNet-1k class indices (ascending) a shifted set is scored on, its logits restricted to
    them: ImageNet-R and -A their 200 classes, ObjectNet the 125 ImageNet classes of its 113
    overlapping classes; None for ImageNet-V2 and -Sketch, which use all 1000."""
    if name in ("imagenet_v2", "imagenet_sketch"):
        return None
    if name == "objectnet":
        return tuple(sorted({int(i) for c in objectnet_mapping().values() for i in c["imagenet_indices"]}))
    if name in _SHIFT_FILES:
        index = {wnid: i for i, wnid in enumerate(imagenet1k_wnids())}
        return tuple(sorted(index[w] for w in _wnid_lines(_SHIFT_FILES[name])))
    raise _unknown("shift", name, SHIFTS)


def shift_class_wnids(name: str) -> tuple[str, ...] | None:
    """The wnids of :func:`shift_class_subset` (same order), or None when the set uses all 1000."""
    subset = shift_class_subset(name)
    if subset is None:
        return None
    wnids = imagenet1k_wnids()
    return tuple(wnids[i] for i in subset)


def subset_top1(logits, targets: Sequence[int | Iterable[int]], subset: Sequence[int] | None) -> float:
    """Top-1 accuracy with the logits restricted to ``subset`` (ImageNet-1k indices, e.g. from
    :func:`shift_class_subset`; None = all classes), as the shifted sets are scored.

    ``logits`` is ``[n_images, 1000]`` (numpy, or anything ``numpy.asarray`` takes); ``targets`` gives
    each image's ImageNet-1k index, or the collection of indices that count as correct (an ObjectNet
    class standing for several ImageNet classes: ``objectnet_mapping()[name]["imagenet_indices"]``).
    """
    import numpy as np

    scores = np.asarray(logits, dtype=np.float64)
    if scores.ndim != 2 or scores.shape[0] != len(targets):
        raise RobustnessError(
            f"subset_top1: logits of shape {scores.shape} for {len(targets)} targets; "
            "give one row of class logits per image"
        )
    if not len(targets):
        raise RobustnessError("subset_top1: no images; an accuracy needs at least one")
    columns = np.arange(scores.shape[1]) if subset is None else np.asarray(sorted(set(subset)), dtype=np.int64)
    if columns.size == 0 or columns.min() < 0 or columns.max() >= scores.shape[1]:
        raise RobustnessError(f"subset_top1: class subset must hold indices in [0, {scores.shape[1]}), got {columns.size} indices")
    allowed = set(columns.tolist())
    predicted = columns[np.argmax(scores[:, columns], axis=1)]
    correct = 0
    for image, (target, guess) in enumerate(zip(targets, predicted)):
        accepted = {int(target)} if isinstance(target, (int, np.integer)) else {int(t) for t in target}
        outside = accepted - allowed
        if not accepted or outside:
            raise RobustnessError(
                f"subset_top1: image {image}: target {sorted(accepted)} is not within the set's classes "
                f"({sorted(outside)[:5]} outside); an image of a class the set does not score cannot be counted"
            )
        correct += int(guess) in accepted
    return correct / len(targets)
