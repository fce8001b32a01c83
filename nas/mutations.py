"""Mutation operators: one small change to an architecture, each child valid and new.

einspace's only mutation redraws a whole subtree from the grammar (``redraw``,
:func:`nas.evolution.mutate`). On a good parent that is mostly a large jump: measured with
``bench/mutation.py``, most redraws of the best networks trained far below their parent,
many to chance. The local operators here change one thing and let the rest of the network
adapt its shapes (a ``linear`` takes whatever width arrives):

* ``param``: one hyperparameter of one op (a width, a kernel, a stride, a permutation),
  preferring the neighbouring value;
* ``swap``: one op for another of the same signature (``leakyrelu`` for ``norm``, ...);
* ``insert``: one module inserted before or after a module (a shape-keeping one, or a
  small free draw whose new shape the rest of the network takes);
* ``remove``: one module taken out (a ``seq`` by one of its halves, a ``route`` or a
  ``branch`` by its inner module);
* ``branch``: one branch changed (one child of a ``branch`` redrawn to the same output, or
  a module wrapped in a skip connection);
* ``repeat``: a shape-keeping module with weights followed by a fresh copy of itself
  (one block deeper, as a morphism's deepening step);
* ``redraw``: einspace's subtree redraw.

Every child passes the space's checks, is derivable from the grammar at the position it
replaces, and differs from its parent by more than no-op wrappers. An operator that finds
no such child at a parent returns None and another operator is tried. A new operator is
one function registered with :func:`mutation` and a default weight.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property

from nas.analysis import Analysis, NodeInfo
from nas.degenerate import canonical_key
from nas.dsl.arch import Node, make_node
from nas.dsl.derive import derives
from nas.dsl.grammar import Call
from nas.dsl.vocab import create_node
from nas.exceptions import NasError, SamplingError
from nas.registry import Registry
from nas.sampling import Rem, Sampler, _Abort, _Fail
from nas.space import SearchSpace, _check_repeats

__all__ = [
    "DEFAULT_WEIGHTS",
    "MUTATIONS",
    "Site",
    "mutate_with",
    "mutation",
]

Operator = Callable[["Site"], Node | None]
#: The mutation operators by name; each takes a :class:`Site` and returns a child or None.
MUTATIONS: Registry[Operator] = Registry("mutation")
#: Default weights of the operators in a search (``re`` option ``mutations``); set with
#: :func:`mutation` and justified by ``bench/mutation.py`` (docs/search.md).
DEFAULT_WEIGHTS: dict[str, float] = {}
POSITIONS = 8  # positions an operator tries before it gives up on a parent
SMALL_OPS = 2  # ops of a freely drawn inserted module


def mutation(name: str, weight: float) -> Callable[[Operator], Operator]:
    """Register a mutation operator under ``name`` with its default weight."""

    def add(fn: Operator) -> Operator:
        MUTATIONS.register(name)(fn)
        DEFAULT_WEIGHTS[name] = weight
        return fn

    return add


@dataclass
class Site:
    """A parent analysed once for all operators: its nodes, their signals and symbols."""

    space: SearchSpace
    arch: Node
    rng: random.Random
    sampler: Sampler
    #: A reason not to take a child (e.g. a trained search's degenerate screen), or None.
    screen: Callable[[Node], str | None] | None = None
    analysis: Analysis = field(init=False)
    syms: dict[tuple[int, ...], str] = field(init=False)

    def __post_init__(self) -> None:
        from nas.evolution import slot_symbols

        self.analysis = self.space.check(self.arch)
        self.syms = slot_symbols(self.space, self.arch)
        self._memo: dict = {}

    @cached_property
    def key(self) -> str:
        return canonical_key(self.arch)

    def positions(self, keep: Callable[[NodeInfo], bool]) -> list[NodeInfo]:
        """Written positions derived from a grammar symbol that ``keep`` accepts, shuffled,
        at most :data:`POSITIONS`."""
        found = [i for p, i in self.analysis.nodes.items() if p in self.syms and keep(i)]
        self.rng.shuffle(found)
        return found[:POSITIONS]

    def child(self, path: tuple[int, ...], new: Node) -> Node | None:
        """The parent with ``new`` at ``path``, when derivable there, valid and new.

        A changed branching factor (``clone(k=2)`` to ``k=4``) changes how many repeated
        children its ``branch`` writes: the branch is rewritten with its first repeated
        child written as often as the new factor needs (einspace: two independent below
        three, one shared above)."""
        if new == self.arch.at(path):
            return None
        if not derives(self.space.grammar, self.syms[path], new, self._memo):
            return None
        child = self.arch.replace(path, new)
        for cand in (child, *_rewritten_repeats(child, path[:-1])):
            try:
                _check_repeats(self.space.check(cand))
            except NasError:
                continue
            if canonical_key(cand) == self.key or (self.screen and self.screen(cand)):
                return None
            return cand
        return None

    def terminals(self, sym: str) -> list[Call]:
        """The terminal calls rule ``sym`` writes directly (one per parameter choice)."""
        out = []
        for alt in self.space.grammar.rules[sym].alts:
            e = alt.expr
            if isinstance(e, Call) and not create_node(e.op, **e.values()).is_combinator:
                out.append(e)
        return out

    def rem(self, info: NodeInfo) -> Rem:
        """The budget a replacement of ``info``'s subtree may spend."""
        b, a = self.sampler.budget, self.analysis
        return Rem(
            b.max_params - a.params + info.params,
            b.max_activation - a.activation + info.activation,
            b.max_ops - a.n_ops + info.n_ops,
            b.max_flops - a.flops + info.flops,
        )


