"""Score the audit's head on its shifted sets: folders and corruptions measured through the store.

Why this module: effective robustness and the accuracy drops need the head's accuracy on shifted
image sets, and those sets must go through the same path as the probe (docs/store.md): a folder
shift is an image set measured by :func:`~.activations.measure_layers` on the layer(s) the head
reads, so it is extracted once per content and read from the store on the next run; a corruption
shift is measured by ``pytest_robustaudit.measure.corrupted.measure_corrupted`` (issue 18) on the audit's
own probe images.  The head then scores the stored rows in float64, like the clean top-1:

* a folder with ``set`` (one of the five standard natural shifts) is scored as that set is: logits
  restricted to its class subset (ImageNet-R and -A: 200 classes, ObjectNet: the 125 ImageNet
  classes of its 113 overlapping classes, an ObjectNet image counting as correct when the argmax is
  one of its class's ImageNet classes), labels mapped from wnids (ImageNet-V2's folders ``0..999``
  are class indices, ObjectNet's are its own folder names);
* a folder without ``set`` is scored on the classes its labels cover, logits restricted to them;
* a corruption is scored on all of the head's classes, like the clean probe.

What is kept is one boolean per image (correct or not, in row order), so accuracies, drops and their
bootstrap intervals never read the rows again.  Free of pytest; numpy only at import.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence

import numpy as np

from ..errors import AuditError

if TYPE_CHECKING:
    from ..spec.schema import AuditSpec, ShiftSpec
    from .context import AuditContext


class ShiftError(AuditError):
    """A shifted set that cannot be scored (labels outside its classes, no labels, no measurer)."""


@dataclass
class ShiftScore:
    """The head's top-1 on one shift: measured (``correct`` per image) or given (``accuracy`` only).

    ``correct``: bool per scored image, in row order (None for a given accuracy); ``classes``: how many
    classes the logits were restricted to (None: all of the head's); ``excluded``: images not scored,
    with why (unlabelled, NaN/Inf rows); ``from_store``: the rows were read from the activation store
    (no extraction); ``rows``: re-reads the shift's stored rows (float32 chunks; None for a given one,
    and failing once the store is gone); ``columns``/``targets``: the head columns the logits were
    restricted to and each scored row's accepted head classes (for a pruning curve on this set)."""

    name: str
    kind: str
    set: str | None = None
    accuracy: float = float("nan")
    correct: np.ndarray | None = None
    source: str = ""
    classes: int | None = None
    excluded: dict[str, int] = field(default_factory=dict)
    from_store: bool | None = None
    corruption: str | None = None
    severity: int | None = None
    rows: Callable[[], Iterable[np.ndarray]] | None = None
    keep: np.ndarray | None = None          # rows scored (finite and labelled), in row order
    columns: np.ndarray | None = None
    targets: list | None = None

    @property
    def n(self) -> int:
        return 0 if self.correct is None else int(self.correct.size)

    @property
    def n_correct(self) -> int | None:
        return None if self.correct is None else int(self.correct.sum())

    @property
    def natural(self) -> bool:
        return self.kind != "corruption"

    def describe(self) -> dict[str, Any]:
        """JSON-able summary (the metrics' details, the record, the report)."""
        out: dict[str, Any] = {"kind": self.kind, "accuracy": self.accuracy}
        if self.set:
            out["set"] = self.set
        if self.correct is not None:
            out.update(correct=self.n_correct, total=self.n, classes=self.classes, from_store=self.from_store)
        if self.excluded:
            out["excluded"] = dict(self.excluded)
        if self.source:
            out["source"] = self.source
        if self.corruption:
            out.update(corruption=self.corruption, severity=self.severity)
        return out


@dataclass
class ShiftResults:
    """Every shift of one audit, scored on one layer, with the clean reference on the same layer.

    ``clean``: the clean accuracy the drops and ER compare with: the given ``imagenet`` entry when the
    spec has one, else the head's top-1 on the probe images (``clean_correct`` per image, in probe row
    order: corruption shifts are the same images, so their drops are paired)."""

    layer: str
    scores: dict[str, ShiftScore]
    clean: float
    clean_source: str
    clean_correct: np.ndarray | None = None
    #: which probe rows ``clean_correct`` scored (finite and labelled), to pair a corrupted set image by image
    clean_keep: np.ndarray | None = None

    def natural(self) -> list[ShiftScore]:
        return [s for s in self.scores.values() if s.natural]

    def corruptions(self) -> list[ShiftScore]:
        return [s for s in self.scores.values() if not s.natural]


