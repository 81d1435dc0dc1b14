"""The probe images corrupted as ImageNet-C does, extracted through the activation store.

Why this module: a synthetic shift (docs/corruptions.md) is the audit's own probe set seen through a
corruption of the model's eval crop, so its rows are stored, keyed and read like the clean ones, by
:func:`~.activations.measure_layers` with an :class:`~.activations.ImageVariant`: the model's eval
transform becomes a :class:`~.data.corruptions.CorruptingPreprocess` (resize and crop, corrupt the uint8
crop, then ToTensor and Normalize), and the content key gains the corruption's identity (name,
severity, seed, the corruption code's version and source hash, scipy's version, frost's textures).
So a second run reads the store, another severity or seed misses, and the clean keys do not change.
No corrupted image is ever written anywhere: only the activations it produced are stored.

Free of pytest; torch and the model libraries are imported inside the functions that need them.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .activations import ImageVariant, Measured, Progress, measure_layers

if TYPE_CHECKING:
    from .context import AuditContext
    from ..data import ProbeSet
    from ..registries import Registries
    from ..spec.schema import AuditSpec
    from ..store import ActivationStore

#: what a corrupted set's key says on top of the clean key's parts
KIND = "imagenet-c corruption of the eval crop"


@functools.lru_cache(maxsize=1)
def corruption_source_hash() -> str:
    """sha256 over the corruption package's Python sources (sorted by name): any edit to the code that
    makes the corrupted images misses the store, even one that forgot to bump CORRUPTION_VERSION."""
    from ..data import corruptions

    folder = Path(corruptions.__file__).parent
    digest = hashlib.sha256()
    for path in sorted(folder.glob("*.py")):
        digest.update(path.name.encode("utf-8") + b"\0")
        digest.update(path.read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()


def corruption_variant(name: str, severity: int, seed: int, store: "ActivationStore") -> ImageVariant:
    """The :class:`ImageVariant` of one (corruption, severity, seed); a CorruptionError for an unknown
    name or severity, FrostTexturesMissing for frost without its textures, before any image is read."""
    from ..data.corruptions import CorruptingPreprocess, CorruptionError, get_corruption
    from ..data.corruptions.table import CORRUPTION_VERSION
    from ..store import library_versions

    corruption = get_corruption(name)
    if isinstance(severity, bool) or not isinstance(severity, int) or severity not in corruption.severities:
        levels = ", ".join(map(str, corruption.severities))
        raise CorruptionError(f"corruption {name!r} has no severity {severity!r}", fix=f"use one of: {levels}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise CorruptionError(f"a corruption seed is an integer, got {seed!r}", fix="e.g. seed: 0")
    key: dict[str, Any] = {"kind": KIND, "corruption": name, "severity": severity, "seed": seed,
                           "version": CORRUPTION_VERSION, "source_sha256": corruption_source_hash(),
                           "versions": library_versions(("scipy",))}
    if name == "frost":  # the photographs it blends in are data: their bytes are part of the rows' identity
        from ..data.corruptions.weather import FROST_FILES, frost_dir

        folder = frost_dir()
        key["textures"] = [store.hasher.sha256(folder / file) for file in FROST_FILES[:5]]
        store.hasher.save()
    label = name if len(corruption.severities) == 1 else f"{name} severity {severity}"
    if seed:
        label += f" seed {seed}"

    def wrap(preprocess: Any) -> Any:
        return CorruptingPreprocess(preprocess, name, severity, seed)

    return ImageVariant(label=label, key=key, wrap=wrap)


def measure_corrupted(ctx: "AuditContext", spec: "AuditSpec", probe: "ProbeSet", *, corruption: str, severity: int,
                      seed: int, layers: "tuple[str, ...] | None" = None, model: Any = None) -> Measured:
    """:func:`~.activations.measure_layers` on ``probe`` corrupted by ``corruption`` at ``severity``.

    Every image's eval crop (after the model's own resize and centre crop, before ToTensor and
    Normalize) is corrupted deterministically for ``(seed, corruption, severity, crop content)``;
    the rows of ``spec.layers`` are read from the store or extracted once into it, under keys that are
    the clean ones plus the corruption's identity.  Returns the same :class:`~.activations.Measured`
    as the clean extraction (``entries``: the stored corrupted rows per layer, ``row_labels``, ...).
    A model whose eval transform cannot be cut at the crop raises CorruptionError, naming the step.
    """
    variant = corruption_variant(corruption, severity, seed, ctx.store)
    return measure_layers(ctx, spec, probe, variant=variant, layers=layers, model=model)
