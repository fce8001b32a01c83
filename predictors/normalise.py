"""Rewrite rules that make two spellings of one network the same graph.

Each rule works on :class:`RawGraph` (named tensors, like ONNX itself) and is applied in
this order by :func:`normalise`:

1. ``Constant`` nodes become constants (initializers); nodes whose inputs are all constants
   and small (at most ``FOLD_LIMIT`` elements) are evaluated with ``onnx.reference``.
2. No-ops are removed and their output renamed to their input: ``Identity``, ``Dropout``
   (inference), ``Cast`` to the type it already has, ``Reshape``/``Flatten``/``Squeeze``/
   ``Unsqueeze`` whose output shape equals the input shape, ``Transpose`` with the identity
   permutation, ``Mul``/``Div`` by a constant 1 and ``Add``/``Sub`` of a constant 0 that do
   not broadcast.
3. Attributes: ``axes`` given as a constant input (opset >= 13/18) becomes the attribute;
   schema defaults are filled in; Conv/pool nodes get ``kernel_shape`` (from the weight),
   ``strides``/``dilations`` 1 and ``pads`` 0 when the exporter left them out.
4. Spellings: ``Gemm`` (alpha=beta=1, transA=0, constant B) and ``MatMul`` by a constant 2-D
   matrix, with a following ``Add`` of a constant vector folded in as bias, both become
   ``Linear(x, W[out,in], B[out])`` (torch layout); ``ReduceMean`` over all spatial axes of
   an NC... tensor becomes ``GlobalAveragePool`` (plus ``Flatten axis=1`` when
   ``keepdims=0``); a ``Reshape`` or ``Squeeze`` to rank 2 that keeps dim 0 becomes
   ``Flatten axis=1``.
5. Nodes that no graph output depends on are dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx
from nas.predictors.topo import stable_topo_order
from onnx import helper, numpy_helper

FOLD_LIMIT = 4096
Dim = int | str | None
Shape = tuple[Dim, ...] | None


@dataclass
class RawNode:
    """One ONNX node with attribute values decoded to Python values."""

    op: str
    inputs: list[str]
    outputs: list[str]
    attrs: dict[str, Any] = field(default_factory=dict)


@dataclass
class RawGraph:
    """Named tensors: constants, graph inputs/outputs, shapes and element types."""

    nodes: list[RawNode]
    consts: dict[str, np.ndarray]
    inputs: list[str]
    outputs: list[str]
    shapes: dict[str, Shape]
    dtypes: dict[str, int]
    opset: int = 17
    # Constants that are weights, mapped to their storage (the initializer they live in):
    # two names with one storage are one tensor, counted once. None: every constant is a
    # weight of its own (graphs built directly, without a file).
    weights: dict[str, str] | None = None
    notes: list[str] = field(default_factory=list)  # what could not be computed, and why

    def weight_key(self, name: str) -> str | None:
        """The storage of constant ``name`` when it is a weight, else None."""
        if self.weights is None:
            return name if name in self.consts else None
        return self.weights.get(name)

    def shape(self, name: str) -> Shape:
        """Known shape of a tensor (constants included), or None."""
        if name in self.consts:
            return tuple(int(d) for d in self.consts[name].shape)
        return self.shapes.get(name)

    def consumers(self, name: str) -> list[RawNode]:
        """Nodes reading ``name``."""
        return [n for n in self.nodes if name in n.inputs]

    def rename(self, old: str, new: str) -> None:
        """Make every reader of ``old`` read ``new`` (graph outputs included)."""
        for n in self.nodes:
            n.inputs = [new if i == old else i for i in n.inputs]
        self.outputs = [new if o == old else o for o in self.outputs]


_COMMON_DEFAULT_SKIP = {"kernel_shape", "strides", "pads", "dilations"}
_SPATIAL_OPS = {"Conv", "ConvTranspose", "MaxPool", "AveragePool", "LpPool", "ConvInteger"}
_AXES_INPUT = {
    "Squeeze",
    "Unsqueeze",
    "ReduceMean",
    "ReduceSum",
    "ReduceMax",
    "ReduceMin",
    "ReduceProd",
    "ReduceL1",
    "ReduceL2",
    "ReduceLogSum",
    "ReduceLogSumExp",
    "ReduceSumSquare",
}
# Ops whose output can be far larger than their inputs: folded only when shape inference
# says the output is small.
_EXPANDING = {"ConstantOfShape", "Expand", "Tile", "Range", "Resize", "Pad", "Upsample"}
_NONDETERMINISTIC = {"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike"}


def attr_value(a: onnx.AttributeProto) -> Any:
    """A decoded attribute: ints/floats/str, tuples for lists, arrays for tensors."""
    v = helper.get_attribute_value(a)
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    if isinstance(v, onnx.TensorProto):
        return numpy_helper.to_array(v)
    if isinstance(v, list):
        return tuple(x.decode("utf-8", "replace") if isinstance(x, bytes) else x for x in v)
    return v


def _fold_constants(g: RawGraph) -> None:
    """Constant nodes and small all-constant subgraphs become constants."""
    from onnx.reference import ReferenceEvaluator

    keep = []
    for n in g.nodes:
        if n.op == "Constant" and len(n.outputs) == 1:
            v = next(iter(n.attrs.values()), None) if n.attrs else None
            if v is not None and not isinstance(v, str):
                g.consts[n.outputs[0]] = np.asarray(v)
                continue
        real = [i for i in n.inputs if i]
        out_shape = g.shapes.get(n.outputs[0]) if n.outputs else None
        if n.op in _EXPANDING and not _small(out_shape):  # would allocate what it likes
            keep.append(n)
            continue
        if (
            real
            and all(i in g.consts for i in real)
            and n.op not in _NONDETERMINISTIC
            and sum(g.consts[i].size for i in real) <= FOLD_LIMIT
        ):
            try:
                ins = [
                    helper.make_tensor_value_info(
                        i, helper.np_dtype_to_tensor_dtype(g.consts[i].dtype), None
                    )
                    for i in real
                ]
                outs = [helper.make_tensor_value_info(o, 0, None) for o in n.outputs if o]
                node = helper.make_node(n.op, n.inputs, n.outputs, **_attr_kwargs(n.attrs))
                model = helper.make_model(
                    helper.make_graph([node], "fold", ins, outs),
                    opset_imports=[helper.make_opsetid("", g.opset)],
                )
                res = ReferenceEvaluator(model).run(None, {i: g.consts[i] for i in real})
                src = {g.weight_key(i) for i in real} - {None}
                for name, val in zip([o for o in n.outputs if o], res, strict=True):
                    g.consts[name] = np.asarray(val)
                    if g.weights is not None and len(src) == 1:  # a view of one weight
                        g.weights[name] = next(iter(src))  # type: ignore[arg-type]
                continue
            except Exception:  # any failure: keep the node as it is
                pass
        keep.append(n)
    g.nodes = keep


def _small(shape: Shape) -> bool:
    """A fully known shape of at most FOLD_LIMIT elements."""
    if shape is None or not all(isinstance(d, int) and d >= 0 for d in shape):
        return False
    return int(np.prod(shape, dtype=np.float64)) <= FOLD_LIMIT


def _attr_kwargs(attrs: dict[str, Any]) -> dict[str, Any]:
    return {
        k: (numpy_helper.from_array(v) if isinstance(v, np.ndarray) else v)
        for k, v in attrs.items()
    }


def _const_all(g: RawGraph, name: str, value: float) -> bool:
    c = g.consts.get(name)  # big constants are stand-ins without values: never "all 1"
    return c is not None and 0 < c.size <= FOLD_LIMIT and bool(np.all(c == value))


def _is_noop(g: RawGraph, n: RawNode, read: set[str]) -> bool:
    x = n.inputs[0] if n.inputs else ""
    if not x or not n.outputs:
        return False
    if n.op in ("Identity", "Dropout"):
        return not (n.op == "Dropout" and len(n.outputs) > 1 and n.outputs[1] in read)
    same = g.shape(x) is not None and g.shape(x) == g.shapes.get(n.outputs[0])
    known = same and all(d is not None for d in g.shape(x))  # type: ignore[union-attr]
    if n.op == "Cast":
        return g.dtypes.get(x) is not None and g.dtypes.get(x) == n.attrs.get("to")
    if n.op in ("Reshape", "Flatten", "Squeeze", "Unsqueeze"):
        return known
    if n.op == "Transpose":
        perm = n.attrs.get("perm")
        return perm is not None and tuple(perm) == tuple(range(len(perm)))
    if n.op in ("Mul", "Div") and len(n.inputs) == 2:
        one = _const_all(g, n.inputs[1], 1) or (n.op == "Mul" and _const_all(g, x, 1))
        return known and one
    if n.op in ("Add", "Sub") and len(n.inputs) == 2:
        return known and _const_all(g, n.inputs[1], 0)
    return False


def _remove_noops(g: RawGraph) -> None:
    """Drop no-ops in one pass in topological order, reading through removed ones."""
    read = {i for n in g.nodes for i in n.inputs}
    alias: dict[str, str] = {}
    keep: list[RawNode] = []
    for n in g.nodes:
        n.inputs = [alias.get(i, i) for i in n.inputs]
        if _is_noop(g, n, read):
            src = n.inputs[0]
            if n.op == "Mul" and _const_all(g, src, 1):
                src = n.inputs[1]
            alias[n.outputs[0]] = src
        else:
            keep.append(n)
    g.nodes = keep
    g.outputs = [alias.get(o, o) for o in g.outputs]


def _normalise_attrs(g: RawGraph) -> None:
    for n in g.nodes:
        if n.op in _AXES_INPUT and len(n.inputs) > 1 and n.inputs[1] in g.consts:
            n.attrs["axes"] = tuple(int(a) for a in g.consts[n.inputs[1]].ravel())
            n.inputs = n.inputs[:1]
        try:
            schema = onnx.defs.get_schema(n.op, g.opset)
        except Exception:  # unknown or custom op: keep what is written
            schema = None
        if schema is not None:
            for name, a in schema.attributes.items():
                if (
                    name not in n.attrs
                    and a.default_value.type
                    and name not in _COMMON_DEFAULT_SKIP
                ):
                    n.attrs[name] = attr_value(a.default_value)
        if n.op in _SPATIAL_OPS:
            k = n.attrs.get("kernel_shape")
            if k is None and len(n.inputs) > 1 and n.inputs[1] in g.consts:
                k = tuple(int(d) for d in g.consts[n.inputs[1]].shape[2:])
                n.attrs["kernel_shape"] = k
            if k is not None:
                n.attrs.setdefault("strides", (1,) * len(k))
                if n.op != "MaxPool" or "dilations" in n.attrs:
                    n.attrs.setdefault("dilations", (1,) * len(k))
                if n.attrs.get("auto_pad", "NOTSET") == "NOTSET":
                    n.attrs.setdefault("pads", (0,) * (2 * len(k)))


def _vector_len(g: RawGraph, name: str) -> int | None:
    """Length of a constant that is a vector (shape [n] or [1, n])."""
    if name not in g.consts:
        return None
    s = g.consts[name].shape
    if len(s) == 1 or (len(s) == 2 and s[0] == 1):
        return int(s[-1])
    return None


def _to_linear(g: RawGraph, n: RawNode, st: _Spelling) -> None:
    """Gemm / MatMul(+Add) -> Linear(x, W[out,in], B[out])."""
    a = n.attrs
    if n.op == "Gemm":
        if not (a.get("alpha") == 1 and a.get("transA") == 0 and len(n.inputs) >= 2):
            return
        w = g.consts.get(n.inputs[1])
        if w is None or w.ndim != 2:
            return
        bias = n.inputs[2] if len(n.inputs) > 2 and n.inputs[2] else ""
        if bias and (
            a.get("beta") != 1
            or _vector_len(g, bias) != (w.shape[0] if a.get("transB") else w.shape[1])
        ):
            return
        wname = n.inputs[1]
        if not a.get("transB"):
            wname = _new_const(g, n.inputs[1] + "^T", w.T, n.inputs[1])
        n.op, n.attrs, n.inputs = "Linear", {}, [n.inputs[0], wname] + ([bias] if bias else [])
    elif n.op == "MatMul" and len(n.inputs) == 2:
        w = g.consts.get(n.inputs[1])
        if w is None or w.ndim != 2 or n.inputs[0] in g.consts:
            return
        wt = _new_const(g, n.inputs[1] + "^T", w.T, n.inputs[1])
        n.op, n.inputs = "Linear", [n.inputs[0], wt]
        users = st.users.get(n.outputs[0], [])
        if len(users) == 1 and users[0].op == "Add" and n.outputs[0] not in g.outputs:
            add = users[0]
            other = [i for i in add.inputs if i != n.outputs[0]]
            if len(other) == 1 and _vector_len(g, other[0]) == w.shape[1]:
                n.inputs.append(other[0])
                st.dropped.add(id(add))
                st.alias[add.outputs[0]] = n.outputs[0]
                if g.shapes.get(n.outputs[0]) is None:  # a bias add keeps the shape
                    g.shapes[n.outputs[0]] = g.shapes.get(add.outputs[0])


def _new_const(g: RawGraph, name: str, value: np.ndarray, like: str = "") -> str:
    """Add a constant; one made from weight ``like`` (a transpose) shares its storage."""
    g.consts[name] = np.ascontiguousarray(value)
    key = g.weight_key(like) if like else None
    if g.weights is not None and key is not None:
        g.weights[name] = key
    return name


@dataclass
class _Spelling:
    """Readers of each tensor, and what a pass removed or renamed (applied at its end)."""

    users: dict[str, list[RawNode]]
    dropped: set[int] = field(default_factory=set)
    alias: dict[str, str] = field(default_factory=dict)
    after: dict[int, RawNode] = field(default_factory=dict)


def _unify_spellings(g: RawGraph) -> None:
    users: dict[str, list[RawNode]] = {}
    for n in g.nodes:
        for i in dict.fromkeys(n.inputs):
            users.setdefault(i, []).append(n)
    st = _Spelling(users)
    for n in list(g.nodes):
        if id(n) in st.dropped:
            continue
        n.inputs = [st.alias.get(i, i) for i in n.inputs]
        if n.op in ("Gemm", "MatMul"):
            _to_linear(g, n, st)
        shape_in = g.shape(n.inputs[0]) if n.inputs and n.inputs[0] else None
        shape_out = g.shapes.get(n.outputs[0]) if n.outputs else None
        if n.op == "ReduceMean" and shape_in is not None and len(shape_in) >= 3:
            axes = tuple(sorted(a % len(shape_in) for a in n.attrs.get("axes", ())))
            if axes == tuple(range(2, len(shape_in))):
                keep = n.attrs.get("keepdims", 1)
                n.op, n.attrs = "GlobalAveragePool", {}
                if not keep:
                    pooled = n.outputs[0] + "/gap"
                    flat = RawNode("Flatten", [pooled], [n.outputs[0]], {"axis": 1})
                    n.outputs = [pooled]
                    g.shapes[pooled] = (*shape_in[:2], *(1,) * (len(shape_in) - 2))
                    st.after[id(n)] = flat
        elif n.op in ("Reshape", "Squeeze") and _is_flatten(g, n, shape_in, shape_out):
            n.op, n.attrs, n.inputs = "Flatten", {"axis": 1}, n.inputs[:1]
    nodes: list[RawNode] = []
    for n in g.nodes:
        if id(n) not in st.dropped:
            n.inputs = [st.alias.get(i, i) for i in n.inputs]
            nodes.append(n)
            if id(n) in st.after:
                nodes.append(st.after[id(n)])
    g.nodes = nodes
    g.outputs = [st.alias.get(o, o) for o in g.outputs]


def _is_flatten(g: RawGraph, n: RawNode, shape_in: Shape, shape_out: Shape) -> bool:
    """A Reshape/Squeeze from rank > 2 to rank 2 that keeps dim 0."""
    if shape_in is None or len(shape_in) <= 2:
        return False
    if shape_out is not None and len(shape_out) == 2 and shape_out[0] == shape_in[0]:
        return shape_out[0] is not None
    if n.op != "Reshape" or len(n.inputs) < 2 or n.inputs[1] not in g.consts:
        return False
    c = [int(v) for v in g.consts[n.inputs[1]].ravel()]
    rest = shape_in[1:]
    size = int(np.prod(rest)) if all(isinstance(d, int) for d in rest) else None
    return len(c) == 2 and (
        (c[0] == 0 and c[1] in (-1, size)) or (c[0] == -1 and size is not None and c[1] == size)
    )


def _drop_dead(g: RawGraph) -> None:
    live = set(g.outputs)
    keep: list[RawNode] = []
    for n in reversed(g.nodes):
        if any(o in live for o in n.outputs):
            keep.append(n)
            live.update(i for i in n.inputs if i)
    g.nodes = keep[::-1]


def _sort(g: RawGraph) -> None:
    """Stable topological sort (files should be sorted already; some are not)."""
    order = stable_topo_order([n.inputs for n in g.nodes], [n.outputs for n in g.nodes])
    g.nodes = [g.nodes[k] for k in order]


def normalise(g: RawGraph) -> RawGraph:
    """Apply every rule of the module docstring, in order, in place."""
    _sort(g)
    _fold_constants(g)
    _remove_noops(g)
    _normalise_attrs(g)
    _unify_spellings(g)
    _remove_noops(g)
    _drop_dead(g)
    return g
