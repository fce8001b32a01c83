"""The DARTS / NAS-Bench-301 network of a genotype, as the zero-cost table measured it.

A genotype is ``((normal), (reduction))``, each 8 ``(input, op index)`` pairs, two per
intermediate node 2..5; inputs 0 and 1 are the two previous cells' outputs, ops index
:data:`PRIMITIVES`, and a cell outputs its four intermediate nodes concatenated. The
network is DARTS' CIFAR evaluation network: a 3x3 stem to 3C channels with BatchNorm,
``layers`` cells with reductions (channels doubled) at 1/3 and 2/3 of the depth, global
average pooling and a linear classifier; no auxiliary head, no drop path.

With C = 32 and 8 cells, and the BatchNorms inside the cell ops without affine parameters
(as the benchmark's implementation has them), the trainable parameters equal the table's
``params`` column for every one of its 725 cells (tested).
"""

from __future__ import annotations

import ast
from collections.abc import Sequence

import torch
from torch import nn

from nas.exceptions import ConfigurationError

PRIMITIVES = (
    "max_pool_3x3",
    "avg_pool_3x3",
    "skip_connect",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "dil_conv_3x3",
    "dil_conv_5x5",
)
Genotype = tuple[tuple[tuple[int, int], ...], tuple[tuple[int, int], ...]]


def parse_genotype(key: str) -> Genotype:
    """A genotype from the table's key string (ConfigurationError when malformed)."""
    try:
        g = ast.literal_eval(key)
        cells = tuple(tuple((int(i), int(o)) for i, o in cell) for cell in g)
    except (ValueError, TypeError, SyntaxError):
        raise ConfigurationError(f"not a DARTS genotype: {key[:80]!r}.") from None
    if len(cells) != 2 or any(len(c) != 8 for c in cells):
        raise ConfigurationError("a DARTS genotype has 2 cells of 8 (input, op) pairs.")
    for cell in cells:
        for k, (i, o) in enumerate(cell):
            if not (0 <= i < 2 + k // 2 and 0 <= o < len(PRIMITIVES)):
                raise ConfigurationError(f"bad (input, op) pair {(i, o)} at position {k}.")
    return cells  # type: ignore[return-value]


def _relu_conv_bn(c_in: int, c_out: int, affine: bool = True) -> nn.Sequential:
    return nn.Sequential(
        nn.ReLU(), nn.Conv2d(c_in, c_out, 1, bias=False), nn.BatchNorm2d(c_out, affine=affine)
    )


def _dil(c: int, k: int, stride: int, pad: int, dil: int) -> nn.Sequential:
    return nn.Sequential(
        nn.ReLU(),
        nn.Conv2d(c, c, k, stride, pad, dilation=dil, groups=c, bias=False),
        nn.Conv2d(c, c, 1, bias=False),
        nn.BatchNorm2d(c, affine=False),
    )


class FactorizedReduce(nn.Module):
    """Stride-2 1x1 convolutions on two offset grids, concatenated."""

    def __init__(self, c_in: int, c_out: int, affine: bool = True) -> None:
        super().__init__()
        self.relu = nn.ReLU()
        self.c1 = nn.Conv2d(c_in, c_out // 2, 1, 2, bias=False)
        self.c2 = nn.Conv2d(c_in, c_out // 2, 1, 2, bias=False)
        self.bn = nn.BatchNorm2d(c_out, affine=affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(x)
        return self.bn(torch.cat([self.c1(x), self.c2(x[:, :, 1:, 1:])], 1))


def make_op(name: str, c: int, stride: int) -> nn.Module:
    """One cell op on ``c`` channels (BatchNorms without affine parameters)."""
    if name == "max_pool_3x3":
        return nn.MaxPool2d(3, stride, 1)
    if name == "avg_pool_3x3":
        return nn.AvgPool2d(3, stride, 1, count_include_pad=False)
    if name == "skip_connect":
        return nn.Identity() if stride == 1 else FactorizedReduce(c, c, affine=False)
    k = int(name[-1])
    if name.startswith("sep_conv"):
        return nn.Sequential(_dil(c, k, stride, k // 2, 1), _dil(c, k, 1, k // 2, 1))
    return _dil(c, k, stride, k - 1, 2)  # dil_conv: dilation 2


class Cell(nn.Module):
    """A DARTS cell: two preprocessed inputs, four nodes of two ops each, concatenated."""

    def __init__(
        self, pairs: Sequence[tuple[int, int]], c_pp: int, c_p: int, c: int, red: bool,
        red_prev: bool,
    ) -> None:  # fmt: skip
        super().__init__()
        self.pre0 = FactorizedReduce(c_pp, c) if red_prev else _relu_conv_bn(c_pp, c)
        self.pre1 = _relu_conv_bn(c_p, c)
        self.inputs = [i for i, _ in pairs]
        self.ops = nn.ModuleList(
            make_op(PRIMITIVES[o], c, 2 if red and i < 2 else 1) for i, o in pairs
        )

    def forward(self, s0: torch.Tensor, s1: torch.Tensor) -> torch.Tensor:
        states = [self.pre0(s0), self.pre1(s1)]
        for n in range(4):
            a, b = 2 * n, 2 * n + 1
            states.append(
                self.ops[a](states[self.inputs[a]]) + self.ops[b](states[self.inputs[b]])
            )
        return torch.cat(states[2:], 1)


class DartsNetwork(nn.Module):
    """DARTS' CIFAR evaluation network of a genotype (see the module docstring)."""

    def __init__(
        self, genotype: Genotype, c: int = 32, layers: int = 8, num_classes: int = 10
    ) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, 3 * c, 3, padding=1, bias=False), nn.BatchNorm2d(3 * c)
        )
        c_pp, c_p, cur, red_prev = 3 * c, 3 * c, c, False
        cells = []
        for i in range(layers):
            red = i in (layers // 3, 2 * layers // 3)
            cur = cur * 2 if red else cur
            cells.append(Cell(genotype[1] if red else genotype[0], c_pp, c_p, cur, red, red_prev))
            c_pp, c_p, red_prev = c_p, 4 * cur, red
        self.cells = nn.ModuleList(cells)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_p, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1)
        return self.classifier(torch.flatten(self.pool(s1), 1))
