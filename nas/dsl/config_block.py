"""``config NAME { KEY[: TYPE] = V1 [p] | V2 ; ... }`` blocks of a ``.pcfg`` file.

The loader hands each parsed block here: it is checked (keys, types, values), declared in
the config vocabulary (:func:`nas.dsl.config.declare_config`) and written out as the rules
a grammar would spell by hand::

    NAME       -> NAME(NAME.KEY1, NAME.KEY2, ...)
    NAME.KEY1  -> hp(k=KEY1, v=V1) [p] | hp(k=KEY1, v=V2)

so sampling, mutation, Optuna's choices and derivability treat it like any rule.
"""

from __future__ import annotations

from lark import Token

from nas.dsl.config import (
    TYPES,
    ConfigSpace,
    HyperParam,
    HyperSpec,
    convert,
    declare_config,
    infer_type,
)
from nas.dsl.grammar import Call, Expr, Pos, Sym
from nas.exceptions import ConfigurationError, GrammarError

__all__ = ["RawConfig", "RawHyper", "config_rules", "config_space"]


class RawHyper:
    """One ``key[: type] = v1 [p] | v2`` line of a config block, as written."""

    def __init__(self, key: str, kind: Token | None, choices: list[tuple], pos: Pos) -> None:
        self.key, self.kind, self.choices, self.pos = key, kind, choices, pos


class RawConfig:
    """A ``config NAME { ... }`` block, as written."""

    def __init__(self, name: str, params: list[RawHyper], pos: Pos) -> None:
        self.name, self.params, self.pos = name, params, pos


def _error(message: str, pos: Pos) -> GrammarError:
    return GrammarError(message, pos.path, pos.line, pos.column)


def _hyper(config: str, raw: RawHyper) -> HyperSpec:
    """Check one hyperparameter line: a known type and values of that type, each once."""
    values = tuple(v for v, _, _ in raw.choices)
    where = tuple(p for _, _, p in raw.choices)
    if raw.kind is not None:
        kind = TYPES.get(str(raw.kind))
        if kind is None:
            p = Pos(raw.pos.path, raw.kind.line or 0, raw.kind.column or 0)
            raise _error(
                f"unknown type {str(raw.kind)!r} of {config}.{raw.key}; "
                f"expected one of: {', '.join(TYPES)}.",
                p,
            )
    else:
        kind = infer_type(values)
    seen: set[str] = set()
    for value, pos in zip(values, where, strict=True):
        try:
            convert(value, kind)
        except (TypeError, ValueError):
            raise _error(
                f"value {value!r} of {config}.{raw.key} is not of type {kind.__name__}.", pos
            ) from None
        if str(value) in seen:
            raise _error(f"value {value!r} of {config}.{raw.key} is written twice.", pos)
        seen.add(str(value))
    return HyperSpec(
        raw.key,
        kind,
        values,
        tuple(pr for _, pr, _ in raw.choices),
        raw.pos,
        where,
    )


def config_space(raw: RawConfig) -> ConfigSpace:
    """Check a config block and declare its node in the vocabulary.

    Raises:
        GrammarError: no keys, a key written twice, a bad type or value, or a name that
            is an op or is declared elsewhere with other keys (file:line:col of the cause).
    """
    if not raw.params:
        raise _error(f"config {raw.name!r} declares no hyperparameters.", raw.pos)
    first: dict[str, Pos] = {}
    for h in raw.params:
        if h.key in first:
            raise _error(
                f"hyperparameter {h.key!r} of config {raw.name!r} is declared twice "
                f"(first at {first[h.key]}).",
                h.pos,
            )
        first[h.key] = h.pos
    space = ConfigSpace(raw.name, tuple(_hyper(raw.name, h) for h in raw.params), raw.pos)
    try:
        declare_config(raw.name, space.keys, origin=str(raw.pos))
    except ConfigurationError as e:
        raise _error(str(e), raw.pos) from None
    return space


def config_rules(
    space: ConfigSpace,
) -> list[tuple[str, list[tuple[Expr, float | None, Pos]], Pos]]:
    """The rules a config space stands for: (name, alternatives as written, position)."""
    pos = space.pos or Pos("?", 0, 0)
    keys = [space.rule_name(h.key) for h in space.params]
    head = Call(
        space.name,
        (),
        tuple(Sym(k, h.pos or pos) for k, h in zip(keys, space.params, strict=True)),
        tuple(False for _ in keys),
        pos,
    )
    rules: list[tuple[str, list[tuple[Expr, float | None, Pos]], Pos]] = [
        (space.name, [(head, None, pos)], pos)
    ]
    for rule, h in zip(keys, space.params, strict=True):
        alts: list[tuple[Expr, float | None, Pos]] = []
        for value, prob, where in zip(h.values, h.probs, h.value_pos, strict=True):
            call = Call(HyperParam.name, (("k", (h.key,)), ("v", (value,))), (), (), where)
            alts.append((call, prob, where))
        rules.append((rule, alts, h.pos or pos))
    return rules
