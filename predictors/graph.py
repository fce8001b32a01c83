"""Canonical graph of any ONNX file: normalised nodes in a canonical topological order.

:func:`load_graph` reads a file safely (size limit, external data only from the file's own
folder), runs shape inference, applies the rewrite rules of :mod:`nas.predictors.normalise`
(and, to dynamo exports, those of :mod:`nas.predictors.dynamo`) and orders the nodes
canonically, so isomorphic graphs give the same node list whatever order the file stores
them in:

* Graph inputs become ``Input`` nodes and graph outputs ``Output`` nodes.
* Each node gets a local label (op, attributes, constant inputs, output shapes), then a
  forward label (local label plus its producers' forward labels, Weisfeiler-Lehman style;
  exact on a DAG) and a final label (forward label plus its consumers' final labels).
  Activation inputs of commutative ops (Add, Mul, Sum, Max, Min, ...) are sorted by label.
* Kahn's algorithm then places nodes: the sole consumer of the node just placed comes next
  if it is ready (so chains stay together); otherwise the ready node with the smallest
  (final label, canonical positions of its producers); only nodes the labels cannot tell
  apart fall back to their stored position.
"""

from __future__ import annotations

import contextlib
import hashlib
import heapq
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from nas.predictors.dynamo import normalise_exported
from nas.predictors.normalise import FOLD_LIMIT, RawGraph, RawNode, Shape, attr_value
from nas.predictors.onnxcheck import DEFAULT_MAX_NODES, check_size, file_objection, sort_nodes, vet
from nas.predictors.onnxfile import (
    DEFAULT_MAX_BYTES,
    as_file_error,
    check_external_data,
    check_tensors,
    checked_path,
    file_error,
    read_bounded,
    time_limit,
)
from nas.predictors.probe import DEFAULT_PROBE_BYTES, fill_shapes
from onnx import numpy_helper

from nas.exceptions import OnnxFileError

COMMUTATIVE = {"Add", "Mul", "Sum", "Max", "Min", "Mean", "And", "Or", "Xor", "Equal"}


@dataclass(frozen=True)
class Const:
    """A constant input: shape, dtype name and, when small, its values."""

    shape: tuple[int, ...]
    dtype: str
    values: tuple[Any, ...] | None
    # The storage of a weight (two uses of one initializer share it); None for constants
    # that are not weights. Not part of the graph's identity.
    weight: str | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Ref:
    """An activation input: output ``port`` of the node at canonical position ``node``."""

    node: int
    port: int = 0


@dataclass(frozen=True)
class GNode:
    """A canonical node; ``inputs`` hold a Ref, a Const or None (empty optional input)."""

    op: str
    attrs: tuple[tuple[str, Any], ...]
    inputs: tuple[Ref | Const | None, ...]
    shapes: tuple[Shape, ...]


@dataclass
class CanonicalGraph:
    """Nodes in canonical order and the (src, dst) edges between them."""

    path: str
    nodes: list[GNode]
    edges: list[tuple[int, int]]
    batch: str | None
    opset: int
    notes: list[str] = field(default_factory=list)  # what could not be computed, and why


def _err(path: Path, reason: str) -> OnnxFileError:
    return file_error(path, reason)


def read_model(
    path: str | Path,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_nodes: int = DEFAULT_MAX_NODES,
    checked: list[str] | None = None,
) -> onnx.ModelProto:
    """Parse an ONNX file read safely (see :mod:`nas.predictors.onnxfile`); external data
    must lie in the file's folder and, with the file, fit ``max_bytes``; over ``max_nodes``
    it is refused unparsed. With a ``checked`` list, what the ONNX checker rejects is refused
    and notes on objections ranking ignores go to the list (:mod:`~.onnxcheck`)."""
    p = Path(path)
    data = read_bounded(p, max_bytes)
    check_size(data, p, max_nodes)
    objection = file_objection(data, p) if checked is not None else ""
    try:
        model = onnx.load_model_from_string(data)
    except Exception:  # protobuf raises DecodeError and friends
        raise _err(p, "not an ONNX model (the protobuf does not parse; truncated?).") from None
    if not model.HasField("graph") or not model.graph.node or model.ir_version <= 0:
        raise _err(p, "not an ONNX model (no graph, no nodes or no IR version).")
    if not model.opset_import:  # also what a file cut just before its last field looks like
        raise _err(p, "not a complete ONNX model (no opset import; truncated?).")
    check_tensors(model, p)
    check_external_data(model, p, len(data), max_bytes)
    if checked is not None:
        vet(model, p, objection, checked)
    try:
        onnx.external_data_helper.load_external_data_for_model(
            model, str(checked_path(p).resolve().parent)
        )
    except Exception as e:  # offsets/lengths out of range, unreadable files
        raise _err(p, f"cannot load external data: {type(e).__name__}.") from None
    return model


