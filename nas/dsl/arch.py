"""Architectures as derivation trees, and their one canonical string form.

The string is what is stored, compared, hashed and shown; ``parse_arch(str(node))`` gives
back an equal tree, and ``str(parse_arch(s)) == s`` for every canonical ``s``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import cached_property
from importlib import resources

from lark import Lark, Token, Transformer, UnexpectedInput, UnexpectedToken, v_args

from nas.dsl.vocab import node_class
from nas.exceptions import ArchSyntaxError, NasError
from nas.ops._registry import ParamValue, format_call

_PARSER: Lark | None = None

# Longest architecture string and deepest nesting accepted: far above what any budget
# admits (einspace: max_depth 40), far below what would exhaust time or the call stack.
MAX_ARCH_CHARS = 100_000
MAX_NESTING = 100


@dataclass(frozen=True)
class Node:
    """One op application in a derivation: the op, its parameters, its children.

    Example:
        >>> str(parse_arch("seq( compute(norm), compute(linear(out=64)) )"))
        'seq(compute(norm),compute(linear(out=64)))'
    """

    op: str
    params: tuple[tuple[str, ParamValue], ...] = ()
    children: tuple[Node, ...] = ()
    column: int = field(default=0, compare=False, hash=False, repr=False)

    def __str__(self) -> str:
        return self.text

    @cached_property
    def text(self) -> str:
        """The canonical string."""
        head = format_call(self.op, self.params)
        if not self.children:
            return head
        kids = ",".join(c.text for c in self.children)
        if self.params:
            return f"{head[:-1]},{kids})"
        return f"{head}({kids})"

    @property
    def digest(self) -> str:
        """A short stable hash of the canonical string (for file and trial names)."""
        return hashlib.sha1(self.text.encode()).hexdigest()[:12]

    def walk(self) -> list[tuple[tuple[int, ...], Node]]:
        """All (path, node) pairs in pre-order; a path is the child indices from the root."""
        out: list[tuple[tuple[int, ...], Node]] = []
        stack: list[tuple[tuple[int, ...], Node]] = [((), self)]
        while stack:
            path, node = stack.pop()
            out.append((path, node))
            for i in range(len(node.children) - 1, -1, -1):
                stack.append(((*path, i), node.children[i]))
        return out

    def at(self, path: tuple[int, ...]) -> Node:
        """The node at ``path``."""
        node = self
        for i in path:
            node = node.children[i]
        return node

    def replace(self, path: tuple[int, ...], new: Node) -> Node:
        """A copy of this tree with the node at ``path`` replaced by ``new``."""
        if not path:
            return new
        i = path[0]
        kids = list(self.children)
        kids[i] = kids[i].replace(path[1:], new)
        return canonical(Node(self.op, self.params, tuple(kids)))

    @property
    def size(self) -> int:
        """Number of ops written in the string."""
        return sum(1 for _ in self.walk())


def canonical(node: Node) -> Node:
    """Collapse identical repeated children that the string writes once (e.g. branch k=4)."""
    cls = node_class(node.op)
    r = getattr(cls, "repeat_slot", None)
    if r is None:
        return node
    m = len(node.children) - (cls.n_slots - 1)
    if m > cls.independent_upto:
        reps = node.children[r : r + m]
        if all(c == reps[0] for c in reps):
            kids = node.children[:r] + (reps[0],) + node.children[r + m :]
            return Node(node.op, node.params, kids, node.column)
    return node


def make_node(
    op: str, children: tuple[Node, ...] = (), column: int = 0, **params: ParamValue
) -> Node:
    """A node with its parameters checked, typed and put in canonical order.

    Raises:
        UnknownNameError: ``op`` is not registered.
        ShapeError: a parameter is missing, unknown or of the wrong type.
    """
    cls = node_class(op)
    inst = cls(**params)
    if children and not cls.is_combinator:
        raise ArchSyntaxError(f"op {op!r} at column {column} is a terminal and takes no children.")
    return canonical(Node(op, inst.values, tuple(children), column))


def _parser() -> Lark:
    global _PARSER
    if _PARSER is None:
        text = resources.files("nas.dsl").joinpath("arch.lark").read_text()
        _PARSER = Lark(text, parser="lalr", propagate_positions=True)
    return _PARSER


@v_args(inline=True)
class _ToNode(Transformer):
    def number(self, tok: Token) -> int | float:
        try:
            return int(tok)
        except ValueError:
            return float(tok)

    def word(self, tok: Token) -> str:
        return str(tok)

    def kw(self, name: Token, value: ParamValue) -> tuple[str, ParamValue]:
        return (str(name), value)

    def node(self, name: Token, *items: object) -> Node:
        pairs = [i for i in items if isinstance(i, tuple)]
        params = dict(pairs)
        kids = tuple(i for i in items if isinstance(i, Node))
        col = name.column or 0
        if len(params) != len(pairs):
            dup = next(k for k, _ in pairs if sum(k == j for j, _ in pairs) > 1)
            raise ArchSyntaxError(f"column {col}: parameter {dup!r} of {name} is given twice.")
        try:
            return make_node(str(name), kids, col, **params)
        except NasError as e:
            raise ArchSyntaxError(f"column {col}: {e}") from None


_CACHE: dict[str, Node] = {}

_TOKENS = {
    "LPAR": "'('",
    "RPAR": "')'",
    "COMMA": "','",
    "EQUAL": "'='",
    "NAME": "an op name",
    "SIGNED_NUMBER": "a number",
    "$END": "the end",
}


def _syntax_message(text: str, e: UnexpectedInput) -> str:
    """'what was found, where, and what was expected' for a string that does not parse."""
    expected = getattr(e, "expected", None) or getattr(e, "allowed", None) or ()
    want = " or ".join(sorted({_TOKENS.get(t, t) for t in expected}))
    hint = f"; expected {want}" if want else ""
    if isinstance(e, UnexpectedToken) and e.token.type == "$END":
        return f"architecture string ends early at column {len(text) + 1}{hint}."
    col = getattr(e, "column", 0)
    snippet = text[max(0, col - 21) : col + 20]
    # Newlines and other control characters are escaped: the message stays one line.
    snippet = "".join(c if c.isprintable() else repr(c)[1:-1] for c in snippet)
    return f"architecture string does not parse at column {col}{hint}: ...{snippet}..."


def parse_arch(text: str) -> Node:
    """Parse an architecture string into its tree (canonicalised).

    Raises:
        ArchSyntaxError: the string does not parse, names an unknown op or a bad
            parameter; the message gives the column.
    """
    node = _CACHE.get(text)
    if node is not None:
        return node
    _check_size(text)
    try:
        tree = _parser().parse(text)
    except UnexpectedInput as e:
        raise ArchSyntaxError(_syntax_message(text, e)) from None
    try:
        node = _ToNode().transform(tree)
    except Exception as e:  # lark wraps errors raised inside the transformer
        inner = getattr(e, "orig_exc", e)
        if isinstance(inner, NasError):
            raise inner from None
        raise
    if len(_CACHE) < 100_000 and len(text) < 4096:
        _CACHE[text] = node
    return node


def _check_size(text: str) -> None:
    """Reject strings too long or nested too deep before parsing (they cost time, stack)."""
    if len(text) > MAX_ARCH_CHARS:
        raise ArchSyntaxError(
            f"architecture string has {len(text):,} characters; the limit is {MAX_ARCH_CHARS:,}."
        )
    if text.count("(") <= MAX_NESTING:
        return
    depth = 0
    for col, ch in enumerate(text, 1):
        if ch == "(":
            depth += 1
            if depth > MAX_NESTING:
                raise ArchSyntaxError(
                    f"architecture string nests deeper than {MAX_NESTING} levels at column {col}."
                )
        elif ch == ")":
            depth -= 1
