"""Architecture formats: every way a user may write an architecture, behind one registry.

``resolve_arch(text, space)`` tries each registered format's ``detect`` (an ``@FILE``, an
NB201 cell string ``|op~0|+...``, ``seed:NAME``) and falls back to the canonical string. A
new format registers itself with ``@ARCH_FORMATS.register()``; spaces name the extra forms
their architectures also print as (``formats = ["nb201"]`` in their TOML).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from nas.exceptions import ConfigurationError, UnknownNameError
from nas.registry import Registry

if TYPE_CHECKING:
    from nas.dsl import Node
    from nas.space import SearchSpace

__all__ = ["ARCH_FORMATS", "ArchFormat", "resolve_arch", "write_formats"]


@dataclass(frozen=True)
class ArchFormat:
    """One way of writing an architecture: how to recognise, read and (maybe) write it."""

    name: str
    detect: Callable[[str], bool]
    parse: Callable[[str, SearchSpace | str | None], Node]
    write: Callable[[Node], str] | None = None


ARCH_FORMATS: Registry[ArchFormat] = Registry("architecture format")


def _add(fmt: ArchFormat) -> ArchFormat:
    return ARCH_FORMATS.add(fmt.name, fmt)


def _read_file(text: str, space: SearchSpace | str | None) -> Node:
    from nas.dsl.files import read_text

    inner = read_text(text[1:]).strip()  # regular files only, bounded, UTF-8
    if inner.startswith("@"):
        raise ConfigurationError(f"{text[1:]} holds another @FILE reference; give the string.")
    return resolve_arch(inner, space)


def _seed(text: str, space: SearchSpace | str | None) -> Node:
    from nas.space import load_space

    sp = load_space(space or "einspace") if not hasattr(space, "seeds") else space
    name = text[len("seed:") :]
    if name not in sp.seeds:
        raise UnknownNameError(
            f"unknown seed {name!r}; the space {sp.name!r} has: {', '.join(sp.seeds) or 'none'}."
        )
    return sp.seeds[name]


def _nb201(text: str, space: SearchSpace | str | None) -> Node:
    from nas.nb201 import from_nb201

    return from_nb201(text)


def _nb201_write(node: Node) -> str:
    from nas.nb201 import to_nb201

    return to_nb201(node)


def _canonical(text: str, space: SearchSpace | str | None) -> Node:
    from nas.dsl import parse_arch

    return parse_arch(text)


_add(ArchFormat("file", lambda t: t.startswith("@"), _read_file))
_add(ArchFormat("seed", lambda t: t.startswith("seed:"), _seed))
_add(ArchFormat("nb201", lambda t: t.startswith("|"), _nb201, _nb201_write))
_add(ArchFormat("canonical", lambda t: True, _canonical))


def resolve_arch(text: str, space: SearchSpace | str | None = None) -> Node:
    """The architecture ``text`` denotes, in whichever registered format it is written.

    ``space`` (a SearchSpace or a space name) supplies the seeds of ``seed:NAME``.

    Raises:
        ArchSyntaxError, ConfigurationError, UnknownNameError: one-line reasons.
    """
    text = text.strip()
    for name in ARCH_FORMATS.names():
        fmt = ARCH_FORMATS.get(name)
        if fmt.name != "canonical" and fmt.detect(text):
            return fmt.parse(text, space)
    return ARCH_FORMATS.get("canonical").parse(text, space)


def write_formats(node: Node, space: SearchSpace) -> dict[str, str]:
    """The extra string forms ``space`` declares for its architectures (e.g. nb201)."""
    forms: dict[str, str] = {}
    for name in space.formats:
        fmt = ARCH_FORMATS.get(name)
        if fmt.write is not None:
            forms[name] = fmt.write(node)
    return forms
