"""Torch modules of the NAS-Bench-201 skeleton (imported only when compiling)."""

from __future__ import annotations

import torch
from torch import nn


class CellModule(nn.Module):
    """node_j = sum_{i<j} edge_ij(node_i); returns node 3.

    ``wiring`` gives each edge's (to, from) nodes, in the order of ``edges``.
    """

    def __init__(self, edges: list[nn.Module], wiring: tuple[tuple[int, int], ...]) -> None:
        super().__init__()
        self.edges = nn.ModuleList(edges)
        self.wiring = wiring

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes = [x]
        for j in (1, 2, 3):
            total = None
            for e, (to, frm) in zip(self.edges, self.wiring, strict=True):
                if to == j:
                    y = e(nodes[frm])
                    total = y if total is None else total + y
            nodes.append(total)
        return nodes[3]


def _relu_conv_bn(c_in: int, c_out: int, k: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.ReLU(), nn.Conv2d(c_in, c_out, k, stride, k // 2, bias=False), nn.BatchNorm2d(c_out)
    )


def stem(c_in: int, c: int) -> nn.Sequential:
    """3x3 conv (no bias) + BatchNorm."""
    return nn.Sequential(nn.Conv2d(c_in, c, 3, padding=1, bias=False), nn.BatchNorm2d(c))


class ResBlock(nn.Module):
    """NB201's residual reduction block (stride 2, channels inp -> planes)."""

    def __init__(self, inp: int, planes: int) -> None:
        super().__init__()
        self.conv_a = _relu_conv_bn(inp, planes, 3, 2)
        self.conv_b = _relu_conv_bn(planes, planes, 3, 1)
        self.down = nn.Sequential(nn.AvgPool2d(2, 2), nn.Conv2d(inp, planes, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_b(self.conv_a(x)) + self.down(x)


class NB201Module(nn.Module):
    """Stem, cells and reduction blocks, then BN + ReLU."""

    def __init__(self, parts: list[nn.Module], c_out: int) -> None:
        super().__init__()
        self.parts = nn.Sequential(*parts)
        self.last = nn.Sequential(nn.BatchNorm2d(c_out), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.last(self.parts(x))