def _rewritten_repeats(arch: Node, path: tuple[int, ...]) -> list[Node]:
    """``arch`` with the combinator at ``path`` writing its repeated child once and twice
    (nothing when it has no repeated slot)."""
    if not arch.children and not path:
        return []
    try:
        node = arch.at(path)
    except IndexError:
        return []
    cls = type(create_node(node.op, **dict(node.params)))
    r = getattr(cls, "repeat_slot", None)
    if r is None or not node.children:
        return []
    m = len(node.children) - (cls.n_slots - 1)
    first, head, tail = node.children[r], node.children[:r], node.children[r + m :]
    out = []
    for n in (1, 2):
        if n != m:
            out.append(arch.replace(path, Node(node.op, node.params, head + (first,) * n + tail)))
    return out


def _leaf(call: Call) -> Node:
    op = create_node(call.op, **call.values())
    return Node(op.name, op.values)


def _sorted_values(values: set) -> list:
    try:
        return sorted(values)
    except TypeError:
        return sorted(values, key=str)


@mutation("param", weight=3.0)
def change_param(site: Site) -> Node | None:
    """One hyperparameter of one op changed, to a neighbouring value three times in four."""
    for info in site.positions(lambda i: not i.node.children and bool(i.node.params)):
        node, params = info.node, dict(info.node.params)
        same_op = [c for c in site.terminals(site.syms[info.path]) if c.op == node.op]
        names = [n for n in params if len({c.values().get(n) for c in same_op}) > 1]
        site.rng.shuffle(names)
        for name in names:
            # calls that differ from this op in ``name`` only
            others = {
                c.values()[name]: c
                for c in same_op
                if c.values()[name] != params[name]
                and all(v == params.get(k) for k, v in c.values().items() if k != name)
            }
            if not others:
                continue
            order = _sorted_values({*others, params[name]})
            at = order.index(params[name])
            near = [
                v for v in (order[at - 1] if at else None, *order[at + 1 : at + 2]) if v in others
            ]
            rest = [v for v in others if v not in near]
            site.rng.shuffle(near)
            site.rng.shuffle(rest)
            first = near if near and (not rest or site.rng.random() < 0.75) else rest
            for value in first + [v for v in near + rest if v not in first]:
                child = site.child(info.path, _leaf(others[value]))
                if child is not None:
                    return child
    return None


