"""Draw a subtree with a fixed input AND output signal: what mutation needs.

The sampler draws top-down from an input; a mutation must also land on the output of the
node it replaces. :class:`TargetedDraw` builds such a subtree directly instead of drawing
and rejecting: a terminal is kept only if it produces the target; ``seq`` draws its first
module freely and aims the second at the target; ``route`` picks its pre-routing, then a
post-routing that can produce the target, and aims the inner module at what that
post-routing needs; ``branch`` aims every branch at the share of the target its
aggregation (``add`` or ``cat``) needs. Each op's rule lives in :data:`TARGETERS`.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable

from nas.dsl.arch import Node, canonical
from nas.dsl.grammar import Call, Expr, Sym
from nas.ops import create_op
from nas.ops.spec import Signal, Spec
from nas.sampling import Rem, Sampler, _Abort, _Fail

Targeter = Callable[["TargetedDraw", Call, Signal, Signal, int, Node | None], Node]
TARGETERS: dict[str, Targeter] = {}
FREE_WORK = 200  # expansions a free draw inside a mutation may take (bounds its time)
PRE_TRIES = 4  # pre-routing ops a targeted route tries


def targeter(name: str) -> Callable[[Targeter], Targeter]:
    """Register how a combinator aims its children at a target output."""

    def wrap(fn: Targeter) -> Targeter:
        TARGETERS[name] = fn
        return fn

    return wrap


class TargetedDraw:
    """Random subtrees from a grammar symbol mapping ``x`` exactly to ``y``.

    Args:
        sampler: supplies the grammar, the feasibility tables and free draws.
        rng: random generator of the draw.
        rem: budget for the free draws inside (the caller checks the whole child).
        max_work: expansions allowed before the draw gives up (raises ``_Fail``).
    """

    def __init__(
        self,
        sampler: Sampler,
        rng: random.Random,
        rem: Rem,
        max_work: int = 60,
        max_nest: int = 3,
    ) -> None:
        self.s, self.rng, self.rem, self.max_work, self.work = sampler, rng, rem, max_work, 0
        self.max_nest, self.nest, self.cap, self.cheap = max_nest, 0, max_work, False
        cache = sampler.__dict__.setdefault("_terminal_cache", {})
        self._terms: dict[tuple[int, Signal], list[tuple[Call, float, Signal]]] = cache

    def options(self, name: str, x: Signal) -> list[tuple]:
        """The sampler's feasibility table of rule ``name`` at ``x`` (cached there)."""
        key = (name, x)
        table = self.s._table.get(key)
        if table is None:
            table = self.s._table[key] = self.s._options(name, x)
        return table

    def aim(self, e: Expr, x: Signal, y: Signal, dleft: int, avoid: Node | None = None) -> Node:
        """A child aimed at ``y``: one level deeper of targeted nesting (bounded)."""
        if self.nest >= self.max_nest or self.work >= self.cap:
            raise _Fail
        self.nest += 1
        try:
            return self.expr(e, x, y, dleft, avoid)
        finally:
            self.nest -= 1

    def symbol(self, name: str, x: Signal, y: Signal, dleft: int, avoid: Node | None = None):
        """A node derived from rule ``name`` with input ``x`` and output ``y`` (not ``avoid``).

        Alternatives are tried in the grammar's random order, each with a share of the work
        left; when all fail, the one-op alternatives (e.g. ``compute(norm)``) are tried
        once more with a small extra allowance, so a one-op solution is rarely missed.
        """
        hard = (3 if self.cheap else 2) * self.max_work
        if dleft < 0 or self.work >= self.cap + 4 or self.work >= hard:
            raise _Fail
        self.work += 1
        cands = []
        for e, p, d, size, leaf in self.options(name, x):
            if d > dleft or (self.cheap and size > 1):
                continue
            if leaf is not None:
                if leaf.out != y or (avoid is not None and _leaf_node(e) == avoid):
                    continue
            elif isinstance(e, Call) and e.op not in TARGETERS:
                continue
            cands.append((e, p, size))
        tried = []
        while cands:
            e, _, size = cands.pop(self._pick([p for _, p, _ in cands]))
            tried.append((e, size))
            saved = self.cap
            share = self.work + (saved - self.work) // (len(cands) + 1)
            self.cap = min(saved, share) if cands else max(saved, self.work + 4)
            try:
                node = self.expr(e, x, y, dleft, avoid)
            except _Fail:
                continue
            finally:
                self.cap = saved
            if node != avoid:
                return node
        if self.cheap:
            raise _Fail
        return self._cheap([e for e, size in tried if size == 1], x, y, dleft, avoid)

    def _cheap(self, cands: list[Expr], x: Signal, y: Signal, dleft: int, avoid: Node | None):
        """The first of ``cands`` (one-op alternatives) that maps ``x`` to ``y``, not ``avoid``."""
        saved = self.cap
        self.cheap, self.cap = True, self.work + 8
        try:
            for e in cands:
                try:
                    node = self.expr(e, x, y, dleft, avoid)
                except _Fail:
                    continue
                if node != avoid:
                    return node
            raise _Fail
        finally:
            self.cheap, self.cap = False, saved

    def expr(self, e: Expr, x: Signal, y: Signal, dleft: int, avoid: Node | None = None) -> Node:
        """A node for grammar expression ``e`` mapping ``x`` to ``y`` (not ``avoid``)."""
        if isinstance(e, Sym):
            return self.symbol(e.name, x, y, dleft, avoid)
        op = create_op(e.op, **e.values())
        if not op.is_combinator:
            leaf = self.s._leaf(e, x)
            if leaf is None or leaf.out != y:
                raise _Fail
            return Node(op.name, op.values)
        if e.op not in TARGETERS or dleft < 1:
            raise _Fail
        self.work += 1
        if self.work > self.cap:
            raise _Fail
        if avoid is not None and avoid.op != e.op:
            avoid = None
        return TARGETERS[e.op](self, e, x, y, dleft, avoid)

    def free(self, e: Expr, x: Signal, dleft: int) -> tuple[Node, Signal]:
        """An unconstrained draw of ``e`` on ``x`` (the sampler's own distribution)."""
        self.s._work, limit, self.s.max_work = 0, self.s.max_work, FREE_WORK
        try:
            node, out, _ = self.s._expr(e, x, self.rem, dleft, "")
        except _Abort:
            raise _Fail from None
        finally:
            self.s.max_work = limit
        return node, out

    def terminals(self, e: Expr, x: Signal) -> list[tuple[Call, Signal]]:
        """The terminal calls ``e`` can be at ``x`` with their outputs, in random order."""
        key = (id(e), x)
        found = self._terms.get(key)
        if found is None:
            calls: list[tuple[Call, float]] = []
            if isinstance(e, Sym):
                calls = [(a, p) for a, p, *_ in self.options(e.name, x) if isinstance(a, Call)]
            elif isinstance(e, Call):
                calls = [(e, 1.0)]
            found = []
            for c, p in calls:
                if create_op(c.op, **c.values()).is_combinator:
                    continue
                leaf = self.s._leaf(c, x)
                if leaf is not None:
                    found.append((c, p, leaf.out))
            self._terms[key] = found
        rest, out = list(found), []
        while rest:
            c, _, y = rest.pop(self._pick([p for _, p, _ in rest]))
            out.append((c, y))
        return out

    def _pick(self, weights: list[float]) -> int:
        r = self.rng.random() * sum(weights)
        for i, w in enumerate(weights):
            r -= w
            if r < 0:
                return i
        return len(weights) - 1


