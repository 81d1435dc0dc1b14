"""The ``factory`` model source: the user's own Python builds the model.

Why: fine-tunes, in-house architectures and wrapped models do not live in timm or open_clip.
``model.factory`` names a callable as ``package.module:callable`` or ``/abs/path/file.py:callable``;
it is called with ``model.options`` as keyword arguments and returns ``(module, preprocess)`` or
``{"model": module, "preprocess": preprocess}``.  Mistakes in the user's code are reported as a
ModelLoadError that points at the user's own line, not at our loader.  An optional local
checkpoint is loaded after the factory, as for timm.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
import traceback
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Callable

from ..errors import ModelLoadError
from ..registry import suggest
from .base import LoadedModel
from .loading import finish, load_checkpoint_into, seeded, versions

if TYPE_CHECKING:
    from ..spec.schema import ModelSpec

EXPECTED = "(torch.nn.Module, preprocess callable) or {'model': torch.nn.Module, 'preprocess': callable}"


def split_factory(factory: str) -> tuple[str, str]:
    """``"a.b:make"`` → ``("a.b", "make")``; ``"/p/f.py:make"`` → ``("/p/f.py", "make")``."""
    where, sep, attr = str(factory).rpartition(":")
    if not sep or not where or not attr or not attr.replace(".", "_").isidentifier():
        raise ModelLoadError(
            f"factory {factory!r} must look like 'package.module:callable' or '/path/to/file.py:callable'"
        )
    return where, attr


def _user_frame(tb: Any, user_file: str | None) -> str:
    """``file:line in function`` of the deepest frame of the user's code ("" if none is theirs).

    Frames in the factory's own file win; otherwise the deepest frame outside this package (a
    library the factory called); never our loader, which would point the user the wrong way.
    """
    frames = traceback.extract_tb(tb)
    ours = str(Path(__file__).resolve().parent.parent)

    def resolved(name: str) -> str:
        try:
            return str(Path(name).resolve())
        except OSError:
            return name

    chosen = None
    if user_file:
        target = resolved(user_file)
        mine = [f for f in frames if resolved(f.filename) == target]
        chosen = mine[-1] if mine else None
    if chosen is None:
        theirs = [f for f in frames if not resolved(f.filename).startswith(ours)]
        chosen = theirs[-1] if theirs else None
    return f"{chosen.filename}:{chosen.lineno} in {chosen.name}" if chosen else ""


def _where(tb: Any, user_file: str | None) -> str:
    frame = _user_frame(tb, user_file)
    return f" (at {frame})" if frame else ""


def _import_file(path: Path, factory: str) -> ModuleType:
    if not path.is_file():
        raise ModelLoadError(f"factory {factory!r}: file {path} not found (check `model.factory` in the spec)")
    digest = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:12]
    module_name = f"_robustaudit_factory_{path.stem}_{digest}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ModelLoadError(f"factory {factory!r}: cannot import {path} as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # dataclasses and pickling look modules up here
    try:
        spec.loader.exec_module(module)
    except (Exception, SystemExit) as exc:   # a module that calls sys.exit() on import must not end pytest
        sys.modules.pop(module_name, None)
        raise ModelLoadError(
            f"factory {factory!r}: importing {path} raised {type(exc).__name__}: {exc}"
            f"{_where(exc.__traceback__, str(path))}"
        ) from exc
    return module


def resolve_factory(factory: str) -> tuple[Callable[..., Any], str | None]:
    """The callable named by ``factory`` and the file it lives in (for error locations)."""
    where, attr = split_factory(factory)
    if where.endswith(".py") or "/" in where or "\\" in where:
        module = _import_file(Path(where), factory)
    else:
        try:
            module = importlib.import_module(where)
        except ImportError as exc:
            raise ModelLoadError(
                f"factory {factory!r}: cannot import module '{where}' ({type(exc).__name__}: {exc}); "
                "is it installed or on sys.path? A file can be named as /path/to/file.py:callable"
            ) from exc
        except Exception as exc:
            raise ModelLoadError(
                f"factory {factory!r}: importing '{where}' raised {type(exc).__name__}: {exc}"
                f"{_where(exc.__traceback__, None)}"
            ) from exc
    target: Any = module
    for part in attr.split("."):
        if not hasattr(target, part):
            names = [n for n in dir(target) if not n.startswith("_")]
            raise ModelLoadError(
                f"factory {factory!r}: '{where}' has no attribute '{part}'.{suggest(part, names)}"
            )
        target = getattr(target, part)
    if not callable(target):
        raise ModelLoadError(f"factory {factory!r}: '{attr}' is a {type(target).__name__}, not a callable")
    return target, getattr(module, "__file__", None)


def _describe(value: Any) -> str:
    text = repr(value)
    text = text if len(text) <= 120 else text[:117] + "..."
    return f"{type(value).__name__} {text}"


def unpack(result: Any, factory: str) -> tuple[Any, Callable[..., Any]]:
    """Check the factory's return value; return (module, preprocess)."""
    import torch

    if isinstance(result, dict):
        if "model" not in result or "preprocess" not in result:
            raise ModelLoadError(
                f"factory {factory!r} returned a dict with keys {sorted(map(str, result))}; expected {EXPECTED}"
            )
        module, preprocess = result["model"], result["preprocess"]
    elif isinstance(result, (tuple, list)) and len(result) == 2:
        module, preprocess = result
    else:
        raise ModelLoadError(f"factory {factory!r} returned {_describe(result)}; expected {EXPECTED}")
    if not isinstance(module, torch.nn.Module):
        raise ModelLoadError(
            f"factory {factory!r} returned a model that is {_describe(module)}, not a torch.nn.Module; "
            f"expected {EXPECTED}"
        )
    if not callable(preprocess):
        raise ModelLoadError(
            f"factory {factory!r} returned a preprocess that is {_describe(preprocess)}, not callable; "
            f"expected {EXPECTED}"
        )
    return module, preprocess


class FactorySource:
    """Load models built by a user-supplied callable (run under a fixed seed for determinism)."""

    name = "factory"
    required = ("factory",)

    def load(self, spec: "ModelSpec") -> LoadedModel:
        factory = str(spec.factory)
        function, user_file = resolve_factory(factory)
        try:
            with seeded():
                result = function(**spec.options)
        except SystemExit as exc:   # must not end pytest: the other specs still run
            raise ModelLoadError(f"factory {factory!r} (key model.factory) called sys.exit({exc.code!r}){_where(exc.__traceback__, user_file)}",
                                 fix="the factory must return (model, preprocess) or raise an exception") from None
        except Exception as exc:
            where = _where(exc.__traceback__, user_file)
            hint = ""
            if not where and isinstance(exc, TypeError):
                # the call itself failed: the options do not match the factory's signature
                hint = f"check `model.options` in the spec (passed as keyword arguments: {sorted(spec.options)})"
            raise ModelLoadError(f"factory {factory!r} raised {type(exc).__name__}: {exc}{where}", fix=hint) from exc
        module, preprocess = unpack(result, factory)
        if spec.checkpoint is not None:
            load_checkpoint_into(module, spec)
        provenance = {
            "library": versions(),
            "factory": factory,
            "factory_file": user_file,
            "architecture": type(module).__name__,
            "weights": "checkpoint" if spec.checkpoint is not None else "factory",
            "options": dict(spec.options),
        }
        return finish(spec, module, preprocess, provenance)
