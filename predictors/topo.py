"""A stable topological order of named-tensor nodes in O(n log n)."""

from __future__ import annotations

import heapq


def stable_topo_order(inputs: list[list[str]], outputs: list[list[str]]) -> list[int]:
    """Node indices in topological order, ties by stored position (Kahn's algorithm with a
    heap: O(n log n)); nodes on a cycle follow in stored order. A tensor nobody produces
    (a graph input, an initializer, "") is available from the start."""
    made: dict[str, int] = {}
    for k, outs in enumerate(outputs):
        for o in outs:
            if o:
                made.setdefault(o, k)
    users: list[list[int]] = [[] for _ in inputs]
    indeg = [0] * len(inputs)
    for k, ins in enumerate(inputs):
        for src in {made[i] for i in ins if i in made}:
            if src != k:
                users[src].append(k)
                indeg[k] += 1
            else:
                indeg[k] += 1  # reads its own output: a cycle of one
    heap = [k for k, d in enumerate(indeg) if d == 0]
    heapq.heapify(heap)
    order: list[int] = []
    while heap:
        k = heapq.heappop(heap)
        order.append(k)
        for u in users[k]:
            indeg[u] -= 1
            if indeg[u] == 0:
                heapq.heappush(heap, u)
    if len(order) < len(inputs):  # a cycle: the rest as stored; canonicalise reports it
        placed = set(order)
        order += [k for k in range(len(inputs)) if k not in placed]
    return order