def _leaf_node(e: Expr) -> Node | None:
    if not isinstance(e, Call):
        return None
    op = create_op(e.op, **e.values())
    return Node(op.name, op.values)


def _node(call: Call) -> Node:
    op = create_op(call.op, **call.values())
    return Node(op.name, op.values)


@targeter("compute")
def _compute(
    t: TargetedDraw, call: Call, x: Signal, y: Signal, dleft: int, avoid: Node | None
) -> Node:
    """The computation aimed at ``y`` (and, when replacing one, at a different one)."""
    inner = avoid.children[0] if avoid is not None else None
    return Node("compute", (), (t.expr(call.args[0], x, y, dleft - 1, inner),))


@targeter("seq")
def _seq(
    t: TargetedDraw, call: Call, x: Signal, y: Signal, dleft: int, avoid: Node | None
) -> Node:
    """First module drawn freely, the second aimed at ``y``; else one aimed, one shape-keeping.

    The shape-keeping half (``x -> x`` before or ``y -> y`` after the aimed one) always
    exists in einspace, so a ``seq`` reaches every output its aimed half reaches.
    """
    a, b = call.args
    try:
        first, z = t.free(a, x, dleft - 1)
        return Node("seq", (), (first, t.aim(b, z, y, dleft - 1)))
    except _Fail:
        pass
    if t.rng.random() < 0.5:
        return Node("seq", (), (t.aim(a, x, y, dleft - 1), t.aim(b, y, y, dleft - 1)))
    return Node("seq", (), (t.aim(a, x, x, dleft - 1), t.aim(b, x, y, dleft - 1)))


def _preimages(y: Spec, fold: tuple[int, int] | None) -> list[Spec]:
    """Signals a post-routing op could turn into ``y``: permutations, and the col2im input."""
    out = {Spec(tuple(y.shape[i] for i in perm), y.mode) for perm in _perms(y.rank)}
    if fold is not None and y.mode == "im" and y.rank == 3 and tuple(y.shape[1:]) == fold:
        out.add(Spec((fold[0] * fold[1], y.shape[0]), "col"))
    return sorted(out, key=str)


