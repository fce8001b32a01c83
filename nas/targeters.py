"""The built-in targeting rules of :mod:`nas.targeted`: how ``compute``, ``seq``, ``route``
and ``branch`` aim their children at a required output signal.

``compute`` aims its terminal (a different one when replacing); ``seq`` draws its first
module freely and aims the second, else aims one half and keeps the shape with the other;
``route`` and ``branch`` list the (pre, post) routings or (branching, aggregation) pairs that
can give the target and try them nearest first, aiming the inner module or every branch.
"""

from __future__ import annotations

import itertools

from nas.dsl.arch import Node, canonical
from nas.dsl.grammar import Call, Expr, Sym
from nas.dsl.vocab import create_node
from nas.exceptions import NasError
from nas.ops.spec import Signal, Spec
from nas.sampling import _Fail
from nas.targeted import BRANCH_TRIES, ROUTE_TRIES, TargetedDraw, call_node, targeter


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
        first, z = t.free(a, x, dleft - 1, reserve=t.s._minima(b)[1])
        return Node("seq", (), (first, t.aim(b, z, y, dleft - 1)))
    except _Fail:
        pass
    if t.rng.random() < 0.5:
        return Node("seq", (), (t.aim(a, x, y, dleft - 1), t.aim(b, y, y, dleft - 1)))
    return Node("seq", (), (t.aim(a, x, x, dleft - 1), t.aim(b, x, y, dleft - 1)))


def _preimages(y: Spec, fold: tuple[int, int] | None) -> list[Spec]:
    """Signals a post-routing op could turn into ``y``: permutations, and the col2im input."""
    out = {
        Spec(tuple(y.shape[i] for i in perm), y.mode)
        for perm in itertools.permutations(range(y.rank))
    }
    if fold is not None and y.mode == "im" and y.rank == 3 and tuple(y.shape[1:]) == fold:
        out.add(Spec((fold[0] * fold[1], y.shape[0]), "col"))
    return sorted(out, key=str)


def _distance(a: Signal, b: Signal) -> int:
    """How far a module must take ``a`` to reach ``b``: 0 equal, 1 one linear or permute, 2 more.

    A cheap guess of reachability that orders the routings and branchings tried.
    """
    if a == b:
        return 0
    if len(a) == len(b) == 1:
        u, v = a[0], b[0]
        alike = u.mode == v.mode and len(u.shape) == len(v.shape)
        if alike and (u.shape[:-1] == v.shape[:-1] or sorted(u.shape) == sorted(v.shape)):
            return 1
    return 2


def _buckets(options: list[tuple[int, float, tuple]]) -> list[list[tuple[float, tuple]]]:
    """(distance, weight, option) triples grouped by distance, nearest first."""
    out: dict[int, list[tuple[float, tuple]]] = {}
    for d, w, o in options:
        out.setdefault(d, []).append((w, o))
    return [out[d] for d in sorted(out)]


def _route_options(t: TargetedDraw, call: Call, x: Signal, y: Signal) -> list:
    """Routings (pre, inner input, post, inner output) from ``x`` to ``y``, by distance."""
    pre_e, _, post_e = call.args
    options = []
    for pre, pw, p in t.outputs(pre_e, x):
        fold = p[0].fold if len(p) == 1 else None
        inner_in = tuple(s.unfolded() for s in p)
        for post, qw, z in _posts(t, post_e, y, fold):
            options.append((_distance(inner_in, z), pw * qw, (pre, inner_in, post, z)))
    return _buckets(options)


def _posts(t: TargetedDraw, post_e: Expr, y: Signal, fold: tuple[int, int] | None) -> list:
    """(post-routing, probability, its input) pairs giving ``y`` after a ``fold`` (cached).

    Each candidate input is checked with the op's shape rule directly, not through the
    sampler's per-signal tables, which would keep one entry per candidate input.
    """
    key = ("post", id(post_e), y, fold)
    found = t.cache.get(key)
    if found is None:
        found = []
        for post, qw in _calls(t, post_e):
            op = create_node(post.op, **post.values())
            for z in _preimages(y[0], fold):
                zf = Spec(z.shape, z.mode, fold) if fold is not None else z
                try:
                    q = op.infer((zf,))
                except NasError:
                    continue
                if tuple(s.unfolded() for s in q) == y:
                    found.append((post, qw, (z,)))
        t.cache[key] = found
    return found


@targeter("route")
def _route(
    t: TargetedDraw, call: Call, x: Signal, y: Signal, dleft: int, avoid: Node | None
) -> Node:
    """A (pre, post) routing pair that can give ``y``, nearest first; the inner module aimed."""
    if len(y) != 1:
        raise _Fail
    for pre, inner_in, post, z in t.nearest_first(_route_options(t, call, x, y), ROUTE_TRIES):
        ends = (call_node(pre), call_node(post))
        same = avoid is not None and ends == (avoid.children[0], avoid.children[2])
        try:
            inner = t.aim(
                call.args[1], inner_in, z, dleft - 1, avoid.children[1] if same else None
            )
        except _Fail:
            continue
        return Node("route", (), (ends[0], inner, ends[1]))
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


def _branch_options(t: TargetedDraw, call: Call, x: Signal, y: Signal) -> list:
    """Branchings (fn, parts, aggregation, shares) of ``call`` from ``x`` to ``y``, by distance."""
    fn_e, _, agg_e = call.args
    op = create_node("branch")
    aggs = _calls(t, agg_e)
    options = []
    for fn, fw, parts in t.outputs(fn_e, x):
        k = len(parts)
        if k > op.independent_upto and len(set(parts)) != 1:
            continue
        for agg_call, aw in aggs:
            shares = _shares(agg_call, y[0], k)
            if shares is None:
                continue
            leaf = t.s._leaf(agg_call, tuple(shares))
            if leaf is not None and leaf.out == y:
                d = max(_distance((a,), (b,)) for a, b in zip(parts, shares, strict=True))
                options.append((d, fw * aw, (fn, parts, agg_call, shares)))
    return _buckets(options)


@targeter("branch")
def _branch(
    t: TargetedDraw, call: Call, x: Signal, y: Signal, dleft: int, avoid: Node | None
) -> Node:
    """A (branching, add/cat) pair that can give ``y``, nearest first; each branch aimed."""
    if len(y) != 1:
        raise _Fail
    inner_e, repeated = call.args[1], create_node("branch").independent_upto
    for fn, parts, agg, shares in t.nearest_first(_branch_options(t, call, x, y), BRANCH_TRIES):
        try:
            if len(parts) > repeated:
                inner = [t.aim(inner_e, (parts[0],), (shares[0],), dleft - 1)]
            else:
                inner = [
                    t.aim(inner_e, (part,), (share,), dleft - 1)
                    for part, share in zip(parts, shares, strict=True)
                ]
        except _Fail:
            continue
        return canonical(Node("branch", (), (call_node(fn), *inner, call_node(agg))))
    raise _Fail


def _calls(t: TargetedDraw, e: Expr) -> list[tuple[Call, float]]:
    """The terminal calls ``e`` stands for, with their probabilities (no input needed)."""
    if isinstance(e, Sym):
        return [(a.expr, a.prob) for a in t.s.g.rules[e.name].alts if isinstance(a.expr, Call)]
    return [(e, 1.0)]
