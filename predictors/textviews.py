"""Views of a node text (:mod:`nas.predictors.encode`'s format) that leave parts out.

:func:`op_only` is how ``nas rank`` counts unseen op types against a model's training
domain; :func:`shape_free` is the op a few-shot fit counts shares of; the recipes'
``TEXT_VIEWS`` train and score on either. Plain string functions: importing this module
loads nothing else.
"""

from __future__ import annotations

__all__ = ["op_only", "shape_free"]


def op_only(text: str) -> str:
    """A node text reduced to its op type."""
    return text.split(" ", 1)[0]


def shape_free(text: str) -> str:
    """A node text without sizes: op and attributes (kernel, stride, groups...) kept,
    weight and constant tensors dropped, the output shape reduced to its rank. Channel
    widths and resolutions differ from space to space; kernels and wiring are shared."""
    head, arrow, out = text.partition(" -> ")
    kept = [t for t in head.split(" ") if not t.startswith(("W[", "C["))]
    return " ".join(kept) + (f" -> {len(out.split('x'))}d" if arrow else "")
