"""Torch modules the ops build. Imported only when a model is compiled."""

from __future__ import annotations

import math

import torch
from torch import nn


class Sequential(nn.Module):
    """Apply children in order (kept distinct from nn.Sequential for tuple signals)."""

    def __init__(self, *mods: nn.Module) -> None:
        super().__init__()
        self.mods = nn.ModuleList(mods)

    def forward(self, x):
        for m in self.mods:
            x = m(x)
        return x


class Branching(nn.Module):
    """Split, run one module per branch, merge."""

    def __init__(self, split: nn.Module, inner: list[nn.Module], merge: nn.Module) -> None:
        super().__init__()
        self.split = split
        self.inner = nn.ModuleList(inner)
        self.merge = merge

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = self.split(x)
        return self.merge([m(p) for m, p in zip(self.inner, parts, strict=True)])


class Clone(nn.Module):
    def __init__(self, k: int) -> None:
        super().__init__()
        self.k = k

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return (x,) * self.k


class Group(nn.Module):
    def __init__(self, k: int, dim: int) -> None:
        super().__init__()
        self.k, self.dim = k, dim

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return torch.chunk(x, self.k, dim=self.dim)


class Add(nn.Module):
    def forward(self, xs: list[torch.Tensor]) -> torch.Tensor:
        out = xs[0]
        for t in xs[1:]:
            out = out + t
        return out


class Cat(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, xs: list[torch.Tensor]) -> torch.Tensor:
        return torch.cat(list(xs), dim=self.dim)


class Dot(nn.Module):
    def __init__(self, scaled: bool) -> None:
        super().__init__()
        self.scaled = scaled

    def forward(self, xs: list[torch.Tensor]) -> torch.Tensor:
        a, b = xs
        out = torch.matmul(a, b)
        return out / math.sqrt(a.shape[-1]) if self.scaled else out


class Permute(nn.Module):
    def __init__(self, order: tuple[int, ...]) -> None:
        super().__init__()
        self.order = (0, *order)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.permute(self.order)


class Im2Col(nn.Module):
    """(B, C, H, W) -> (B, H'W', C*k*k): the patches of a k x k convolution as tokens."""

    def __init__(self, k: int, s: int, p: int) -> None:
        super().__init__()
        self.unfold = nn.Unfold(k, stride=s, padding=p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.unfold(x).transpose(1, 2)


class Col2Im(nn.Module):
    """(B, H'W', D) -> (B, D, H', W'): tokens back onto the grid their im2col came from."""

    def __init__(self, h: int, w: int) -> None:
        super().__init__()
        self.h, self.w = h, w

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.transpose(1, 2).reshape(x.shape[0], -1, self.h, self.w)


class PosEnc(nn.Module):
    """Learnable positional encoding added to the input."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        super().__init__()
        self.pe = nn.Parameter(torch.randn(1, *shape) * 0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.pe


class Zero(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * 0.0


def as_conv(pre: nn.Module, inner: nn.Module, post: nn.Module) -> nn.Module | None:
    """``im2col -> linear -> col2im`` as the equivalent (faster) ``nn.Conv2d``, else None."""
    if not (isinstance(pre, Im2Col) and isinstance(inner, nn.Linear) and isinstance(post, Col2Im)):
        return None
    u = pre.unfold
    k = u.kernel_size if isinstance(u.kernel_size, int) else u.kernel_size[0]
    c_in = inner.in_features // (k * k)
    return nn.Conv2d(c_in, inner.out_features, k, stride=u.stride, padding=u.padding)
