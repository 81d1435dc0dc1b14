"""Steps every model source shares: deterministic construction, local checkpoints, the result.

Why: a model built without weights (random init, or a tower the checkpoint does not cover) must
give the same fingerprint every run, or content-keyed caches never hit; so construction runs
under a fixed seed in a forked RNG (the caller's random state is untouched).  And every source
ends the same way: eval mode, CPU, fingerprint of the final weights, provenance.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping

from .base import LoadedModel

if TYPE_CHECKING:
    import torch

    from ..spec.schema import ModelSpec

#: the seed random initialisation runs under (recorded in provenance)
INIT_SEED = 0


@contextmanager
def seeded(seed: int = INIT_SEED) -> Iterator[None]:
    """Make random initialisation deterministic without disturbing the caller's RNG state."""
    import random

    import torch

    state = random.getstate()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        random.seed(seed)
        try:
            yield
        finally:
            random.setstate(state)


def versions(*libraries: str) -> dict[str, str]:
    """Installed versions of torch and the given libraries (for provenance)."""
    from importlib import metadata

    found = {}
    for lib in ("torch", *libraries):
        try:
            found[lib] = metadata.version(lib)
        except metadata.PackageNotFoundError:
            found[lib] = "unknown"
    return found


def load_checkpoint_into(model: "torch.nn.Module", spec: "ModelSpec") -> None:
    """Read ``spec.checkpoint`` and fit it into ``model`` (by name or by order)."""
    from .checkpoints import fit_state_dict, read_state_dict

    ckpt = spec.checkpoint
    assert ckpt is not None
    state = read_state_dict(ckpt)
    fit_state_dict(model, state, ckpt.match_keys, f"checkpoint {ckpt.path} for {spec.describe()}")


def finish(
    spec: "ModelSpec",
    module: "torch.nn.Module",
    preprocess: Callable[..., Any],
    provenance: dict[str, Any],
    fingerprint_of: Mapping[str, Any] | None = None,
) -> LoadedModel:
    """Put ``module`` in eval mode on the CPU and wrap it with its transform, layers and identity."""
    from .checkpoints import fingerprint_state_dict
    from .layers import adapter_for

    module = module.to("cpu").eval()
    label = spec.describe()
    provenance = dict(provenance)
    provenance.setdefault("source", spec.source)
    provenance.setdefault("checkpoint", str(spec.checkpoint.path) if spec.checkpoint else None)
    if spec.checkpoint is not None:
        provenance.setdefault("match_keys", spec.checkpoint.match_keys)
    provenance.setdefault("transform", repr(preprocess))
    return LoadedModel(
        module=module,
        preprocess=preprocess,
        layers=adapter_for(module, label),
        description=label,
        fingerprint=fingerprint_state_dict(fingerprint_of if fingerprint_of is not None else module.state_dict()),
        provenance=provenance,
    )
