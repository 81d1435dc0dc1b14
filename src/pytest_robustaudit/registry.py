"""A name → object registry with helpful lookup errors.

Metrics and model sources (built-in and third-party) live in registries filled through the
``pytest_robustaudit_register_*`` hooks.  Lookups of unknown names suggest close matches
("Unknown metric 'kurtossis'. Did you mean: kurtosis_mean?"); registering a name twice is an error
naming both owners, so two plugins cannot silently shadow each other.
"""

from __future__ import annotations

import difflib
from typing import Any, Callable, Generic, Iterator, TypeVar

from .errors import RegistryError

T = TypeVar("T")


def suggest(name: str, known: list[str] | tuple[str, ...] | set[str], n: int = 1) -> str:
    """Return ``" Did you mean: a, b?"`` for close matches of ``name`` among ``known`` (or "")."""
    matches = difflib.get_close_matches(str(name), sorted(known), n=n, cutoff=0.6)
    if not matches:
        prefixed = [k for k in sorted(known) if str(name) and (k.startswith(str(name)) or str(name) in k)]
        matches = prefixed[:n]
    return f" Did you mean: {', '.join(matches)}?" if matches else ""


class Registry(Generic[T]):
    """Objects of one kind (e.g. ``"metric"``) by unique name, in registration order.

    The one registry type for every kind of registered thing (metrics, model sources, and the
    kinds the next analyses add): ``name_of`` reads an object's name, ``check`` says what is wrong
    with an object that is not of the kind (or returns "").
    """

    def __init__(self, kind: str, name_of: Callable[[Any], Any] | None = None,
                 check: Callable[[Any], str] | None = None):
        self.kind = kind
        self._name_of = name_of or (lambda item: getattr(item, "name", None))
        self._check = check
        self._items: dict[str, T] = {}
        self._owners: dict[str, str] = {}
        #: who is registering right now (set while each plugin's hook runs), for duplicate errors
        self.current_owner = ""

    def register(self, item: T, owner: str = "") -> T:
        """Add ``item`` under its name; a second registration of the same name is an error naming both owners."""
        problem = self._check(item) if self._check is not None else ""
        if problem:
            raise RegistryError(problem)
        return self.add(self._name_of(item), item, owner)

    def add(self, name: str, item: T, owner: str = "") -> T:
        """Add ``item`` under ``name``; a second registration of the same name is an error."""
        owner = owner or self.current_owner
        if not isinstance(name, str) or not name:
            raise RegistryError(f"a {self.kind} needs a non-empty string name, got {name!r}")
        if name in self._items:
            first = self._owners.get(name) or "an earlier registration"
            second = owner or "a second registration"
            raise RegistryError(
                f"{self.kind} '{name}' is registered twice: by {first} and by {second}. "
                f"Rename one of them; names must be unique."
            )
        self._items[name] = item
        self._owners[name] = owner
        return item

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            raise RegistryError(
                f"Unknown {self.kind} '{name}'.{suggest(name, list(self._items))} "
                f"Known {self.kind}s: {', '.join(self._items) or '(none)'}."
            ) from None

    def owner(self, name: str) -> str:
        return self._owners.get(name, "")

    def names(self) -> list[str]:
        return list(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)