# --------------------------------------------------------------------------------------------------
# label mapping


def _wnid_index(head: Any, where: str) -> dict[str, int]:
    """ImageNet-1k wnid -> head column; a set with a standard class subset needs an ImageNet-1k head."""
    from ..metrics.robustness import imagenet1k_wnids

    wnids = imagenet1k_wnids()
    if head.class_ids and len(head.class_ids) == 1000 and tuple(head.class_ids) == wnids:
        return {w: i for i, w in enumerate(wnids)}
    if head.num_classes == 1000 and not head.class_ids:
        return {w: i for i, w in enumerate(wnids)}
    raise ShiftError(where=where, message=f"the standard shifted sets are scored on the ImageNet-1k classes, but "
                     f"{head.description} has {head.num_classes} classes",
                     fix="audit a model with an ImageNet-1k head (or the default zero-shot ImageNet head), or leave "
                         "`set` out to score the folder on the classes its labels cover")


def set_targets(shift_set: str, labels: Sequence[str | None], head: Any, where: str) -> tuple[np.ndarray, list]:
    """(head columns the logits are restricted to, each image's accepted columns (a tuple; () unlabelled))
    for a folder of the standard set ``shift_set``."""
    from ..metrics.robustness import imagenet1k_wnids, objectnet_mapping, shift_class_subset

    index = _wnid_index(head, where)
    wnids = imagenet1k_wnids()
    subset = shift_class_subset(shift_set)
    columns = np.arange(head.num_classes, dtype=np.int64) if subset is None else \
        np.asarray([index[wnids[i]] for i in subset], dtype=np.int64)
    allowed = set(columns.tolist())
    objectnet = {}
    if shift_set == "objectnet":
        for name, entry in objectnet_mapping().items():
            accepted = tuple(index[w] for w in entry["imagenet_wnids"])
            objectnet[name] = accepted
            objectnet[str(entry.get("folder", name))] = accepted
    accepted_of: list = []
    unknown: list[str] = []
    for label in labels:
        if label is None:
            accepted_of.append(())
            continue
        if shift_set == "objectnet":
            accepted = objectnet.get(label)
            if accepted is None:
                unknown.append(label)
                accepted_of.append(())
                continue
        elif label in index:
            accepted = (index[label],)
        elif shift_set == "imagenet_v2" and label.isdigit() and int(label) < 1000:
            accepted = (index[wnids[int(label)]],)   # ImageNet-V2's folders are class indices 0..999
        else:
            unknown.append(label)
            accepted_of.append(())
            continue
        if not set(accepted) <= allowed:
            unknown.append(label)
            accepted_of.append(())
            continue
        accepted_of.append(accepted)
    if unknown:
        distinct = list(dict.fromkeys(unknown))
        what = "ObjectNet folder names of its 113 ImageNet-overlapping classes" if shift_set == "objectnet" else \
            ("ImageNet-1k wnids or class indices 0..999" if shift_set == "imagenet_v2" else
             f"wnids of the {len(allowed)} ImageNet classes {shift_set} uses")
        raise ShiftError(where=where, message=f"{len(distinct)} label(s) are not classes of {shift_set}: "
                         f"{', '.join(distinct[:5])}{' ...' if len(distinct) > 5 else ''} (expected {what})",
                         fix="point `path` at the set's own folder layout (docs/robustness.md#class-subsets), or "
                             "leave `set` out to score the folder on the classes its labels cover")
    return columns, accepted_of


def own_targets(labels: Sequence[str | None], head: Any, where: str) -> tuple[np.ndarray, list]:
    """A folder without a standard set: the head's columns of the classes its labels cover."""
    from ..models.heads import HeadError, label_indices

    try:
        indices = label_indices(head, labels, where)
    except HeadError as error:
        raise ShiftError(error.message, fix=error.fix) from None
    columns = np.asarray(sorted({int(i) for i in indices if i >= 0}), dtype=np.int64)
    return columns, [(int(i),) if i >= 0 else () for i in indices]


# --------------------------------------------------------------------------------------------------
# scoring


