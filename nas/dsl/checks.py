"""Whole-grammar checks run after parsing: reachability, unit cycles, termination.

They work on the alternatives as written (parameter choices unexpanded), so their cost
grows with the file, not with the alternatives the choices multiply out to.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Callable, Iterator
from typing import Any

from nas.dsl.grammar import Alt, Call, Expr, Grammar, Sym
from nas.dsl.vocab import node_class
from nas.exceptions import GrammarError

# Probabilities may sum to 1 within this (they are written with a few decimals).
PROB_TOLERANCE = 1e-6


def symbols(expr: Expr) -> list[Sym]:
    if isinstance(expr, Sym):
        return [expr]
    return [s for a in expr.args for s in symbols(a)]


def check_unit_cycles(written: dict[str, list[Expr]]) -> None:
    """Reject rules that reach themselves through bare references only (``a -> b``,
    ``b -> a``): they add nothing to the language and let a sampler loop forever."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for root in written:
        if root in state:
            continue
        path: list[tuple[str, Iterator[Expr]]] = [(root, iter(written[root]))]
        state[root] = 1
        while path:
            name, alts = path[-1]
            expr = next(alts, None)
            if expr is None:
                state[name] = 2
                path.pop()
            elif isinstance(expr, Sym) and state.get(expr.name) == 1:
                names = [n for n, _ in path]
                chain = " -> ".join([*names[names.index(expr.name) :], expr.name])
                p = expr.pos
                raise GrammarError(
                    f"rules refer to each other with nothing else in between ({chain}); "
                    f"such a cycle derives nothing new.",
                    p.path,
                    p.line,
                    p.column,
                )
            elif isinstance(expr, Sym) and expr.name not in state:
                state[expr.name] = 1
                path.append((expr.name, iter(written[expr.name])))


def check_reachable(g: Grammar, written: dict[str, list[Expr]]) -> None:
    seen, todo = {g.start}, [g.start]
    while todo:
        for expr in written[todo.pop()]:
            for s in symbols(expr):
                if s.name not in seen:
                    seen.add(s.name)
                    todo.append(s.name)
    for rule in g.rules.values():
        if rule.name not in seen:
            p = rule.pos
            raise GrammarError(
                f"rule {rule.name!r} is unreachable from the start symbol "
                f"{g.start!r}; use it or remove it.",
                p.path,
                p.line,
                p.column,
            )


def n_fixed(expr: Expr) -> int:
    """How many alternatives ``expr`` stands for once its parameter choices are expanded."""
    if not isinstance(expr, Call):
        return 1
    n = math.prod(len(vs) for _, vs in expr.params)
    for a in expr.args:
        n *= n_fixed(a)
    return n


def compute_minima(g: Grammar, written: dict[str, list[Expr]]) -> None:
    """Least depth and size per rule; a rule with none never terminates.

    Knuth's generalisation of Dijkstra's algorithm (both measures of an alternative are
    at least those of the rules it uses), so each rule is settled once: O(size log size).
    """
    g.min_depth = _least(written, lambda e, v: _expr_min(e, v)[0])
    g.min_size = _least(written, lambda e, v: _expr_min(e, v)[1])
    for rule in g.rules.values():
        if rule.name not in g.min_depth:
            p = rule.pos
            raise GrammarError(
                f"rule {rule.name!r} never terminates: every alternative "
                f"needs a rule that never terminates (often itself).",
                p.path,
                p.line,
                p.column,
            )


def _expr_min(expr: Expr, known: dict[str, int]) -> tuple[int, int]:
    """(depth, size) of ``expr`` given the settled values of the rules it uses."""
    if isinstance(expr, Sym):
        return known[expr.name], known[expr.name]
    kids = [_expr_min(a, known) for a in expr.args]
    comb = node_class(expr.op).is_combinator
    depth = (1 if comb else 0) + max((d for d, _ in kids), default=0)
    size = (0 if comb else 1) + sum(
        s * (2 if r else 1) for (_, s), r in zip(kids, expr.repeat, strict=True)
    )
    return depth, size


