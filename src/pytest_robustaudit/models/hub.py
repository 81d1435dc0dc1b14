"""Hub downloads that fail fast and clearly on a machine without network.

Why: open_clip and timm fetch pretrained weights from the Hugging Face hub.  Offline,
``huggingface_hub`` retries every request with exponential back-off (measured here: about 45 s
for one open_clip tag before it gives up) and the error that finally surfaces is a wrapped
``RuntimeError`` about "local cache".  An audit run in CI needs a one-second failure that says
what to do instead.

How: before the download, :func:`hub_reachable` opens one TCP connection to the hub endpoint
(bounded by :data:`PROBE_TIMEOUT_S`, DNS included; the answer is remembered for
:data:`PROBE_TTL_S`).  When the hub cannot be reached, huggingface_hub's offline mode is switched on
for the duration of the call: files already in the cache still load, missing ones fail at once.
URL downloads (``urllib``/``torch.hub``) get a socket timeout for the duration of the call so a
black-holed network cannot hang them.  Any connection / offline / not-found error raised inside
is re-raised as :class:`~..errors.ModelLoadError` naming the model and the ways out.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator
from urllib.parse import urlparse

from ..errors import ModelLoadError

#: seconds one reachability probe of the hub may take (DNS lookup and TCP connect)
PROBE_TIMEOUT_S = 3.0
#: seconds a probe result is reused (one audit session loads several models)
PROBE_TTL_S = 60.0
#: socket timeout during a download when the hub is unreachable / reachable (only if none was set)
OFFLINE_SOCKET_TIMEOUT_S = 5.0
ONLINE_SOCKET_TIMEOUT_S = 60.0

_probe_cache: dict[tuple[str, int], tuple[float, bool]] = {}
_lock = threading.Lock()


def hub_endpoint() -> str:
    """The Hugging Face endpoint huggingface_hub will use (``HF_ENDPOINT`` or the default)."""
    try:
        from huggingface_hub import constants

        return str(constants.ENDPOINT)
    except Exception:  # pragma: no cover - huggingface_hub missing or reorganised
        return os.environ.get("HF_ENDPOINT", "https://huggingface.co")


def _offline_env() -> bool:
    try:
        from huggingface_hub import constants

        return bool(constants.HF_HUB_OFFLINE)
    except Exception:  # pragma: no cover
        return os.environ.get("HF_HUB_OFFLINE", "").upper() in {"1", "ON", "YES", "TRUE"}


def hub_reachable(endpoint: str | None = None, timeout: float = PROBE_TIMEOUT_S) -> bool:
    """True if a TCP connection to the hub endpoint opens within ``timeout`` seconds."""
    url = urlparse(endpoint or hub_endpoint())
    host = url.hostname or "huggingface.co"
    port = url.port or (80 if url.scheme == "http" else 443)
    now = time.monotonic()
    with _lock:
        cached = _probe_cache.get((host, port))
        if cached and now - cached[0] < PROBE_TTL_S:
            return cached[1]
    result: list[bool] = [False]

    def probe() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                result[0] = True
        except OSError:
            result[0] = False

    # a thread bounds the DNS lookup too (getaddrinfo itself has no timeout)
    worker = threading.Thread(target=probe, name="robustaudit-hub-probe", daemon=True)
    worker.start()
    worker.join(timeout + 0.5)
    ok = result[0] and not worker.is_alive()
    with _lock:
        _probe_cache[(host, port)] = (time.monotonic(), ok)
    return ok


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def is_download_failure(exc: BaseException) -> bool:
    """Does ``exc`` (or anything in its cause chain) come from a failed network fetch?"""
    for err in _chain(exc):
        module = type(err).__module__ or ""
        if isinstance(err, (OSError, TimeoutError, ConnectionError)):
            return True
        if module.startswith(("huggingface_hub", "requests", "urllib3", "httpx", "httpcore")):
            return True
        text = str(err)
        if "Failed to download" in text or "offline mode" in text.lower():
            return True
    return False


def _root_cause(exc: BaseException) -> str:
    last = list(_chain(exc))[-1]
    text = " ".join(str(last).split()) or type(last).__name__
    return f"{type(last).__name__}: {text[:300]}"


def default_cache_hint() -> str:
    try:
        from huggingface_hub import constants

        return str(constants.HF_HUB_CACHE)
    except Exception:  # pragma: no cover
        return "~/.cache/huggingface/hub"


def way_out(what: str, snippet: str, cache_dir: Path | str | None = None) -> str:
    """The ways out of a failed download, with the exact command to pre-fill the cache."""
    cache = f"the cache folder {cache_dir}" if cache_dir else f"the Hugging Face cache ({default_cache_hint()})"
    return (
        "Ways out:\n"
        f"  (a) point `model.checkpoint` in the spec at a local weights file for {what} "
        "(.safetensors, .pt, .pth, .bin);\n"
        "  (b) on a machine with network, pre-fill the cache by running\n"
        f"        {snippet}\n"
        f"      then copy {cache} to this machine and set HF_HUB_OFFLINE=1 "
        "(or set `model.cache_dir` in the spec to the copied folder)."
    )


@contextmanager
def hub_download(what: str, snippet: str, cache_dir: Path | str | None = None) -> Iterator[None]:
    """Run a pretrained download inside; turn network failures into a ModelLoadError fast.

    ``what`` names the model and tag (``open_clip:RN50/openai``); ``snippet`` is the Python one-liner
    that fetches the same weights on a machine with network.
    """
    try:
        from huggingface_hub import constants
    except Exception:  # pragma: no cover - open_clip and timm then use plain URLs
        constants = None
    reachable = constants is None or _offline_env() or hub_reachable()
    forced_offline = not reachable
    previous_offline = constants.HF_HUB_OFFLINE if constants is not None else None
    if forced_offline:
        # huggingface_hub reads this module attribute on every request: cached files still resolve,
        # missing ones raise at once instead of after minutes of retries
        constants.HF_HUB_OFFLINE = True
    previous_timeout = socket.getdefaulttimeout()
    if previous_timeout is None:
        socket.setdefaulttimeout(OFFLINE_SOCKET_TIMEOUT_S if not reachable else ONLINE_SOCKET_TIMEOUT_S)
    try:
        yield
    except ModelLoadError:
        raise
    except Exception as exc:
        if not is_download_failure(exc):
            raise
        if forced_offline:
            why = (f"the hub at {hub_endpoint()} cannot be reached from this machine (no connection "
                   f"within {PROBE_TIMEOUT_S:g} s) and the weights are not in the local cache")
        elif _offline_env():
            why = f"HF_HUB_OFFLINE is set and the weights are not in the local cache ({_root_cause(exc)})"
        else:
            why = f"the download failed ({_root_cause(exc)})"
        raise ModelLoadError(
            f"could not fetch the pretrained weights of {what}: {why}.\n"
            + way_out(what, snippet, cache_dir)
        ) from exc
    finally:
        if previous_timeout is None:
            socket.setdefaulttimeout(None)
        if forced_offline and constants is not None:
            constants.HF_HUB_OFFLINE = previous_offline
