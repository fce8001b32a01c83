"""Shape-aware sampling from a grammar, and mutation and crossover of derivation trees.

Sampling is top-down and carries the signal (shapes and mode) reaching each position.
A production is chosen only among alternatives that can apply there: terminals are
checked exactly with their shape rules and the remaining budgets; nonterminals by their
static least depth and size, and a memo of dead ends (a symbol at a signal where no
alternative applies) so the same dead end is never explored twice. Budgets are consumed
top-down, so every draw fits them by construction. A failure inside a subtree (e.g. two
branches no aggregation can merge) redraws that subtree from the full distribution: the
parent's production is never removed. Mutation and crossover live in :mod:`nas.evolution`.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from nas.analysis import analyse
from nas.dsl.arch import Node
from nas.dsl.grammar import Call, Expr, Sym
from nas.dsl.vocab import create_node
from nas.exceptions import NasError, SamplingError
from nas.ops import Op
from nas.ops.spec import Signal
from nas.space import Budget, SearchSpace


@dataclass(frozen=True, slots=True)
class Rem:
    """Remaining budget below a position."""

    params: int
    act: int
    ops: int
    flops: int

    def divided(self, k: int) -> Rem:
        return Rem(self.params // k, self.act // k, self.ops // k, self.flops // k)

    def fits(self, leaf: _Leaf) -> bool:
        return (
            leaf.params <= self.params
            and leaf.act <= self.act
            and self.ops >= 1
            and leaf.flops <= self.flops
        )


@dataclass(slots=True)
class _Leaf:
    op: Op
    out: Signal
    params: int
    act: int
    flops: int


Chooser = Callable[[str, list[str], list[int]], int]


def expr_label(e: Expr) -> str:
    """Readable text of a grammar alternative (a choice label for Optuna)."""
    if isinstance(e, Sym):
        return e.name
    params = ",".join(f"{n}={'|'.join(map(str, vs))}" for n, vs in e.params)
    args = ",".join(
        expr_label(a) + ("*" if r else "") for a, r in zip(e.args, e.repeat, strict=True)
    )
    inner = ",".join(p for p in (params, args) if p)
    return f"{e.op}({inner})" if inner else e.op


class _Fail(Exception):
    """This subtree has no valid completion on this draw."""


class _Abort(Exception):
    """The draw used up its work allowance; start again."""


class Sampler:
    """Draws architectures from a space's grammar, reproducibly from a seed.

    Args:
        space: the search space (grammar, input, budgets).
        seed: seed of the sampler's own random generator.
        budget: overrides the space's budgets.
        retries: draws of a symbol before its failure is passed to the parent. The default
            1 makes a failure restart the whole draw (rejection sampling), so a production
            is never dropped because one of its subtrees failed.
        max_work: expansions allowed per draw before it restarts.
        chooser: optional ``chooser(param_name, labels, feasible) -> index`` that picks
            the alternative at each position instead of the rng (Optuna samplers use it:
            ``param_name`` is ``"<position>:<rule>"``, ``labels`` all alternatives of the
            rule, ``feasible`` the indices that apply here; it must return one of them).

    Example:
        >>> from nas.space import load_space
        >>> s = Sampler(load_space("einspace"), seed=0)
        >>> arch = s.sample()
    """

    def __init__(
        self,
        space: SearchSpace,
        seed: int | None = None,
        budget: Budget | None = None,
        retries: int = 1,
        max_work: int = 20_000,
        chooser: Chooser | None = None,
    ) -> None:
        self.space = space
        self.g = space.grammar
        self.budget = budget or space.budget
        self.rng = random.Random(seed)
        self.retries = retries
        self.max_work = max_work
        self.max_restarts = 200
        self._leaf_cache: dict[tuple[int, Signal], _Leaf | None] = {}
        self._dead: dict[tuple[str, Signal], int] = {}
        self._min: dict[int, tuple[int, int]] = {}
        self._table: dict[tuple[str, Signal], list[tuple]] = {}
        self._work = 0
        self.chooser = chooser
        self._use_chooser = True
        self._labels: dict[str, list[str]] = {}

    # ------------------------------------------------------------------------------ public
    def root_budget(self) -> Rem:
        b = self.budget
        return Rem(b.max_params, b.max_activation, b.max_ops, b.max_flops)

    def sample(self, x: Signal | None = None, symbol: str | None = None) -> Node:
        """One architecture from ``symbol`` (default: the start symbol) on input ``x``.

        Raises:
            SamplingError: no valid architecture was found (the grammar cannot produce
                one for this input within the budgets).
        """
        x = x or self.space.input
        for attempt in range(self.max_restarts):
            # A chooser (e.g. an Optuna trial) answers the same way every time, so only
            # the first attempt follows it; redraws after a failure use the seeded rng.
            self._use_chooser = attempt == 0
            try:
                node, out, _ = self.draw(
                    symbol or self.g.start, x, self.root_budget(), self.budget.max_depth
                )
            except (_Fail, _Abort):
                continue
            if len(out) == 1:
                return node
        raise SamplingError(
            f"no architecture of {self.g.path} fits input "
            f"{', '.join(map(str, x))} within the budgets after {self.max_restarts} attempts."
        )

    def draw(
        self, symbol: str, x: Signal, rem: Rem, depth_left: int
    ) -> tuple[Node, Signal, tuple[int, int, int, int, int]]:
        """Draw a subtree for ``symbol``: (node, output, (params, act, ops, depth, flops)).

        Raises _Fail / _Abort (internal) when no completion is found on this draw.
        """
        self._work = 0
        return self._symbol(symbol, x, rem, depth_left)

    # ---------------------------------------------------------------------------- internal
    def _minima(self, e: Expr) -> tuple[int, int]:
        m = self._min.get(id(e))
        if m is None:
            m = self._min[id(e)] = self.g.expr_min(e)
        return m

    def _leaf(self, call: Call, x: Signal) -> _Leaf | None:
        key = (id(call), x)
        if key in self._leaf_cache:
            return self._leaf_cache[key]
        leaf = None
        op = create_node(call.op, **call.values())
        try:
            out = op.infer(x)
            leaf = _Leaf(op, out, op.num_params(x), op.activation(x, out), op.flops(x, out))
        except NasError:
            pass
        self._leaf_cache[key] = leaf
        return leaf

    def _choose(self, weighted: list[tuple[Expr, float]], name: str, pos: str) -> Expr:
        if self.chooser is not None and self._use_chooser:
            labels = self._labels.get(name)
            if labels is None:
                labels = self._labels[name] = [expr_label(a.expr) for a in self.g.rules[name].alts]
            index = {id(a.expr): i for i, a in enumerate(self.g.rules[name].alts)}
            feasible = [index[id(e)] for e, _ in weighted]
            k = self.chooser(f"{pos}:{name}", labels, feasible)
            by_index = {index[id(e)]: e for e, _ in weighted}
            return by_index[k]
        total = sum(w for _, w in weighted)
        r = self.rng.random() * total
        for e, w in weighted:
            r -= w
            if r < 0:
                return e
        return weighted[-1][0]

    def _options(self, name: str, x: Signal) -> list[tuple]:
        """Alternatives of ``name`` that can apply to ``x``: (expr, prob, depth, size, leaf).

        Terminals are checked with their shape rules once per signal; ``leaf`` holds their
        output and cost (None for alternatives with children).
        """
        table = []
        for alt in self.g.rules[name].alts:
            e = alt.expr
            d, size = self._minima(e)
            leaf = None
            if isinstance(e, Call) and not create_node(e.op, **e.values()).is_combinator:
                leaf = self._leaf(e, x)
                if leaf is None:
                    continue
            table.append((e, alt.prob, d, size, leaf))
        return table

    def _symbol(self, name: str, x: Signal, rem: Rem, dleft: int, pos: str = ""):
        self._work += 1
        if self._work > self.max_work:
            raise _Abort
        key = (name, x)
        if self._dead.get(key, -1) >= dleft:
            raise _Fail
        table = self._table.get(key)
        if table is None:
            table = self._table[key] = self._options(name, x)
        options = [
            (e, p)
            for e, p, d, size, leaf in table
            if d <= dleft and size <= rem.ops and (leaf is None or rem.fits(leaf))
        ]
        if not options:
            if not any(d <= dleft for _, _, d, _, _ in table):
                self._dead[key] = max(dleft, self._dead.get(key, -1))
            raise _Fail
        for _ in range(self.retries):
            try:
                return self._expr(self._choose(options, name, pos), x, rem, dleft, pos)
            except _Fail:
                continue
        raise _Fail

    def _expr(self, e: Expr, x: Signal, rem: Rem, dleft: int, pos: str):
        if isinstance(e, Sym):
            return self._symbol(e.name, x, rem, dleft, pos)
        call = e  # the loader expanded every parameter choice into its own alternative
        op = create_node(call.op, **call.values())
        if not op.is_combinator:
            leaf = self._leaf(call, x)
            if leaf is None or not rem.fits(leaf):
                raise _Fail
            return Node(op.name, op.values), leaf.out, (leaf.params, leaf.act, 1, 0, leaf.flops)
        return self._combinator(op, call, x, rem, dleft, pos)

    def _combinator(self, op, call: Call, x: Signal, rem: Rem, dleft: int, pos: str):
        """Draw a combinator's children through its ``flow``, consuming the budgets."""
        if dleft < 1:
            raise _Fail
        own = op.num_params(x)
        if own > rem.params:
            raise _Fail
        mins = [self._minima(a)[1] for a in call.args]
        used = [own, 0, 0, 0, 0]  # params, act, ops, depth, flops
        written: dict[int, list[Node]] = {}
        reused: dict[int, tuple[Node, Signal, Signal, tuple[int, ...]]] = {}

        def child(
            slot: int, sig: Signal, copy: int = 0, copies: int = 1, reserve: int = 0
        ) -> Signal:
            arg, rep = call.args[slot], call.repeat[slot]
            shared = (rep and copies > op.independent_upto) or (not rep and slot in reused)
            if shared and slot in reused:
                node, sig0, out, cost = reused[slot]
                if sig != sig0:
                    try:
                        a = analyse(node, sig)
                    except NasError:
                        raise _Fail from None
                    out, cost = a.out, (a.params, a.activation, a.n_ops, a.depth, a.flops)
            else:
                later = sum(mins[slot + 1 :]) + (mins[slot] * (copies - copy - 1) if rep else 0)
                budget = Rem(
                    rem.params - used[0],
                    rem.act - used[1] - reserve,
                    rem.ops - used[2] - later,
                    rem.flops - used[4] - reserve,
                )
                if shared:
                    budget = budget.divided(copies)
                if (
                    budget.ops < mins[slot]
                    or budget.params < 0
                    or budget.act < 0
                    or budget.flops < 0
                ):
                    raise _Fail
                where = f"{pos}/{slot}" + (f".{copy}" if copy and not shared else "")
                node, out, cost = self._expr(arg, sig, budget, dleft - 1, where)
                written.setdefault(slot, []).append(node)
                if shared or not rep:
                    reused[slot] = (node, sig, out, cost)
            used[0] += cost[0]
            used[1] += cost[1]
            used[2] += cost[2]
            used[3] = max(used[3], cost[3])
            used[4] += cost[4]
            if (
                used[0] > rem.params
                or used[1] > rem.act
                or used[2] > rem.ops
                or used[4] > rem.flops
            ):
                raise _Fail
            return out

        try:
            y = op.flow(x, child)
        except NasError:
            raise _Fail from None
        used[1] += op.activation(x, y)
        used[4] += op.flops(x, y)
        if used[1] > rem.act or used[4] > rem.flops:
            raise _Fail
        kids = tuple(n for slot in sorted(written) for n in written[slot])
        return (
            Node(op.name, op.values, kids),
            y,
            (used[0], used[1], used[2], used[3] + 1, used[4]),
        )
