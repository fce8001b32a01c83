"""Is an architecture derivable from a grammar? (``nas check --strict``)."""

from __future__ import annotations

from nas.dsl.arch import Node
from nas.dsl.grammar import Call, Expr, Grammar, Sym
from nas.exceptions import NasError


class NotDerivableError(NasError, ValueError):
    """The architecture is valid but the grammar cannot produce it."""


def _calls(g: Grammar, sym: str, memo: dict | None = None) -> list[Call]:
    """The calls a symbol can start with, following unit productions (iteratively, so a
    chain of any length is fine), in depth-first order; cached in ``memo``."""
    key = ("calls", sym)
    if memo is not None and key in memo:
        return memo[key]
    out: list[Call] = []
    seen = {sym}
    stack = [iter(g.rules[sym].alts)]
    while stack:
        alt = next(stack[-1], None)
        if alt is None:
            stack.pop()
        elif not isinstance(alt.expr, Sym):
            out.append(alt.expr)
        elif alt.expr.name not in seen:
            seen.add(alt.expr.name)
            stack.append(iter(g.rules[alt.expr.name].alts))
    if memo is not None:
        memo[key] = out
    return out


def _params_match(call: Call, node: Node) -> bool:
    given = dict(node.params)
    return call.op == node.op and all(given.get(n) in vs for n, vs in call.params)


def _aligned(call: Call, node: Node) -> list[tuple[Expr, Node]] | None:
    """Pair each written child with the argument expression it must match."""
    args, kids = call.args, node.children
    if True not in call.repeat:
        return list(zip(args, kids, strict=True)) if len(args) == len(kids) else None
    r = call.repeat.index(True)
    m = len(kids) - (len(args) - 1)
    if m < 1:
        return None
    expanded = [*args[:r], *([args[r]] * m), *args[r + 1 :]]
    return list(zip(expanded, kids, strict=True))


def _children_match(g: Grammar, call: Call, node: Node, memo: dict) -> bool:
    pairs = _aligned(call, node)
    return pairs is not None and all(_expr_matches(g, a, k, memo) for a, k in pairs)


def _expr_matches(g: Grammar, expr: Expr, node: Node, memo: dict) -> bool:
    if isinstance(expr, Sym):
        return derives(g, expr.name, node, memo)
    return _params_match(expr, node) and _children_match(g, expr, node, memo)


def derives(g: Grammar, sym: str, node: Node, memo: dict | None = None) -> bool:
    """Whether rule ``sym`` of ``g`` derives ``node``."""
    memo = {} if memo is None else memo
    key = (sym, node)
    if key not in memo:
        memo[key] = False  # guards against unit-production cycles
        memo[key] = any(_expr_matches(g, c, node, memo) for c in _calls(g, sym, memo))
    return memo[key]


def derive(g: Grammar, root: Node) -> None:
    """Raise NotDerivableError naming the first node the grammar cannot produce."""
    memo: dict = {}
    if derives(g, g.start, root, memo):
        return
    sym, node, where = g.start, root, [root.op]
    while True:
        cands = [c for c in _calls(g, sym, memo) if _params_match(c, node)]
        culprit = None
        for c in cands:
            pairs = _aligned(c, node) or []
            culprit = next(((a, k) for a, k in pairs if not _expr_matches(g, a, k, memo)), None)
            break
        if culprit is None or not isinstance(culprit[0], Sym):
            col = f" (column {node.column})" if node.column else ""
            raise NotDerivableError(
                f"not derivable from {g.path}: at {' > '.join(where)}{col}, "
                f"{_head(node)} is not an alternative of rule {sym!r}."
            )
        sym, node = culprit[0].name, culprit[1]
        where.append(node.op)


def _head(node: Node) -> str:
    text = str(node)
    return text if len(text) < 60 else text[:57] + "..."