@mutation("swap", weight=2.0)
def swap_op(site: Site) -> Node | None:
    """One op replaced by another op of the same signature (same output on its input)."""
    for info in site.positions(lambda i: not i.node.children):
        cands = []
        for call in site.terminals(site.syms[info.path]):
            if call.op == info.node.op:
                continue
            try:
                if create_node(call.op, **call.values()).infer(info.inp) == info.out:
                    cands.append(call)
            except NasError:
                continue
        site.rng.shuffle(cands)
        for call in cands:
            child = site.child(info.path, _leaf(call))
            if child is not None:
                return child
    return None


def _module_positions(site: Site) -> list[NodeInfo]:
    from nas.evolution import _has_seq

    return site.positions(lambda i: _has_seq(site.space, site.syms[i.path]))


@mutation("insert", weight=2.0)
def insert_module(site: Site) -> Node | None:
    """A module inserted before or after a module: shape-keeping (aimed at the same signal),
    or a small free draw whose output the rest of the network takes."""
    from nas.targeted import TargetedDraw, insert

    b = site.sampler.budget
    for info in _module_positions(site):
        dleft = b.max_depth - info.module_depth
        draw = TargetedDraw(site.sampler, site.rng, site.rem(info))
        try:
            if site.rng.random() < 0.5:
                new = insert(draw, site.syms[info.path], info.inp, info.out, dleft, info.node)
            else:
                new = _free_insert(site, info, draw, dleft)
        except (_Fail, _Abort, NasError):
            continue
        child = site.child(info.path, new)
        if child is not None:
            return child
    return None


def _free_insert(site: Site, info: NodeInfo, draw, dleft: int) -> Node:
    """``seq(old, B)`` or ``seq(B, old)`` with ``B`` a free draw of at most SMALL_OPS ops."""
    seqs = [
        a for a in site.space.grammar.rules[site.syms[info.path]].alts
        if isinstance(a.expr, Call) and a.expr.op == "seq"
    ]  # fmt: skip
    if not seqs:  # the symbol derives seq through another rule (einspace's module)
        from nas.evolution import _has_seq

        inner = [
            a.expr.name for a in site.space.grammar.rules[site.syms[info.path]].alts
            if not isinstance(a.expr, Call) and _has_seq(site.space, a.expr.name)
        ]  # fmt: skip
        seqs = [
            a for name in inner for a in site.space.grammar.rules[name].alts
            if isinstance(a.expr, Call) and a.expr.op == "seq"
        ]  # fmt: skip
    if not seqs or dleft < 2:
        raise _Fail
    first, second = seqs[0].expr.args
    draw.rem = Rem(draw.rem.params, draw.rem.act, SMALL_OPS, draw.rem.flops)
    if site.rng.random() < 0.5:
        new, _ = draw.free(second, info.out, dleft - 1)
        return Node("seq", (), (info.node, new))
    new, _ = draw.free(first, info.inp, dleft - 1)
    return Node("seq", (), (new, info.node))


@mutation("remove", weight=2.0)
def remove_module(site: Site) -> Node | None:
    """One module taken out: a ``seq`` by one of its halves, a ``route`` or a two-way
    ``branch`` by one inner module."""
    for info in site.positions(lambda i: i.node.op in ("seq", "route", "branch")):
        kids = info.node.children
        if info.node.op == "seq":
            keep = list(kids)
        elif info.node.op == "route":
            keep = [kids[1]]
        else:
            keep = [k for k in kids if k.children]
        site.rng.shuffle(keep)
        for k in keep:
            child = site.child(info.path, k)
            if child is not None:
                return child
    return None


