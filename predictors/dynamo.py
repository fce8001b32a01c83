"""Rules that rewrite the dynamo exporter's spellings to the TorchScript ones.

torch >= 2.9 exports with dynamo by default; the bundled ranking models were trained on
TorchScript exports. These rules apply only to files the dynamo exporter wrote (its nodes
carry ``pkg.torch.onnx.*`` metadata), so TorchScript files are never touched:

1. A ``Conv`` whose zero bias the exporter's optimizer removed (the node's
   ``pkg.onnxscript.rewriter.rule_name`` names ``RemoveOptionalBiasFromConv``; a folded
   fresh BatchNorm) gets a zero bias back, as TorchScript keeps it (before normalisation).
2. One-element initializers the exporter made itself (named ``val_N``; parameters keep
   their module names) are constants, not weights, as TorchScript's ``Constant`` nodes
   are; a weight of one constant fill that several nodes read (the exporter stores equal
   initial values once: unit norm scales, zero biases) is a weight of each reader, as
   TorchScript's copies are; ``Mul(x, Mul(c, y))`` with ``c`` a scalar constant (the Erf
   form of GELU) becomes ``Mul(Mul(x, y), c)``, TorchScript's association (before
   normalisation).
3. ``Unsqueeze`` -> ``GlobalAveragePool`` -> ``Squeeze`` of the added axes (an adaptive
   1-D average pool) becomes one ``GlobalAveragePool`` on the unsqueezed input, as TorchScript
   writes it (after normalisation).
4. ``Reshape`` with ``allowzero=1`` to a constant shape without zeros gets ``allowzero=0``,
   and ``Reduce*`` with axes drops ``noop_with_empty_axes=0`` (an opset-18 default; the
   exporter writes opset 18 when it cannot convert to 17): the same computation in
   TorchScript's spelling (after normalisation).
5. ``Reshape`` from ``torch.flatten(x, k)`` (the node's namespace or the last line of its
   stack trace says so) to a constant shape that keeps the first ``k >= 2`` dims of a
   rank > k+1 input and merges the rest reads its shape from
   ``Shape`` -> ``Slice [0:k]`` -> ``Concat [-1]``, as TorchScript writes it (after
   normalisation).
"""

from __future__ import annotations

import re

import numpy as np
import onnx
from nas.predictors.normalise import FOLD_LIMIT, RawGraph, RawNode, normalise

_BIAS_RULE = "RemoveOptionalBiasFromConv"
_MADE = re.compile(r"val_\d+")


def is_dynamo(model: onnx.ModelProto) -> bool:
    """Whether the dynamo exporter wrote ``model`` (its nodes carry its metadata)."""
    return any(
        p.key.startswith("pkg.torch.onnx.") for n in model.graph.node for p in n.metadata_props
    )


def bias_removed(model: onnx.ModelProto) -> set[str]:
    """First outputs of the Conv nodes whose zero bias the exporter's optimizer removed."""
    return {
        n.output[0]
        for n in model.graph.node
        if n.op_type == "Conv"
        and len(n.input) == 2
        and n.output
        and any(
            p.key.endswith("rewriter.rule_name") and _BIAS_RULE in p.value
            for p in n.metadata_props
        )
    }


def flattened(model: onnx.ModelProto) -> set[str]:
    """First outputs of the Reshape nodes that ``torch.flatten`` wrote."""
    out = set()
    for n in model.graph.node:
        md = {p.key: p.value for p in n.metadata_props}
        line = md.get("pkg.torch.onnx.stack_trace", "").rsplit("\n", 1)[-1]
        if (
            n.op_type == "Reshape"
            and n.output
            and ("flatten.Flatten" in md.get("namespace", "") or "flatten(" in line)
        ):
            out.add(n.output[0])
    return out


def before_normalise(g: RawGraph, removed: set[str]) -> None:
    """Rules 1 and 2 of the module docstring, in place."""
    if g.weights is not None:
        made = [k for k in g.weights if _MADE.fullmatch(k) and g.consts[k].size <= 1]
        for name in made:
            del g.weights[name]
        _split_fills(g)
    for n in g.nodes:
        w = g.consts.get(n.inputs[1]) if n.op == "Conv" and len(n.inputs) == 2 else None
        if w is not None and n.outputs[0] in removed and w.ndim >= 3:
            name = n.outputs[0] + "/bias"
            g.consts[name] = np.zeros(int(w.shape[0]), w.dtype)
            if g.weights is not None:
                g.weights[name] = name
            n.inputs = [*n.inputs, name]
    made = {n.outputs[0]: n for n in g.nodes if n.outputs}
    uses: dict[str, int] = {}
    for n in g.nodes:
        for i in n.inputs:
            uses[i] = uses.get(i, 0) + 1
    for n in g.nodes:
        if n.op != "Mul" or len(n.inputs) != 2:
            continue
        for k in (0, 1):
            inner = made.get(n.inputs[k])
            if inner is None or inner.op != "Mul" or uses.get(inner.outputs[0]) != 1:
                continue
            c = [i for i in inner.inputs if _scalar(g, i)]
            rest = [i for i in inner.inputs if not _scalar(g, i)]
            if len(c) == 1 and len(rest) == 1 and not _scalar(g, n.inputs[1 - k]):
                inner.inputs = [n.inputs[1 - k], rest[0]]
                n.inputs = [inner.outputs[0], c[0]]
                g.shapes[inner.outputs[0]] = g.shapes.get(n.outputs[0])
                break


