"""The spec form of synthetic shifts: ``{corruption: ..., severity: ...}`` to (name, severity) pairs.

Forms (one entry of the spec's ``shifts`` list, already parsed from YAML):

* ``{corruption: gaussian_noise, severity: 3}``: one pair;
* ``severity: [1, 3, 5]`` or ``severity: all`` (also the default when ``severity`` is left out): those
  levels, 1..5;
* ``corruption: [gaussian_noise, defocus_blur]``: several corruptions, each at every listed level;
* ``corruption: all``: ImageNet-C's 15 (the mCE set); ``corruption: extra``: its 4 held-out ones;
* ``corruption: greyscale``: one level only (give no severity, or 1).

Errors are :class:`CorruptionError` located at ``<where>.corruption`` or ``<where>.severity``, the
unknown name answered with a did-you-mean; the spec loader turns them into located Problems.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from ...registry import suggest
from .table import CORRUPTIONS, EXTRA_CORRUPTIONS, REGISTRY, SEVERITIES, CorruptionError

#: the group names ``corruption:`` accepts besides single names
GROUPS: dict[str, tuple[str, ...]] = {"all": CORRUPTIONS, "extra": EXTRA_CORRUPTIONS}
KEYS = ("corruption", "severity")


def _names(value: Any, where: str) -> list[str]:
    items = value if isinstance(value, list) else [value]
    if not items:
        raise CorruptionError("an empty list of corruptions", where=f"{where}.corruption",
                              fix="name at least one corruption, or write `all`")
    names: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise CorruptionError(f"a corruption is named by a string, got {item!r}", where=f"{where}.corruption",
                                  fix="e.g. `corruption: gaussian_noise`")
        if item in GROUPS:
            names.extend(GROUPS[item])
        elif item in REGISTRY:
            names.append(item)
        else:
            known = list(REGISTRY) + list(GROUPS)
            raise CorruptionError(f"unknown corruption {item!r}.{suggest(item, known)}",
                                  where=f"{where}.corruption",
                                  fix=f"use `all`, `extra` or one of: {', '.join(REGISTRY)}")
    return list(dict.fromkeys(names))  # in order, once each


def _severities(value: Any, where: str) -> list[int] | None:
    """The listed levels, or None for `all` / left out (every level of each corruption)."""
    if value is None or value == "all":
        return None
    items = value if isinstance(value, list) else [value]
    if not items:
        raise CorruptionError("an empty list of severities", where=f"{where}.severity",
                              fix="give levels from 1 to 5, e.g. `severity: [1, 3, 5]`, or `all`")
    levels: list[int] = []
    for item in items:
        if isinstance(item, bool) or not isinstance(item, int) or item not in SEVERITIES:
            raise CorruptionError(f"severity {item!r} is not one of 1, 2, 3, 4, 5", where=f"{where}.severity",
                                  fix="give an integer from 1 to 5, a list of them, or `all`")
        levels.append(item)
    return sorted(set(levels))


def parse_corruptions(entry: Mapping[str, Any], where: str = "shifts", extra_keys: Iterable[str] = ()) -> list[tuple[str, int]]:
    """The (corruption, severity) pairs an entry asks for, in registry order then severity order.

    ``extra_keys`` are further keys the caller handles itself (e.g. ``name`` or ``seed``); any other
    key is an error naming the ones allowed.
    """
    if not isinstance(entry, Mapping):
        raise CorruptionError(f"a corruption entry is a mapping, got {entry!r}", where=where,
                              fix="e.g. `- {corruption: gaussian_noise, severity: 3}`")
    allowed = list(KEYS) + list(extra_keys)
    for key in entry:
        if key not in allowed:
            raise CorruptionError(f"unknown key {key!r}.{suggest(str(key), allowed)}", where=f"{where}.{key}",
                                  fix=f"allowed keys: {', '.join(allowed)}")
    if "corruption" not in entry:
        raise CorruptionError("missing key 'corruption'", where=where,
                              fix="e.g. `corruption: gaussian_noise` (or `all`, `extra`)")
    names = _names(entry["corruption"], where)
    levels = _severities(entry.get("severity"), where)
    pairs: list[tuple[str, int]] = []
    for name in names:
        own = REGISTRY[name].severities
        if levels is None:
            pairs.extend((name, s) for s in own)
            continue
        missing = [s for s in levels if s not in own]
        if missing:
            raise CorruptionError(
                f"corruption {name!r} has only severity {', '.join(map(str, own))}; asked for {missing}",
                where=f"{where}.severity", fix=f"drop `severity` for {name}, or list it in an entry of its own")
        pairs.extend((name, s) for s in levels)
    return pairs
