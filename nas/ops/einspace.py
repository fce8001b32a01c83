"""The terminal ops of the einspace search space (Ericsson et al., NeurIPS 2024).

Conventions: ``im`` tensors are (C, H, W), ``col`` tensors are (tokens, features);
dims are numbered 1..3 over the non-batch dimensions, as in the reference.
"""

from __future__ import annotations

from math import prod
from typing import TYPE_CHECKING

from nas.exceptions import ShapeError
from nas.ops._registry import Op, register_op
from nas.ops.spec import Signal, Spec

if TYPE_CHECKING:
    from torch import nn

# Largest branching factor: larger ones are typos or attacks, and budgets stop far earlier.
MAX_BRANCHES = 4096
# Largest kernel, stride or padding of im2col (and multiplier of linear_rel).
MAX_WINDOW = 1024


# ------------------------------------------------------------------------- branching ops
@register_op
class Clone(Op):
    """Copy the input into k branches."""

    name = "clone"
    params = {"k": int}
    domains = {"k": (2, MAX_BRANCHES)}
    is_view = True

    def infer(self, x: Signal) -> Signal:
        if self.k < 2:
            raise ShapeError(f"clone needs k >= 2, got k={self.k}.")
        return (self.single(x, "clone"),) * self.k

    def build(self, x: Signal) -> nn.Module:
        from nas.ops import modules

        return modules.Clone(self.k)


@register_op
class Group(Op):
    """Split dim ``dim`` into k equal chunks, one per branch."""

    name = "group"
    params = {"k": int, "dim": int}
    domains = {"k": (2, MAX_BRANCHES), "dim": (1, 3)}
    is_view = True

    def infer(self, x: Signal) -> Signal:
        s = self.single(x, "group")
        if not 1 <= self.dim <= s.rank:
            raise ShapeError(f"group along dim {self.dim} needs a {self.dim}-d input, got {s}.")
        size = s.shape[self.dim - 1]
        if self.k < 2 or size % self.k:
            raise ShapeError(f"group(k={self.k}) cannot split dim {self.dim} of size {size}.")
        shape = list(s.shape)
        shape[self.dim - 1] = size // self.k
        return (s.with_shape(tuple(shape)),) * self.k

    def build(self, x: Signal) -> nn.Module:
        from nas.ops import modules

        return modules.Group(self.k, self.dim)


# ----------------------------------------------------------------------- aggregation ops
@register_op
class Add(Op):
    """Sum the branches (all shapes equal)."""

    name = "add"

    def infer(self, x: Signal) -> Signal:
        if len(x) < 2:
            raise ShapeError("add needs at least two branches.")
        if any(s.shape != x[0].shape or s.mode != x[0].mode for s in x):
            raise ShapeError(f"add needs equal shapes, got {', '.join(map(str, x))}.")
        return (x[0].unfolded(),)

    def build(self, x: Signal) -> nn.Module:
        from nas.ops import modules

        return modules.Add()


@register_op
class Cat(Op):
    """Concatenate the branches along ``dim`` (all other dims equal)."""

    name = "cat"
    params = {"dim": int}
    domains = {"dim": (1, 3)}

    def infer(self, x: Signal) -> Signal:
        if len(x) < 2:
            raise ShapeError("cat needs at least two branches.")
        first = x[0]
        d = self.dim - 1
        if not 0 <= d < first.rank or any(s.rank != first.rank or s.mode != first.mode for s in x):
            raise ShapeError(f"cat along dim {self.dim} cannot join {', '.join(map(str, x))}.")
        rest = [s.shape[:d] + s.shape[d + 1 :] for s in x]
        if any(r != rest[0] for r in rest):
            raise ShapeError(
                f"cat along dim {self.dim} needs all other dims equal, "
                f"got {', '.join(map(str, x))}."
            )
        shape = list(first.shape)
        shape[d] = sum(s.shape[d] for s in x)
        return (first.with_shape(tuple(shape)),)

    def build(self, x: Signal) -> nn.Module:
        from nas.ops import modules

        return modules.Cat(self.dim)


