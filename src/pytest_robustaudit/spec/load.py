"""Load and validate an audit spec: YAML file → :class:`~.schema.AuditSpec`, or every problem.

Validation never stops at the first problem: a user fixing a spec wants the whole list, each with
file, line, key and a fix.  Nothing is built here (no model, no image is opened): that happens when
an item runs.  Paths are resolved against the spec's folder; they must exist at collection time so
a typo fails before any model is loaded.  Each section has its own module (``model_section``,
``data_section``, ``checks_section``); this one holds the top level and ``reference``.  The
key-by-key schema is documented in docs/spec.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from ..errors import Problem, SpecError
from ..measure.extract import DEVICE_HELP, DEVICE_PATTERN, PRECISIONS
from ..registries import Registries
from .checks_section import DEFAULT_LAYERS, ChecksSection, LayerFit
from .concepts_section import ConceptsSection
from .data_section import DataSection
from .head_section import HeadSection
from .model_section import ModelSection
from .relation_section import RelationSection, is_relation_doc
from .schema import AuditSpec, DataSpec, ReferenceSpec, RelationSpec
from .shifts_section import ShiftsSection
from .validator import SEED_LIMIT, _kind
from .yamlsource import Doc, dotted, load_doc

TOP_KEYS = ("name", "model", "data", "layers", "checks", "device", "precision", "seed", "reference", "store_dtype",
            "confidence", "min_images", "resamples", "bootstrap_method", "head", "shifts", "concepts", "measure")
#: how rows are kept in the activation store (store.entries.STORE_DTYPES; numpy-free here)
STORE_DTYPE_NAMES = ("float32", "float16")
#: metrics.bootstrap.METHODS (numpy-free here; a test keeps the two equal)
BOOTSTRAP_METHODS = ("auto", "percentile", "bca")
REFERENCE_KEYS = ("model", "baseline", "entry", "history")


def load_spec(file: Path, registries: Registries, env: Mapping[str, str] | None = None,
              text: str | None = None, architectures: Any = None) -> AuditSpec:
    """Parse and validate ``file``; raise :class:`SpecError` listing every problem.

    With ``text``, that YAML is validated instead of the file's content, as if it were at ``file``
    (relative paths resolve against ``file``'s folder): how inline specs in tests are loaded.
    ``architectures`` (a :class:`~..models.architecture.Architectures`) lets validation know the model:
    its name, its layers, which layers its head fits; None: the spec alone is validated.
    """
    file = Path(file)
    doc, problems = load_doc(file, env, text)
    if not problems:
        spec = SpecValidator(doc, registries, problems, architectures).spec()
        if not problems and spec is not None:
            return spec
    raise SpecError(problems)


def load_audit_file(file: Path, registries: Registries, env: Mapping[str, str] | None = None,
                    text: str | None = None, architectures: Any = None) -> AuditSpec | RelationSpec:
    """What a YAML file under ``--audit`` holds: an audit spec, or a run-level relation check (top
    level ``relation:`` and no ``model:``, :mod:`.relation_section`); :class:`SpecError` otherwise."""
    file = Path(file)
    doc, problems = load_doc(file, env, text)
    if not problems and is_relation_doc(doc.data):
        relation = RelationSection(doc, registries, problems).relation_spec()
        if not problems and relation is not None:
            return relation
        raise SpecError(problems, "relation file")
    return load_spec(file, registries, env, text, architectures)


class SpecValidator(ModelSection, DataSection, ChecksSection, HeadSection, ShiftsSection, ConceptsSection):
    """The whole document: the top-level keys and ``reference``; each other section from its module."""

    def __init__(self, doc: Doc, registries: Registries, problems: list[Problem], architectures: Any = None):
        super().__init__(doc, registries, problems)
        self.architectures = architectures

    def spec(self) -> AuditSpec | None:
        raw = self.doc.data
        features = isinstance(raw, dict) and isinstance(raw.get("model"), dict) and \
            raw["model"].get("source") == "activations"   # features from elsewhere: no probe images needed
        top = self.mapping(raw, (), TOP_KEYS, required=("model", "checks") if features else ("model", "data", "checks"))
        if top is None:
            return None
        name = top.get("name", self.file.stem)
        if not isinstance(name, str) or not name.strip():
            self.problem(("name",), f"expected a non-empty string, got {_kind(name)}", "give the audit a name")
        device = top.get("device", "auto")
        if not isinstance(device, str) or not DEVICE_PATTERN.match(device):
            self.problem(("device",), f"{device!r} is not a device", DEVICE_HELP)
        precision = self.choice(top.get("precision", "fp32"), ("precision",), PRECISIONS)
        seed = self.integer(top.get("seed", 0), ("seed",), 0, SEED_LIMIT)
        store_dtype = self.choice(top.get("store_dtype", "float32"), ("store_dtype",), STORE_DTYPE_NAMES)
        confidence = self.confidence(top.get("confidence"), ("confidence",))
        min_images = self.integer(top["min_images"], ("min_images",), 1) if top.get("min_images") is not None else None
        from ..metrics.bootstrap import MAX_RESAMPLES

        resamples = self.integer(top["resamples"], ("resamples",), 50, MAX_RESAMPLES) \
            if top.get("resamples") is not None else None
        method = self.choice(top["bootstrap_method"], ("bootstrap_method",), BOOTSTRAP_METHODS) \
            if top.get("bootstrap_method") is not None else None
        model = self.model(top["model"], ("model",)) if "model" in top else None
        data = self.data(top["data"]) if "data" in top else None
        layers = self.layers(top.get("layers", list(model.arrays) if model and model.arrays else list(DEFAULT_LAYERS)))
        if model is not None and model.arrays:
            if data is None and "data" not in top:
                data = DataSpec(path=next(iter(model.arrays.values())), labels="none")
            for layer in layers:
                if layer not in model.arrays:
                    self.problem(("layers",), f"layer '{layer}' has no array under model.arrays "
                                              f"({', '.join(model.arrays)})", f"add '{layer}: FILE' under model.arrays")
        reference = self.reference(top["reference"]) if top.get("reference") is not None else None
        head = self.head(top.get("head"), model.source if model is not None else None)
        fit = self.known_layers(model, reference, layers, head, "layers" in top)
        checks = self.checks(top["checks"], layers, fit) if "checks" in top else ()
        self.head_checks(head, checks)
        shifts = self.shifts(top.get("shifts"))
        self.shift_checks(shifts, checks)
        measured = [s for s in shifts if s.kind != "given"]
        if measured and head.kind == "none":
            self.problem(("shifts",), "shifted sets are scored with the classification head, but the spec sets "
                         "`head: none`", "remove `head: none` (default: auto), or remove the folder and corruption shifts")
        if measured and model is not None and model.source == "activations":
            self.problem(("shifts",), "folder and corruption shifts run the model on images, but `source: activations` "
                         "audits features from elsewhere (no model)", "give their accuracies instead: "
                         "`{name: ..., accuracy: ..., source: ...}`")
        concepts = self.concepts(top.get("concepts"), model.source if model is not None else None)
        if concepts is not None or top.get("concepts") is None:   # (a bank with problems was reported already)
            self.concept_checks(concepts, checks, top.get("reference"))
        measure, measure_all = self.measure(top.get("measure"))
        relative = [c for c in checks if c.relative]
        if relative and reference is None and "reference" not in top:
            self.problem(("checks", relative[0].metric), "relative bounds (min_ratio, max_ratio, min_delta, max_delta) "
                         "need something to compare with", "add a top-level 'reference:' with 'model:' or 'baseline:'")
        if self.problems or model is None or data is None:
            return None
        return AuditSpec(path=self.file, name=str(name), model=model, data=data, layers=layers, checks=checks,
                         device=device, precision=precision or "fp32", seed=seed or 0, reference=reference,
                         store_dtype=store_dtype or "float32", confidence=confidence, min_images=min_images,
                         resamples=resamples, bootstrap_method=method, head=head, shifts=shifts,
                         concepts=concepts, measure=measure, measure_all=measure_all)

    def known_layers(self, model: Any, reference: Any, layers: tuple[str, ...], head: Any, listed: bool) -> LayerFit:
        """What the model's architecture says of the spec (with ``architectures``): its name and tag exist,
        each listed layer exists in it (and in a reference model), and which layers its head fits."""
        found = self.architecture(model, ("model",)) if model is not None else None
        if reference is not None and reference.model is not None:
            twin = self.architecture(reference.model, ("reference", "model"))
            self.layers_exist(twin, layers, ("reference", "model"), "the reference model")
        self.layers_exist(found, layers, ("layers",) if listed else ("model",), "the model")
        kind = head.kind if head.kind != "auto" else ("zero-shot" if model is not None and model.source == "open_clip"
                                                      else "classifier")
        return LayerFit(found, kind)

    def architecture(self, model: Any, path: tuple) -> Any:
        """The model's :class:`~..models.architecture.Architecture` (None: not known here); a name or tag
        the library does not know is a problem at that key."""
        if self.architectures is None:
            return None
        from ..errors import ModelLoadError

        try:
            return self.architectures(model)
        except ModelLoadError as error:
            text = error.message.split(": ", 1)[-1] if error.message.startswith(model.describe()) else error.message
            key = "options" if "options" in error.fix else \
                "pretrained" if "tag" in text and model.pretrained not in (None, False) else "name"
            self.problem(path + (key,), text, error.fix or f"correct {dotted(path + (key,))}")
            return None

    def layers_exist(self, found: Any, layers: tuple[str, ...], path: tuple, whose: str) -> None:
        """Each of ``layers`` is a layer of the architecture ``found`` (nothing to say when it is unknown)."""
        if found is None:
            return
        for i, layer in enumerate(layers):
            where = path + (i,) if path == ("layers",) else path
            problem = found.catalogue.problem(layer)
            if problem:
                self.problem(where, problem, f"name a layer {whose} has (python -m pytest_robustaudit list layers "
                             f"{self.file.name} lists them)")
            elif not found.ran(layer):
                self.problem(where, f"layer '{layer}' does not run when {whose} encodes an image (it belongs to "
                             "another part of the model, e.g. the text tower)", "name a module of the image tower")

    def measure(self, value: Any) -> tuple[tuple[str, ...], bool]:
        """``measure:``: metric names (or ``all``) computed besides the checked and default ones."""
        from ..plan.plan import ALL
        from ..registry import suggest

        if value is None:
            return (), False
        if value == ALL:
            return (), True
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list):
            self.problem(("measure",), f"expected a list of metric names or `{ALL}`, got {_kind(value)}",
                         f"e.g. measure: [importance_top_share, prunable_fraction], or measure: {ALL}")
            return (), False
        names = self.registries.metrics.names()
        for i, name in enumerate(items):
            if not isinstance(name, str):
                self.problem(("measure", i), f"expected a metric name, got {_kind(name)}",
                             f"e.g. measure: [importance_top_share, prunable_fraction], or measure: {ALL}")
            elif name.strip().lower() == ALL and name != ALL:
                self.problem(("measure",), f"'{name}' is not a metric. Did you mean: {ALL}?", f"write measure: {ALL}")
            elif name == ALL:
                self.problem(("measure",), f"`{ALL}` stands alone, not inside a list", f"write measure: {ALL}")
            elif name not in names:
                self.problem(("measure", name), f"unknown metric '{name}'.{suggest(name, names)}",
                             f"known metrics: {', '.join(names)}; or write "
                             f"measure: {ALL}")
        return tuple(dict.fromkeys(n for n in items if isinstance(n, str) and n in names)), False


    def head_checks(self, head: Any, checks: tuple) -> None:
        """A check of a metric that reads the head, on a spec with ``head: none``, cannot be measured."""
        if head.kind != "none":
            return
        from ..metrics.types import READS_HEAD

        for check in checks:
            metric = self.registries.metrics.get(check.metric) if check.metric in self.registries.metrics.names() else None
            if metric is not None and metric.reads == READS_HEAD:
                self.problem(("checks", check.metric), f"{check.metric} reads the classification head, but the spec "
                             "sets `head: none`", "remove `head: none` (default: auto), or remove this check")
                return

    def shift_checks(self, shifts: tuple, checks: tuple) -> None:
        """A check's ``shift`` / ``corruption`` parameter must name a shift of the spec (or ``mean``)."""
        natural = [s.name for s in shifts if s.natural]
        corruptions = sorted({s.corruption for s in shifts if s.kind == "corruption"})
        for check in checks:
            for param, known, what in (("shift", natural, "natural shift"), ("corruption", corruptions, "corruption")):
                value = check.params.get(param)
                if value is None or value == "mean" or value in known:
                    continue
                from ..registry import suggest

                listed = ", ".join(known) or f"none: the spec's `shifts` gives no {what}"
                self.problem(("checks", check.metric, param), f"{param} '{value}' is not a {what} of this spec "
                             f"(its {what}s: {listed}).{suggest(str(value), tuple(known))}",
                             f"name one of them, `mean`, or add it under `shifts:` (docs/spec.md#shifts)")

    def reference(self, value: Any) -> ReferenceSpec | None:
        path = ("reference",)
        section = self.mapping(value, path, REFERENCE_KEYS)
        if section is None:
            return None
        if sum(k in section for k in ("model", "baseline", "history")) != 1:
            self.problem(path, "give exactly one of 'model' (a model audited alongside), 'baseline' (a stored record) "
                         "or 'history' (an earlier release kept by --audit-history)",
                         "e.g. reference: {baseline: baselines/my_model.json} or reference: {history: last}")
            return None
        if "history" in section:
            text = self.typed(section["history"], path + ("history",), (str,), "'last' or a release label")
            if text is not None and not text.strip():
                self.problem(path + ("history",), "is empty", "write 'last' (the last release of this audit) "
                             "or the label of a kept release, e.g. history: v1.2.0")
                return None
            if "entry" in section:
                self.problem(path + ("entry",), "only applies to 'baseline'", "leave it out: the history finds the "
                             "audit by its spec path and name")
                return None
            return ReferenceSpec(history=text.strip(), where=self.where(path)) if text is not None else None
        entry = section.get("entry")
        if entry is not None:
            self.typed(entry, path + ("entry",), (str,), "the audit name inside the baseline record")
        if "model" in section:
            model = self.model(section["model"], path + ("model",))
            return ReferenceSpec(model=model, where=self.where(path)) if model else None
        text = self.typed(section["baseline"], path + ("baseline",), (str,), "a path to a JSON record")
        if text is None:
            return None
        file = (self.base / Path(text).expanduser()).resolve()   # may not exist yet: --audit-save-baseline writes it
        return ReferenceSpec(baseline=file, entry=entry if isinstance(entry, str) else None, where=self.where(path))
