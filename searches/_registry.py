"""The strategy registry: strategies register by name with ``@register_strategy``."""

from __future__ import annotations

import fnmatch
import inspect
import re
import warnings
from typing import TYPE_CHECKING, Any

from nas.exceptions import ConfigurationError, UnknownNameError

if TYPE_CHECKING:
    from nas.searches._base import Strategy

    from nas.space import SearchSpace

__all__ = [
    "create_strategy",
    "get_strategy",
    "is_strategy",
    "list_strategies",
    "register_strategy",
]

_STRATEGIES: dict[str, type[Strategy]] = {}


def _natural(name: str) -> list[Any]:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def register_strategy(cls: type[Strategy]) -> type[Strategy]:
    """Class decorator adding a strategy to the registry under ``cls.name``."""
    if not cls.name or not re.fullmatch(r"[a-z_][a-z0-9_]*", cls.name):
        raise ValueError(f"strategy names must be lowercase identifiers, got {cls.name!r}")
    if cls.name in _STRATEGIES and _STRATEGIES[cls.name] is not cls:
        warnings.warn(
            f"strategy {cls.name!r} is registered twice; the later one wins.", stacklevel=2
        )
    _STRATEGIES[cls.name] = cls
    return cls


def list_strategies(pattern: str = "*") -> list[str]:
    """Registered strategy names matching an fnmatch ``pattern``, naturally sorted."""
    return sorted((n for n in _STRATEGIES if fnmatch.fnmatch(n, pattern)), key=_natural)


def is_strategy(name: str) -> bool:
    """Whether ``name`` is a registered strategy."""
    return name in _STRATEGIES


def get_strategy(name: str) -> type[Strategy]:
    """The strategy class registered as ``name``.

    Raises:
        UnknownNameError: no such strategy; the message lists the registered ones.
    """
    try:
        return _STRATEGIES[name]
    except (KeyError, TypeError):
        raise UnknownNameError(
            f"unknown strategy {name!r}; choose one of {', '.join(list_strategies())}."
        ) from None


def create_strategy(
    name: str, space: SearchSpace | str, seed: int = 0, **options: Any
) -> Strategy:
    """A new strategy ``name`` on ``space`` (a SearchSpace or a space name) with ``options``.

    Raises:
        UnknownNameError: unknown strategy or space.
        ConfigurationError: an option the strategy does not take, or an invalid value.
    """
    cls = get_strategy(name)
    accepted = _options(cls)
    unknown = sorted(set(options) - accepted)
    if unknown:
        raise ConfigurationError(
            f"strategy {name!r} takes options {', '.join(sorted(accepted))}, "
            f"but got {', '.join(unknown)}."
        )
    if isinstance(space, str):
        from nas.space import load_space

        space = load_space(space)
    return cls(space, seed=seed, **options)


def _options(cls: type) -> set[str]:
    """Keyword options of ``cls`` and its bases (their ``__init__`` minus space and seed)."""
    names: set[str] = set()
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        for p in inspect.signature(init).parameters.values():
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY):
                names.add(p.name)
    return names - {"self", "space", "seed"}