def _split_fills(g: RawGraph) -> None:
    """Give every reader after the first of a constant-fill weight a weight of its own."""
    seen: dict[str, int] = {}
    for n in g.nodes:
        for k, i in enumerate(n.inputs):
            c = g.consts.get(i)
            if g.weight_key(i) is None or c is None or not 1 < c.size <= FOLD_LIMIT:
                continue
            if not np.all(c == c.flat[0]):
                continue
            seen[i] = seen.get(i, 0) + 1
            if seen[i] > 1:
                own = f"{i}#{seen[i]}"
                g.consts[own] = c
                g.weights[own] = own  # type: ignore[index]
                n.inputs[k] = own


def _scalar(g: RawGraph, name: str) -> bool:
    """A one-element constant."""
    c = g.consts.get(name)
    return c is not None and c.size == 1


def after_normalise(g: RawGraph, flat: set[str]) -> RawGraph:
    """Rules 3, 4 and 5 of the module docstring, in place."""
    users: dict[str, list[RawNode]] = {}
    for n in g.nodes:
        for i in n.inputs:
            users.setdefault(i, []).append(n)
        if n.op == "Reshape" and n.attrs.get("allowzero") == 1 and len(n.inputs) > 1:
            c = g.consts.get(n.inputs[1])
            if c is not None and c.size <= 16 and not np.any(c == 0):
                n.attrs["allowzero"] = 0
        if n.op.startswith("Reduce") and n.attrs.get("axes"):
            n.attrs.pop("noop_with_empty_axes", None)
    dropped: set[int] = set()
    alias: dict[str, str] = {}
    for n in g.nodes:
        if n.op != "Unsqueeze" or len(users.get(n.outputs[0], [])) != 1:
            continue
        gap, shape_in = users[n.outputs[0]][0], g.shape(n.inputs[0])
        after = users.get(gap.outputs[0], [])
        if gap.op != "GlobalAveragePool" or len(after) != 1 or after[0].op != "Squeeze":
            continue
        rank = len(shape_in) if shape_in else 0
        added = {a % (rank + 1) for a in n.attrs.get("axes", ())}
        gone = {a % (rank + 1) for a in after[0].attrs.get("axes", ())}
        if rank < 3 or len(added) != 1 or added != gone or min(added) < 2:
            continue
        if {gap.outputs[0], n.outputs[0]} & set(g.outputs):
            continue
        gap.inputs = [n.inputs[0]]
        g.shapes[gap.outputs[0]] = (*shape_in[:2], *(1,) * (rank - 2))  # type: ignore[index]
        alias[after[0].outputs[0]] = gap.outputs[0]
        dropped.update((id(n), id(after[0])))
    nodes: list[RawNode] = []
    for n in g.nodes:
        if id(n) not in dropped:
            nodes.extend([*_flatten_shape(g, n), n] if n.outputs[0] in flat else [n])
    g.nodes = nodes
    for n in g.nodes:
        n.inputs = [alias.get(i, i) for i in n.inputs]
    g.outputs = [alias.get(o, o) for o in g.outputs]
    return g


def _flatten_shape(g: RawGraph, n: RawNode) -> list[RawNode]:
    """Rule 5 on Reshape ``n``: the nodes that now compute its shape (none if no match)."""
    c = g.consts.get(n.inputs[1]) if len(n.inputs) > 1 else None
    x = g.shape(n.inputs[0])
    if c is None or x is None or c.ndim != 1 or c.size < 3 or len(x) <= c.size:
        return []
    k, last = c.size - 1, [d for d in x[c.size - 1 :]]
    if any(not isinstance(d, int) for d in x) or [int(v) for v in c[:k]] != list(x[:k]):
        return []
    if int(c[k]) not in (-1, int(np.prod(last))):
        return []
    t = n.outputs[0] + "/shape"
    g.consts[t + "/s"], g.consts[t + "/e"] = np.array([0]), np.array([k])
    g.consts[t + "/m"] = np.array([-1])
    g.shapes.update({t: (len(x),), t + "/k": (k,), t + "/c": (k + 1,)})
    g.dtypes.update({t: 7, t + "/k": 7, t + "/c": 7})
    n.inputs = [n.inputs[0], t + "/c"]
    return [
        RawNode("Shape", [n.inputs[0]], [t], {"start": 0}),
        RawNode("Slice", [t, t + "/s", t + "/e", t + "/s"], [t + "/k"]),
        RawNode("Concat", [t + "/k", t + "/m"], [t + "/c"], {"axis": 0}),
    ]


def normalise_exported(model: onnx.ModelProto, g: RawGraph) -> RawGraph:
    """:func:`normalise` ``g``, read from ``model``, with these rules first for dynamo files."""
    if not is_dynamo(model):
        return normalise(g)
    before_normalise(g, bias_removed(model))
    return after_normalise(normalise(g), flattened(model))
