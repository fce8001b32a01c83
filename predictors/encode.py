"""Text encodings of a canonical ONNX graph: one short text per node, and a whole-graph text.

Per-node text (:func:`node_text`), fields separated by single spaces::

    Conv auto_pad=NOTSET d=1 group=1 k=3 p=1 s=1 W[16,3,3,3] W[16] -> Nx16x32x32

* The (canonical) op type; graph inputs/outputs are ``Input`` and ``Output``.
* Every attribute as ``name=value``, sorted by name, schema defaults filled in (see
  :mod:`nas.predictors.normalise`). ``kernel_shape``, ``strides``, ``pads`` and
  ``dilations`` are written ``k``, ``s``, ``p`` and ``d``. Integer lists whose elements are
  all equal collapse to one value (``k=3``), other lists are ``[1,2]``; floats use 6
  significant digits (``epsilon=1e-05``); tensor attributes are written like constants,
  graph attributes as ``<graph>``.
* Non-activation inputs in input order: a weight as ``W[shape]``; a constant whose values
  are kept (integer constants up to 16 elements, one-element floats) as ``C(v)`` for a
  scalar or ``C[shape](v1,v2)``; an empty optional input as ``_``. Activation inputs before
  the first of these are implied; one after it is written ``x`` so positions stay exact.
* ``->`` and the output shapes (comma-separated when several): dims joined by ``x``, the
  batch dim (the first input's symbolic dim 0) as ``N``, other unknown dims as ``?``, a
  rank-0 tensor as ``scalar`` and an unknown shape as ``?``.

Whole-graph text (:func:`graph_text`), in the spirit of ONNX-Bench's ``chain_slim`` but
exact: nodes in canonical order; a node continues the current line when its only activation
input is the previous node's only output and nothing else reads that output. Lines look
like ``%5 = Add(%2, %4) -> Nx16x32x32 --> Relu -> Nx16x32x32``: ``%j`` names the last node
of the line by its canonical index, the first element of a line lists its activation inputs
by name (``%k``, or ``%k.i`` for output ``i`` of a multi-output node) and the elements after
it read the element before. Every reference is therefore explicit; there is no ``prev``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from nas.predictors.graph import (
    DEFAULT_MAX_BYTES,
    CanonicalGraph,
    Const,
    GNode,
    Ref,
    load_graph,
)

ALIASES = {"kernel_shape": "k", "strides": "s", "pads": "p", "dilations": "d"}


def _num(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


def _value(v: Any) -> str:
    if isinstance(v, np.ndarray):
        return _const(Const(tuple(v.shape), str(v.dtype), tuple(x.item() for x in v.ravel())))
    if isinstance(v, tuple):
        if v and all(isinstance(x, int) for x in v) and len(set(v)) == 1:
            return str(v[0])
        return "[" + ",".join(_num(x) for x in v) + "]"
    if isinstance(v, int | float):
        return _num(v)
    if isinstance(v, str):
        return v.replace(" ", "_") or "''"
    return "<graph>"


def _const(c: Const) -> str:
    if c.values is None or len(c.values) > 16:
        return "W[" + ",".join(map(str, c.shape)) + "]"
    vals = ",".join(_num(v) for v in c.values)
    return f"C({vals})" if not c.shape else "C[" + ",".join(map(str, c.shape)) + f"]({vals})"


def shape_text(shape: Any, batch: str | None) -> str:
    """``Nx16x32x32``-style text of one shape (see the module docstring)."""
    if shape is None:
        return "?"
    if not shape:
        return "scalar"
    return "x".join(
        "N"
        if d == batch and d is not None
        else ("?" if d is None or isinstance(d, str) else str(d))
        for d in shape
    )


def node_text(node: GNode, batch: str | None = None, refs: list[str] | None = None) -> str:
    """The text of one node; with ``refs``, its activation inputs are named ``Op(%a, %b)``."""
    head = node.op + (f"({', '.join(refs)})" if refs else "")
    attrs = sorted((ALIASES.get(k, k), _value(v)) for k, v in node.attrs)
    parts = [head, *(f"{k}={v}" for k, v in attrs)]
    seen_const = False
    for x in node.inputs:
        if isinstance(x, Ref):
            if seen_const:
                parts.append("x")
        else:
            seen_const = True
            parts.append("_" if x is None else _const(x))
    parts.append("->")
    parts.append(", ".join(shape_text(s, batch) for s in node.shapes) or "()")
    return " ".join(parts)


def node_texts(graph: CanonicalGraph) -> list[str]:
    """One text per node, in canonical order."""
    return [node_text(n, graph.batch) for n in graph.nodes]


def edges(graph: CanonicalGraph) -> list[tuple[int, int]]:
    """(src, dst) pairs of canonical node indices, one per producer-consumer pair."""
    return list(graph.edges)


def _ref(r: Ref, nodes: list[GNode]) -> str:
    return f"%{r.node}" if len(nodes[r.node].shapes) <= 1 else f"%{r.node}.{r.port}"


def graph_lines(graph: CanonicalGraph) -> list[str]:
    """The whole-graph text, one line per chain (see the module docstring)."""
    nodes = graph.nodes
    uses = [0] * len(nodes)
    for n in nodes:
        for x in n.inputs:
            if isinstance(x, Ref):
                uses[x.node] += 1
    lines: list[str] = []
    cur: list[str] = []
    for k, n in enumerate(nodes):
        acts = [x for x in n.inputs if isinstance(x, Ref)]
        chained = (
            cur and acts == [Ref(k - 1, 0)] and uses[k - 1] == 1 and len(nodes[k - 1].shapes) == 1
        )
        if not chained:
            if cur:
                lines.append(f"%{k - 1} = " + " --> ".join(cur))
            cur = [node_text(n, graph.batch, [_ref(x, nodes) for x in acts])]
        else:
            cur.append(node_text(n, graph.batch))
    if cur:
        lines.append(f"%{len(nodes) - 1} = " + " --> ".join(cur))
    return lines


def graph_text(path: str | Path, max_bytes: int = DEFAULT_MAX_BYTES) -> str:
    """The whole-graph text of the ONNX file at ``path`` (what ``nas encode`` prints)."""
    return "\n".join(graph_lines(load_graph(path, max_bytes)))