def _shape(vi: onnx.ValueInfoProto) -> Shape:
    t = vi.type.tensor_type
    if not t.HasField("shape"):
        return None
    return tuple(
        d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in t.shape.dim
    )


def _const_array(t: onnx.TensorProto) -> np.ndarray:
    """Values of small tensors; a cheap zero-stride stand-in (shape and dtype) for big ones."""
    n = int(np.prod(t.dims)) if len(t.dims) else 1
    if n <= FOLD_LIMIT:
        return numpy_helper.to_array(t)
    dtype = onnx.helper.tensor_dtype_to_np_dtype(t.data_type)
    return np.broadcast_to(np.zeros((), dtype), tuple(t.dims))


def _bind_dims(graph: onnx.GraphProto, dims: Mapping[str, int]) -> None:
    """Give symbolic input dims named in ``dims`` their size; inference redoes the rest."""
    for vi in [*graph.input, *graph.output]:
        for d in vi.type.tensor_type.shape.dim:
            if d.HasField("dim_param") and d.dim_param in dims:
                d.dim_value = int(dims[d.dim_param])
    del graph.value_info[:]


def _weights(gp: onnx.GraphProto, consts: dict[str, np.ndarray]) -> dict[str, str]:
    """Weight storage of every initializer, and of ``Identity`` copies of one.

    The TorchScript exporter stores tensors of equal value once and reads the others through
    an ``Identity``. A copy is a weight of its own when it carries a parameter's name or its
    values are one constant fill (equal initial values of distinct weights: zero biases,
    unit norms); otherwise (an ``onnx::`` name, varied values) it is the same weight read
    again, as unrolled steps do.
    """
    inits = {t.name: t for t in gp.initializer}
    keys = {name: name for name in inits}
    fills: dict[str, bool] = {}
    for n in gp.node:
        if n.op_type == "Identity" and len(n.input) == 1 and n.input[0] in keys and n.output:
            src, out = n.input[0], n.output[0]
            consts[out] = consts[src]
            if src in inits and src not in fills:
                a = numpy_helper.to_array(inits[src]) if inits[src].dims else np.zeros(1)
                fills[src] = a.size == 0 or bool(np.all(a == a.flat[0]))
            own = not out.startswith("onnx::") or fills.get(src, False)
            keys[out] = out if own else keys[src]
    return keys


def raw_graph(
    model: onnx.ModelProto,
    dims: Mapping[str, int] | None = None,
    probe_bytes: int = DEFAULT_PROBE_BYTES,
) -> RawGraph:
    """The model's main graph as a :class:`RawGraph` (after shape inference when it works);
    ``dims`` sizes symbolic dims (other than the batch) so FLOPs can be counted;
    ``probe_bytes`` caps the memory of the onnxruntime run that fills unknown shapes."""
    sort_nodes(model.graph)  # shape inference needs a topological order (some files lie)
    if dims:
        _bind_dims(model.graph, dims)
    with contextlib.suppress(Exception):  # best effort: shapes stay unknown otherwise
        model = onnx.shape_inference.infer_shapes(model, data_prop=True)
    gp = model.graph
    consts = {t.name: _const_array(t) for t in gp.initializer}
    weights = _weights(gp, consts)
    infos = [*gp.input, *gp.value_info, *gp.output]
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 17)
    shapes = {vi.name: _shape(vi) for vi in infos}
    dtypes = {vi.name: vi.type.tensor_type.elem_type for vi in infos}
    notes: list[str] = []
    fill_shapes(model, shapes, dims, probe_bytes, notes, dtypes)
    nodes = [
        RawNode(
            n.op_type if n.domain in ("", "ai.onnx") else f"{n.domain}.{n.op_type}",
            list(n.input),
            list(n.output),
            {a.name: attr_value(a) for a in n.attribute},
        )
        for n in gp.node
        if not (n.op_type == "Identity" and n.output and n.output[0] in consts)
    ]
    return RawGraph(
        nodes=nodes,
        consts=consts,
        inputs=[i.name for i in gp.input if i.name not in consts],
        outputs=[o.name for o in gp.output],
        shapes=shapes,
        dtypes=dtypes,
        opset=opset,
        weights=weights,
        notes=notes,
    )