def score_rows(chunks: Iterable[np.ndarray], head: Any, columns: np.ndarray | None,
               accepted: Sequence[tuple]) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
    """(correct per scored row, mask of scored rows, excluded counts): top-1 of ``head`` in float64 with
    the logits restricted to ``columns`` (None: all), a row correct when its argmax column is one of its
    accepted columns.  Ties go to the lower column (numpy's argmax), as the clean top-1 does."""
    restrict = None if columns is None or columns.size == head.num_classes and \
        np.array_equal(columns, np.arange(head.num_classes)) else columns
    correct: list[np.ndarray] = []
    keep_all: list[np.ndarray] = []
    nonfinite = 0
    offset = 0
    for chunk in chunks:
        rows = np.asarray(chunk)
        n = rows.shape[0]
        labelled = np.asarray([bool(a) for a in accepted[offset:offset + n]], dtype=bool)
        finite = np.isfinite(rows).all(axis=1)
        nonfinite += int((labelled & ~finite).sum())
        keep = labelled & finite
        keep_all.append(keep)
        if keep.any():
            logits = np.asarray(head.logits(rows[keep], None if restrict is None else restrict.tolist()),
                                dtype=np.float64)
            picked = np.argmax(logits, axis=1)
            predicted = picked if restrict is None else restrict[picked]
            wanted = [accepted[offset + int(i)] for i in np.flatnonzero(keep)]
            correct.append(np.asarray([int(p) in a for p, a in zip(predicted, wanted)], dtype=bool))
        offset += n
    if offset != len(accepted):
        raise ShiftError(f"{offset} stored rows for {len(accepted)} labels")
    excluded = {}
    unlabelled = sum(1 for a in accepted if not a)
    if unlabelled:
        excluded["unlabelled"] = unlabelled
    if nonfinite:
        excluded["nonfinite"] = nonfinite
    mask = np.concatenate(keep_all) if keep_all else np.zeros(0, dtype=bool)
    return (np.concatenate(correct) if correct else np.zeros(0, dtype=bool)), mask, excluded


def _scored(shift: "ShiftSpec", got: Any, layer: str, head: Any, targets: Callable[[Sequence], tuple],
            where: str) -> ShiftScore:
    entry = got.entries[layer]
    labels = got.row_labels
    if labels is None or all(label is None for label in labels):
        raise ShiftError(where=where, message=f"the images of shift '{shift.name}' carry no labels, so the head cannot be scored "
                         "on them", fix="use class sub-folders (or wnid-prefixed file names) and `labels: folder` or "
                                        "`labels: wnid` (docs/data.md)")
    columns, accepted = targets(labels)

    def rows():
        return entry.rows(layer, dtype=np.float32)

    correct, keep, excluded = score_rows(rows(), head, columns, accepted)
    if correct.size == 0:
        raise ShiftError(where=where, message=f"no image of shift '{shift.name}' could be scored ({excluded or 'none stored'})",
                         fix="check the folder's images and labels")
    return ShiftScore(shift.name, shift.kind, shift.set, float(correct.mean()), correct,
                      classes=None if columns is None or columns.size == head.num_classes else int(columns.size),
                      excluded=excluded, from_store=not got.extracted, corruption=shift.corruption,
                      severity=shift.severity, rows=rows, keep=keep, columns=columns,
                      targets=[a for a, k in zip(accepted, keep) if k])


def _corrupted_measurer() -> Callable[..., Any]:
    try:
        from .corrupted import measure_corrupted
    except ModuleNotFoundError as error:
        if error.name not in ("pytest_robustaudit.measure.corrupted", __name__.rsplit(".", 1)[0] + ".corrupted"):
            raise
        raise ShiftError("this installation of pytest-robustaudit has no corruption measurement "
                         "(module pytest_robustaudit.measure.corrupted, docs/corruptions.md)",
                         fix="upgrade pytest-robustaudit, or remove the `corruption:` entries from `shifts`") from None
    return measure_corrupted


