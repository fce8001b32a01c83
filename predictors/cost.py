"""Parameters and FLOPs of a canonical graph, the figures ``nas rank`` shows and the ranker reads.

* **Parameters**: the elements of every weight counted once, however many nodes read it (a
  weight reused by unrolled steps is one weight). Weights are float constants that come
  from initializers (see :func:`nas.predictors.graph.raw_graph`). A weight read only as
  statistics (BatchNorm's running mean and variance, what ``Sub`` subtracts or ``Div``
  divides by) is a buffer in torch, not a parameter, and is not counted.
* **FLOPs**: multiply-accumulates per sample of the ops that do matrix products, from
  their shapes after shape inference (the unit ``bench/zoo.py`` and torch's FLOP counter,
  halved, use). A symbolic dim (the batch, or one the caller did not size) counts as 1.
  :data:`MACS` holds one function per op; ops not in it cost nothing.
"""

from __future__ import annotations

import string
from collections.abc import Callable, Sequence
from typing import Any

from nas.predictors.graph import CanonicalGraph, Const, GNode, Ref

Shape = Sequence[Any] | None
# Input slots that hold statistics (buffers), not parameters: BatchNorm's running mean and
# variance, and what an input normalisation subtracts or divides by.
_STATS = {"BatchNormalization": (3, 4), "Sub": (1,), "Div": (1,)}


def numel(shape: Shape) -> int:
    """Elements of a shape, a symbolic or unknown dimension counting as 1."""
    if shape is None:
        return 0
    n = 1
    for d in shape:
        n *= d if isinstance(d, int) and d > 0 else 1
    return n


def _in_shape(g: CanonicalGraph, x: Ref | Const | None) -> Shape:
    if isinstance(x, Const):
        return x.shape
    if isinstance(x, Ref):
        shapes = g.nodes[x.node].shapes
        return shapes[x.port] if x.port < len(shapes) else None
    return None


def _dim(shape: Shape, i: int) -> int:
    if not shape or len(shape) < abs(i) + (i >= 0):
        return 1
    d = shape[i]
    return d if isinstance(d, int) and d > 0 else 1


def _conv(g: CanonicalGraph, n: GNode) -> int:
    """Each output element: Cin/group x kernel MACs (the weight's shape without dim 0)."""
    return numel(n.shapes[0]) * numel(tuple(_in_shape(g, n.inputs[1]) or ())[1:])


def _conv_t(g: CanonicalGraph, n: GNode) -> int:
    """Each input element: Cout/group x kernel MACs."""
    return numel(_in_shape(g, n.inputs[0])) * numel(tuple(_in_shape(g, n.inputs[1]) or ())[1:])


def _matmul(g: CanonicalGraph, n: GNode) -> int:
    """Each output element: K MACs, K the last dim of the first operand."""
    return numel(n.shapes[0]) * _dim(_in_shape(g, n.inputs[0]), -1)


def _linear(g: CanonicalGraph, n: GNode) -> int:
    """``Linear(x, W[out,in])``: each output element, ``in`` MACs."""
    return numel(n.shapes[0]) * _dim(_in_shape(g, n.inputs[1]), 1)


def _gemm(g: CanonicalGraph, n: GNode) -> int:
    a = _in_shape(g, n.inputs[0])
    k = _dim(a, 0) if dict(n.attrs).get("transA", 0) else _dim(a, -1)
    return numel(n.shapes[0]) * k


def _einsum(g: CanonicalGraph, n: GNode) -> int:
    """The product of the sizes of every index letter (one contraction, no broadcasting)."""
    eq = str(dict(n.attrs).get("equation", "")).replace(" ", "").split("->")[0]
    sizes: dict[str, int] = {}
    for term, x in zip(eq.split(","), n.inputs, strict=False):
        shape = _in_shape(g, x) or ()
        letters = [c for c in term if c in string.ascii_letters]
        if "..." in term:  # broadcast dims: counted through the output's size below
            continue
        for c, d in zip(letters, shape, strict=False):
            sizes[c] = max(sizes.get(c, 1), d if isinstance(d, int) and d > 0 else 1)
    total = 1
    for v in sizes.values():
        total *= v
    return total


def _rnn(gates: int) -> Callable[[CanonicalGraph, GNode], int]:
    """ONNX RNN/GRU/LSTM: per step and direction, gates x H x (input + H) MACs."""

    def macs(g: CanonicalGraph, n: GNode) -> int:
        x = _in_shape(g, n.inputs[0])  # [seq, batch, input]
        w = _in_shape(g, n.inputs[1])  # [dirs, gates*H, input]
        h = _dim(w, 1) // gates
        return _dim(x, 0) * _dim(x, 1) * _dim(w, 0) * gates * h * (_dim(x, 2) + h)

    return macs


MACS: dict[str, Callable[[CanonicalGraph, GNode], int]] = {
    "Conv": _conv,
    "ConvTranspose": _conv_t,
    "MatMul": _matmul,
    "Linear": _linear,
    "Gemm": _gemm,
    "Einsum": _einsum,
    "RNN": _rnn(1),
    "GRU": _rnn(3),
    "LSTM": _rnn(4),
}


def graph_params(g: CanonicalGraph) -> int:
    """Elements of the graph's weights, each weight counted once (see the module docstring)."""
    sizes: dict[str, int] = {}
    learnt: set[str] = set()
    for node in g.nodes:
        stats = _STATS.get(node.op, ())
        for slot, c in enumerate(node.inputs):
            if not isinstance(c, Const) or c.weight is None or not c.shape:
                continue
            if not c.dtype.startswith(("float", "bfloat")):
                continue
            sizes[c.weight] = numel(c.shape)
            if slot not in stats:
                learnt.add(c.weight)
    return sum(v for k, v in sizes.items() if k in learnt)


def graph_flops(g: CanonicalGraph) -> int:
    """Multiply-accumulates per sample of the graph's matrix-product ops."""
    total = 0
    for node in g.nodes:
        fn = MACS.get(node.op)
        if fn is not None and len(node.inputs) >= (1 if node.op == "Einsum" else 2):
            total += fn(g, node)
    return total


def graph_cost(g: CanonicalGraph) -> tuple[int, int]:
    """(parameters, FLOPs) of a canonical graph."""
    return graph_params(g), graph_flops(g)
