"""Run a loaded model over probe batches and hand each layer's activations to a sink.

:func:`run_model` feeds a callback: the activation store's writers (``activations.py``), the one way
rows leave the model.

This stage owns the device and the numerics: it resolves ``auto`` to CUDA when there is one,
runs under ``torch.inference_mode``, applies autocast only for ``fp16``/``bf16`` (and turns TF32
off for ``fp32``, so an "fp32" number is an fp32 number on every GPU), and survives CUDA
out-of-memory by splitting the batch in halves and remembering the size that fits; on CUDA, batches
are copied from pinned host memory so the copy overlaps the previous batch's compute.  Because every
statistic is per image or a float64 sum, the numbers do not depend on the batch size.
"""

from __future__ import annotations

import contextlib
import re
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Iterable, Sequence

if TYPE_CHECKING:
    import torch

    from ..metrics.outlier_stats import LayerStats
    from ..models.base import LoadedModel

#: the numerics a spec may ask for (``precision``); autocast for the half precisions
PRECISIONS = ("fp32", "fp16", "bf16")
#: the devices a spec or ``--audit-device`` may name
DEVICE_PATTERN = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")
DEVICE_HELP = "use auto, cpu, cuda, cuda:N or mps"
#: half precisions already warned about on a CPU in this process (the warning is said once)
_WARNED_HALF_ON_CPU: set[str] = set()


@dataclass
class Extraction:
    """What one pass produced: a summary per layer and how it was run."""

    layers: dict[str, LayerStats]
    device: str
    precision: str
    batch_size: int                     # the largest batch that ran (smaller after an OOM)
    notes: list[str] = field(default_factory=list)


def resolve_device(requested: str) -> str:
    """``auto`` → ``cuda`` when available, else ``mps`` when available, else ``cpu``.

    A device this machine does not have (``mps`` on Linux, ``cuda:7`` on a one-GPU box, a name
    that is no device at all) is an :class:`AuditError` naming the key, before any model moves,
    never a torch traceback from deep inside the forward pass.  ``cpu``, and ``auto`` on a machine that
    certainly has no accelerator (:func:`no_accelerator`), resolve without importing torch: a warm run
    that reads every row from the store then never imports it.
    """
    if requested == "cpu" or (requested == "auto" and no_accelerator()):
        return "cpu"
    import torch

    if requested != "auto":
        from ..errors import AuditError

        key = "the spec's 'device:' key, or --audit-device"
        if not isinstance(requested, str) or not DEVICE_PATTERN.match(requested):
            raise AuditError(f"device {requested!r} ({key}) is not a device", fix=DEVICE_HELP)
        if requested.startswith("cuda"):
            count = torch.cuda.device_count() if torch.cuda.is_available() else 0
            if count == 0:
                raise AuditError(f"device '{requested}' ({key}) was requested but CUDA is not available on this "
                                 f"machine", fix="use device: auto (or --audit-device cpu)")
            index = int(requested.split(":")[1]) if ":" in requested else 0
            if index >= count:
                raise AuditError(f"device '{requested}' ({key}) does not exist: this machine has {count} CUDA "
                                 f"device(s), cuda:0 to cuda:{count - 1}", fix="use cuda, cuda:0 ... or device: auto")
        if requested == "mps":
            mps = getattr(torch.backends, "mps", None)
            if mps is None or not mps.is_available():
                raise AuditError(f"device 'mps' ({key}) was requested but Apple's Metal (MPS) is not available on "
                                 f"this machine", fix="use device: auto (or --audit-device cpu)")
        return requested
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


#: device nodes without which no CUDA (NVIDIA), ROCm (AMD) or WSL GPU can be used on Linux
_ACCELERATOR_NODES = ("/dev/nvidiactl", "/dev/nvidia0", "/dev/kfd", "/dev/dxg")


def no_accelerator() -> bool:
    """True when this machine certainly has no device torch could use besides the CPU, known without
    importing torch: Linux without any NVIDIA, ROCm or WSL GPU device node.  Anywhere else (macOS with
    MPS, Windows, torch already imported) False, and torch is asked."""
    import os
    import sys

    if "torch" in sys.modules or not sys.platform.startswith("linux"):
        return False
    return not any(os.path.exists(node) for node in _ACCELERATOR_NODES)


@contextlib.contextmanager
def numerics(device: str, precision: str):
    """Autocast for fp16/bf16; exact fp32 (TF32 off) otherwise.  Restores global flags after."""
    import torch

    device_type = device.split(":")[0]
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    try:
        if precision == "fp32":
            torch.backends.cuda.matmul.allow_tf32 = False
            torch.backends.cudnn.allow_tf32 = False
            with torch.inference_mode():
                yield
        else:
            dtype = torch.float16 if precision == "fp16" else torch.bfloat16
            with torch.inference_mode(), torch.autocast(device_type=device_type, dtype=dtype):
                yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def warn_half_precision_on_cpu(device: str, precision: str) -> None:
    """Warn once per process when fp16/bf16 is asked for on a CPU: autocast there is emulated and
    about 12x slower than fp32 (83 s vs 7 s for 200 images on a 2-core CPU), for no gain."""
    from ..errors import RobustAuditWarning

    if device.split(":")[0] != "cpu" or precision not in ("fp16", "bf16") or precision in _WARNED_HALF_ON_CPU:
        return
    _WARNED_HALF_ON_CPU.add(precision)
    warnings.warn(RobustAuditWarning(
        f"precision: {precision} on a CPU runs about 12x slower than fp32 (emulated half precision) and changes "
        f"the activations; use precision: fp32 on CPUs and keep {precision} for GPUs"), stacklevel=3)


