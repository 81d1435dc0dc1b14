"""Safe checkpoint reading, state-dict fitting and content fingerprints.

Why a module of its own: a checkpoint is user input, and user input fails in many ways (an empty
or half-copied file, a JPEG saved under ``.pt``, a pickle that would run code, weights for another
architecture).  torch reports each of these as a low-level traceback; here every one becomes a
:class:`~..errors.CheckpointError` that names the file and says what to do.

Reading is safe by default: ``.safetensors`` through safetensors, everything else through
``torch.load(weights_only=True)``.  A full pickle load (which can execute arbitrary code) happens
only when the spec says ``trusted: true`` for that checkpoint.  TorchScript archives (OpenAI's CLIP
files) go through ``torch.jit.load``, which runs no Python pickle code.

The fingerprint is content-addressed (keys, dtypes, shapes and bytes), so caches keyed by it do
not care about file names or paths, and a renamed file is recognised as the same weights.
"""

from __future__ import annotations

import hashlib
import struct
import warnings
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from ..errors import CheckpointError, file_kind

if TYPE_CHECKING:
    import torch

    from ..spec.schema import CheckpointSpec

#: container keys under which training scripts commonly nest the weights, in lookup order
#: how a checkpoint's tensors are matched to the model's (``checkpoint.match_keys``)
MATCH_KEYS = ("by_name", "by_order")
CONTAINER_KEYS = ("state_dict", "model_state_dict", "model")
#: suffixes torch.load is expected to read (others are still sniffed by content)
TORCH_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt")

_UNSAFE_FIX = (
    "Ways out: convert the file to .safetensors on a machine where you trust it "
    "(safetensors.torch.save_file(state_dict, 'weights.safetensors')), or set `trusted: true` under "
    "`model.checkpoint` in the spec, but only if you trust the file: a full pickle load can execute "
    "arbitrary code."
)


def _fail(path: Path, what: str, fix: str = "") -> CheckpointError:
    return CheckpointError(what, where=f"checkpoint {path}", fix=fix)


def _sniff(path: Path) -> str:
    """Guess the container format from the first bytes: zip, pickle, safetensors or something else."""
    with open(path, "rb") as handle:
        head = handle.read(512)
    size = path.stat().st_size
    if not head:
        return "empty"
    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        return "zip"
    if len(head) >= 9:
        (header_len,) = struct.unpack("<Q", head[:8])
        if 0 < header_len < 2**28 and head[8:9] == b"{":
            return "safetensors" if header_len <= size - 8 else "truncated safetensors"
    if head[:1] == b"\x80":
        return "pickle"
    if head[:3] == b"\xff\xd8\xff":
        return "a JPEG image"
    if head[:8] == b"\x89PNG\r\n\x1a\n":
        return "a PNG image"
    if head[:4] == b"%PDF":
        return "a PDF document"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "a GIF image"
    if head[:6] == b"\x93NUMPY":
        return "a NumPy .npy array"
    try:
        head.decode("utf-8")
        return "a text file"
    except UnicodeDecodeError:
        return "unknown"


