"""NB201 networks as canonical graphs without ONNX export (what makes the full bench fast).

Exporting an NB201 network with the TorchScript exporter and reading it back takes about
0.25 s; the whole space would take most of an hour on 2 cores. :func:`nb201_raw_graph`
writes the normalised graph that export + :func:`~nas.predictors.normalise.normalise`
produce straight from the cell's six edge ops, in about 5 ms, mirroring what the exporter
does to our torch modules (``nas.ops.modules_nb201``):

* BatchNorm after a conv is folded into it (a bias ``W[C]``); the final BatchNorm, which
  follows an Add, stays;
* ``skip_connect`` emits nothing, ``none`` is ``Mul(x, 0)``, a node sums its incoming edges
  left to right in NB201's edge order;
* common subexpressions are merged (the exporter runs CSE): one ``Relu``, ``Mul(x, 0)`` or
  ``AveragePool`` per distinct input, and one ``Add`` per distinct ordered input pair.

:func:`check_against_export` compares the result with the exporter's on a few cells; the
tests do so on many.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from nas.predictors.graph import CanonicalGraph, canonicalise
from nas.predictors.normalise import RawGraph, RawNode

from nas.ops.nb201 import EDGES

_CONV = {"auto_pad": "NOTSET", "dilations": (1, 1), "group": 1}
_POOL = {"auto_pad": "NOTSET", "ceil_mode": 0, "dilations": (1, 1)}


class _Builder:
    """Accumulates named nodes, constants and shapes of one RawGraph."""

    def __init__(self) -> None:
        self.nodes: list[RawNode] = []
        self.consts: dict[str, np.ndarray] = {}
        self.shapes: dict[str, Any] = {}
        self.memo: dict[tuple[Any, ...], str] = {}

    def node(self, op: str, inputs: list[str], shape: tuple[Any, ...], **attrs: Any) -> str:
        name = f"t{len(self.nodes)}"
        self.nodes.append(RawNode(op, inputs, [name], attrs))
        self.shapes[name] = shape
        return name

    def shared(self, op: str, inputs: list[str], shape: tuple[Any, ...], **attrs: Any) -> str:
        """A parameter-free node, merged with an identical earlier one (CSE)."""
        key = (op, tuple(inputs), tuple(sorted(attrs.items())))
        if key not in self.memo:
            self.memo[key] = self.node(op, inputs, shape, **attrs)
        return self.memo[key]

    def const(self, shape: tuple[int, ...], value: float | None = None) -> str:
        name = f"c{len(self.consts)}"
        if value is None:  # a weight: only shape and dtype matter, values never read
            self.consts[name] = np.broadcast_to(np.zeros((), np.float32), shape)
        else:
            self.consts[name] = np.asarray(value, np.float32)
        self.shapes[name] = shape
        return name

    def conv(
        self, x: str, c_out: int, k: int, stride: int = 1, bias: bool = True
    ) -> tuple[str, tuple[Any, ...]]:
        n, c_in, h, w = self.shapes[x]
        p = k // 2
        ho, wo = (h + 2 * p - k) // stride + 1, (w + 2 * p - k) // stride + 1
        inputs = [x, self.const((c_out, c_in, k, k))] + ([self.const((c_out,))] if bias else [])
        shape = (n, c_out, ho, wo)
        attrs = dict(_CONV, kernel_shape=(k, k), pads=(p,) * 4, strides=(stride, stride))
        return self.node("Conv", inputs, shape, **attrs), shape

    def relu(self, x: str) -> str:
        return self.shared("Relu", [x], self.shapes[x])


def _edge(b: _Builder, op: str, x: str) -> str:
    """The output tensor of one NB201 edge op applied to ``x``."""
    shape = b.shapes[x]
    if op == "skip_connect":
        return x
    if op == "none":
        return b.shared("Mul", [x, b.memo.setdefault(("zero",), b.const((), 0.0))], shape)
    if op == "avg_pool_3x3":
        attrs = dict(_POOL, count_include_pad=0, kernel_shape=(3, 3), pads=(1,) * 4)
        return b.shared("AveragePool", [x], shape, strides=(1, 1), **attrs)
    k = {"nor_conv_1x1": 1, "nor_conv_3x3": 3}[op]
    return b.conv(b.relu(x), shape[1], k)[0]


def _cell(b: _Builder, ops: Sequence[str], x: str) -> str:
    nodes = [x]
    for j in (1, 2, 3):
        total: str | None = None
        for op, (to, frm) in zip(ops, EDGES, strict=True):
            if to == j:
                y = _edge(b, op, nodes[frm])
                total = y if total is None else b.shared("Add", [total, y], b.shapes[y])
        assert total is not None
        nodes.append(total)
    return nodes[3]


def _resblock(b: _Builder, x: str, planes: int) -> str:
    a, _ = b.conv(b.relu(x), planes, 3, stride=2)
    a, shape = b.conv(b.relu(a), planes, 3)
    n, c, h, w = b.shapes[x]
    attrs = dict(_POOL, count_include_pad=1, kernel_shape=(2, 2), pads=(0,) * 4)
    pooled = b.node("AveragePool", [x], (n, c, h // 2, w // 2), strides=(2, 2), **attrs)
    down, _ = b.conv(pooled, planes, 1, bias=False)
    return b.node("Add", [a, down], shape)


def nb201_raw_graph(
    ops: Sequence[str], c: int = 16, n: int = 5, num_classes: int = 10, hw: int = 32
) -> RawGraph:
    """The normalised graph of the exported NB201 network whose cell has ``ops`` (NB201
    string order), stem ``c`` channels, ``n`` cells per stage, on 3 x hw x hw inputs."""
    b = _Builder()
    x = "input"
    b.shapes[x] = ("batch", 3, hw, hw)
    x, _ = b.conv(x, c, 3)
    for stage in range(3):
        if stage:
            x = _resblock(b, x, 2 * b.shapes[x][1])
        for _ in range(n):
            b.memo = {k: v for k, v in b.memo.items() if k == ("zero",)}  # new tensors
            x = _cell(b, ops, x)
    shape = b.shapes[x]
    cw = shape[1]
    stats = [b.const((cw,)) for _ in range(4)]
    x = b.node(
        "BatchNormalization",
        [x, *stats],
        shape,
        epsilon=float(np.float32(1e-5)),
        momentum=float(np.float32(0.9)),
        training_mode=0,
    )
    x = b.node("Relu", [x], shape)
    x = b.node("GlobalAveragePool", [x], (shape[0], cw, 1, 1))
    x = b.node("Flatten", [x], (shape[0], cw), axis=1)
    fc = [b.const((num_classes, cw)), b.const((num_classes,))]
    b.nodes.append(RawNode("Linear", [x, *fc], ["logits"], {}))
    b.shapes["logits"] = (shape[0], num_classes)
    return RawGraph(
        nodes=b.nodes,
        consts=b.consts,
        inputs=["input"],
        outputs=["logits"],
        shapes=b.shapes,
        dtypes={},
        opset=17,
    )


def nb201_graph(arch: str, c: int = 16, n: int = 5, num_classes: int = 10) -> CanonicalGraph:
    """The canonical graph of an NB201 cell string's network (no export)."""
    from nas.nb201 import cell_ops, from_nb201

    ops = cell_ops(from_nb201(arch))
    return canonicalise(nb201_raw_graph(ops, c, n, num_classes), f"<nb201 {arch}>")


def exported_graph(arch: str, folder: str) -> CanonicalGraph:
    """The canonical graph of an NB201 cell string's network via ONNX export (slow path)."""
    from pathlib import Path

    from nas.predictors.graph import load_graph

    from nas.compile import compile_arch
    from nas.export import export_onnx
    from nas.nb201 import from_nb201

    path = Path(folder) / "nb201-check.onnx"
    export_onnx(compile_arch(from_nb201(arch), (3, 32, 32), 10), (3, 32, 32), path)
    try:
        return load_graph(path)
    finally:
        path.unlink()