def is_out_of_memory(error: BaseException) -> bool:
    import torch

    return isinstance(error, torch.cuda.OutOfMemoryError) or (
        isinstance(error, RuntimeError) and "out of memory" in str(error).lower())


class _Runner:
    """Feeds batches through the model, halving the chunk size whenever the device runs out of memory."""

    def __init__(self, model: "LoadedModel", layers: Sequence[str], device: str,
                 consume: Callable[[dict[str, "torch.Tensor"]], None], on_oom: Callable[[int], None]):
        self.model = model
        self.layers = list(layers)
        self.device = device
        self.consume = consume
        # page-locked host memory lets the copy to the GPU overlap with the previous batch's compute
        self.pin = device.startswith("cuda")
        self.chunk: int | None = None
        self.largest = 0
        self.on_oom = on_oom

    def run(self, images: "torch.Tensor") -> None:
        import torch

        size = images.shape[0]
        chunk = min(size, self.chunk or size)
        start = 0
        while start < size:
            part = images[start:start + chunk]
            try:
                batch = (part.pin_memory() if self.pin else part).to(self.device, non_blocking=True)
                if batch.ndim == 4:
                    batch = batch.contiguous(memory_format=torch.channels_last)
                outputs = self.model.layers.forward(batch, self.layers)
            except (Exception, SystemExit) as error:  # noqa: BLE001 - OOM is retried, the rest explained
                if not is_out_of_memory(error) or chunk == 1:
                    raise _forward_failed(self.model, part, error) from error
                self._release()
                chunk = max(1, chunk // 2)
                self.chunk = chunk
                self.on_oom(chunk)
                continue
            self._consume({name: outputs[name] for name in self.layers})
            self.largest = max(self.largest, part.shape[0])
            start += part.shape[0]

    def _consume(self, outputs: dict[str, "torch.Tensor"]) -> None:
        """Hand one batch's layers to the consumer; a shape it cannot take is the model's fault, said
        with the layer's name (a factory whose output width changes from batch to batch, say)."""
        from ..errors import AuditError

        try:
            self.consume(outputs)
        except (ValueError, RuntimeError, TypeError) as error:
            said = str(error) if "layer '" in str(error) else f"layer output: {error}"
            raise AuditError(f"{self.model.description}: {said}",
                             fix="the model must give every image the same [batch, features] output, whatever the "
                                 "batch; check the model's forward (or the factory) for batch-dependent shapes") from None

    def _release(self) -> None:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def _forward_failed(model: "LoadedModel", images: "torch.Tensor", error: BaseException) -> Exception:
    """An AuditError saying which model failed on what input, with the innermost frame that raised."""
    import traceback

    from ..errors import AuditError

    if isinstance(error, AuditError):
        return error
    frames = traceback.extract_tb(error.__traceback__)
    where = f" (raised at {frames[-1].filename}:{frames[-1].lineno})" if frames else ""
    hint = ("out of memory even with one image: use a smaller model or another device"
            if is_out_of_memory(error) else
            "check that the model's eval transform (model.preprocess) gives the input size it expects")
    return AuditError(f"the forward pass of {model.description} failed on a batch of shape "
                      f"{list(images.shape)}: {type(error).__name__}: {error}{where}\n  {hint}")


def run_model(model: "LoadedModel", batches: Iterable["torch.Tensor"], layers: Sequence[str], device: str,
              precision: str, consume: Callable[[dict[str, "torch.Tensor"]], None]) -> Extraction:
    """Stream ``batches`` ([B,3,H,W] tensors on the CPU) through ``model``, handing each batch's
    ``{layer: [b, d] tensor}`` to ``consume`` (the activation store's writers, or accumulators)."""
    import torch

    warn_half_precision_on_cpu(device, precision)
    notes: list[str] = []
    # channels_last runs convolutions ~1.6x faster on CPUs and suits cuDNN; a no-op for transformers
    module = model.module.to(device=device, memory_format=torch.channels_last).eval()
    runner = _Runner(model, layers, device, consume,
                     on_oom=lambda size: notes.append(f"out of memory on {device}: batch split to {size}"))
    try:
        with numerics(device, precision):
            for images in batches:
                runner.run(images)
    finally:
        module.to("cpu")
    return Extraction({}, device, precision, runner.largest, notes)