def _const(a: np.ndarray, weight: str | None = None) -> Const:
    """Values are kept for integer constants up to 16 elements (shapes, axes, pads) and
    one-element float constants (scales); never for weights, which would break isomorphism."""
    small = (a.size <= 16 and a.dtype.kind in "biu") or (a.size == 1 and a.dtype.kind == "f")
    vals = tuple(v.item() for v in a.ravel()) if small else None
    return Const(tuple(int(d) for d in a.shape), str(a.dtype), vals, weight)


def _key(v: Any) -> Any:
    if isinstance(v, np.ndarray):
        return ("tensor", v.shape, str(v.dtype), hashlib.sha1(v.tobytes()).hexdigest())
    if isinstance(v, onnx.GraphProto):
        return ("graph", hashlib.sha1(v.SerializeToString()).hexdigest())
    return v


def _h(*parts: Any) -> str:
    return hashlib.sha1(repr(parts).encode()).hexdigest()


def canonicalise(g: RawGraph, path: str = "<graph>") -> CanonicalGraph:
    """Order the nodes of a normalised graph canonically (see the module docstring)."""
    p = Path(path)
    nodes = [RawNode("Input", [], [i]) for i in g.inputs] + g.nodes
    nodes += [RawNode("Output", [o], []) for o in g.outputs]
    made = {o: (k, j) for k, n in enumerate(nodes) for j, o in enumerate(n.outputs) if o}
    ins: list[list[Any]] = []
    for n in nodes:
        row: list[Any] = []
        for i in n.inputs:
            if not i:
                row.append(None)
            elif i in g.consts:
                row.append(_const(g.consts[i], g.weight_key(i)))
            elif i in made:
                row.append(made[i])
            else:
                raise _err(p, f"node {n.op} reads tensor '{i}' that nothing produces.")
        if n.op in COMMUTATIVE:  # activations first, constants after, each group sorted later
            row = [x for x in row if isinstance(x, tuple)] + sorted(
                (x for x in row if not isinstance(x, tuple)), key=repr
            )
        ins.append(row)
    shapes = [
        tuple(g.shapes.get(o) for o in n.outputs) if n.op != "Output" else (g.shape(n.inputs[0]),)
        for n in nodes
    ]
    attrs = [tuple(sorted(n.attrs.items())) for n in nodes]
    users: list[list[tuple[int, int, int]]] = [[] for _ in nodes]
    for k, row in enumerate(ins):
        for slot, x in enumerate(row):
            if isinstance(x, tuple):
                users[x[0]].append((k, slot, x[1]))
    order = _topo(nodes, ins, p)
    local = [
        _h(
            n.op,
            tuple((a, _key(v)) for a, v in attrs[k]),
            tuple("x" if isinstance(x, tuple) else x for x in ins[k]),
            shapes[k],
        )
        for k, n in enumerate(nodes)
    ]
    fwd = [""] * len(nodes)
    for k in order:
        if nodes[k].op in COMMUTATIVE:
            acts = sorted(
                (x for x in ins[k] if isinstance(x, tuple)), key=lambda x: (fwd[x[0]], x[1])
            )
            ins[k] = acts + ins[k][len(acts) :]
        fwd[k] = _h(local[k], tuple((fwd[x[0]], x[1]) for x in ins[k] if isinstance(x, tuple)))
    final = [""] * len(nodes)
    for k in reversed(order):
        final[k] = _h(fwd[k], tuple(sorted((final[u], s, o) for u, s, o in users[k])))
    pos = _place(nodes, ins, users, final)
    out_nodes = [GNode("", (), (), ())] * len(nodes)
    edges: list[tuple[int, int]] = []
    for k, n in enumerate(nodes):
        refs = tuple(Ref(pos[x[0]], x[1]) if isinstance(x, tuple) else x for x in ins[k])
        out_nodes[pos[k]] = GNode(n.op, attrs[k], refs, shapes[k])
    for dst, gn in enumerate(out_nodes):
        for r in dict.fromkeys(x.node for x in gn.inputs if isinstance(x, Ref)):
            edges.append((r, dst))
    first = g.shapes.get(g.inputs[0]) if g.inputs else None
    batch = first[0] if first and isinstance(first[0], str) else None
    return CanonicalGraph(str(path), out_nodes, edges, batch, g.opset, list(g.notes))


