"""The models stage: a ModelSpec in, a LoadedModel (module, transform, layers, identity) out.

Importing this package is cheap: torch, timm and open_clip are imported only when a model is
loaded.  The built-in sources are registered through the same hook third-party sources use
(``builtin.py``); :func:`load_model` only looks the source up and calls it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import ModelLoadError
from .arrays_source import ActivationsSource
from .base import LayerAdapter, LoadedModel, ModelSource
from .factory_source import FactorySource
from .open_clip_source import OpenClipSource
from .timm_source import TimmSource

if TYPE_CHECKING:
    from ..registry import Registry
    from ..spec.schema import ModelSpec

#: instances registered by ``builtin.pytest_robustaudit_register_model_sources``
BUILTIN_SOURCES = (TimmSource(), OpenClipSource(), FactorySource(), ActivationsSource())


def load_model(spec: "ModelSpec", sources: "Registry") -> LoadedModel:
    """Look up ``spec.source`` in ``sources`` and load the model (eval mode, CPU)."""
    source = sources.get(spec.source)
    loaded = source.load(spec)
    if not isinstance(loaded, LoadedModel):
        raise ModelLoadError(
            f"{spec.describe()}: model source '{spec.source}' returned {type(loaded).__name__}, "
            "not a pytest_robustaudit LoadedModel"
        )
    loaded.module.eval()
    return loaded


__all__ = [
    "ActivationsSource",
    "BUILTIN_SOURCES",
    "FactorySource",
    "LayerAdapter",
    "LoadedModel",
    "ModelSource",
    "OpenClipSource",
    "TimmSource",
    "load_model",
]
