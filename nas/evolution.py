"""Evolution moves on derivation trees: shape-preserving mutation and crossover.

Both work on grammar positions: a written node's symbol is known from its parent's
production (``slot_symbols``), its input and output signals from the analysis, so a
redrawn or swapped subtree always fits where it goes and the child always compiles.
"""

from __future__ import annotations

import random

from nas.analysis import Analysis, NodeInfo
from nas.dsl.arch import Node
from nas.dsl.grammar import Call, Sym
from nas.dsl.vocab import create_node
from nas.exceptions import NasError, SamplingError
from nas.ops.spec import Signal
from nas.sampling import Rem, Sampler, _Abort, _Fail
from nas.space import SearchSpace

__all__ = ["crossover", "mutate", "slot_symbols"]

POSITIONS = 4  # distinct positions a mutation tries before it inserts a module instead
GROWTH = 3  # ops a redrawn subtree may add beyond twice the old one's (see _growth_cap)


def slot_symbols(space: SearchSpace, arch: Node) -> dict[tuple[int, ...], str]:
    """The grammar symbol each written position was (or could have been) derived from.

    Positions whose slot the grammar writes as an inline op, not a symbol, are omitted.
    """
    templates = space.grammar.templates()
    out: dict[tuple[int, ...], str] = {(): space.grammar.start}
    for path, node in arch.walk():
        if not node.children or path not in out:
            continue
        t = templates.get(node.op)
        if t is None:
            continue
        op = create_node(node.op, **dict(node.params))
        for i in range(len(node.children)):
            slot = op.child_slot(len(node.children), i) if op.is_combinator else i
            if slot < len(t.args) and isinstance(t.args[slot], Sym):
                out[(*path, i)] = t.args[slot].name
    return out


def _positions(space: SearchSpace, arch: Node) -> tuple[Analysis, list[tuple[str, NodeInfo]]]:
    a = space.check(arch)
    syms = slot_symbols(space, arch)
    return a, [(syms[p], info) for p, info in a.nodes.items() if p in syms]


def mutate(
    space: SearchSpace,
    arch: Node,
    rng: random.Random,
    tries: int = 20,
    sampler: Sampler | None = None,
    stats: dict[str, int] | None = None,
    positions: int = POSITIONS,
) -> Node:
    """A valid child of ``arch`` with one subtree redrawn under its exact input and output.

    Up to ``positions`` distinct positions are drawn uniformly; at each, a new subtree is
    drawn from its grammar symbol aimed at the position's input and output signals
    (:mod:`nas.targeted`), so it fits by construction and differs from the old one. Where a
    terminal has no different terminal with that output (e.g. the only ``linear`` of that
    width), its enclosing module is redrawn instead. The first position that yields a
    child wins. Only when none does, a new shape-keeping module is inserted next to the
    first position's module (``seq(old, new)``). ``stats`` (optional) counts ``draws``
    (positions tried), ``climbs``, ``budget`` rejections and ``inserts``.

    Raises:
        SamplingError: no child was found in ``tries`` rounds (not seen on einspace).
    """
    from nas.targeted import TargetedDraw, insert

    sampler = sampler or Sampler(space, seed=rng.randrange(2**31))
    sampler.rng = rng
    a, where_all = _positions(space, arch)
    if not where_all:
        raise SamplingError("the architecture has no position the grammar can redraw.")
    syms = {info.path: sym for sym, info in where_all}
    stats = stats if stats is not None else {}
    b = sampler.budget
    for _ in range(tries):
        picked = rng.sample(where_all, min(positions, len(where_all)))
        for _, chosen in picked:
            child = _redraw(space, arch, a, syms, chosen.path, sampler, rng, stats)
            if child is not None:
                return child
        # Nothing different fits at these positions: insert a new module next to the first.
        path = picked[0][1].path
        where = next(
            (
                p
                for p in (path[:c] for c in range(len(path), -1, -1))
                if p in syms and _has_seq(space, syms[p])
            ),
            None,
        )
        if where is None:  # a grammar without seq (e.g. NB201): draw other positions
            continue
        info = a.nodes[where]
        draw = TargetedDraw(sampler, rng, sampler.root_budget())
        try:
            node = insert(
                draw, syms[where], info.inp, info.out, b.max_depth - info.module_depth, info.node
            )
            child = arch.replace(where, node)
            space.check(child)
        except (_Fail, _Abort, NasError):
            continue
        stats["inserts"] = stats.get("inserts", 0) + 1
        return child
    raise SamplingError(f"no shape-preserving mutation found in {tries} rounds of positions.")


