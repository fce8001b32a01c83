"""One registry shape for ops, strategies, zoo families, datasets, schemes and runners.

A :class:`Registry` maps names to objects. Entries are added by a decorator
(``@OPS.register``), declared lazily as ``"module:attribute"`` strings (loaded on first
use, so listing zoo families imports none of them), or discovered from installed packages
through an entry-point group (``nas.ops``). A name registered twice by two different
objects is an error, never a silent overwrite.
"""

from __future__ import annotations

import difflib
import fnmatch
import importlib
import re
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Generic, TypeVar

from nas.exceptions import ConfigurationError, UnknownNameError

T = TypeVar("T")

__all__ = ["DuplicateNameError", "Registry", "close_names", "natural_key", "unknown_name"]


class DuplicateNameError(ConfigurationError):
    """Two different objects were registered under one name."""


def natural_key(name: str) -> list[Any]:
    """Sort key putting ``nb2`` before ``nb10``."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def close_names(name: str, known: Iterable[str], n: int = 3) -> list[str]:
    """The known names closest to a mistyped ``name`` (case ignored): the one place that
    suggests, so every "did you mean" reads and ranks the same."""
    by_key: dict[str, str] = {}
    for k in known:
        by_key.setdefault(k.lower(), k)
    close = difflib.get_close_matches(str(name).lower(), list(by_key), n=n, cutoff=0.6)
    return [by_key[c] for c in close]


def unknown_name(kind: str, name: str, known: Iterable[str], also: str = "") -> str:
    """One line for an unknown ``name`` of ``kind``: the closest names, then every one.

    ``also`` follows the list (e.g. ", or a .toml file"), for references no list can hold.
    """
    known = list(known)
    listed = ", ".join(known) + also
    close = close_names(name, known)
    if close:
        guess = " or ".join(repr(c) for c in close)
        return f"unknown {kind} {name!r}; did you mean {guess}? (known: {listed})"
    return f"unknown {kind} {name!r}; choose one of {listed}."


def _identity(obj: Any) -> str:
    """Where an object was defined: re-importing a module re-registers the same thing."""
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"


class Registry(Generic[T]):
    """Named objects of one kind (``kind`` names them in error messages).

    Args:
        kind: what an entry is, e.g. ``"op"`` or ``"zoo family"``.
        entry_points: an entry-point group whose modules are imported before the first
            lookup of a name that is not registered yet (user packages register there).
        loaders: modules imported before the first listing or failed lookup (built-ins).
        ordered: list names in the order they were first registered, not naturally sorted
            (for tables whose listing order is part of an output, e.g. a help text).
    """

    def __init__(
        self,
        kind: str,
        entry_points: str | None = None,
        loaders: tuple[str, ...] = (),
        ordered: bool = False,
    ) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}
        self._lazy: dict[str, str] = {}
        self._order: dict[str, None] | None = {} if ordered else None
        self._group = entry_points
        self._loaders = list(loaders)
        self._discovered = False

    # -- adding -------------------------------------------------------------------------
    def add(self, name: str, obj: T) -> T:
        """Register ``obj`` as ``name``; a different object under a taken name is an error."""
        old = self._items.get(name)
        if old is not None and old is not obj and _identity(old) != _identity(obj):
            raise DuplicateNameError(
                f"{self.kind} {name!r} is already registered by {_identity(old)}; "
                f"{_identity(obj)} cannot take the name too."
            )
        self._items[name] = obj
        self._lazy.pop(name, None)
        if self._order is not None:
            self._order.setdefault(name)
        return obj

    def register(self, name: str | None = None) -> Callable[[T], T]:
        """Decorator registering the decorated object as ``name`` (default: its ``name``)."""

        def deco(obj: T) -> T:
            key = name or getattr(obj, "name", None) or getattr(obj, "__name__", "")
            return self.add(str(key), obj)

        return deco

    def add_lazy(self, name: str, target: str) -> None:
        """Declare ``name`` as ``"module:attribute"`` (or ``"module"``, whose import registers
        it), loaded on first use."""
        if name not in self._items:
            self._lazy[name] = target
            if self._order is not None:
                self._order.setdefault(name)

    # -- looking up ---------------------------------------------------------------------
    def _discover(self) -> None:
        if self._discovered:
            return
        self._discovered = True
        for module in self._loaders:
            importlib.import_module(module)
        if self._group:
            from importlib.metadata import entry_points

            for ep in entry_points(group=self._group):
                try:
                    ep.load()
                except Exception as e:  # a broken plug-in names itself, not a traceback
                    raise ConfigurationError(
                        f"cannot load {self.kind} entry point {ep.name!r} ({ep.value}): {e}"
                    ) from None

    def _load_lazy(self, name: str) -> None:
        target = self._lazy.pop(name)
        module, _, attr = target.partition(":")
        mod = importlib.import_module(module)
        if attr and name not in self._items:
            self.add(name, getattr(mod, attr))

    def get(self, name: str) -> T:
        """The object registered as ``name``.

        Raises:
            UnknownNameError: no such name; the message names the closest ones.
        """
        if name not in self._items and name in self._lazy:
            self._load_lazy(name)
        if name not in self._items:
            self._discover()
            if name in self._lazy:
                self._load_lazy(name)
        try:
            return self._items[name]
        except (KeyError, TypeError):
            raise UnknownNameError(self.unknown_message(name)) from None

    def unknown_message(self, name: str) -> str:
        """The one-line error for an unknown ``name``: the closest names, and all of them."""
        return unknown_name(self.kind, name, self.names())

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        if name not in self._items and name not in self._lazy:
            self._discover()
        return name in self._items or name in self._lazy

    def names(self, pattern: str = "*") -> list[str]:
        """Registered names (lazy ones included) matching ``pattern``, naturally sorted (an
        ``ordered`` registry: in registration order)."""
        self._discover()
        if self._order is not None:
            return [n for n in self._order if fnmatch.fnmatch(n, pattern)]
        every = set(self._items) | set(self._lazy)
        return sorted((n for n in every if fnmatch.fnmatch(n, pattern)), key=natural_key)

    def items(self) -> Iterator[tuple[str, T]]:
        """Every (name, object), loading lazy entries."""
        for name in self.names():
            yield name, self.get(name)

    def __len__(self) -> int:
        return len(self.names())
