"""What every model source produces: a model ready for extraction, with its transform and layers.

A *model source* (``timm``, ``open_clip``, ``factory`` built in; more through the
``pytest_robustaudit_register_model_sources`` hook) turns a :class:`~..spec.schema.ModelSpec` into a
:class:`LoadedModel`.  The extraction stage only ever sees ``LoadedModel``: it never needs to know
which library the model came from.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Protocol, Sequence

if TYPE_CHECKING:  # heavy imports stay out of collection
    import torch
    from PIL import Image

    from ..spec.schema import ModelSpec


#: eval-transform resize interpolations a spec may override (``model.preprocess.interpolation``),
#: spelled as timm and open_clip both accept them
INTERPOLATIONS = ("nearest", "bilinear", "bicubic")


class LayerAdapter(Protocol):
    """Maps the plugin's layer names onto one model's modules.

    Layer names are the same for every library: ``representation`` (h(x), the vector the
    classification / zero-shot head reads), ``pre_projection`` (CLIP: the pooled feature before the
    image projection), ``blocks.N`` (output of the N-th intermediate block, negative N counts from
    the end) and ``module:<dotted.name>`` (any named module, through a forward hook).
    """

    def available(self) -> list[str]:
        """Every layer name this model offers (blocks listed individually)."""

    def check(self, names: Sequence[str]) -> None:
        """Raise :class:`~..errors.LayerError` naming the unknown layer and the available ones."""

    def forward(self, images: "torch.Tensor", names: Sequence[str]) -> dict[str, "torch.Tensor"]:
        """One forward pass returning ``{name: tensor[B, d]}`` for each requested name.

        Token maps ``[B, T, d]`` are pooled to the class token when the model has one, else the
        token mean; feature maps ``[B, C, H, W]`` to the spatial mean.  Runs under ``torch.no_grad``
        is the caller's job.
        """


@dataclass
class LoadedModel:
    """A model in eval mode on the CPU with the transform and layer map that belong to it."""

    module: "torch.nn.Module"
    preprocess: Callable[["Image.Image"], "torch.Tensor"]
    layers: LayerAdapter
    description: str
    fingerprint: str
    provenance: dict[str, Any] = field(default_factory=dict)


class ModelSource(Protocol):
    """A way to load models, registered under ``name``."""

    name: str
    #: spec keys this source needs besides ``source`` (checked at collection time)
    required: tuple[str, ...]

    def load(self, spec: "ModelSpec") -> LoadedModel:
        """Build the model; raise ModelLoadError/CheckpointError with the way out on failure."""