class _DotBase(Op):
    scaled = False

    def infer(self, x: Signal) -> Signal:
        if len(x) != 2:
            raise ShapeError(f"{self.name} needs exactly two branches, got {len(x)}.")
        a, b = x
        if a.rank != b.rank or a.rank < 2:
            raise ShapeError(f"{self.name} cannot multiply {a} by {b}.")
        if a.shape[:-2] != b.shape[:-2] or a.shape[-1] != b.shape[-2]:
            raise ShapeError(f"{self.name} cannot multiply {a} by {b} (inner dims differ).")
        return (a.with_shape(a.shape[:-1] + (b.shape[-1],)),)

    def flops(self, x: Signal, y: Signal) -> int:
        return x[0].numel * x[1].shape[-1]

    def build(self, x: Signal) -> nn.Module:
        from nas.ops import modules

        return modules.Dot(self.scaled)


@register_op
class Dot(_DotBase):
    """Batched matrix product of the two branches."""

    name = "dot"


@register_op
class ScaledDot(_DotBase):
    """Batched matrix product scaled by 1/sqrt(last dim), as in attention."""

    name = "scaled_dot"
    scaled = True


# --------------------------------------------------------------------------- routing ops
@register_op
class Identity(Op):
    """Pass the input through unchanged (routing and computation)."""

    name = "identity"
    is_view = True

    def infer(self, x: Signal) -> Signal:
        return (self.single(x, "identity"),)

    def build(self, x: Signal) -> nn.Module:
        from torch import nn

        return nn.Identity()


@register_op
class Permute(Op):
    """Reorder the non-batch dims, e.g. ``order=21`` swaps tokens and features."""

    name = "permute"
    params = {"order": int}
    is_view = True

    def check_domains(self) -> None:
        """``order`` must spell a permutation of 1..n (n <= 9), e.g. 21 or 312."""
        digits = str(self.order)
        if (
            self.order < 1
            or len(digits) > 9
            or sorted(digits) != [str(i) for i in range(1, len(digits) + 1)]
        ):
            raise ShapeError(
                f"parameter 'order' of op 'permute' must list the dims 1..n once each "
                f"(e.g. 21, 132), but got {self.order if len(digits) <= 24 else digits[:20]}."
            )

    @property
    def dims(self) -> tuple[int, ...]:
        return tuple(int(c) for c in str(self.order))

    def infer(self, x: Signal) -> Signal:
        s = self.single(x, "permute")
        dims = self.dims
        if sorted(dims) != list(range(1, s.rank + 1)):
            raise ShapeError(f"permute(order={self.order}) does not fit a {s.rank}-d input {s}.")
        return (s.with_shape(tuple(s.shape[d - 1] for d in dims)),)

    def build(self, x: Signal) -> nn.Module:
        from nas.ops import modules

        return modules.Permute(self.dims)


@register_op
class Im2Col(Op):
    """Unfold k x k patches (stride s, padding p) of an image into tokens: im -> col."""

    name = "im2col"
    params = {"k": int, "s": int, "p": int}
    domains = {"k": (1, MAX_WINDOW), "s": (1, MAX_WINDOW), "p": (0, MAX_WINDOW)}

    def out_grid(self, s: Spec) -> tuple[int, int]:
        _, h, w = s.shape
        return (
            (h + 2 * self.p - self.k) // self.s + 1,
            (w + 2 * self.p - self.k) // self.s + 1,
        )

    def infer(self, x: Signal) -> Signal:
        s = self.single(x, "im2col")
        if s.mode != "im" or s.rank != 3:
            raise ShapeError(f"im2col needs an image (C, H, W), got {s}.")
        c, h, w = s.shape
        if h + 2 * self.p < self.k or w + 2 * self.p < self.k:
            raise ShapeError(f"im2col(k={self.k}) needs at least {self.k}x{self.k}, got {s}.")
        gh, gw = self.out_grid(s)
        return (Spec((gh * gw, c * self.k * self.k), "col", (gh, gw)),)

    def build(self, x: Signal) -> nn.Module:
        from nas.ops import modules

        return modules.Im2Col(self.k, self.s, self.p)


@register_op
class Col2Im(Op):
    """Fold tokens back onto the grid of the im2col in the same routing module: col -> im."""

    name = "col2im"
    is_view = True

    def infer(self, x: Signal) -> Signal:
        s = self.single(x, "col2im")
        if s.fold is None:
            raise ShapeError(
                "col2im must close a routing module that opened with im2col "
                "(no fold grid is known here)."
            )
        gh, gw = s.fold
        if s.mode != "col" or s.rank != 2 or s.shape[0] != gh * gw:
            raise ShapeError(f"col2im needs {gh * gw} tokens to fold onto {gh}x{gw}, got {s}.")
        return (Spec((s.shape[1], gh, gw), "im"),)

    def build(self, x: Signal) -> nn.Module:
        from nas.ops import modules

        gh, gw = x[0].fold or (0, 0)
        return modules.Col2Im(gh, gw)