@mutation("branch", weight=1.0)
def change_branch(site: Site) -> Node | None:
    """One branch of a ``branch`` redrawn to the same output, or a module wrapped in a skip
    connection (``branch(clone(k=2), M, compute(identity), add)``) when none is there."""
    from nas.targeted import TargetedDraw

    b = site.sampler.budget
    branches = [
        (p, i) for p, i in site.analysis.nodes.items()
        if i.node.op == "branch" and len(p) < 64 and any((*p, j) in site.syms for j in range(8))
    ]  # fmt: skip
    site.rng.shuffle(branches)
    for path, info in branches[:POSITIONS]:
        kids = [
            j for j, k in enumerate(info.node.children) if k.children and (*path, j) in site.syms
        ]
        site.rng.shuffle(kids)
        for j in kids:
            kid = site.analysis.nodes.get((*path, j))
            if kid is None:
                continue
            draw = TargetedDraw(site.sampler, site.rng, site.rem(kid))
            try:
                new = draw.symbol(
                    site.syms[kid.path], kid.inp, kid.out, b.max_depth - kid.module_depth, kid.node
                )
            except (_Fail, _Abort):
                continue
            child = site.child(kid.path, new)
            if child is not None:
                return child
    for info in _module_positions(site):
        if info.inp != info.out or not info.params:  # a skip around weights, not an identity
            continue
        identity = make_node("compute", (make_node("identity"),))
        skip = make_node(
            "branch", (make_node("clone", k=2), info.node, identity, make_node("add"))
        )
        child = site.child(info.path, skip)
        if child is not None:
            return child
    return None


@mutation("repeat", weight=2.0)
def repeat_module(site: Site) -> Node | None:
    """A shape-keeping module with weights followed by a fresh copy of itself: the network
    one block deeper (a morphism's deepening), drawn by the module's parameter count."""
    keep = [
        i for i in site.analysis.nodes.values()
        if i.path in site.syms and i.inp == i.out and i.params and i.node.children
    ]  # fmt: skip
    while keep:
        info = site.rng.choices(keep, weights=[i.params for i in keep])[0]
        keep.remove(info)
        child = site.child(info.path, make_node("seq", (info.node, info.node)))
        if child is not None:
            return child
    return None


@mutation("redraw", weight=1.0)
def redraw_subtree(site: Site) -> Node | None:
    """einspace's mutation: one subtree redrawn from the grammar (nas.evolution.mutate)."""
    from nas.evolution import mutate

    try:
        child = mutate(site.space, site.arch, site.rng, sampler=site.sampler)
    except SamplingError:
        return None
    if canonical_key(child) == site.key or (site.screen and site.screen(child)):
        return None
    return child


def mutate_with(
    space: SearchSpace,
    arch: Node,
    rng: random.Random,
    weights: Mapping[str, float] | None = None,
    sampler: Sampler | None = None,
    screen: Callable[[Node], str | None] | None = None,
) -> tuple[Node, str]:
    """A child of ``arch`` and the name of the operator that made it.

    An operator is drawn by ``weights`` (default :data:`DEFAULT_WEIGHTS`); when it finds no
    child at this parent, another of the rest is drawn. ``screen(child)`` returning a
    reason rejects a child (a trained search's degenerate networks).

    Raises:
        SamplingError: no operator found a child.
        UnknownNameError: ``weights`` names an operator that is not registered.
    """
    weights = dict(DEFAULT_WEIGHTS if weights is None else weights)
    for name in weights:
        MUTATIONS.get(name)
    sampler = sampler or Sampler(space, seed=rng.randrange(2**31))
    sampler.rng = rng
    site = Site(space, arch, rng, sampler, screen)
    ops = sorted((n, w) for n, w in weights.items() if w > 0)
    while ops:
        r = rng.random() * sum(w for _, w in ops)
        i = 0
        while i < len(ops) - 1 and r >= ops[i][1]:
            r -= ops[i][1]
            i += 1
        name, _ = ops.pop(i)
        child = MUTATIONS.get(name)(site)
        if child is not None:
            return child, name
    raise SamplingError("no mutation operator found a valid new child of this architecture.")