def _perms(rank: int) -> list[tuple[int, ...]]:
    return list(itertools.permutations(range(rank)))


@targeter("route")
def _route(
    t: TargetedDraw, call: Call, x: Signal, y: Signal, dleft: int, avoid: Node | None
) -> Node:
    """Pre-routing at random; a post-routing that can give ``y``; the inner module aimed."""
    pre_e, inner_e, post_e = call.args
    if len(y) != 1:
        raise _Fail
    for pre, p in t.terminals(pre_e, x)[:PRE_TRIES]:
        fold = p[0].fold if len(p) == 1 else None
        inner_in = tuple(s.unfolded() for s in p)
        options = []
        for z in _preimages(y[0], fold):
            zf = Spec(z.shape, z.mode, fold) if fold is not None else z
            for post, q in t.terminals(post_e, (zf,)):
                if tuple(s.unfolded() for s in q) == y:
                    options.append((post, z))
        t.rng.shuffle(options)
        for post, z in options[:2]:
            try:
                inner = t.aim(inner_e, inner_in, (z,), dleft - 1)
            except _Fail:
                continue
            return Node("route", (), (_node(pre), inner, _node(post)))
    raise _Fail


def _shares(agg: Call, y: Spec, k: int) -> list[Spec] | None:
    """What each of ``k`` branches must produce for aggregation ``agg`` to give ``y``."""
    if agg.op == "add":
        return [y] * k
    if agg.op == "cat":
        d = int(agg.values()["dim"]) - 1
        if d >= y.rank or y.shape[d] % k:
            return None
        shape = list(y.shape)
        shape[d] //= k
        return [Spec(tuple(shape), y.mode)] * k
    return None


@targeter("branch")
def _branch(
    t: TargetedDraw, call: Call, x: Signal, y: Signal, dleft: int, avoid: Node | None
) -> Node:
    """Branching op at random; an add/cat aggregation that gives ``y``; each branch aimed."""
    fn_e, inner_e, agg_e = call.args
    if len(y) != 1:
        raise _Fail
    op = create_op("branch")
    for fn, parts in t.terminals(fn_e, x)[:3]:
        k = len(parts)
        aggs = []
        for agg_call, _ in _agg_calls(t, agg_e):
            shares = _shares(agg_call, y[0], k)
            if shares is None:
                continue
            leaf = t.s._leaf(agg_call, tuple(shares))
            if leaf is not None and leaf.out == y:
                aggs.append((agg_call, shares))
        for agg_call, shares in aggs[:2]:
            try:
                if k > op.independent_upto:
                    if len(set(parts)) != 1:
                        continue
                    inner = [t.aim(inner_e, (parts[0],), (shares[0],), dleft - 1)]
                else:
                    inner = [
                        t.aim(inner_e, (part,), (share,), dleft - 1)
                        for part, share in zip(parts, shares, strict=True)
                    ]
            except _Fail:
                continue
            return canonical(Node("branch", (), (_node(fn), *inner, _node(agg_call))))
    raise _Fail


def _agg_calls(t: TargetedDraw, e: Expr) -> list[tuple[Call, float]]:
    """Aggregation calls of ``e`` in random order (no input needed to list them)."""
    if isinstance(e, Sym):
        calls = [(a.expr, a.prob) for a in t.s.g.rules[e.name].alts if isinstance(a.expr, Call)]
    else:
        calls = [(e, 1.0)]
    t.rng.shuffle(calls)
    return calls


def insert(t: TargetedDraw, name: str, x: Signal, y: Signal, dleft: int, old: Node) -> Node:
    """``seq(old, B)`` or ``seq(B, old)`` with a new ``B`` keeping the shape: the last resort.

    Valid whenever rule ``name`` derives ``seq`` (einspace's network and module do), since a
    shape-keeping computation (identity, leakyrelu, norm, ...) always exists.
    """
    seqs = [e for e, *_ in t.options(name, x) if isinstance(e, Call) and e.op == "seq"]
    seqs += [
        c
        for e, *_ in t.options(name, x)
        if isinstance(e, Sym)
        for c, *_ in t.options(e.name, x)
        if isinstance(c, Call) and c.op == "seq"
    ]
    if not seqs or dleft < 2:
        raise _Fail
    a, b = seqs[0].args
    t.nest, t.work, t.cap = t.max_nest - 1, 0, t.max_work
    if t.rng.random() < 0.5:
        return Node("seq", (), (old, t.aim(b, y, y, dleft - 1)))
    return Node("seq", (), (t.aim(a, x, x, dleft - 1), old))
