"""Config spaces: named hyperparameters with typed choices, a construct of the DSL.

A ``.pcfg`` file declares one with ``config NAME { KEY = V1 | V2 [p] ; ... }`` (see
docs/dsl.md). Its sentences are written ``NAME(hp(k=KEY, v=VALUE), ...)``, one ``hp`` per
key in declaration order, so the sampler, mutation and the Optuna strategies search a
config like any grammar. ``hp`` and the config nodes are not ops: they live in this
module's vocabulary (``CONFIG_SPACES``), which :mod:`nas.dsl.vocab` consults after the
op registry, and they build no layer. A zoo family declares its config node when it
registers (:func:`declare_config`), so its stored architecture strings parse before its
grammar is loaded.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Protocol

from nas.dsl.pos import Pos
from nas.exceptions import ConfigurationError, ShapeError
from nas.ops._registry import ChildBuild, ChildInfer, Combinator, Op, ParamValue, is_op
from nas.ops.spec import Signal
from nas.registry import Registry

if TYPE_CHECKING:
    from torch import nn


class SentenceNode(Protocol):
    """What this module reads of a parsed sentence (:class:`nas.dsl.arch.Node`), named
    structurally so the DSL's modules import each other in one direction only."""

    @property
    def op(self) -> str: ...
    @property
    def params(self) -> tuple[tuple[str, ParamValue], ...]: ...
    @property
    def children(self) -> Sequence[SentenceNode]: ...


__all__ = [
    "CONFIG_SPACES",
    "TYPES",
    "ConfigNode",
    "ConfigSpace",
    "HyperParam",
    "HyperSpec",
    "config_values",
    "declare_config",
    "is_config",
]

#: The types a hyperparameter may declare (``key: int = ...``), by their DSL names.
TYPES: dict[str, type] = {"int": int, "float": float, "str": str, "bool": bool}


class HyperParam(Op):
    """``hp(k=KEY, v=VALUE)``: one hyperparameter value of a config."""

    name = "hp"
    params: ClassVar[dict] = {"k": str, "v": str}
    is_view = True

    def infer(self, x: Signal) -> Signal:
        return x

    def flops(self, x: Signal, y: Signal) -> int:
        return 0

    def build(self, x: Signal) -> nn.Module:
        raise ShapeError("hp is a hyperparameter of a config space, not a layer.")


class ConfigNode(Combinator):
    """A config: one ``hp`` child per key of its space, in order; passes its input on."""

    keys: ClassVar[tuple[str, ...]] = ()
    # Who declared it first (a grammar file:line:col or a zoo family), for error messages.
    origin: ClassVar[str] = ""

    def flow(self, x: Signal, child: ChildInfer) -> Signal:
        for i in range(self.n_slots):
            child(i, x)
        return x

    def flops(self, x: Signal, y: Signal) -> int:
        return 0

    def build_with(self, x: Signal, child: ChildBuild) -> nn.Module:
        raise ShapeError(
            f"{self.name}(...) is a zoo config; build it with nas.zoo, not the compiler."
        )


@dataclass(frozen=True)
class HyperSpec:
    """One hyperparameter of a config space: its key, type, choices and their weights.

    ``values`` are the choices as written (numbers or words, each valid for ``type``;
    :func:`convert` gives the typed value). ``probs`` holds the written probability of
    each choice (None where none was written; those share what is left, as alternatives
    of a rule do). ``value_pos`` says where each choice was written.
    """

    key: str
    type: type
    values: tuple[ParamValue, ...]
    probs: tuple[float | None, ...]
    pos: Pos | None = None
    value_pos: tuple[Pos, ...] = ()


@dataclass(frozen=True)
class ConfigSpace:
    """A declared config space: its name and hyperparameters in declaration order."""

    name: str
    params: tuple[HyperSpec, ...]
    pos: Pos | None = None

    @property
    def keys(self) -> tuple[str, ...]:
        """The keys in order (the order of the ``hp`` children)."""
        return tuple(p.key for p in self.params)

    def rule_name(self, key: str) -> str:
        """The grammar rule drawing ``key`` (dotted, so no written rule can take it)."""
        return f"{self.name}.{key}"

    def values(self, node: SentenceNode) -> dict[str, ParamValue]:
        """The typed values a sentence of this space writes (key -> value)."""
        types = {p.key: p.type for p in self.params}
        return {k: convert(v, types[k]) for k, v in config_values(node).items()}


def convert(value: ParamValue, kind: type) -> ParamValue:
    """``value`` as a ``kind`` ("true"/"false" or "1"/"0" for bool, whole floats for int).

    The one conversion of a hyperparameter's value, for config blocks and zoo configs.

    Raises:
        ValueError: it is not one.
    """
    if kind is bool:
        text = str(value).lower()
        if text not in ("true", "false", "1", "0"):
            raise ValueError(value)
        return text in ("true", "1")
    if kind is int:
        number = float(value)
        if not number.is_integer() or isinstance(value, bool):
            raise ValueError(value)
        return int(number)
    return kind(value)


def infer_type(values: tuple[ParamValue, ...]) -> type:
    """The type of undeclared choices: int, float, bool (true/false) or str."""
    if all(isinstance(v, int) for v in values):
        return int
    if all(isinstance(v, int | float) for v in values):
        return float
    if all(str(v) in ("true", "false") for v in values):
        return bool
    return str


def config_values(node: SentenceNode) -> dict[str, str]:
    """The ``hp(k=..., v=...)`` children of a config node as written (key -> text).

    Raises:
        ConfigurationError: a child that is not an ``hp``.
    """
    out: dict[str, str] = {}
    for child in node.children:
        params = dict(child.params)
        if child.op != HyperParam.name or "k" not in params:
            raise ConfigurationError(f"{node.op} children must be hp(k=..., v=...).")
        out[str(params["k"])] = str(params["v"])
    return out


def declare_config(name: str, keys: tuple[str, ...], origin: str) -> type[ConfigNode]:
    """The config node ``name`` taking one ``hp`` per key; declared once, same keys after.

    Raises:
        ConfigurationError: ``name`` is an op or ``hp``, is declared with other keys, or
            a key is not an identifier.
    """
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", name) or name == HyperParam.name or is_op(name):
        what = "an op" if is_op(name) or name == HyperParam.name else "not a lowercase name"
        raise ConfigurationError(f"config {name!r} cannot be declared: {name!r} is {what}.")
    bad = [k for k in keys if not k.isidentifier()]
    if bad or len(set(keys)) != len(keys) or not keys:
        raise ConfigurationError(f"config {name!r} needs distinct identifier keys, got {keys}.")
    if name in CONFIG_SPACES:
        old = CONFIG_SPACES.get(name)
        if old.keys != tuple(keys):
            raise ConfigurationError(
                f"config {name!r} is already declared with keys {', '.join(old.keys)} "
                f"(by {old.origin}); these keys differ: {', '.join(keys)}."
            )
        return old
    cls = type(
        f"Config_{name}",
        (ConfigNode,),
        {
            "name": name,
            "n_slots": len(keys),
            "keys": tuple(keys),
            "origin": origin,
            "__module__": __name__,
            "__doc__": f"Config {name}: {', '.join(keys)}.",
        },
    )
    return CONFIG_SPACES.add(name, cls)


def is_config(name: str) -> bool:
    """Whether ``name`` is ``hp`` or a declared config node."""
    return name == HyperParam.name or name in CONFIG_SPACES


#: Declared config nodes: name -> class (from grammars' ``config`` blocks and zoo families).
CONFIG_SPACES: Registry[type[ConfigNode]] = Registry("config space")
