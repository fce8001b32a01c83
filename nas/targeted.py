"""Draw a subtree with a fixed input AND output signal: what mutation needs.

The sampler draws top-down from an input; a mutation must also land on the output of the
node it replaces. :class:`TargetedDraw` builds such a subtree directly instead of drawing
and rejecting: a terminal is kept only if it produces the target; ``compute`` aims its
terminal (a different one when replacing); ``seq`` draws its first module freely and aims
the second at the target, else aims one half and keeps the shape with the other;
``route`` lists the (pre, post) routing pairs that can give the target and tries them
nearest first (the inner module's task: equal signals, one linear or permute away, or
more), aiming the inner module; ``branch`` does the same over (branching, ``add``/``cat``
aggregation) pairs, aiming every branch at its share. Alternatives get shares of a work
allowance, and one-op alternatives a last try outside it. Each op's rule lives in
:data:`TARGETERS`.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from nas.analysis import analyse
from nas.dsl.arch import Node
from nas.dsl.grammar import Call, Expr, Sym
from nas.dsl.vocab import create_node
from nas.exceptions import NasError
from nas.ops.spec import Signal
from nas.registry import Registry
from nas.sampling import Rem, Sampler, _Abort, _Fail

Targeter = Callable[["TargetedDraw", Call, Signal, Signal, int, Node | None], Node]
#: How each combinator aims its children at a target output; the built-in rules live in
#: :mod:`nas.targeters`, loaded on first use. A new combinator registers its own.
TARGETERS: Registry[Targeter] = Registry("targeter")
for _name in ("compute", "seq", "route", "branch"):
    TARGETERS.add_lazy(_name, "nas.targeters")
FREE_WORK = 200  # expansions a free draw inside a mutation may take (bounds its time)
ROUTE_TRIES = 3  # (pre, post) routing pairs a targeted route tries, nearest first
BRANCH_TRIES = 3  # (branching, aggregation) pairs a targeted branch tries, nearest first


def targeter(name: str) -> Callable[[Targeter], Targeter]:
    """Register how a combinator aims its children at a target output."""
    return TARGETERS.register(name)


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
        # Post-routings per (expression, output, fold): depend on shapes only.
        self.cache: dict[tuple, list] = sampler.__dict__.setdefault("_targeted_cache", {})

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
                if leaf.out != y or (avoid is not None and call_node(e) == avoid):
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
            if node != avoid and (self.nest or self._ops(node, x) <= self.rem.ops):
                return node
        if self.cheap:
            raise _Fail
        return self._cheap([e for e, size in tried if size == 1], x, y, dleft, avoid)

    @staticmethod
    def _ops(node: Node, x: Signal) -> int:
        """Ops of ``node`` on ``x``, repeated branches counted per copy (as the budgets do)."""
        try:
            return analyse(node, x).n_ops
        except NasError:
            return 1 << 30

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
        op = create_node(e.op, **e.values())
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
        return TARGETERS.get(e.op)(self, e, x, y, dleft, avoid)

    def free(self, e: Expr, x: Signal, dleft: int, reserve: int = 0) -> tuple[Node, Signal]:
        """An unconstrained draw of ``e`` on ``x`` (the sampler's own distribution).

        ``reserve`` ops of the budget are kept for the aimed part drawn after it.
        """
        r = self.rem
        rem = Rem(r.params, r.act, r.ops - reserve, r.flops)
        self.s._work, limit, self.s.max_work = 0, self.s.max_work, FREE_WORK
        try:
            node, out, _ = self.s._expr(e, x, rem, dleft, "")
        except _Abort:
            raise _Fail from None
        finally:
            self.s.max_work = limit
        return node, out

    def outputs(self, e: Expr, x: Signal) -> list[tuple[Call, float, Signal]]:
        """The terminal calls ``e`` can be at ``x``: (call, probability, output), cached."""
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
                if create_node(c.op, **c.values()).is_combinator:
                    continue
                leaf = self.s._leaf(c, x)
                if leaf is not None:
                    found.append((c, p, leaf.out))
            self._terms[key] = found
        return found

    def weighted_order(self, items: list, weights: list[float]) -> list:
        """``items`` in a random order where heavier ones tend to come first."""
        keys = [self.rng.random() ** (1.0 / w) if w > 0 else 0.0 for w in weights]
        return [it for _, it in sorted(zip(keys, items, strict=True), key=lambda kv: -kv[0])]

    def nearest_first(self, buckets: list[list[tuple[float, tuple]]], n: int) -> list[tuple]:
        """At most ``n`` options, nearest bucket first, weighted random order within one."""
        out: list[tuple] = []
        for bucket in buckets:
            out += self.weighted_order([o for _, o in bucket], [w for w, _ in bucket])
            if len(out) >= n:
                break
        return out[:n]

    def _pick(self, weights: list[float]) -> int:
        r = self.rng.random() * sum(weights)
        for i, w in enumerate(weights):
            r -= w
            if r < 0:
                return i
        return len(weights) - 1


def call_node(call: Call) -> Node:
    """The node a terminal call of the grammar writes."""
    op = create_node(call.op, **call.values())
    return Node(op.name, op.values)


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
