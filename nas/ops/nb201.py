"""NAS-Bench-201 (Dong & Yang, ICLR 2020): the cell ops, the cell and the macro skeleton.

The skeleton is a 3x3 stem conv (c channels), three stages of n cells at c/2c/4c channels
joined by residual reduction blocks, then BN+ReLU; the task head (global pooling and a
classifier) is added by the compiler, as for every space.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from nas.exceptions import ShapeError
from nas.ops._registry import ChildBuild, ChildInfer, Combinator, Op, register_op
from nas.ops.spec import Signal, Spec

if TYPE_CHECKING:
    from torch import nn

# The cell's edges in NB201's string order: (to, from) for |a~0|+|b~0|c~1|+|d~0|e~1|f~2|.
EDGES: tuple[tuple[int, int], ...] = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))
EDGE_OPS: tuple[str, ...] = (
    "none",
    "skip_connect",
    "nor_conv_1x1",
    "nor_conv_3x3",
    "avg_pool_3x3",
)


def _image(x: Signal, name: str) -> Spec:
    s = Op.single(x, name)
    if s.mode != "im" or s.rank != 3:
        raise ShapeError(f"{name} needs an image (C, H, W), got {s}.")
    return s


class _EdgeOp(Op):
    """An NB201 edge op: shape-preserving on images."""

    def infer(self, x: Signal) -> Signal:
        return (_image(x, self.name),)


@register_op
class NoneOp(_EdgeOp):
    """NB201 ``none``: the zero op (the edge is absent)."""

    name = "none"

    def build(self, x: Signal) -> nn.Module:
        from nas.ops import modules

        return modules.Zero()


@register_op
class SkipConnect(_EdgeOp):
    """NB201 ``skip_connect``: identity."""

    name = "skip_connect"
    is_view = True

    def build(self, x: Signal) -> nn.Module:
        from torch import nn

        return nn.Identity()


class _NorConv(_EdgeOp):
    k = 1

    def num_params(self, x: Signal) -> int:
        c = x[0].shape[0]
        return c * c * self.k * self.k + 2 * c

    def flops(self, x: Signal, y: Signal) -> int:
        return x[0].numel * x[0].shape[0] * self.k * self.k

    def build(self, x: Signal) -> nn.Module:
        from torch import nn

        c = x[0].shape[0]
        return nn.Sequential(
            nn.ReLU(), nn.Conv2d(c, c, self.k, 1, self.k // 2, bias=False), nn.BatchNorm2d(c)
        )


@register_op
class NorConv1x1(_NorConv):
    """NB201 ``nor_conv_1x1``: ReLU, 1x1 conv, BatchNorm."""

    name = "nor_conv_1x1"
    k = 1


@register_op
class NorConv3x3(_NorConv):
    """NB201 ``nor_conv_3x3``: ReLU, 3x3 conv, BatchNorm."""

    name = "nor_conv_3x3"
    k = 3


@register_op
class AvgPool3x3(_EdgeOp):
    """NB201 ``avg_pool_3x3``: 3x3 average pooling, stride 1, padding excluded."""

    name = "avg_pool_3x3"

    def build(self, x: Signal) -> nn.Module:
        from torch import nn

        return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)


@register_op
class Cell(Combinator):
    """The NB201 cell: 4 nodes, node j = sum of edge ops applied to nodes i < j."""

    name = "cell"
    n_slots = 6

    def flow(self, x: Signal, child: ChildInfer) -> Signal:
        s = _image(x, "cell")
        for slot in range(6):
            y = child(slot, (s,))
            if y != (s,):
                raise ShapeError(f"every NB201 edge op must keep the shape {s}, got {y}.")
        return (s,)

    def build_with(self, x: Signal, child: ChildBuild) -> nn.Module:
        from nas.ops.modules_nb201 import CellModule

        return CellModule([child(slot, x)[0] for slot in range(6)], EDGES)


def _reduce(s: Spec) -> Spec:
    c, h, w = s.shape
    if h % 2 or w % 2:
        raise ShapeError(f"an NB201 reduction block needs even height and width, got {s}.")
    return Spec((2 * c, h // 2, w // 2), "im")


@register_op
class NB201(Combinator):
    """The NB201 macro skeleton around one cell (the same cell in every position)."""

    name = "nb201"
    params = {"c": (int, 16), "n": (int, 5)}
    # NB201 itself uses c=16, n=5; the budgets stop far below these bounds.
    domains = {"c": (1, 4096), "n": (1, 1000)}
    n_slots = 1

    def flow(self, x: Signal, child: ChildInfer) -> Signal:
        s = _image(x, "nb201")
        s = Spec((self.c, *s.shape[1:]), "im")
        for stage in range(3):
            if stage:
                s = _reduce(s)
            for _ in range(self.n):
                s = child(0, (s,))[0]
        return (s,)

    def num_params(self, x: Signal) -> int:
        c_in, c = x[0].shape[0], self.c
        total = c_in * c * 9 + 2 * c  # stem conv (no bias) + BN
        for inp in (c, 2 * c):
            planes = 2 * inp
            total += inp * planes * 9 + 2 * planes  # conv_a + BN
            total += planes * planes * 9 + 2 * planes  # conv_b + BN
            total += inp * planes  # 1x1 shortcut after average pooling
        return total + 2 * 4 * c  # last BN

    def activation(self, x: Signal, y: Signal) -> int:
        _, h, w = x[0].shape
        return 2 * self.c * h * w  # stem output and its BN

    def flops(self, x: Signal, y: Signal) -> int:
        c_in, h, w = x[0].shape
        total = c_in * self.c * 9 * h * w  # stem
        for inp in (self.c, 2 * self.c):
            h, w = h // 2, w // 2
            planes = 2 * inp
            total += (inp * planes * 9 + planes * planes * 9 + inp * planes) * h * w
        return total

    def build_with(self, x: Signal, child: ChildBuild) -> nn.Module:
        from nas.ops.modules_nb201 import NB201Module, ResBlock, stem

        s = Spec((self.c, *x[0].shape[1:]), "im")
        parts = [stem(x[0].shape[0], self.c)]
        for stage in range(3):
            if stage:
                parts.append(ResBlock(s.shape[0], 2 * s.shape[0]))
                s = _reduce(s)
            for _ in range(self.n):
                parts.append(child(0, (s,))[0])
        return NB201Module(parts, 4 * self.c)
