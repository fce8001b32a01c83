"""The strategy registry: strategies register by name with ``@register_strategy``."""

from __future__ import annotations

import inspect
import re
from typing import TYPE_CHECKING, Any

from nas.exceptions import ConfigurationError
from nas.registry import Registry

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

#: Strategies by name; ``@register_strategy`` adds one (a taken name is an error); installed
#: packages add theirs through the ``nas.strategies`` entry-point group.
STRATEGIES: Registry[type[Strategy]] = Registry("strategy", entry_points="nas.strategies")


def register_strategy(cls: type[Strategy]) -> type[Strategy]:
    """Class decorator adding a strategy to the registry under ``cls.name``.

    Raises:
        DuplicateNameError: another strategy already has the name.
    """
    if not cls.name or not re.fullmatch(r"[a-z_][a-z0-9_]*", cls.name):
        raise ValueError(f"strategy names must be lowercase identifiers, got {cls.name!r}")
    return STRATEGIES.add(cls.name, cls)


def list_strategies(pattern: str = "*") -> list[str]:
    """Registered strategy names matching an fnmatch ``pattern``, naturally sorted."""
    return STRATEGIES.names(pattern)


def is_strategy(name: str) -> bool:
    """Whether ``name`` is a registered strategy."""
    return name in STRATEGIES


def get_strategy(name: str) -> type[Strategy]:
    """The strategy class registered as ``name``.

    Raises:
        UnknownNameError: no such strategy; the message names the closest and lists all.
    """
    return STRATEGIES.get(name)


def create_strategy(
    name: str, space: SearchSpace | str, seed: int = 0, **options: Any
) -> Strategy:
    """A new strategy ``name`` on ``space`` (a SearchSpace or a space name) with ``options``.

    Raises:
        UnknownNameError: unknown strategy or space.
        ConfigurationError: an option the strategy does not take, or an invalid value.
    """
    cls = get_strategy(name)
    accepted = strategy_options_of(cls)
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


def strategy_options_of(cls: type) -> set[str]:
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
