"""Architectures not worth a trial: nothing learnable before the head, an output that
cannot depend on the input, or a known network.

The checks are symbolic (the shape rules of :mod:`nas.analysis`, no torch), so a search
can screen every proposal for free. A backbone whose only weights are normalisation or
positional-encoding offsets is "degenerate": the trained network is the classification
head on (a rearrangement of) the raw input, a linear probe. A backbone whose every path
goes through a ``norm`` or ``softmax`` over a dimension of size 1 (LayerNorm of one
feature is always its bias; a softmax of one value is always 1) is constant: it trains to
chance, as einspace's subtree redraws of an MLP often did.
"""

from __future__ import annotations

from nas.analysis import analyse
from nas.dsl.arch import Node
from nas.exceptions import NasError
from nas.ops.spec import Signal, pooled_features

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


#: Terminal ops whose output is constant when the dimension they reduce over has size 1:
#: op -> rank of the input it reduces the last dimension of (None: any rank).
CONSTANT_ON_SINGLETON = {"norm": 2, "softmax": None}


def constant_output(arch: Node, x: Signal) -> bool:
    """Whether ``arch``'s output cannot depend on its input: every path from the input to
    the output crosses an op of :data:`CONSTANT_ON_SINGLETON` on a singleton dimension.

    Combinators other than ``seq``, ``route``, ``branch`` and ``compute`` are assumed to
    pass their input on (never reported constant).
    """
    a = analyse(arch, x, record=True)

    def const(path: tuple[int, ...], node: Node, given: bool) -> bool:
        kids = node.children
        if not kids:
            info = a.nodes.get(path)
            if given or info is None or len(info.inp) != 1:
                return given
            rank = CONSTANT_ON_SINGLETON.get(node.op, 0)
            spec = info.inp[0]
            return rank != 0 and (rank is None or spec.rank == rank) and spec.shape[-1] == 1
        if node.op in ("seq", "route", "compute"):
            for i, kid in enumerate(kids):
                given = const((*path, i), kid, given)
            return given
        if node.op == "branch":
            split = const((*path, 0), kids[0], given)
            return all(const((*path, i), k, split) for i, k in enumerate(kids) if k.children)
        return False

    return const((), arch, False)


def degenerate_reason(arch: Node, x: Signal, num_classes: int | None = None) -> str | None:
    """Why ``arch`` should not be trained on input ``x`` (a short reason), or None.

    With ``num_classes`` above 2, a backbone whose output pools to one feature (one channel
    of an image) is refused too: the classification head would separate the classes by
    one number. Invalid architectures are left to the normal checks (None here).
    """
    try:
        n = learnable_ops(arch, x)
        constant = constant_output(arch, x)
        out = analyse(arch, x).out
        features = pooled_features(out[0]) if len(out) == 1 else 2
    except NasError:
        return None
    if not n:
        return "no learnable computation before the head"
    if constant:
        return "its output cannot depend on the input (norm or softmax over one value)"
    if features == 1 and (num_classes or 3) > 2:
        return "the head would see one pooled feature"
    return None


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


__all__ = ["canonical_key", "constant_output", "degenerate_reason", "learnable_ops"]
