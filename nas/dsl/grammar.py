"""The Grammar object: rules of alternatives over symbols and op calls.

Built by :mod:`nas.dsl.loader` from ``.pcfg`` files; consumed by the sampler and by
:func:`nas.dsl.derive.derivable`. Knows nothing of torch.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from nas.dsl.config import ConfigSpace
from nas.dsl.pos import Pos
from nas.dsl.vocab import node_class
from nas.ops._registry import ParamValue


@dataclass(frozen=True)
class Sym:
    """A reference to another rule."""

    name: str
    pos: Pos = field(compare=False, hash=False)


@dataclass(frozen=True)
class Call:
    """An op applied with parameter choices and child expressions.

    ``params`` maps each parameter to the tuple of values to choose from;
    ``args`` are child expressions, ``repeat[i]`` marks an argument written ``expr*``
    (repeated once per branch of the enclosing combinator).
    """

    op: str
    params: tuple[tuple[str, tuple[ParamValue, ...]], ...]
    args: tuple[Expr, ...]
    repeat: tuple[bool, ...]
    pos: Pos = field(compare=False, hash=False)

    def fixed(self) -> list[Call]:
        """One call per combination of parameter values, nested inline calls included.

        ``compute(linear(out=8|16))`` expands to ``compute(linear(out=8))`` and
        ``compute(linear(out=16))``: choices are shorthand for writing alternatives out.
        """
        names = [n for n, _ in self.params]
        own = list(itertools.product(*(vs for _, vs in self.params)))
        kids = [a.fixed() if isinstance(a, Call) else [a] for a in self.args]
        if len(own) == 1 and all(len(k) == 1 for k in kids):
            return [self]
        out = []
        for combo in own:
            params = tuple((n, (v,)) for n, v in zip(names, combo, strict=True))
            for args in itertools.product(*kids):
                out.append(Call(self.op, params, tuple(args), self.repeat, self.pos))
        return out

    def values(self) -> dict[str, ParamValue]:
        """The parameter values of a fixed call (one value each)."""
        return {n: vs[0] for n, vs in self.params}


Expr = Sym | Call


@dataclass(frozen=True)
class Alt:
    """One alternative of a rule with its probability (after normalisation)."""

    expr: Expr
    prob: float


@dataclass
class Rule:
    """A nonterminal: its alternatives, already expanded and normalised."""

    name: str
    alts: list[Alt]
    pos: Pos


@dataclass
class Grammar:
    """A probabilistic context-free grammar over registered ops (and config spaces).

    Attributes:
        rules: rule name -> Rule (alternatives expanded over parameter choices).
        start: the start symbol.
        path: the file it was loaded from.
        min_depth: per rule, the least module depth of any derivation (for budgets).
        min_size: per rule, the least number of ops of any derivation.
        configs: the config spaces its ``config`` blocks declare, by name.
    """

    rules: dict[str, Rule]
    start: str
    path: str
    configs: dict[str, ConfigSpace] = field(default_factory=dict)
    min_depth: dict[str, int] = field(default_factory=dict)
    min_size: dict[str, int] = field(default_factory=dict)
    _expr_min: dict[int, tuple[Expr, tuple[int, int]]] = field(
        default_factory=dict, repr=False, compare=False
    )

    def expr_min(self, expr: Expr) -> tuple[int, int]:
        """(min depth, min size) of an expression (memoised: expansions share their parts)."""
        if isinstance(expr, Sym):
            return self.min_depth[expr.name], self.min_size[expr.name]
        hit = self._expr_min.get(id(expr))
        if hit is not None and hit[0] is expr:
            return hit[1]
        kids = [self.expr_min(a) for a in expr.args]
        comb = node_class(expr.op).is_combinator
        depth = (1 if comb else 0) + max((d for d, _ in kids), default=0)
        size = (0 if comb else 1) + sum(
            s * (2 if r else 1) for (_, s), r in zip(kids, expr.repeat, strict=True)
        )
        self._expr_min[id(expr)] = (expr, (depth, size))  # holding expr keeps its id unique
        return depth, size

    def templates(self) -> dict[str, Call]:
        """For each combinator op, the first call of it in the grammar (its slot symbols)."""
        out: dict[str, Call] = {}

        def visit(e: Expr) -> None:
            if isinstance(e, Call):
                out.setdefault(e.op, e)
                for a in e.args:
                    visit(a)

        for rule in self.rules.values():
            for alt in rule.alts:
                visit(alt.expr)
        return out
