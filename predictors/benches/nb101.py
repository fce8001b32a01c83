"""NAS-Bench-101 (Ying et al., ICML 2019): cell specs and the network, in torch.

A cell is a DAG of at most 7 vertices given by an upper-triangular adjacency matrix and one
op per vertex: the input, up to 5 interior ops (3x3 or 1x1 conv-BN-ReLU, 3x3 max pool,
stride 1) and the output. Vertices off every input-to-output path are pruned first.
Inside a cell an interior vertex adds its inputs (interior inputs cut to its channel
count, the cell input through a 1x1 conv-BN-ReLU projection); the output concatenates the
interior vertices that feed it and adds a projection of the cell input if that is an edge
too. Channels: the output's are split as evenly as possible among the vertices feeding it
(the first ones get the remainder); any other vertex takes the largest count of the
vertices it feeds.

The network: a 3x3 conv-BN-ReLU stem of 128 channels, 3 stacks of 3 cells with a 2x2 max
pool (stride 2) and doubled channels between stacks, global average pooling and a dense
layer to 10 classes. Its trainable parameter count equals NB101's ``params``.

Keys of the shipped 500-cell table: 49 adjacency bits (row-major) then 7 op codes,
0 = input, 1 = output, 2 = maxpool3x3, 3 = conv1x1-bn-relu, 4 = conv3x3-bn-relu.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from nas.exceptions import ConfigurationError

#: Op codes of the benchmark table keys.
OP_CODES: dict[int, str] = {
    0: "input",
    1: "output",
    2: "maxpool3x3",
    3: "conv1x1-bn-relu",
    4: "conv3x3-bn-relu",
}
STEM_CHANNELS = 128
STACKS = 3
CELLS_PER_STACK = 3


@dataclass(frozen=True)
class CellSpec:
    """A pruned NB101 cell: adjacency (vertices x vertices, upper-triangular) and ops."""

    matrix: tuple[tuple[int, ...], ...]
    ops: tuple[str, ...]

    @property
    def size(self) -> int:
        """Number of vertices, input and output included."""
        return len(self.ops)


def parse_key(key: str | Sequence[int]) -> CellSpec:
    """The pruned cell of a table key ``(49 adjacency bits, 7 op codes)``.

    Raises:
        ConfigurationError: not 56 integers, a non-upper-triangular matrix, an unknown op
            code, or no path from the input to the output.
    """
    try:
        vals = [int(v) for v in key.strip("() ").split(",")] if isinstance(key, str) else key
        vals = [int(v) for v in vals]
    except (TypeError, ValueError):
        raise ConfigurationError(f"an NB101 key must be 56 integers, got {key!r}.") from None
    if len(vals) != 56:
        raise ConfigurationError(f"an NB101 key must be 56 integers, got {len(vals)}.")
    ops = vals[49:]
    if any(v not in OP_CODES for v in ops) or ops[0] != 0 or ops[-1] != 1:
        raise ConfigurationError(f"bad NB101 op codes {ops}: input 0, output 1, then 2..4.")
    return make_spec(np.array(vals[:49]).reshape(7, 7), [OP_CODES[v] for v in ops])


def make_spec(matrix: np.ndarray, ops: Sequence[str]) -> CellSpec:
    """Prune vertices that are not on an input-to-output path (NB101's rule)."""
    m = np.asarray(matrix, dtype=np.int64)
    n = len(ops)
    if m.shape != (n, n) or np.any(np.tril(m)) or not set(m.ravel()) <= {0, 1}:
        raise ConfigurationError("an NB101 matrix must be square, 0/1 and upper-triangular.")
    fwd, bwd = {0}, {n - 1}
    for v in range(1, n):
        if any(m[u, v] and u in fwd for u in range(v)):
            fwd.add(v)
    for v in range(n - 2, -1, -1):
        if any(m[v, w] and w in bwd for w in range(v + 1, n)):
            bwd.add(v)
    keep = sorted(fwd & bwd)
    if 0 not in keep or n - 1 not in keep:
        raise ConfigurationError("the NB101 cell has no path from its input to its output.")
    sub = m[np.ix_(keep, keep)]
    return CellSpec(tuple(tuple(int(x) for x in r) for r in sub), tuple(ops[k] for k in keep))


def vertex_channels(spec: CellSpec, c_in: int, c_out: int) -> list[int]:
    """Channels of every vertex of a cell taking ``c_in`` and giving ``c_out`` channels."""
    m = np.array(spec.matrix)
    n = spec.size
    ch = [0] * n
    ch[0], ch[-1] = c_in, c_out
    if n == 2:
        return ch
    feeding = [v for v in range(1, n - 1) if m[v, n - 1]]
    share, extra = divmod(c_out, len(feeding))
    for k, v in enumerate(feeding):
        ch[v] = share + (1 if k < extra else 0)
    for v in range(n - 3, 0, -1):
        if not m[v, n - 1]:
            ch[v] = max(ch[d] for d in range(v + 1, n - 1) if m[v, d])
    return ch


class ConvBnRelu(nn.Module):
    """Conv (no bias, same padding), BatchNorm, ReLU."""

    def __init__(self, c_in: int, c_out: int, k: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, k, padding=k // 2, bias=False)
        self.bn = nn.BatchNorm2d(c_out)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn(self.conv(x)))


def _op(name: str, c: int) -> nn.Module:
    if name == "maxpool3x3":
        return nn.MaxPool2d(3, stride=1, padding=1)
    return ConvBnRelu(c, c, {"conv1x1-bn-relu": 1, "conv3x3-bn-relu": 3}[name])


class Cell(nn.Module):
    """One NB101 cell (see the module docstring)."""

    def __init__(self, spec: CellSpec, c_in: int, c_out: int) -> None:
        super().__init__()
        self.matrix = [list(r) for r in spec.matrix]
        self.n = spec.size
        self.ch = vertex_channels(spec, c_in, c_out)
        m, n, ch = self.matrix, self.n, self.ch
        self.proj = nn.ModuleDict(
            {str(t): ConvBnRelu(c_in, ch[t], 1) for t in range(1, n) if m[0][t]}
        )
        if n == 2:  # input straight to output: the projection is the whole cell
            self.proj = nn.ModuleDict({str(n - 1): ConvBnRelu(c_in, c_out, 1)})
        self.ops = nn.ModuleDict({str(t): _op(spec.ops[t], ch[t]) for t in range(1, n - 1)})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m, n, ch = self.matrix, self.n, self.ch
        vals = [x]
        for t in range(1, n - 1):
            ins = [vals[s][:, : ch[t]] for s in range(1, t) if m[s][t]]
            if m[0][t]:
                ins.append(self.proj[str(t)](x))
            total = ins[0]
            for y in ins[1:]:
                total = total + y
            vals.append(self.ops[str(t)](total))
        outs = [vals[t] for t in range(1, n - 1) if m[t][n - 1]]
        if not outs:
            return self.proj[str(n - 1)](x)
        y = torch.cat(outs, 1) if len(outs) > 1 else outs[0]
        return y + self.proj[str(n - 1)](x) if m[0][n - 1] else y


class NB101Network(nn.Module):
    """Stem, 3 stacks of 3 cells with max-pool downsampling, pooling and a dense layer."""

    def __init__(self, spec: CellSpec, num_classes: int = 10, c: int = STEM_CHANNELS) -> None:
        super().__init__()
        layers: list[nn.Module] = [ConvBnRelu(3, c, 3)]
        c_in = c
        for stack in range(STACKS):
            if stack:
                layers.append(nn.MaxPool2d(2, 2))
                c *= 2
            for _ in range(CELLS_PER_STACK):
                layers.append(Cell(spec, c_in, c))
                c_in = c
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(c, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x).mean(dim=(2, 3)))


def count_params(spec: CellSpec, num_classes: int = 10) -> int:
    """Trainable parameters of the network (built on the meta device: no memory)."""
    from nas.compile import count_params as trainable

    with torch.device("meta"):
        net = NB101Network(spec, num_classes)
    return trainable(net)
