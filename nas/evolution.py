"""Evolution moves on derivation trees: shape-preserving mutation and crossover.

Both work on grammar positions: a written node's symbol is known from its parent's
production (``slot_symbols``), its input and output signals from the analysis, so a
redrawn or swapped subtree always fits where it goes and the child always compiles.
"""

from __future__ import annotations

import random

from nas.analysis import NodeInfo
from nas.dsl.arch import Node
from nas.dsl.grammar import Sym
from nas.exceptions import NasError, SamplingError
from nas.ops import create_op
from nas.ops.spec import Signal
from nas.sampling import Rem, Sampler, _Abort, _Fail
from nas.space import SearchSpace

__all__ = ["crossover", "mutate", "slot_symbols"]


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
        op = create_op(node.op, **dict(node.params))
        for i in range(len(node.children)):
            slot = op.child_slot(len(node.children), i) if op.is_combinator else i
            if slot < len(t.args) and isinstance(t.args[slot], Sym):
                out[(*path, i)] = t.args[slot].name
    return out


def _positions(space: SearchSpace, arch: Node) -> tuple[object, list[tuple[str, NodeInfo]]]:
    a = space.check(arch)
    syms = slot_symbols(space, arch)
    return a, [(syms[p], info) for p, info in a.nodes.items() if p in syms]


def mutate(
    space: SearchSpace,
    arch: Node,
    rng: random.Random,
    tries: int = 200,
    sampler: Sampler | None = None,
) -> Node:
    """A valid child of ``arch`` with one subtree redrawn so its output shape is unchanged.

    Positions are chosen uniformly; the new subtree is drawn from the position's grammar
    symbol with the position's input signal, must produce the same output signal and must
    differ from the old one, and the child must fit the budgets.

    Raises:
        SamplingError: no such child was found in ``tries`` draws.
    """
    sampler = sampler or Sampler(space, seed=rng.randrange(2**31))
    sampler.rng = rng
    a, positions = _positions(space, arch)
    if not positions:
        raise SamplingError("the architecture has no position the grammar can redraw.")
    b = sampler.budget
    for _ in range(tries):
        sym, info = rng.choice(positions)
        rem = Rem(
            b.max_params - a.params + info.params,
            b.max_activation - a.activation + info.activation,
            b.max_ops - a.n_ops + info.n_ops,
            b.max_flops - a.flops + info.flops,
        )
        try:
            node, out, _ = sampler.draw(sym, info.inp, rem, b.max_depth - info.module_depth)
        except (_Fail, _Abort):
            continue
        if out != info.out or node == info.node:
            continue
        child = arch.replace(info.path, node)
        try:
            space.check(child)
        except NasError:
            continue
        return child
    raise SamplingError(f"no shape-preserving mutation found in {tries} draws.")


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