def _redraw(
    space: SearchSpace,
    arch: Node,
    a: Analysis,
    syms: dict[tuple[int, ...], str],
    path: tuple[int, ...],
    sampler: Sampler,
    rng: random.Random,
    stats: dict[str, int],
) -> Node | None:
    """``arch`` with the subtree at ``path`` (or, for a terminal, its module) redrawn, or None."""
    from nas.targeted import TargetedDraw

    stats["draws"] = stats.get("draws", 0) + 1
    b = sampler.budget
    tried = 0
    for cut in range(len(path), -1, -1):
        where = path[:cut]
        if where not in syms or (tried and not _has_seq(space, syms[where])):
            continue
        if tried == 2 or (tried and _has_seq(space, syms[path])):
            break
        tried += 1
        info = a.nodes[where]
        most = min(b.max_ops - a.n_ops + info.n_ops, _growth_cap(info.n_ops))
        rem = Rem(
            b.max_params - a.params + info.params,
            b.max_activation - a.activation + info.activation,
            most,
            b.max_flops - a.flops + info.flops,
        )
        draw = TargetedDraw(sampler, rng, rem)
        try:
            node = draw.symbol(
                syms[where], info.inp, info.out, b.max_depth - info.module_depth, info.node
            )
        except (_Fail, _Abort):
            stats["climbs"] = stats.get("climbs", 0) + 1
            continue
        child = arch.replace(where, node)
        try:
            space.check(child)
        except NasError:
            stats["budget"] = stats.get("budget", 0) + 1
            continue
        return child
    return None


def _growth_cap(n_ops: int) -> int:
    """Most ops a redrawn subtree may have in place of one of ``n_ops``: local steps.

    Without it, redraws follow the grammar's heavy-tailed size distribution and networks
    grow along a lineage; with it, a subtree at most doubles (plus a few ops) per step.
    """
    return 2 * n_ops + GROWTH


def _has_seq(space: SearchSpace, name: str) -> bool:
    """Whether rule ``name`` derives ``seq`` directly or through one symbol."""
    rules = space.grammar.rules
    for alt in rules[name].alts:
        e = alt.expr
        if isinstance(e, Call) and e.op == "seq":
            return True
        if isinstance(e, Sym) and any(
            isinstance(a.expr, Call) and a.expr.op == "seq" for a in rules[e.name].alts
        ):
            return True
    return False


def crossover(space: SearchSpace, a: Node, b: Node, rng: random.Random) -> Node | None:
    """``a`` with one subtree replaced by a compatible subtree of ``b``, or None.

    Compatible = derived from the same symbol, same input and same output signal, and
    different; the child must fit the budgets.
    """
    _, pa = _positions(space, a)
    _, pb = _positions(space, b)
    index: dict[tuple[str, Signal, Signal], list[NodeInfo]] = {}
    for sym, info in pb:
        index.setdefault((sym, info.inp, info.out), []).append(info)
    pairs = [
        (ia, ib)
        for sym, ia in pa
        if ia.path
        for ib in index.get((sym, ia.inp, ia.out), [])
        if ib.node != ia.node
    ]
    rng.shuffle(pairs)
    for ia, ib in pairs[:50]:
        child = a.replace(ia.path, ib.node)
        try:
            space.check(child)
        except NasError:
            continue
        return child
    return None