def _topo(nodes: list[RawNode], ins: list[list[Any]], p: Path) -> list[int]:
    indeg = [sum(isinstance(x, tuple) for x in row) for row in ins]
    users: list[list[int]] = [[] for _ in nodes]
    for k, row in enumerate(ins):
        for x in row:
            if isinstance(x, tuple):
                users[x[0]].append(k)
    ready = [k for k, d in enumerate(indeg) if d == 0]
    order: list[int] = []
    while ready:
        k = ready.pop()
        order.append(k)
        for u in users[k]:
            indeg[u] -= 1
            if indeg[u] == 0:
                ready.append(u)
    if len(order) != len(nodes):
        raise _err(p, "the graph has a cycle.")
    return order


def _place(
    nodes: list[RawNode],
    ins: list[list[Any]],
    users: list[list[tuple[int, int, int]]],
    final: list[str],
) -> list[int]:
    """Canonical position of every node (Kahn's algorithm, chain-first, then by label)."""
    indeg = [sum(isinstance(x, tuple) for x in row) for row in ins]
    pos = [-1] * len(nodes)

    def key(k: int) -> tuple[Any, ...]:
        return (final[k], tuple(pos[x[0]] for x in ins[k] if isinstance(x, tuple)), k)

    heap = [key(k) for k, d in enumerate(indeg) if d == 0]
    heapq.heapify(heap)
    placed: set[int] = set()
    nxt: int | None = None
    for i in range(len(nodes)):
        if nxt is None:
            while heap[0][-1] in placed:
                heapq.heappop(heap)
            nxt = heapq.heappop(heap)[-1]
        k, nxt = nxt, None
        pos[k] = i
        placed.add(k)
        sole = {u for u, _, _ in users[k]}
        for u, _, _ in users[k]:  # once per use: Add(x, x) reads x twice
            indeg[u] -= 1
            if indeg[u] == 0:
                heapq.heappush(heap, key(u))
        if len(sole) == 1 and len(nodes[k].outputs) == 1:
            u = next(iter(sole))
            if indeg[u] == 0:
                nxt = u
    return pos


def model_graph(
    model: onnx.ModelProto,
    path: str | Path = "<graph>",
    dims: Mapping[str, int] | None = None,
    probe_bytes: int = DEFAULT_PROBE_BYTES,
) -> CanonicalGraph:
    """The canonical graph of a parsed model (sorts ``model``'s nodes in place)."""
    g = raw_graph(model, dims, probe_bytes)
    return canonicalise(normalise_exported(model, g), str(path))


def load_graph(
    path: str | Path,
    max_bytes: int = DEFAULT_MAX_BYTES,
    dims: Mapping[str, int] | None = None,
    time_limit_s: float | None = None,
    probe_bytes: int = DEFAULT_PROBE_BYTES,
) -> CanonicalGraph:
    """Read, normalise and canonically order the ONNX file at ``path`` (``dims``: sizes of
    symbolic dims, see :func:`raw_graph`; ``time_limit_s``: give up after so long;
    ``probe_bytes``: memory cap of the onnxruntime run for unknown shapes).

    Raises:
        OnnxFileError: whatever is wrong with the file (missing, not a regular file, too
            large, not ONNX, truncated, bad tensors, unsafe external data, undefined
            tensors, a cycle, over the time limit), in one line naming it.
    """
    with time_limit(time_limit_s, path):
        return as_file_error(
            path, lambda: model_graph(read_model(path, max_bytes), path, dims, probe_bytes)
        )
