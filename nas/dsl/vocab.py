"""The names a tree may use: registered ops, plus ``hp`` and the declared config nodes.

Everything that walks grammars or derivation trees (parsing, analysis, sampling, mutation,
compiling) resolves a node's name here, so a config space searches like any grammar while
the op registry (``nas ops``, ``list_ops``) holds only ops that build layers.
"""

from __future__ import annotations

from nas.dsl.config import CONFIG_SPACES, HyperParam
from nas.ops._registry import Op, ParamValue, cached_instance, get_op, is_op

__all__ = ["create_node", "is_node", "node_class"]


def node_class(name: str) -> type[Op]:
    """The class of tree node ``name``: ``hp``, a declared config, else a registered op.

    Raises:
        UnknownNameError: none of these; the message names the closest ops.
    """
    if name == HyperParam.name:
        return HyperParam
    if name in CONFIG_SPACES:
        return CONFIG_SPACES.get(name)
    return get_op(name)


def is_node(name: str) -> bool:
    """Whether ``name`` may appear in a tree (an op, ``hp`` or a declared config)."""
    return name == HyperParam.name or name in CONFIG_SPACES or is_op(name)


def create_node(name: str, **params: ParamValue) -> Op:
    """An (immutable, cached) instance of node ``name`` with ``params``."""
    return cached_instance(node_class(name), params)
