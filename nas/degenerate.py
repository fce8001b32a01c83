"""Architectures not worth a trial: nothing learnable before the head, or a known network.

Both checks are symbolic (the shape rules of :mod:`nas.analysis`, no torch), so a search
can screen every proposal for free. A backbone whose only weights are normalisation or
positional-encoding offsets is "degenerate": the trained network is the classification
head on (a rearrangement of) the raw input, a linear probe.
"""

from __future__ import annotations

from nas.analysis import analyse
from nas.dsl.arch import Node
from nas.exceptions import NasError
from nas.ops.spec import Signal

#: Ops whose weights only shift or scale features; they do not count as learnable computation.
AFFINE_ONLY = frozenset({"norm", "pos_enc"})
#: Written forms that compute exactly their input (dropped by :func:`canonical_key`).
IDENTITY_MODULES = frozenset({"compute(identity)"})


def learnable_ops(arch: Node, x: Signal) -> int:
    """How many written terminal ops with weights that mix features ``arch`` applies to ``x``."""
    a = analyse(arch, x, record=True)
    count = 0
    for info in a.nodes.values():
        node = info.node
        if node.children or node.op in AFFINE_ONLY:
            continue
        if info.params > 0:
            count += 1
    return count


def degenerate_reason(arch: Node, x: Signal) -> str | None:
    """Why ``arch`` should not be trained on input ``x`` (a short reason), or None.

    Invalid architectures are left to the normal checks (None here).
    """
    try:
        n = learnable_ops(arch, x)
    except NasError:
        return None
    return None if n else "no learnable computation before the head"


def canonical_key(arch: Node) -> str:
    """A key equal for architectures that compute the same function by construction.

    The canonical string (:attr:`Node.text`) after removing no-op wrappers:
    ``route(identity, M, identity)`` and ``seq`` with a ``compute(identity)`` side are M.
    """
    return _simplify(arch).text


def _simplify(node: Node) -> Node:
    if not node.children:
        return node
    kids = tuple(_simplify(c) for c in node.children)
    plain = node.op == "route" and len(kids) == 3 and not kids[0].children
    if plain and kids[0].op == "identity" and kids[2].op == "identity":
        return kids[1]
    if node.op == "seq" and len(kids) == 2:
        if kids[0].text in IDENTITY_MODULES:
            return kids[1]
        if kids[1].text in IDENTITY_MODULES:
            return kids[0]
    return Node(node.op, node.params, kids)


__all__ = ["canonical_key", "degenerate_reason", "learnable_ops"]
