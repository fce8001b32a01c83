"""A family's search space: the config space its grammar declares, checked against it."""

from __future__ import annotations

from importlib import resources
from typing import TYPE_CHECKING

from nas.zoo._registry import Family, _convert, get_family

from nas.exceptions import ConfigurationError, GrammarError

if TYPE_CHECKING:
    from nas.dsl import Grammar
    from nas.space import SearchSpace

__all__ = ["zoo_space"]


def zoo_space(name: str) -> SearchSpace:
    """The search space ``zoo:FAMILY``: the family's config space over its hyperparameters.

    Raises:
        ConfigurationError: the family has no grammar.
        GrammarError: the grammar is invalid, or its ``config`` block disagrees with the
            family (other keys or order than ``searched``, a value of the wrong type).
    """
    from nas.dsl import load_grammar

    family = get_family(name)
    if family.grammar_path is not None:
        grammar = load_grammar(family.grammar_path)
    else:
        res = resources.files("nas.grammars").joinpath("zoo", f"{family.name}.pcfg")
        if not res.is_file():
            raise ConfigurationError(
                f"zoo:{family.name} has no grammar grammars/zoo/{family.name}.pcfg."
            )
        grammar = load_grammar(f"grammars/zoo/{family.name}.pcfg", res.read_text())
    _check_config(family, grammar)
    return _space(family, grammar)


def _check_config(family: Family, grammar: Grammar) -> None:
    """Every value the grammar's config block offers is a valid value of the family's type.

    The keys and their order are checked when the block is declared (the family declared
    its config node with its ``searched`` keys when it registered).
    """
    space = grammar.configs.get(family.name)
    if space is None:
        return  # written out as rules by hand: the hp values are checked per config drawn
    for h in space.params:
        default = family.hyperparams[h.key]
        for value, pos in zip(h.values, h.value_pos, strict=True):
            try:
                _convert(family.name, h.key, str(value), default)
            except ConfigurationError as e:
                raise GrammarError(str(e), pos.path, pos.line, pos.column) from None


def _space(family: Family, grammar: Grammar) -> SearchSpace:
    from nas.space import Budget, SearchSpace

    return SearchSpace(
        name=f"zoo:{family.name}",
        grammar=grammar,
        input_shape=(1,),
        mode="col",
        num_classes=2,
        budget=Budget(max_depth=4, max_params=1, max_activation=10**9, max_ops=256),
        description=family.summary,
    )
