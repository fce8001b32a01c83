"""Symbolic analysis of an architecture: shapes, parameters, memory, depth, per module.

Runs the ops' shape rules only (no torch), so it is fast enough to check every sample,
mutation and crossover, and it reports exactly where a string goes wrong.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from nas.dsl.arch import Node
from nas.dsl.vocab import create_node
from nas.exceptions import BudgetError, NasError, ShapeError
from nas.ops.spec import Signal


class Limits(Protocol):
    """What analysis reads of a budget (nas.space.Budget has these and more)."""

    max_ops: int
    max_depth: int


@dataclass
class NodeInfo:
    """What one written node sees and costs (first application if it is reused)."""

    path: tuple[int, ...]
    node: Node
    inp: Signal
    out: Signal
    params: int
    activation: int
    depth: int
    n_ops: int
    flops: int = 0
    module_depth: int = 0
    copies: int = 1  # how many times a combinator applied its repeated slot


@dataclass
class Analysis:
    """Totals for a whole architecture on one input, plus per-node details."""

    out: Signal
    params: int
    activation: int
    depth: int
    n_ops: int
    flops: int
    nodes: dict[tuple[int, ...], NodeInfo] = field(default_factory=dict)


class LocatedShapeError(ShapeError):
    """A ShapeError that already says where it happened."""


def describe_path(root: Node, path: tuple[int, ...]) -> str:
    """Human form of a node's position, e.g. ``seq > route[2] > col2im (column 41)``."""
    parts, node = [root.op], root
    for i in path:
        node = node.children[i]
        parts.append(f"{node.op}")
    if len(parts) > 8:  # deep paths: the ends say where, the middle only how far
        parts = [*parts[:3], f"... {len(parts) - 6} more ...", *parts[-3:]]
    return " > ".join(parts) + (f" (column {node.column})" if node.column else "")


def analyse(root: Node, x: Signal, record: bool = False, budget: Limits | None = None) -> Analysis:
    """Propagate ``x`` through ``root`` with the shape rules and count costs.

    A written child applied several times to the same signal (a repeated branch, the
    cells of a stage) is analysed once and its totals reused, so the time grows with the
    written string, not with the network it denotes. With a ``budget``, analysis stops as
    soon as the op count or the nesting depth is over it (the other limits are checked by
    :meth:`~nas.space.Budget.check` on the exact totals).

    Args:
        root: the architecture.
        x: the input signal, e.g. ``(Spec((3, 28, 28)),)``.
        record: keep a :class:`NodeInfo` for every written node.
        budget: stop early once ``max_ops`` or ``max_depth`` is exceeded.

    Raises:
        ShapeError: an op does not apply to what it receives; the message names the node.
        BudgetError: ``budget`` is given and the architecture is over its ops or depth.
    """
    infos: dict[tuple[int, ...], NodeInfo] = {}
    memo: dict[tuple[tuple[int, ...], Signal], NodeInfo] = {}
    max_ops = budget.max_ops if budget is not None else None
    max_depth = budget.max_depth if budget is not None else None
    counted = [0]  # op applications so far (a repeated child counts once per copy)

    def count(n_ops: int) -> None:
        counted[0] += n_ops
        if max_ops is not None and counted[0] > max_ops:
            raise BudgetError(
                f"the architecture's ops is over the budget max_ops={max_ops:,} "
                f"(analysis stopped at {counted[0]:,})."
            )

    def run(node: Node, sig: Signal, path: tuple[int, ...], level: int) -> NodeInfo:
        key = (path, sig)
        seen = memo.get(key)
        if seen is not None:
            count(seen.n_ops)
            return seen
        try:
            op = create_node(node.op, **dict(node.params))
            if op.is_combinator:
                if max_depth is not None and level + 1 > max_depth:
                    raise BudgetError(
                        f"the architecture's depth is over the budget max_depth={max_depth:,} "
                        f"(at {describe_path(root, path)})."
                    )
                acc = [0, 0, 0, 0, 0, 1]  # params, activation, depth, ops, flops, copies

                def child(
                    slot: int, s: Signal, copy: int = 0, copies: int = 1, reserve: int = 0
                ) -> Signal:
                    i = op.slot_of(len(node.children), slot, copy)
                    if slot == op.repeat_slot:
                        acc[5] = max(acc[5], copies)
                    info = run(node.children[i], s, (*path, i), level + 1)
                    acc[0] += info.params
                    acc[1] += info.activation
                    acc[2] = max(acc[2], info.depth)
                    acc[3] += info.n_ops
                    acc[4] += info.flops
                    return info.out

                out = op.flow(sig, child)
                written = len(node.children) - (op.n_slots - 1)
                if op.repeat_slot is not None and written not in (1, acc[5]):
                    raise ShapeError(
                        f"{op.name} applies its repeated child {acc[5]} times but {written} "
                        f"children were written for it; write one (shared) or {acc[5]}."
                    )
                info = NodeInfo(
                    path,
                    node,
                    sig,
                    out,
                    acc[0] + op.num_params(sig),
                    acc[1] + op.activation(sig, out),
                    acc[2] + 1,
                    acc[3],
                    acc[4] + op.flops(sig, out),
                    copies=acc[5],
                )
            else:
                if node.children:
                    raise ShapeError(f"{node.op} is a terminal op and takes no children.")
                out = op.infer(sig)
                info = NodeInfo(
                    path,
                    node,
                    sig,
                    out,
                    op.num_params(sig),
                    op.activation(sig, out),
                    0,
                    1,
                    op.flops(sig, out),
                )
                count(1)
        except (LocatedShapeError, BudgetError):
            raise
        except NasError as e:
            got = ", ".join(map(str, sig))
            raise LocatedShapeError(
                f"at {describe_path(root, path)} on input {got}: {e}"
            ) from None
        info.module_depth = level
        memo[key] = info
        if record and path not in infos:
            infos[path] = info
        return info

    top = run(root, x, (), 0)
    return Analysis(top.out, top.params, top.activation, top.depth, top.n_ops, top.flops, infos)
