"""The search-space DSL: ``.pcfg`` grammars and canonical architecture strings."""

from __future__ import annotations

from nas.dsl.arch import Node, parse_arch
from nas.dsl.config import ConfigSpace
from nas.dsl.grammar import Alt, Call, Grammar, Pos, Rule, Sym
from nas.dsl.loader import load_grammar

__all__ = [
    "Alt",
    "Call",
    "ConfigSpace",
    "Grammar",
    "Node",
    "Pos",
    "Rule",
    "Sym",
    "load_grammar",
    "parse_arch",
]
