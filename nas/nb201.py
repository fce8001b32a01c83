"""Conversions between our NB201 architectures and NAS-Bench-201's own cell encodings.

Three forms name the same cell:

* our canonical string, ``nb201(c=16,n=5,cell(e1,...,e6))``, edges in NB201 string order;
* NB201's string, ``|e1~0|+|e2~0|e3~1|+|e4~0|e5~1|e6~2|`` (Dong & Yang, ICLR 2020);
* NASLib's op-index tuple (the keys of the zero-cost benchmark tables), whose edges run
  (0→1, 0→2, 0→3, 1→2, 1→3, 2→3) with ops 0=skip_connect, 1=none, 2=nor_conv_3x3,
  3=nor_conv_1x1, 4=avg_pool_3x3: a different edge order and a different op numbering.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from nas.dsl.arch import Node, make_node
from nas.exceptions import ArchSyntaxError
from nas.ops.nb201 import EDGE_OPS, EDGES

# NASLib's op numbering (index -> op name).
INDEX_OPS: tuple[str, ...] = (
    "skip_connect",
    "none",
    "nor_conv_3x3",
    "nor_conv_1x1",
    "avg_pool_3x3",
)
# NASLib's edge order as (to, from), the order of the tuple's entries.
INDEX_EDGES: tuple[tuple[int, int], ...] = ((1, 0), (2, 0), (3, 0), (2, 1), (3, 1), (3, 2))
# For each tuple position, the position of the same edge in NB201 string order.
_TO_STRING_POS: tuple[int, ...] = tuple(EDGES.index(e) for e in INDEX_EDGES)

_EDGE_RE = re.compile(r"([a-z_0-9]+)~(\d+)")
_EXPECTED = (
    "expected an NB201 cell string like "
    "'|nor_conv_3x3~0|+|skip_connect~0|none~1|+|none~0|avg_pool_3x3~1|nor_conv_1x1~2|'"
)


# The leaf node of each edge op, built once.
_EDGE_NODES: dict[str, Node] = {op: make_node(op) for op in EDGE_OPS}


def _network(ops: Sequence[str], c: int, n: int) -> Node:
    """The skeleton around the cell whose edges (NB201 string order) carry ``ops``."""
    cell = make_node("cell", tuple(_EDGE_NODES[o] for o in ops))
    return make_node("nb201", (cell,), c=c, n=n)


def cell_ops(node: Node) -> tuple[str, ...]:
    """The six edge ops of an NB201 architecture (or bare cell), in NB201 string order.

    Raises:
        ArchSyntaxError: ``node`` is not ``nb201(...,cell(...))`` or ``cell(...)`` of edge ops.
    """
    cell = node.children[0] if node.op == "nb201" and len(node.children) == 1 else node
    if cell.op != "cell" or len(cell.children) != len(EDGES):
        raise ArchSyntaxError(
            f"expected nb201(c=..,n=..,cell(6 edge ops)) or cell(6 edge ops), got {_short(node)}."
        )
    ops = tuple(k.op for k in cell.children)
    for k in cell.children:
        if k.op not in _EDGE_NODES or k.children or k.params:
            raise ArchSyntaxError(
                f"expected an NB201 edge op ({', '.join(EDGE_OPS)}), got {_short(k)}."
            )
    return ops


def to_nb201(node: Node) -> str:
    """NB201's cell string of ``node`` (skeleton parameters are not part of that string).

    Raises:
        ArchSyntaxError: ``node`` is not an NB201 architecture.
    """
    ops = cell_ops(node)
    nodes = []
    for to in (1, 2, 3):
        edges = [f"{op}~{frm}" for op, (t, frm) in zip(ops, EDGES, strict=True) if t == to]
        nodes.append("|" + "|".join(edges) + "|")
    return "+".join(nodes)


def from_nb201(text: str, c: int = 16, n: int = 5) -> Node:
    """Our architecture for NB201's cell string ``text``, in a skeleton of ``c`` and ``n``.

    Raises:
        ArchSyntaxError: ``text`` is not a well-formed NB201 cell string.
    """
    if not isinstance(text, str):
        raise ArchSyntaxError(f"{_EXPECTED}; got a {type(text).__name__}.")
    parts = text.strip().split("+")
    if len(parts) != 3:
        raise ArchSyntaxError(f"{_EXPECTED}; got {len(parts)} node group(s) in {text!r}.")
    ops: list[str] = []
    for to, part in enumerate(parts, start=1):
        if len(part) < 2 or part[0] != "|" or part[-1] != "|":
            raise ArchSyntaxError(f"{_EXPECTED}; node {to} group {part!r} is not '|...|'.")
        edges = part[1:-1].split("|")
        if len(edges) != to:
            raise ArchSyntaxError(
                f"{_EXPECTED}; node {to} needs {to} edge(s), got {len(edges)} in {part!r}."
            )
        for frm, edge in enumerate(edges):
            m = _EDGE_RE.fullmatch(edge)
            if m is None:
                raise ArchSyntaxError(f"{_EXPECTED}; edge {edge!r} is not 'op~input'.")
            op, src = m.group(1), int(m.group(2))
            if op not in _EDGE_NODES:
                raise ArchSyntaxError(
                    f"unknown NB201 op {op!r}; expected one of {', '.join(EDGE_OPS)}."
                )
            if src != frm:
                raise ArchSyntaxError(
                    f"{_EXPECTED}; edge {edge!r} into node {to} should come from node {frm}."
                )
            ops.append(op)
    return _network(ops, c, n)


def is_nb201_string(text: object) -> bool:
    """Whether ``text`` is a well-formed NB201 cell string (no exception, for dispatch)."""
    if not isinstance(text, str):
        return False
    try:
        from_nb201(text)
    except ArchSyntaxError:
        return False
    return True


def from_index_tuple(t: Sequence[int] | str, c: int = 16, n: int = 5) -> Node:
    """Our architecture for a NASLib op-index tuple, e.g. ``(0, 2, 3, 2, 3, 1)`` or its string.

    Raises:
        ArchSyntaxError: not six op indices in 0..4.
    """
    want = "expected 6 NASLib op indices in 0..4 like (0, 2, 3, 2, 3, 1)"
    if isinstance(t, str):
        body = t.strip()
        if not (body.startswith("(") and body.endswith(")")):
            raise ArchSyntaxError(f"{want}; got {t!r}.")
        try:
            t = tuple(int(v) for v in body[1:-1].split(","))
        except ValueError:
            raise ArchSyntaxError(f"{want}; got {t!r}.") from None
    try:
        idx = tuple(t)
    except TypeError:
        raise ArchSyntaxError(f"{want}; got {t!r}.") from None
    if len(idx) != len(INDEX_EDGES) or not all(
        isinstance(v, int) and not isinstance(v, bool) and 0 <= v < len(INDEX_OPS) for v in idx
    ):
        raise ArchSyntaxError(f"{want}; got {idx!r}.")
    ops = [""] * len(EDGES)
    for pos, v in enumerate(idx):
        ops[_TO_STRING_POS[pos]] = INDEX_OPS[v]
    return _network(ops, c, n)


def to_index_tuple(node: Node) -> tuple[int, ...]:
    """NASLib's op-index tuple of an NB201 architecture (the benchmark tables' key order).

    Raises:
        ArchSyntaxError: ``node`` is not an NB201 architecture.
    """
    ops = cell_ops(node)
    return tuple(INDEX_OPS.index(ops[_TO_STRING_POS[pos]]) for pos in range(len(INDEX_EDGES)))


def _short(node: Node) -> str:
    """A node's string, cut for error messages."""
    text = str(node)
    return text if len(text) < 60 else text[:57] + "..."
