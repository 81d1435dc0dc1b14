"""The validated audit spec: frozen dataclasses, free of YAML and of pytest.

``spec/load.py`` turns a YAML file into these objects (collecting every problem with its line); every
later stage (models, data, extract, checks) reads only these.  Paths are already resolved against
the spec file's folder and ``${ENV}`` references are already substituted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Located:
    """Where a value came from, for error messages raised after validation (at run time)."""

    file: Path
    line: int | None
    key: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.key}" if self.line else f"{self.file}: {self.key}"


@dataclass(frozen=True)
class CheckpointSpec:
    """A local weights file.

    ``path`` is absolute.  ``match_keys`` is ``"by_name"`` (the state dict's keys must match the
    model's) or ``"by_order"`` (tensors are matched by position and shape, for files whose key
    names come from another implementation of the same architecture).  ``trusted`` allows a full
    pickle load, which can execute code: only for files the user vouches for.
    """

    path: Path
    match_keys: str = "by_name"
    trusted: bool = False
    where: Located | None = None


@dataclass(frozen=True)
class PreprocessSpec:
    """Overrides of the checkpoint's own eval transform (None = keep the library's value)."""

    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None
    interpolation: str | None = None

    def overrides(self) -> dict[str, Any]:
        """The overrides that are set, by name (``mean``, ``std``, ``interpolation``)."""
        fields = (("mean", self.mean), ("std", self.std), ("interpolation", self.interpolation))
        return {name: value for name, value in fields if value is not None}


@dataclass(frozen=True)
class ModelSpec:
    """What to load.

    ``source`` names a registered model source (``timm``, ``open_clip``, ``factory`` built in).
    ``name`` is the architecture (timm model name, open_clip architecture).  ``pretrained`` is a
    hub tag (open_clip: ``"openai"``; timm: ``True`` or a tag such as ``"tv_in1k"``), or None.
    ``factory`` is ``"package.module:callable"`` or ``"/abs/path/file.py:callable"``; ``options``
    are keyword arguments for the factory (or for ``timm.create_model``/open_clip).
    """

    source: str
    name: str | None = None
    pretrained: str | bool | None = None
    checkpoint: CheckpointSpec | None = None
    factory: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    preprocess: PreprocessSpec = field(default_factory=PreprocessSpec)
    cache_dir: Path | None = None
    where: Located | None = None
    #: ``source: activations``: layer name → an ``[N, d]`` array file (absolute)
    arrays: dict[str, Path] = field(default_factory=dict)

    def describe(self) -> str:
        """A short human label such as ``timm:efficientnet_lite0`` or ``open_clip:RN50/openai``."""
        if self.source == "factory" and self.factory:
            base = f"factory:{self.factory}"
        elif self.source == "activations":
            return f"activations:{self.name}" if self.name else "activations"
        else:
            base = f"{self.source}:{self.name}"
            if isinstance(self.pretrained, str):
                base += f"/{self.pretrained}"
            elif self.pretrained is True:
                base += " (pretrained)"
        if self.checkpoint is not None:
            base += f" [{self.checkpoint.path.name}]"
        return base


@dataclass(frozen=True)
class DataSpec:
    """The probe images.

    ``labels``: ``auto`` (class sub-folders if every image sits in one, else a WordNet id prefix
    ``n01440764_*`` if every file name has one, else none), ``folder``, ``wnid`` or ``none``.
    ``limit``/``seed`` take a deterministic subset: files sorted by relative path, then
    ``random.Random(seed).sample``.  ``workers`` is the number of image-decoding threads, or ``"auto"``
    (one per spare core, at most 8; resolved when the audit runs).
    """

    path: Path
    labels: str = "auto"
    limit: int | None = None
    seed: int = 0
    batch_size: int | str = 32
    workers: int | str = 0
    where: Located | None = None


@dataclass(frozen=True)
class CheckSpec:
    """One assertion: ``metric`` on ``layer`` within its bounds; becomes one pytest item.

    Absolute bounds are ``min``/``max``.  Relative bounds compare with the spec's ``reference``
    (another model, or a stored baseline): ``min_ratio``/``max_ratio`` bound value ÷ reference,
    ``min_delta``/``max_delta`` bound value − reference.  ``why`` is the spec's one-line reason for
    the bound (e.g. "a supervised CNN is expected on the non-robust side"), shown beside its verdict.
    """

    metric: str
    layer: str
    min: float | None = None
    max: float | None = None
    params: dict[str, Any] = field(default_factory=dict)
    where: Located | None = None
    min_ratio: float | None = None
    max_ratio: float | None = None
    min_delta: float | None = None
    max_delta: float | None = None
    id: str = ""
    why: str = ""      # why the bound is what it is (spec key ``why:``), shown beside the verdict
    confidence: float | None = None   # gate on the interval at this level (docs/intervals.md); None: the spec's
    #: the layer came from the spec's ``layers:`` (the check names none of its own): where the fit of a head
    #: metric was unknown at validation, such a layer that does not fit is dropped at run time, with a note
    default_layer: bool = False
    #: the equivalence margin of a comparison with an earlier release (``--audit-compare``, ``diff``), in the
    #: metric's units: a change within it reads as unchanged (docs/ci.md#release-history); None: the size of
    #: the check's smallest delta bound, else 0
    margin: float | None = None

    @property
    def name(self) -> str:
        """The item's name in node ids: the metric, or ``metric[param=value]`` when the spec checks the
        same metric on the same layer at several parameter values."""
        return self.id or self.metric

    @property
    def key(self) -> tuple:
        """What identifies the check within its spec: (metric, layer, parameters)."""
        return self.metric, self.layer, tuple(sorted(self.params.items()))

    @property
    def relative(self) -> bool:
        return any(v is not None for v in (self.min_ratio, self.max_ratio, self.min_delta, self.max_delta))


@dataclass(frozen=True)
class ReferenceSpec:
    """What relative bounds compare against: a model audited in the same run, or a stored baseline.

    ``model`` is audited on the same probe data, layers, device, precision and seed as the
    candidate.  ``baseline`` is a JSON record written by ``--audit-save-baseline``; ``entry`` names
    the audit inside it (default: the spec's own name).  ``history`` is an earlier run of the same audit
    kept by ``--audit-history`` (``last`` or a label): the change from the last release, bounded with the
    same relative keys.
    """

    model: ModelSpec | None = None
    baseline: Path | None = None
    entry: str | None = None
    where: Located | None = None
    #: an earlier run of this audit kept by ``--audit-history``: ``last`` (the last release: the newest complete,
    #: passed run under another label, results/history.py History.find) or a label
    history: str | None = None

    def describe(self) -> str:
        if self.model is not None:
            return f"reference model {self.model.describe()}"
        if self.history is not None:
            return f"release {self.history} in the history"
        return f"baseline {self.baseline}"


@dataclass(frozen=True)
class HeadSpec:
    """The classification head the accuracy and direction metrics read (spec key ``head``).

    ``kind``: ``auto`` (the model's own classifier for timm/factory models that have one, a zero-shot
    head for open_clip), ``classifier``, ``zero-shot`` or ``none``.  ``classes`` (zero-shot only):
    the class names (None: ImageNet-1k); ``templates``: a named set (``openai``, ``simple``) or
    prompts with ``{}``.  ``explicit``: the spec wrote ``head:`` (a zero-shot head is then built
    even when no check reads it).
    """

    kind: str = "auto"
    classes: tuple[str, ...] | None = None
    templates: str | tuple[str, ...] = "openai"
    explicit: bool = False
    where: Located | None = None


@dataclass(frozen=True)
class ShiftSpec:
    """One shifted set the head is scored on (spec key ``shifts``, one entry each; docs/spec.md).

    ``kind``: ``folder`` (images at ``path``, measured through the activation store like the probe),
    ``given`` (an ``accuracy`` the user measured elsewhere, with its ``source``) or ``corruption``
    (the probe images corrupted with ``corruption`` at ``severity``, issue 18; ``seed`` None: the
    spec's).  ``set``: one of the five standard natural shifts (``imagenet_v2``, ``imagenet_r``,
    ``imagenet_sketch``, ``objectnet``, ``imagenet_a``), which fixes the class subset, the label
    mapping and the effective-robustness baseline; None: a user folder scored on the classes its
    labels cover.  A ``given`` entry named ``imagenet`` is the clean ImageNet accuracy that
    effective robustness and the drops use instead of the probe's top-1.
    """

    name: str
    kind: str
    path: Path | None = None
    set: str | None = None
    labels: str = "auto"
    limit: int | None = None
    accuracy: float | None = None
    source: str = ""
    corruption: str | None = None
    severity: int | None = None
    seed: int | None = None
    where: Located | None = None
    #: the registered image set kind that made it (``folder``, ``given``, ``corruption`` or a plugin's)
    set_kind: str = ""
    #: a plugin kind's options, as (key, value) pairs
    options: tuple[tuple[str, Any], ...] = ()

    @property
    def natural(self) -> bool:
        """A natural shift (a folder or a given accuracy), as opposed to a synthetic corruption."""
        return self.kind != "corruption" and self.name != "imagenet"


@dataclass(frozen=True)
class ConceptsSpec:
    """The concept bank probed by the concept metrics (spec key ``concepts``; docs/concepts.md).

    Either a folder bank (``path``: one sub-folder of images per concept, at least ``min_images``
    each) or the built-in procedural bank (``builtin``: drawn at run time from ``bank_seed``,
    ``images_per_concept`` images of ``size`` pixels, all built-in concepts or those in ``names``).
    ``quantile``, ``null_repeats``, ``folds`` and ``alpha`` set the probe and its null; the probe's
    own seed is the spec's ``seed``.
    """

    path: Path | None = None
    builtin: bool = False
    bank_seed: int = 0
    images_per_concept: int = 10
    size: int = 224
    names: tuple[str, ...] | None = None
    min_images: int = 5
    quantile: float = 0.99
    null_repeats: int | None = None
    folds: int = 5
    alpha: float = 1.0
    where: Located | None = None

    def describe(self) -> str:
        if self.builtin:
            count = f"{len(self.names)} concepts" if self.names else "all concepts"
            return f"built-in bank (seed {self.bank_seed}, {count}, {self.images_per_concept} images of {self.size} px)"
        return f"folder bank {self.path}"


@dataclass(frozen=True)
class AuditSpec:
    """A whole audit: one model, its probe data, the layers to read and the checks to assert."""

    path: Path
    name: str
    model: ModelSpec
    data: DataSpec
    layers: tuple[str, ...]
    checks: tuple[CheckSpec, ...]
    device: str = "auto"
    precision: str = "fp32"
    seed: int = 0
    reference: ReferenceSpec | None = None
    store_dtype: str = "float32"     # how the activation store keeps rows (float16 halves disk use)
    confidence: float | None = None  # default confidence of its checks (None: the ini audit_confidence, else none)
    min_images: int | None = None    # below this many usable images every check fails (docs/intervals.md)
    resamples: int | None = None     # bootstrap resamples per interval (None: the ini audit_resamples, else 1000)
    #: bootstrap method of the per-image families (None: the ini audit_bootstrap_method, else "auto")
    bootstrap_method: str | None = None
    head: HeadSpec = field(default_factory=HeadSpec)
    shifts: tuple[ShiftSpec, ...] = ()   # shifted sets scored with the head (docs/spec.md#shifts)
    concepts: ConceptsSpec | None = None   # the concept bank of the concept metrics (None: none probed)
    #: metrics to compute besides the checked and default ones (spec key ``measure:``, docs/spec.md#measure)
    measure: tuple[str, ...] = ()
    measure_all: bool = False              # ``measure: all``: every registered metric
    #: ``--audit-limit N``: a smoke run's N (the limits above already applied: :func:`~.smoke.with_limit`)
    smoke_limit: int | None = None


@dataclass(frozen=True)
class RelationSpec:
    """A run-level check (a YAML file whose top level is ``relation:``): Spearman's rho between an
    outlier ``metric`` and effective robustness across the run's audits, bounded by ``min_rho`` and/or
    ``max_rho``; with ``confidence``, the verdict reads the interval (docs/spec.md#relation-checks)."""

    path: Path
    metric: str = "kurtosis_mean"
    layer: str | None = None
    min_rho: float | None = None
    max_rho: float | None = None
    confidence: float | None = None
    where: Located | None = None

    @property
    def name(self) -> str:
        return self.path.stem
