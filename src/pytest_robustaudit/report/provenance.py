"""Provenance as a person reads it: fields in words, not Python reprs, and no machine's paths.

``{'torch': '2.4.1', 'timm': '1.0.9'}`` reads ``torch 2.4.1, timm 1.0.9``; empty values are left
out; ``pretrained: False`` is left out for weights that came from a checkpoint (it would read as
"not pretrained"); a path inside a Python environment shows from its package on, and one under
the invocation folder or the home folder is shown relative to it.  Free of pytest.
"""

from __future__ import annotations

import os
import re
from typing import Any

_SITE = re.compile(r"^.*[\\/](?:site|dist)-packages[\\/]")


def readable_path(text: str, base: str = "") -> str:
    """A path without this machine's environment: ``<package>/file`` for installed files, relative
    to ``base`` (the invocation folder) when under it, ``~/…`` under the home folder."""
    if _SITE.match(text):
        return _SITE.sub("", text)
    if base:
        base_dir = base.rstrip("/\\") + os.sep
        if text.startswith(base_dir):
            return text[len(base_dir):]
    home = os.path.expanduser("~")
    if home not in ("", "/", "~") and text.startswith(home + os.sep):
        return "~" + text[len(home):]
    return text


def readable_value(value: Any, base: str = "") -> str:
    """One field's value in words ("" when there is nothing to say)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict):
        parts = [f"{k} {readable_value(v, base)}".strip() if not isinstance(v, bool) else f"{k}: {readable_value(v)}"
                 for k, v in value.items() if readable_value(v, base) != ""]
        return ", ".join(parts)
    if isinstance(value, (list, tuple, set)):
        return ", ".join(t for t in (readable_value(v, base) for v in value) if t)
    if isinstance(value, float):
        return f"{value:.6g}"
    text = " ".join(str(value).split()) if "\n" in str(value) else str(value)
    if os.sep in text or "/" in text:
        text = readable_path(text, base)
    return text


def readable(provenance: dict[str, Any], base: str = "") -> list[tuple[str, str]]:
    """``(field, text)`` pairs of ``provenance`` as the report shows them (see the module docstring)."""
    from_checkpoint = str(provenance.get("weights", "")) == "checkpoint" or bool(provenance.get("checkpoint"))
    out = []
    for key, value in provenance.items():
        if key == "pretrained" and from_checkpoint and value in (False, None, ""):
            continue
        text = readable_value(value, base)
        if text:
            out.append((str(key).replace("_", " "), text))
    return out