def measure_shift(ctx: "AuditContext", spec: "AuditSpec", shift: "ShiftSpec", layers: Sequence[str], probe: Any,
                  model: Any = None) -> Any:
    """The :class:`~.activations.Measured` of one folder or corruption shift on ``layers`` (stored rows);
    ``model``: the probe's measured ``handle``, so the audit's model is built once for all its sets."""
    from .activations import measure_layers
    from ..spec.schema import DataSpec

    where = str(shift.where) if shift.where else f"{spec.path}: shifts"
    label = f"{spec.name} [{shift.name}]"
    seed = spec.seed if shift.seed is None else shift.seed
    if shift.set_kind not in ("", "folder", "given", "corruption"):   # a plugin's kind: the probe, transformed
        from .image_sets import kind_variant

        variant = kind_variant(ctx.registries.image_sets.get(shift.set_kind), shift.name, dict(shift.options), seed,
                               ctx.store.hasher)
        return measure_layers(ctx, spec, probe, variant=variant, image_set=f"shift {shift.name}", layers=layers,
                              label=label, model=model)
    if shift.kind == "corruption":
        measure = _corrupted_measurer()
        return measure(ctx, spec, probe, corruption=shift.corruption, severity=shift.severity,
                       seed=spec.seed if shift.seed is None else shift.seed, layers=tuple(layers), model=model)
    from .. import data

    data_spec = DataSpec(path=shift.path, labels=shift.labels, limit=shift.limit, seed=spec.data.seed,
                         batch_size=spec.data.batch_size, workers=spec.data.workers, where=shift.where)
    try:
        images = data.discover(data_spec)
    except AuditError as error:
        raise ShiftError(f"shift '{shift.name}': {error.message}", where=where, fix=error.fix) from None
    return measure_layers(ctx, spec, images, image_set=f"shift {shift.name}", layers=layers, label=label,
                          data=data_spec, model=model)


def score_shifts(ctx: "AuditContext", spec: "AuditSpec", head: Any, layers: Sequence[str],
                 probe: Any, model: Any = None) -> dict[str, dict[str, ShiftScore]]:
    """Every shift of ``spec`` scored on each of ``layers`` (the ones the head reads): layer -> name -> score.

    Each folder and corruption is measured once for all ``layers`` (one forward pass when missing from
    the store); a given accuracy is copied as it is."""
    out: dict[str, dict[str, ShiftScore]] = {layer: {} for layer in layers}
    corrupted = [shift for shift in spec.shifts if shift.kind == "corruption"]
    if corrupted and probe is not None and not any(image.label for image in probe.images):
        first = corrupted[0]
        raise ShiftError(where=str(first.where) if first.where else f"{spec.path}: shifts",
                         message=f"the probe images carry no labels, so the corrupted sets made from them "
                                 f"('{first.name}' ...) cannot be scored (said before any model runs)",
                         fix="label the probe data (class sub-folders with `labels: folder`, or wnid-prefixed file "
                             "names with `labels: wnid`, docs/data.md), or drop the corruption entries")
    for shift in spec.shifts:
        if shift.kind == "given":
            if shift.name == "imagenet":
                continue
            for layer in layers:
                out[layer][shift.name] = ShiftScore(shift.name, "given", shift.set, shift.accuracy, source=shift.source)
            continue
        where = str(shift.where) if shift.where else f"{spec.path}: shifts"
        got = measure_shift(ctx, spec, shift, layers, probe, model)
        if shift.kind == "corruption":
            def targets(labels, where=where):
                from ..models.heads import HeadError, label_indices

                try:
                    indices = label_indices(head, labels, where)
                except HeadError as error:
                    raise ShiftError(error.message, fix=error.fix) from None
                return None, [(int(i),) if i >= 0 else () for i in indices]
        elif shift.set is not None:
            def targets(labels, shift_set=shift.set, where=where):
                return set_targets(shift_set, labels, head, where)
        else:
            def targets(labels, where=where):
                return own_targets(labels, head, where)
        for layer in layers:
            out[layer][shift.name] = _scored(shift, got, layer, head, targets, where)
    return out


def clean_correct(inputs: Any) -> np.ndarray:
    """The head's top-1 correctness per probe row (scored rows only: finite and labelled), float64."""
    return clean_scored(inputs)[0]


def clean_scored(inputs: Any) -> tuple[np.ndarray, np.ndarray]:
    """(correct per scored probe row, mask of the probe rows scored), cached per layer."""
    from ..metrics.head_metrics import head_targets

    def build():
        head, targets, finite = head_targets(inputs)
        accepted = [(int(t),) if t >= 0 else () for t in targets]
        correct, keep, _ = score_rows(inputs.rows(), head, None, accepted)
        return correct, keep
    return inputs.cached("clean_scored", build)


