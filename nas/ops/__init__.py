"""The op registry and the built-in ops (einspace, NAS-Bench-201)."""

from __future__ import annotations

from nas.ops._registry import (
    Combinator,
    Op,
    create_op,
    get_op,
    is_op,
    list_ops,
    register_op,
    suggest_ops,
)
from nas.ops.spec import Signal, Spec, parse_shape

__all__ = [
    "Combinator",
    "Op",
    "Signal",
    "Spec",
    "create_op",
    "get_op",
    "is_op",
    "list_ops",
    "parse_shape",
    "register_op",
    "suggest_ops",
]
