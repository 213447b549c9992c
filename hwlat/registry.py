"""One small registry class for everything hwlat names: backends, op kinds, spaces, networks, searches.

Modelled on timm's ``register_model`` / ``list_models(filter)``, with one
difference: an unknown name raises ``ValueError`` that lists the valid names
(and the closest ones), so a typo on the command line says what to type.

Examples
--------
>>> colours = Registry("colour")
>>> @colours.register("red")
... def red():
...     return "#f00"
>>> colours.get("red")()
'#f00'
>>> colours.names("r*")
['red']
>>> colours.get("rde")
Traceback (most recent call last):
...
ValueError: Unknown colour 'rde' (did you mean 'red'?); valid colours: red
"""

from __future__ import annotations

import difflib
import fnmatch
import importlib
import warnings
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar, overload

__all__ = ["Registry"]

T = TypeVar("T")


class Registry(Generic[T]):
    """Names → objects of one sort, filled by a decorator.

    Parameters
    ----------
    what : str
        The sort of thing, singular ("device", "space"); used in error messages.
    plural : str, optional
        Plural for messages (default ``what + "s"``).
    """

    def __init__(self, what: str, plural: str | None = None) -> None:
        self.what = what
        self.plural = plural or f"{what}s"
        self._items: dict[str, T] = {}

    @overload
    def register(self, name: str) -> Callable[[T], T]: ...

    @overload
    def register(self, name: str, obj: T) -> T: ...

    def register(self, name: str, obj: T | None = None):
        """Register ``obj`` under ``name`` (as a decorator when ``obj`` is omitted).

        Registering a name again with another object warns and replaces it.
        """
        if not isinstance(name, str) or not name:
            raise ValueError(f"Invalid {self.what} name {name!r}: must be a non-empty string")

        def add(item: T) -> T:
            old = self._items.get(name)
            if old is not None and old is not item:
                warnings.warn(f"{self.what} {name!r} registered again; the new one replaces the old one", stacklevel=3)
            self._items[name] = item
            return item

        return add if obj is None else add(obj)

    def get(self, name: str) -> T:
        """The object registered as ``name``; ``ValueError`` naming the valid names otherwise."""
        try:
            return self._items[name]
        except (KeyError, TypeError):
            raise ValueError(self.unknown_message(name)) from None

    def unregister(self, name: str) -> T:
        """Remove ``name`` and return its object (for tests that register a throwaway entry)."""
        obj = self.get(name)
        del self._items[name]
        return obj

    def unknown_message(self, name: object) -> str:
        """The error text for an unknown ``name``: close matches first, then every valid name."""
        close = difflib.get_close_matches(str(name), list(self._items), n=3) if isinstance(name, str) else []
        hint = f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""
        return f"Unknown {self.what} {name!r}{hint}; valid {self.plural}: {', '.join(self.names())}"

    def names(self, pattern: str | list[str] | tuple[str, ...] = "*") -> list[str]:
        """Registered names matching any of the ``fnmatch`` wildcard patterns, sorted."""
        patterns = [pattern] if isinstance(pattern, str) else list(pattern)
        return sorted(n for n in self._items if any(fnmatch.fnmatchcase(n, p) for p in patterns))

    def items(self) -> list[tuple[str, T]]:
        return [(n, self._items[n]) for n in self.names()]

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Registry({self.what!r}, {len(self)} registered)"


def load_callable(path: str):
    """The callable named by ``"pkg.module:name"``; a ValueError saying what is wrong (callers add context)."""
    module_name, sep, attr = str(path).partition(":")
    if not sep or not module_name or not attr:
        raise ValueError("write it as 'pkg.module:factory'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"cannot import module {module_name!r} ({exc})") from None
    obj = getattr(module, attr, None)
    if not callable(obj):
        raise ValueError(f"module {module_name!r} has no callable {attr!r}")
    return obj