# ----------------------------------------------------------------------- computation ops
@register_op
class Linear(Op):
    """Fully connected layer on the last dim (W in im mode, features in col mode)."""

    name = "linear"
    params = {"out": int}
    domains = {"out": (1, 2**31 - 1)}

    def infer(self, x: Signal) -> Signal:
        s = self.single(x, "linear")
        if self.out < 1:
            raise ShapeError(f"linear needs out >= 1, got {self.out}.")
        return (s.with_shape(s.shape[:-1] + (self.out,)),)

    def num_params(self, x: Signal) -> int:
        return x[0].shape[-1] * self.out + self.out

    def flops(self, x: Signal, y: Signal) -> int:
        return x[0].numel * self.out

    def build(self, x: Signal) -> nn.Module:
        from torch import nn

        return nn.Linear(x[0].shape[-1], self.out)


@register_op
class LinearRel(Op):
    """Linear layer whose width is relative to its input: out = in * mul / div.

    Not in the einspace sampling grammar; the reference's MLP-Mixer seed uses it.
    """

    name = "linear_rel"
    params = {"mul": (int, 1), "div": (int, 1)}
    domains = {"mul": (1, MAX_WINDOW), "div": (1, MAX_WINDOW)}

    def width(self, s: Spec) -> int:
        n = s.shape[-1] * self.mul
        if self.mul < 1 or self.div < 1 or n % self.div:
            raise ShapeError(f"linear_rel(mul={self.mul},div={self.div}) does not fit {s}.")
        return n // self.div

    def infer(self, x: Signal) -> Signal:
        s = self.single(x, "linear_rel")
        return (s.with_shape(s.shape[:-1] + (self.width(s),)),)

    def num_params(self, x: Signal) -> int:
        return (x[0].shape[-1] + 1) * self.width(x[0])

    def flops(self, x: Signal, y: Signal) -> int:
        return x[0].numel * self.width(x[0])

    def build(self, x: Signal) -> nn.Module:
        from torch import nn

        return nn.Linear(x[0].shape[-1], self.width(x[0]))


@register_op
class Norm(Op):
    """BatchNorm2d over channels for images, LayerNorm over features for tokens."""

    name = "norm"

    def infer(self, x: Signal) -> Signal:
        s = self.single(x, "norm")
        if s.rank not in (2, 3):
            raise ShapeError(f"norm needs (C, H, W) or (tokens, features), got {s}.")
        return (s.unfolded(),)

    def num_params(self, x: Signal) -> int:
        s = x[0]
        return 2 * (s.shape[0] if s.rank == 3 else s.shape[-1])

    def build(self, x: Signal) -> nn.Module:
        from torch import nn

        s = x[0]
        return nn.BatchNorm2d(s.shape[0]) if s.rank == 3 else nn.LayerNorm(s.shape[-1])


@register_op
class LeakyRelu(Op):
    """Leaky ReLU (slope 0.01), the einspace nonlinearity."""

    name = "leakyrelu"

    def infer(self, x: Signal) -> Signal:
        return (self.single(x, "leakyrelu").unfolded(),)

    def build(self, x: Signal) -> nn.Module:
        from torch import nn

        return nn.LeakyReLU()


@register_op
class Softmax(Op):
    """Softmax over the last dim."""

    name = "softmax"

    def infer(self, x: Signal) -> Signal:
        return (self.single(x, "softmax").unfolded(),)

    def build(self, x: Signal) -> nn.Module:
        from torch import nn

        return nn.Softmax(dim=-1)


@register_op
class PosEnc(Op):
    """Learnable positional encoding: a parameter of the input's shape, added."""

    name = "pos_enc"

    def infer(self, x: Signal) -> Signal:
        return (self.single(x, "pos_enc").unfolded(),)

    def num_params(self, x: Signal) -> int:
        return prod(x[0].shape)

    def build(self, x: Signal) -> nn.Module:
        from nas.ops import modules

        return modules.PosEnc(x[0].shape)