def _least(
    written: dict[str, list[Expr]], value: Callable[[Expr, dict[str, int]], int]
) -> dict[str, int]:
    """The least ``value`` over the derivations of every rule that terminates."""
    alts = [(name, expr) for name, exprs in written.items() for expr in exprs]
    users: dict[str, list[int]] = {}
    waiting: list[int] = []
    heap: list[tuple[int, int, int]] = []  # (value, tie-breaker, alternative index)
    tie = itertools.count()
    for i, (_, expr) in enumerate(alts):
        needs = {s.name for s in symbols(expr)}
        waiting.append(len(needs))
        for n in needs:
            users.setdefault(n, []).append(i)
        if not needs:
            heapq.heappush(heap, (value(expr, {}), next(tie), i))
    settled: dict[str, int] = {}
    while heap:
        v, _, i = heapq.heappop(heap)
        name = alts[i][0]
        if name in settled:
            continue
        settled[name] = v
        for j in users.get(name, ()):
            waiting[j] -= 1
            user, expr = alts[j]
            if waiting[j] == 0 and user not in settled:
                heapq.heappush(heap, (value(expr, settled), next(tie), j))
    return settled


def check_nesting(text: str, name: str, limit: int) -> None:
    """Reject parentheses nested deeper than limit (outside comments and strings)."""
    if text.count("(") <= limit:
        return
    depth, line, col, state = 0, 1, 0, ""
    for ch in text:
        col += 1
        if ch == "\n":
            line, col, state = line + 1, 0, ""
        elif state == "#":
            continue
        elif ch == '"':
            state = "" if state == '"' else '"'
        elif state:
            continue
        elif ch == "#":
            state = "#"
        elif ch == "(":
            depth += 1
            if depth > limit:
                raise GrammarError(
                    f"expressions nest deeper than {limit} levels.", name, line, col
                )
        elif ch == ")":
            depth -= 1


def normalise(raw: Any) -> list[Alt]:
    """Expand a raw rule's parameter choices and turn its probabilities into a distribution."""
    given = [prob for _, prob, _ in raw.alts if prob is not None]
    for _, prob, pos in raw.alts:
        if prob is not None and (prob < 0 or not math.isfinite(prob)):
            raise GrammarError(
                f"probability {prob} of an alternative of {raw.name!r} must be between 0 and 1.",
                pos.path,
                pos.line,
                pos.column,
            )
    total = sum(given)
    # Parameter choices are shorthand for writing each combination out as an alternative.
    expanded = [
        (expr.fixed() if isinstance(expr, Call) else [expr], prob) for expr, prob, _ in raw.alts
    ]
    n_free = sum(len(es) for es, prob in expanded if prob is None)
    p = raw.pos
    if total > 1 + PROB_TOLERANCE:
        raise GrammarError(
            f"the probabilities of rule {raw.name!r} sum to {total:g}; "
            f"they must sum to at most 1.",
            p.path,
            p.line,
            p.column,
        )
    if n_free == 0 and abs(total - 1) > 1e-3:
        raise GrammarError(
            f"the probabilities of rule {raw.name!r} sum to {total:g}; "
            f"they must sum to 1 (or leave some alternatives without one "
            f"to share the rest).",
            p.path,
            p.line,
            p.column,
        )
    if n_free and total >= 1 - PROB_TOLERANCE:
        raise GrammarError(
            f"the probabilities of rule {raw.name!r} already sum to 1, so "
            f"its alternatives without a probability would never be chosen.",
            p.path,
            p.line,
            p.column,
        )
    share = (1 - total) / n_free if n_free else 0.0
    alts: list[Alt] = []
    for es, prob in expanded:
        each = share if prob is None else prob / len(es)
        alts.extend(Alt(e, each) for e in es)
    z = sum(a.prob for a in alts)
    return [Alt(a.expr, a.prob / z) for a in alts]