class ShiftSource:
    """The shifts of one audit, scored at most once (a callable for :class:`~.metrics.inputs.LayerInputs`).

    Called with a layer's inputs it returns that layer's :class:`ShiftResults`, or raises
    :class:`~.metrics.types.NotApplicable` with the reason (no ``shifts`` in the spec, no head, a
    layer the head does not read).  The first call measures every folder and corruption shift on all
    the layers the head reads, in one pass each; an :class:`~.errors.AuditError` (a folder whose
    labels are not the set's classes, no corruption measurer) is the audit's located error."""

    def __init__(self, ctx: "AuditContext", spec: "AuditSpec", probe: Any, layer_widths: dict[str, int],
                 model: Any = None):
        self.ctx = ctx
        self.model = model    # the probe's measured handle: one model for every set
        self.spec = spec
        self.probe = probe
        self.widths = dict(layer_widths)
        self._scores: dict[str, dict[str, ShiftScore]] | None = None

    def keep_rows_in_memory(self) -> None:
        """Read every scored set's rows now, before a private temporary store (``--audit-cache off``) is
        removed: a check at other parameters (pruning at another ``p``) reads them again."""
        for scores in (self._scores or {}).values():
            for score in scores.values():
                if score.rows is not None:
                    kept = [np.array(chunk) for chunk in score.rows()]
                    score.rows = lambda kept=kept: iter(kept)

    @property
    def given_clean(self) -> Any:
        return next((s for s in self.spec.shifts if s.kind == "given" and s.name == "imagenet"), None)

    def __call__(self, inputs: Any) -> ShiftResults:
        from ..metrics.types import NotApplicable

        spec = self.spec
        if not spec.shifts:
            raise NotApplicable("the spec gives no `shifts` (docs/spec.md#shifts)")
        measured = any(s.kind != "given" for s in spec.shifts)
        clean_given = self.given_clean
        try:
            head = inputs.head()
        except NotApplicable:
            if measured or clean_given is None:
                raise
            head = None
        if head is not None and not measured and not any(int(w) == head.width for w in self.widths.values()):
            head = None    # no layer the head reads, and nothing to score with it: the given accuracies stand
        if head is None:   # every accuracy given in the spec: the numbers belong to the spec's first layer
            if inputs.layer != spec.layers[0]:
                raise NotApplicable(f"the spec's shift accuracies are all given; they are reported on layer "
                                    f"'{spec.layers[0]}'")
            layers = [inputs.layer]
        else:
            if int(inputs.stats.dim) != head.width:
                raise NotApplicable(f"layer '{inputs.layer}' has width {inputs.stats.dim} but {head.description} "
                                    f"reads width {head.width}: shifts are scored on the layer the head reads")
            layers = [name for name, width in self.widths.items() if int(width) == head.width]
        if self._scores is None:
            self._scores = score_shifts(self.ctx, spec, head, layers, self.probe, self.model) if head is not None else \
                {layers[0]: {s.name: ShiftScore(s.name, "given", s.set, s.accuracy, source=s.source)
                             for s in spec.shifts if s.name != "imagenet"}}
        scores = self._scores.get(inputs.layer)
        if scores is None:
            raise NotApplicable(f"layer '{inputs.layer}' was not scored on the shifts")
        if clean_given is not None:
            clean, source, per_image = clean_given.accuracy, f"given in the spec: {clean_given.source}", None
            if any(not s.natural for s in scores.values()) and head is not None:
                per_image = clean_correct(inputs)   # corruption drops compare the same images
        else:
            try:
                per_image = clean_correct(inputs)
            except NotApplicable as why:
                per_image = np.zeros(0, dtype=bool)
                source = f"undefined: {why}"
            else:
                source = "top-1 on the probe images"
            if per_image.size == 0:   # the shifts still have their accuracies; drops and ER say why not
                clean, per_image = float("nan"), None
                source = source if source.startswith("undefined") else \
                    "undefined: no labelled probe image (label the probe, or give `{name: imagenet, accuracy: ...}`)"
            else:
                clean = float(per_image.mean())
        keep = None
        if per_image is not None:
            try:
                keep = clean_scored(inputs)[1]
            except NotApplicable:
                keep = None
        return ShiftResults(inputs.layer, scores, clean, source, per_image, keep)
