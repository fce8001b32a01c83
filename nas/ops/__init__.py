"""The op registry and the built-in ops (einspace, NAS-Bench-201).

Importing this package registers the built-in ops; a user's ops register from their own
module (named in a grammar's ``import`` line) or a ``nas.ops`` entry point.
"""

from __future__ import annotations

# The built-in ops: importing their modules registers them.
from nas.ops import combinators, einspace, nb201  # noqa: F401
from nas.ops._registry import (
    OPS,
    Combinator,
    Op,
    create_op,
    get_op,
    is_op,
    list_ops,
    load_op_module,
    register_op,
    suggest_ops,
)
from nas.ops.spec import Signal, Spec, parse_shape

__all__ = [
    "OPS",
    "Combinator",
    "Op",
    "Signal",
    "Spec",
    "create_op",
    "get_op",
    "is_op",
    "list_ops",
    "load_op_module",
    "parse_shape",
    "register_op",
    "suggest_ops",
]
