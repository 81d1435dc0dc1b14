"""Which device an audit runs on: the built-in answer to ``pytest_robustaudit_choose_device``.

With pytest-xdist, ``-n N`` on a machine with several GPUs should use them all: worker ``gwK``
takes ``cuda:K mod count``.  In one process ``auto`` stays what it always was (``cuda`` when there
is one, else ``mps``, else ``cpu``).  An explicit device is never changed here; the extraction stage
checks that it exists.
"""

from __future__ import annotations


def worker_index(workerid: str | None) -> int | None:
    """``"gw3"`` → 3; None outside pytest-xdist (or for an id that is not ``gwN``)."""
    if not workerid or not workerid.startswith("gw") or not workerid[2:].isdigit():
        return None
    return int(workerid[2:])


def default_device(requested: str, worker: int | None) -> str:
    """``auto`` → ``cuda:K mod count`` on worker K, ``cuda`` in one process, else ``mps`` or ``cpu``."""
    if requested != "auto":
        return requested
    import torch

    if torch.cuda.is_available():
        count = torch.cuda.device_count()
        return f"cuda:{worker % count}" if worker is not None and count > 0 else "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"
