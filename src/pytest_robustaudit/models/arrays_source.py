"""``source: activations``: features extracted elsewhere, audited without a model.

A researcher with features from a cluster run, or published ones, names one ``[N, d]`` array per
layer (``.npy``, or ``.safetensors`` holding a tensor named after the layer or a single tensor)::

    model:
      source: activations
      name: dinov2-vitb14-reg (mean token features)   # a label for the report
      arrays:
        blocks.-1: features/last.npy
        blocks.6: features/middle.safetensors

The arrays are imported into the activation store (keyed by their content) and every metric reads
them there, exactly as it reads extracted rows.  There is no model: checks that need one (a head,
shifted sets) say so.  Registered like the other sources so that a spec naming it validates the
same way; ``load`` is never called for it by the runner.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import ModelLoadError

if TYPE_CHECKING:
    from ..spec.schema import ModelSpec

ARRAY_SUFFIXES = (".npy", ".safetensors")


class ActivationsSource:
    name = "activations"
    required = ("arrays",)

    def load(self, spec: "ModelSpec"):
        raise ModelLoadError(f"{spec.describe()} holds features, not a model: nothing that needs the model itself "
                             f"(a classification head, shifted or corrupted image sets, a provenance hook asking "
                             f"for the module) can run on it",
                             fix="audit the model itself (source: timm, open_clip or factory) for those checks")
