"""The ``timm`` model source: ``timm.create_model`` plus hub tags or a local checkpoint.

Why the checks before building: an unknown name or tag should be a one-line error with a
suggestion, found before any download is attempted.  With a local checkpoint the model is built
with ``pretrained=False`` under its tag (``name.tag``), so timm's pretrained config (mean, std,
input size, interpolation) still drives the eval transform without a download.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Iterator

from ..errors import ModelLoadError
from ..registry import suggest
from .base import LoadedModel
from .hub import hub_download
from .loading import INIT_SEED, finish, load_checkpoint_into, seeded, versions

if TYPE_CHECKING:
    from ..spec.schema import ModelSpec


def _resolve_name(spec: "ModelSpec") -> tuple[str, str, str | None]:
    """(architecture, name passed to create_model, tag) after validating both against timm."""
    import timm
    from timm.models import split_model_name_tag

    name = str(spec.name)
    arch, tag_in_name = split_model_name_tag(name)
    if not timm.is_model(arch):
        raise ModelLoadError(
            f"{spec.describe()}: unknown timm model '{arch}'.{suggest(arch, timm.list_models())} "
            "See timm.list_models() for the names this timm version knows."
        )
    tag = spec.pretrained if isinstance(spec.pretrained, str) else (tag_in_name or None)
    if isinstance(spec.pretrained, str) and tag_in_name and tag_in_name != spec.pretrained:
        raise ModelLoadError(
            f"{spec.describe()}: the name already carries the tag '{tag_in_name}' but pretrained says "
            f"'{spec.pretrained}'; give the tag in one place only"
        )
    full = f"{arch}.{tag}" if tag else arch
    if tag or spec.pretrained is True:
        known = timm.list_pretrained(f"{arch}.*")
        if tag and full not in known:
            tags = [k.split(".", 1)[1] for k in known]
            raise ModelLoadError(
                f"{spec.describe()}: timm has no pretrained tag '{tag}' for '{arch}'.{suggest(tag, tags)} "
                f"Known tags: {', '.join(tags) or '(none: this architecture has no pretrained weights)'}."
            )
        if not tag and not known:
            raise ModelLoadError(
                f"{spec.describe()}: timm has no pretrained weights for '{arch}'; use a local "
                "`model.checkpoint`, or leave `pretrained` unset for random initialisation"
            )
    return arch, full, tag


def _transform(model: Any, spec: "ModelSpec") -> Any:
    """timm's eval transform for the model's pretrained config, with the spec's overrides."""
    from timm.data import create_transform, resolve_data_config

    cfg = resolve_data_config({}, model=model)
    cfg.update(spec.preprocess.overrides())
    return create_transform(**cfg, is_training=False)


def _create_kwargs(spec: "ModelSpec") -> dict[str, Any]:
    """``timm.create_model`` keyword arguments: the spec's options, an input size in step with ``img_size``,
    the download cache."""
    kwargs: dict[str, Any] = dict(spec.options)
    img_size = kwargs.get("img_size")
    if img_size is not None and "pretrained_cfg_overlay" not in kwargs:
        # keep the eval transform's input size in step with a resized model
        size = (img_size, img_size) if isinstance(img_size, int) else tuple(img_size)
        kwargs["pretrained_cfg_overlay"] = {"input_size": (3, *size)}
    if spec.cache_dir is not None:
        kwargs["cache_dir"] = str(spec.cache_dir)
    return kwargs


@contextmanager
def _options_errors(spec: "ModelSpec", full: str, download: bool) -> Iterator[None]:
    """A ``timm.create_model`` that refuses the spec's options fails as a ModelLoadError naming the call."""
    try:
        yield
    except ModelLoadError:
        raise
    except (TypeError, ValueError, AssertionError, RuntimeError, KeyError) as exc:
        call = f"timm.create_model({full!r}, pretrained={download}" + "".join(
            f", {k}={v!r}" for k, v in spec.options.items()) + ")"
        raise ModelLoadError(f"{call} failed: {type(exc).__name__}: {exc}", where=spec.describe(),
                             fix="check `model.options` in the spec (they are passed to timm.create_model)") from exc


class TimmSource:
    """Load ``timm`` models: hub weights, a local checkpoint, or deterministic random init."""

    name = "timm"
    required = ("name",)

    def load(self, spec: "ModelSpec") -> LoadedModel:
        import timm

        arch, full, tag = _resolve_name(spec)
        kwargs = _create_kwargs(spec)
        download = bool(spec.pretrained) and spec.checkpoint is None
        with _options_errors(spec, full, download):
            with seeded():
                if download:
                    cache = f", cache_dir={str(spec.cache_dir)!r}" if spec.cache_dir else ""
                    snippet = f"python -c \"import timm; timm.create_model('{full}', pretrained=True{cache})\""
                    with hub_download(spec.describe(), snippet, spec.cache_dir):
                        model = timm.create_model(full, pretrained=True, **kwargs)
                else:
                    model = timm.create_model(full, pretrained=False, **kwargs)
        if spec.checkpoint is not None:
            load_checkpoint_into(model, spec)
            weights = "checkpoint"
        else:
            weights = "hub" if download else f"random init (seed {INIT_SEED})"
        model.eval()
        preprocess = _transform(model, spec)
        provenance = {
            "library": versions("timm"),
            "architecture": arch,
            "pretrained": tag if tag else bool(spec.pretrained),
            "weights": weights,
            "options": dict(spec.options),
        }
        return finish(spec, model, preprocess, provenance)

    def skeleton(self, spec: "ModelSpec") -> tuple[Any, tuple[int, int]]:
        """The architecture without weights, on the meta device (no download, no memory for weights), and
        the input size of its eval transform: what ``validate`` reads layer names and widths from
        (``models/architecture.py``).  An unknown name or tag raises the same ModelLoadError as :meth:`load`."""
        import timm
        import torch

        _, full, _ = _resolve_name(spec)
        kwargs = _create_kwargs(spec)
        kwargs.pop("cache_dir", None)
        with _options_errors(spec, full, False), torch.device("meta"):
            model = timm.create_model(full, pretrained=False, **kwargs)
        size = tuple((getattr(model, "pretrained_cfg", None) or {}).get("input_size", (3, 224, 224))[1:])
        return model.eval(), (int(size[0]), int(size[1]))
