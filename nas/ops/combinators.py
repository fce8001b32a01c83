"""The einspace module combinators: sequential, branching, routing and computation.

Each wires child modules together; the shape flow is written once in ``flow`` and
reused by checking, sampling, statistics and (through ``build_with``) the compiler.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from nas.exceptions import ShapeError
from nas.ops._registry import ChildBuild, ChildInfer, Combinator, register_op
from nas.ops.spec import Signal

if TYPE_CHECKING:
    from torch import nn


@register_op
class Seq(Combinator):
    """``seq(A, B)``: B applied to the output of A."""

    name = "seq"
    n_slots = 2

    def flow(self, x: Signal, child: ChildInfer) -> Signal:
        return child(1, child(0, x))

    def build_with(self, x: Signal, child: ChildBuild) -> nn.Module:
        from nas.ops import modules

        first, y = child(0, x)
        second, _ = child(1, y)
        return modules.Sequential(first, second)


@register_op
class Branch(Combinator):
    """``branch(F, M..., A)``: F splits the input into k branches, M runs on each, A merges.

    For k <= 2 each branch has its own independently sampled module; for k in {4, 8}
    one module is sampled and repeated (separate weights), as in the einspace reference,
    and written once in the string.
    """

    name = "branch"
    n_slots = 3
    repeat_slot = 1
    independent_upto = 2

    def flow(self, x: Signal, child: ChildInfer) -> Signal:
        parts = child(0, x)
        k = len(parts)
        if k < 2:
            raise ShapeError("the first child of branch must be a branching op (clone, group).")
        outs = []
        # Keep activation budget for the merge (the sampler reads this hint).
        keep = sum(p.numel for p in parts)
        for j, part in enumerate(parts):
            y = child(1, (part,), j, k, reserve=keep)
            if len(y) != 1:
                raise ShapeError("a branch's inner module must return one tensor.")
            outs.append(y[0])
        return child(2, tuple(outs))

    def build_with(self, x: Signal, child: ChildBuild) -> nn.Module:
        from nas.ops import modules

        split, parts = child(0, x)
        k = len(parts)
        inner, outs = [], []
        for j, part in enumerate(parts):
            m, y = child(1, (part,), j, k)
            inner.append(m)
            outs.append(y[0])
        merge, _ = child(2, tuple(outs))
        return modules.Branching(split, inner, merge)


@register_op
class Route(Combinator):
    """``route(P, M, Q)``: P rearranges the input, M computes, Q rearranges back.

    ``col2im`` as Q folds tokens back to the grid that an ``im2col`` as P unfolded, so
    ``route(im2col(...), compute(linear(...)), col2im)`` is a convolution (and is compiled
    to ``nn.Conv2d``).
    """

    name = "route"
    n_slots = 3

    def flow(self, x: Signal, child: ChildInfer) -> Signal:
        pre = child(0, x)
        fold = pre[0].fold if len(pre) == 1 else None
        y = child(1, tuple(s.unfolded() for s in pre))
        if fold is not None and len(y) == 1:
            y = (type(y[0])(y[0].shape, y[0].mode, fold),)
        return tuple(s.unfolded() for s in child(2, y))

    def build_with(self, x: Signal, child: ChildBuild) -> nn.Module:
        from nas.ops import modules

        pre, p = child(0, x)
        fold = p[0].fold if len(p) == 1 else None
        inner, y = child(1, tuple(s.unfolded() for s in p))
        if fold is not None and len(y) == 1:
            y = (type(y[0])(y[0].shape, y[0].mode, fold),)
        post, _ = child(2, y)
        conv = modules.as_conv(pre, inner, post)
        return conv if conv is not None else modules.Sequential(pre, inner, post)


@register_op
class Compute(Combinator):
    """``compute(op)``: a computation module holding one computation op."""

    name = "compute"
    n_slots = 1

    def flow(self, x: Signal, child: ChildInfer) -> Signal:
        return child(0, x)

    def build_with(self, x: Signal, child: ChildBuild) -> nn.Module:
        return child(0, x)[0]