def _zip_kind(path: Path) -> str:
    """``torchscript``, ``torch`` (torch.save zip) or ``other`` for a zip file; raise if unreadable."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise _fail(
            path,
            f"the file is truncated or corrupt (it starts like a zip archive but cannot be read: {exc})",
            "copy or download the file again and compare its size or checksum with the original",
        ) from None
    parts = [name.split("/", 1)[-1] for name in names]
    if any(p.startswith("code/") or p == "constants.pkl" for p in parts):
        return "torchscript"
    if any(p == "data.pkl" for p in parts):
        return "torch"
    return "other"


def _load_safetensors(path: Path) -> dict[str, Any]:
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except Exception as exc:  # SafetensorError has no stable import path across versions
        raise _fail(
            path,
            f"the .safetensors file is truncated or corrupt ({type(exc).__name__}: {exc})",
            "copy or download the file again and compare its size or checksum with the original",
        ) from None


def _load_torchscript(path: Path) -> dict[str, Any]:
    import torch

    try:
        with warnings.catch_warnings():  # torch >= 2.9 deprecates TorchScript; OpenAI's files still use it
            warnings.simplefilter("ignore", FutureWarning)
            scripted = torch.jit.load(str(path), map_location="cpu")
    except Exception as exc:
        raise _fail(
            path,
            f"the TorchScript archive cannot be read ({type(exc).__name__}: {exc})",
            "copy or download the file again; if it is corrupt, export the state dict to .safetensors",
        ) from None
    return dict(scripted.state_dict())


def _load_pickle(path: Path, trusted: bool) -> Any:
    import pickle

    import torch

    try:
        return torch.load(str(path), map_location="cpu", weights_only=not trusted)
    except pickle.UnpicklingError as exc:
        text = str(exc)
        if not trusted and ("Weights only load failed" in text or "weights_only" in text):
            first = next((ln.strip() for ln in text.splitlines() if "Unsupported" in ln), "")
            detail = f" ({first})" if first else ""
            raise _fail(
                path,
                "refused to load: the file is a pickle that contains Python objects other than "
                f"tensors{detail}; loading it may execute code",
                _UNSAFE_FIX,
            ) from None
        raise _fail(
            path,
            f"the file is truncated or corrupt ({type(exc).__name__}: {exc})",
            "copy or download the file again and compare its size or checksum with the original",
        ) from None
    except (EOFError, RuntimeError, ValueError, OSError, zipfile.BadZipFile) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise _fail(
            path,
            f"the file is truncated or corrupt ({type(exc).__name__}: {first_line})",
            "copy or download the file again and compare its size or checksum with the original",
        ) from None
    except Exception as exc:  # a trusted pickle can raise anything while it rebuilds its objects
        raise _fail(path, f"loading failed ({type(exc).__name__}: {exc})") from None


def _unwrap(obj: Any, path: Path) -> dict[str, Any]:
    """Dig the state dict out of common training-checkpoint containers and DDP prefixes."""
    import torch

    seen = 0
    while True:
        if isinstance(obj, torch.nn.Module):
            obj = obj.state_dict()
        if isinstance(obj, Mapping) and seen < 4:
            inner = next((obj[k] for k in CONTAINER_KEYS if k in obj and isinstance(obj[k], (Mapping, torch.nn.Module))), None)
            if inner is not None:
                obj, seen = inner, seen + 1
                continue
        break
    if not isinstance(obj, Mapping):
        raise _fail(
            path,
            f"the file holds a {type(obj).__name__}, not a mapping of parameter names to tensors",
            "save the model's weights with torch.save(model.state_dict(), path) or "
            "safetensors.torch.save_file(model.state_dict(), path)",
        )
    if not obj:
        raise _fail(path, "the file holds an empty mapping: there are no weights in it")
    bad = [(k, v) for k, v in obj.items() if not isinstance(v, torch.Tensor)]
    if bad:
        shown = ", ".join(f"{k!r} ({type(v).__name__})" for k, v in bad[:5])
        keys = ", ".join(repr(k) for k in list(obj)[:8])
        raise _fail(
            path,
            f"the file holds a mapping that is not a state dict: {len(bad)} of its {len(obj)} entries "
            f"are not tensors: {shown}. Top-level keys: {keys}",
            "save only the weights (model.state_dict()), or nest them under 'state_dict' or 'model'",
        )
    state = {str(k): v for k, v in obj.items()}
    if all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return state


def read_state_dict(ckpt: "CheckpointSpec") -> dict[str, "torch.Tensor"]:
    """Read ``ckpt.path`` into a flat ``{name: tensor}`` dict on the CPU, or raise CheckpointError."""
    path = Path(ckpt.path)
    if not path.exists():
        raise _fail(path, "file not found", "check `model.checkpoint` in the spec (relative paths are "
                    "resolved against the spec file's folder)")
    if not path.is_file():   # a folder, a FIFO (opening it would block), a socket, a device: say which
        raise _fail(path, f"is {file_kind(path)}, not a weights file", "point `model.checkpoint` at a weights file")
    kind = _sniff(path)
    if kind == "empty":
        raise _fail(path, "the file is empty (0 bytes)", "copy or download the weights again")
    if kind == "truncated safetensors":
        raise _fail(
            path,
            "the .safetensors file is truncated or corrupt (it is shorter than its own header says)",
            "copy or download the file again and compare its size or checksum with the original",
        )
    if kind == "safetensors":
        if ckpt.match_keys == "by_order":
            raise _fail(
                path,
                "match_keys by_order needs the tensors in their original order, and .safetensors files do "
                "not keep it (they store tensors sorted by dtype and name)",
                "use match_keys: by_name (rename the keys to the model's), or the original .pt/.pth file",
            )
        obj: Any = _load_safetensors(path)
    elif path.suffix == ".safetensors" and kind != "zip":
        raise _fail(
            path,
            f"is not a valid .safetensors file (its header is unreadable; it looks like {kind})"
            if kind not in ("pickle", "unknown") else
            "is not a valid .safetensors file (its header is unreadable: truncated or corrupt)",
            "copy or download the file again",
        )
    elif kind == "zip":
        zkind = _zip_kind(path)
        if zkind == "torchscript":
            obj = _load_torchscript(path)
        elif zkind == "torch":
            obj = _load_pickle(path, ckpt.trusted)
        else:
            raise _fail(path, "is a zip archive but not a PyTorch checkpoint (no data.pkl inside)",
                        "point `model.checkpoint` at a .safetensors/.pt/.pth/.bin/.ckpt weights file")
    elif kind == "pickle":
        obj = _load_pickle(path, ckpt.trusted)
    else:
        raise _fail(
            path,
            f"is not a checkpoint at all: it looks like {kind}" if kind != "unknown"
            else "is not a checkpoint: its content is neither safetensors, a torch.save file nor TorchScript",
            "point `model.checkpoint` at a .safetensors/.pt/.pth/.bin/.ckpt weights file",
        )
    return _unwrap(obj, path)


def _shape(t: Any) -> str:
    return "[" + ", ".join(str(s) for s in tuple(t.shape)) + "]"


def _listing(keys: list[str], n: int = 5) -> str:
    more = f", ... (+{len(keys) - n} more)" if len(keys) > n else ""
    return ", ".join(keys[:n]) + more


def _is_counter(key: str) -> bool:
    # BatchNorm's step counter: not used in eval mode, and missing from many older checkpoints
    return key.endswith("num_batches_tracked")


def fit_state_dict(model: "torch.nn.Module", state_dict: Mapping[str, "torch.Tensor"], match_keys: str,
                   source_label: str) -> None:
    """Load ``state_dict`` into ``model`` exactly, or raise CheckpointError saying what does not fit.

    ``by_name``: keys must match (BatchNorm ``num_batches_tracked`` counters may be missing: they
    do not affect eval outputs) and every shape must agree.  ``by_order``: the i-th tensor of the
    file goes to the i-th entry of the model's state dict; counts and shapes must agree (retried
    without ``num_batches_tracked`` on both sides when only those make the counts differ).
    """
    own = model.state_dict()
    if match_keys == "by_name":
        missing = [k for k in own if k not in state_dict and not _is_counter(k)]
        unexpected = [k for k in state_dict if k not in own]
        mismatched = [k for k in own if k in state_dict and tuple(state_dict[k].shape) != tuple(own[k].shape)]
        if missing or unexpected or mismatched:
            parts = []
            if missing:
                parts.append(f"missing {len(missing)} key{'s' if len(missing) != 1 else ''} the model needs: "
                             f"{_listing(missing)}")
            if unexpected:
                parts.append(f"unexpected {len(unexpected)} key{'s' if len(unexpected) != 1 else ''}: "
                             f"{_listing(unexpected)}")
            if mismatched:
                shown = [f"{k} checkpoint {_shape(state_dict[k])} vs model {_shape(own[k])}" for k in mismatched]
                parts.append(f"shape mismatch in {len(mismatched)} tensor{'s' if len(mismatched) != 1 else ''}: "
                             f"{_listing(shown)}")
            raise CheckpointError(
                f"the checkpoint does not fit the model ({len(state_dict)} tensors in the file, {len(own)} in "
                f"the model):\n    " + ";\n    ".join(parts), where=source_label,
                fix="check the architecture name (and options such as num_classes) in the spec: "
                    "these weights may be for another model. If the key names come from another "
                    "implementation of the same architecture, set `match_keys: by_order` under "
                    "`model.checkpoint`.")
        model.load_state_dict(dict(state_dict), strict=False)
        return
    if match_keys == "by_order":
        ours = list(own.items())
        theirs = list(state_dict.items())
        if len(ours) != len(theirs):
            ours_nc = [kv for kv in ours if not _is_counter(kv[0])]
            theirs_nc = [kv for kv in theirs if not _is_counter(kv[0])]
            if len(ours_nc) == len(theirs_nc):
                ours, theirs = ours_nc, theirs_nc
        for i, ((mk, mv), (ck, cv)) in enumerate(zip(ours, theirs)):
            if tuple(mv.shape) != tuple(cv.shape):
                raise CheckpointError(
                    f"match_keys by_order: tensor #{i} does not fit: checkpoint '{ck}' {_shape(cv)} vs model "
                    f"'{mk}' {_shape(mv)} ({len(theirs)} tensors in the file, {len(ours)} in the model)",
                    where=source_label, fix="by_order needs the same architecture with its tensors in the same "
                                            "order; check the architecture name and options in the spec.")
        if len(ours) != len(theirs):
            raise CheckpointError(
                f"match_keys by_order: the file has {len(theirs)} tensors but the model has {len(ours)} (all "
                f"shapes agree up to #{min(len(ours), len(theirs)) - 1})", where=source_label,
                fix="check the architecture name and options (e.g. num_classes) in the spec.")
        renamed = {mk: cv for (mk, _), (_, cv) in zip(ours, theirs)}
        model.load_state_dict(renamed, strict=False)
        return
    raise CheckpointError(f"{source_label}: match_keys must be 'by_name' or 'by_order', not {match_keys!r}")


def fingerprint_state_dict(state_dict: Mapping[str, Any]) -> str:
    """``sha256:<hex>`` over sorted keys, dtype, shape and raw bytes: the same weights, the same id."""
    import torch

    digest = hashlib.sha256()
    for key in sorted(state_dict):
        value = state_dict[key]
        digest.update(key.encode("utf-8") + b"\0")
        if isinstance(value, torch.Tensor):
            t = value.detach().to("cpu").contiguous()
            digest.update(f"{t.dtype}|{tuple(t.shape)}\0".encode())
            if t.numel():
                digest.update(memoryview(t.reshape(-1).view(torch.uint8).numpy()))
        else:
            digest.update(repr(value).encode("utf-8"))
        digest.update(b"\1")
    return "sha256:" + digest.hexdigest()
