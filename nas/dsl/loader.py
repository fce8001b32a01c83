"""Parse ``.pcfg`` files into a :class:`Grammar`, with errors that say where and why."""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Callable, Iterator
from importlib import resources
from pathlib import Path

from lark import Lark, Token, Transformer, Tree, UnexpectedInput, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedToken

from nas.dsl.files import UnreadableFileError, read_text
from nas.dsl.grammar import Alt, Call, Expr, Grammar, Pos, Rule, Sym
from nas.exceptions import GrammarError, NasError, ShapeError, UnknownNameError
from nas.ops import get_op, is_op, suggest_ops

_PARSER: Lark | None = None

# Human names for the DSL's tokens in "expected ..." messages.
_TOKEN_NAMES = {
    "NAME": "a name",
    "ARROW": "'->'",
    "VBAR": "'|'",
    "LPAR": "'('",
    "RPAR": "')'",
    "COMMA": "','",
    "EQUAL": "'='",
    "STAR": "'*'",
    "LSQB": "'['",
    "RSQB": "']'",
    "NUMBER": "a number",
    "SIGNED_NUMBER": "a number",
    "STRING": "a quoted file name",
    "INCLUDE": "'include'",
    "IMPORT": "'import'",
    "START": "'start'",
    "$END": "the end of the file",
}

PROB_TOLERANCE = 1e-6
# Bounds that keep loading fast whatever the file: nesting (the parser and the checks
# recurse), included files, and alternatives after parameter choices are multiplied out.
MAX_NESTING = 100
MAX_INCLUDES = 64
MAX_INCLUDE_DEPTH = 16
MAX_ALTERNATIVES = 100_000


def _parser() -> Lark:
    global _PARSER
    if _PARSER is None:
        text = resources.files("nas.dsl").joinpath("pcfg.lark").read_text()
        _PARSER = Lark(text, parser="lalr", propagate_positions=True, maybe_placeholders=False)
    return _PARSER


def _syntax_error(err: UnexpectedInput, path: str) -> GrammarError:
    if isinstance(err, UnexpectedToken):
        got = "end of file" if err.token.type == "$END" else repr(str(err.token))
        want = sorted({_TOKEN_NAMES.get(t, t) for t in err.expected})
        return GrammarError(
            f"unexpected {got}; expected {' or '.join(want)}.", path, err.line, err.column
        )
    if isinstance(err, UnexpectedCharacters):
        want = sorted({_TOKEN_NAMES.get(t, t) for t in (err.allowed or ())})
        hint = f"; expected {' or '.join(want)}" if want else ""
        return GrammarError(
            f"unexpected character {err.char!r}{hint}.", path, err.line, err.column
        )
    if isinstance(err, UnexpectedEOF):
        return GrammarError("unexpected end of file.", path, err.line, err.column)
    return GrammarError(str(err), path, getattr(err, "line", 0), getattr(err, "column", 0))


class _RawRule:
    def __init__(self, name: str, alts: list[tuple[Expr, float | None, Pos]], pos: Pos):
        self.name, self.alts, self.pos = name, alts, pos


@v_args(inline=True)
class _Builder(Transformer):
    """Turns the lark tree of one file into raw rules, includes and a start symbol."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path

    def _pos(self, tok: Token | Tree) -> Pos:
        if isinstance(tok, Token):
            return Pos(self.path, tok.line or 0, tok.column or 0)
        return Pos(self.path, tok.meta.line, tok.meta.column)

    def number(self, tok: Token) -> int | float:
        text = str(tok)
        try:
            return int(text)
        except ValueError:
            return float(text)

    def word(self, tok: Token) -> str:
        return str(tok)

    def symbol(self, tok: Token) -> Sym:
        return Sym(str(tok), self._pos(tok))

    def param(self, name: Token, *values: int | float | str) -> tuple:
        return ("param", str(name), tuple(values), self._pos(name))

    def repeat(self, expr: Expr) -> tuple:
        return ("repeat", expr)

    def call(self, name: Token, *args: object) -> Call:
        params, exprs, reps = [], [], []
        for a in args:
            if isinstance(a, tuple) and a[0] == "param":
                params.append((a[1], a[2], a[3]))
            elif isinstance(a, tuple) and a[0] == "repeat":
                exprs.append(a[1])
                reps.append(True)
            else:
                exprs.append(a)
                reps.append(False)
        call = Call(
            str(name),
            tuple((n, v) for n, v, _ in params),
            tuple(exprs),
            tuple(reps),
            self._pos(name),
        )
        object.__setattr__(call, "_param_pos", {n: p for n, _, p in params})
        return call

    def prob(self, tok: Token) -> tuple:
        return ("prob", float(tok), self._pos(tok))

    def alternative(self, expr: Expr, prob: tuple | None = None) -> tuple:
        if prob is None:
            return (expr, None, expr.pos)
        return (expr, prob[1], prob[2])

    def rule(self, name: Token, _arrow: Token, *alts: tuple) -> _RawRule:
        return _RawRule(str(name), list(alts), self._pos(name))

    def include(self, tok: Token) -> tuple:
        return ("include", str(tok)[1:-1], self._pos(tok))

    def import_decl(self, tok: Token) -> tuple:
        return ("import", str(tok)[1:-1], self._pos(tok))

    def start_decl(self, tok: Token) -> tuple:
        return ("start", str(tok), self._pos(tok))

    def start(self, *items: object) -> list:
        return list(items)


class _Budget:
    """Counts what one load reads, so that includes cannot multiply work without bound."""

    def __init__(self) -> None:
        self.files = 0


def _read_items(
    path: Path | str, text: str | None, stack: tuple[str, ...], budget: _Budget | None = None
) -> list:
    """Parse one file and (recursively) its includes; returns items in file order."""
    name = str(path)
    budget = budget or _Budget()
    budget.files += 1
    if text is None:
        try:
            text = read_text(path)
        except UnreadableFileError as e:
            raise GrammarError(f"cannot read grammar file: {e.reason}.", name) from None
    _check_nesting(text, name)
    try:
        tree = _parser().parse(text)
    except UnexpectedInput as e:
        raise _syntax_error(e, name) from None
    items = _Builder(name).transform(tree)
    out: list = []
    for item in items:
        if isinstance(item, tuple) and item[0] == "include":
            p = item[2]
            target = (Path(path).parent / item[1]).resolve()
            target_s = str(target)
            here = str(Path(path).resolve())
            if target_s in stack or target_s == here:
                chain = " -> ".join(Path(s).name for s in (*stack, here, target_s))
                raise GrammarError(f"include cycle: {chain}.", p.path, p.line, p.column)
            if len(stack) >= MAX_INCLUDE_DEPTH or budget.files >= MAX_INCLUDES:
                raise GrammarError(
                    f"too many includes (at most {MAX_INCLUDES} files, "
                    f"nested at most {MAX_INCLUDE_DEPTH} deep).",
                    p.path,
                    p.line,
                    p.column,
                )
            if not target.exists():
                raise GrammarError(
                    f"included file {item[1]!r} does not exist (looked for {target}).",
                    p.path,
                    p.line,
                    p.column,
                )
            try:
                included = read_text(target)
            except UnreadableFileError as e:
                raise GrammarError(
                    f"cannot include {item[1]!r}: {e.reason}.", p.path, p.line, p.column
                ) from None
            out.extend(_read_items(target, included, (*stack, here), budget))
        else:
            out.append(item)
    return out


def _check_nesting(text: str, name: str) -> None:
    """Reject parentheses nested deeper than MAX_NESTING (outside comments and strings)."""
    if text.count("(") <= MAX_NESTING:
        return
    depth, line, col, state = 0, 1, 0, ""
    for ch in text:
        col += 1
        if ch == "\n":
            line, col, state = line + 1, 0, ""
        elif state == "#":
            continue
        elif ch == '"':
            state = "" if state == '"' else '"'
        elif state:
            continue
        elif ch == "#":
            state = "#"
        elif ch == "(":
            depth += 1
            if depth > MAX_NESTING:
                raise GrammarError(
                    f"expressions nest deeper than {MAX_NESTING} levels.", name, line, col
                )
        elif ch == ")":
            depth -= 1


def _check_call(call: Call, rules: dict[str, _RawRule]) -> Expr:
    """Validate an op call against the registry; returns the call, or a Sym for a rule name."""
    p = call.pos
    if not is_op(call.op):
        close = suggest_ops(call.op)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise GrammarError(f"unknown op {call.op!r}.{hint}", p.path, p.line, p.column)
    cls = get_op(call.op)
    ppos = getattr(call, "_param_pos", {})
    for pname, values in call.params:
        if pname not in cls.params:
            q = ppos.get(pname, p)
            raise GrammarError(
                f"op {call.op!r} has no parameter {pname!r}; expected one of: "
                f"{', '.join(cls.params) or 'none'}.",
                q.path,
                q.line,
                q.column,
            )
        for v in values:
            try:
                get_op(call.op)(**{**_defaults(cls), pname: v})
            except ShapeError as e:
                q = ppos.get(pname, p)
                raise GrammarError(str(e), q.path, q.line, q.column) from None
    missing = [
        n for n, d in cls.params.items() if not isinstance(d, tuple) and n not in dict(call.params)
    ]
    if missing:
        raise GrammarError(
            f"op {call.op!r} needs parameter {missing[0]!r}.", p.path, p.line, p.column
        )
    if cls.is_combinator:
        n = len(call.args)
        if cls.repeat_slot is None and n != cls.n_slots:
            raise GrammarError(
                f"{call.op} takes {cls.n_slots} children, got {n}.", p.path, p.line, p.column
            )
        for i, rep in enumerate(call.repeat):
            if rep and i != cls.repeat_slot:
                a = call.args[i].pos
                raise GrammarError(
                    f"child {i + 1} of {call.op} cannot be repeated with '*'.",
                    a.path,
                    a.line,
                    a.column,
                )
        if cls.repeat_slot is not None and (n != cls.n_slots):
            raise GrammarError(
                f"{call.op} takes {cls.n_slots} children, got {n}.", p.path, p.line, p.column
            )
    elif call.args:
        raise GrammarError(
            f"op {call.op!r} is a terminal and takes no children.", p.path, p.line, p.column
        )
    return Call(
        call.op, call.params, tuple(_resolve(a, rules) for a in call.args), call.repeat, call.pos
    )


def _defaults(cls: type) -> dict:
    """Placeholder values for the required parameters when checking one parameter."""
    out = {}
    for n, d in cls.params.items():
        if not isinstance(d, tuple):
            out[n] = {"int": 2, "float": 1.0, "str": "a"}.get(d.__name__, 2)
    return out


def _resolve(expr: Expr, rules: dict[str, _RawRule]) -> Expr:
    """Symbols naming rules stay symbols, bare op names become calls; others are errors."""
    if isinstance(expr, Call):
        return _check_call(expr, rules)
    if expr.name in rules:
        return expr
    if is_op(expr.name):
        return _check_call(Call(expr.name, (), (), (), expr.pos), rules)
    p = expr.pos
    import difflib

    close = difflib.get_close_matches(expr.name, [*rules, *suggest_ops(expr.name)], n=3)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise GrammarError(
        f"unknown symbol {expr.name!r}: expected a rule defined in the grammar or a "
        f"registered op.{hint}",
        p.path,
        p.line,
        p.column,
    )


def _normalise(raw: _RawRule) -> list[Alt]:
    """Expand parameter choices and turn probabilities into a distribution."""
    given = [prob for _, prob, _ in raw.alts if prob is not None]
    for _, prob, pos in raw.alts:
        if prob is not None and (prob < 0 or not math.isfinite(prob)):
            raise GrammarError(
                f"probability {prob} of an alternative of {raw.name!r} must be between 0 and 1.",
                pos.path,
                pos.line,
                pos.column,
            )
    total = sum(given)
    # Parameter choices are shorthand for writing each combination out as an alternative.
    expanded = [
        (expr.fixed() if isinstance(expr, Call) else [expr], prob) for expr, prob, _ in raw.alts
    ]
    n_free = sum(len(es) for es, prob in expanded if prob is None)
    p = raw.pos
    if total > 1 + PROB_TOLERANCE:
        raise GrammarError(
            f"the probabilities of rule {raw.name!r} sum to {total:g}; "
            f"they must sum to at most 1.",
            p.path,
            p.line,
            p.column,
        )
    if n_free == 0 and abs(total - 1) > 1e-3:
        raise GrammarError(
            f"the probabilities of rule {raw.name!r} sum to {total:g}; "
            f"they must sum to 1 (or leave some alternatives without one "
            f"to share the rest).",
            p.path,
            p.line,
            p.column,
        )
    if n_free and total >= 1 - PROB_TOLERANCE:
        raise GrammarError(
            f"the probabilities of rule {raw.name!r} already sum to 1, so "
            f"its alternatives without a probability would never be chosen.",
            p.path,
            p.line,
            p.column,
        )
    share = (1 - total) / n_free if n_free else 0.0
    alts: list[Alt] = []
    for es, prob in expanded:
        each = share if prob is None else prob / len(es)
        alts.extend(Alt(e, each) for e in es)
    z = sum(a.prob for a in alts)
    return [Alt(a.expr, a.prob / z) for a in alts]


def _symbols(expr: Expr) -> list[Sym]:
    if isinstance(expr, Sym):
        return [expr]
    return [s for a in expr.args for s in _symbols(a)]


def load_grammar(path: str | Path, text: str | None = None) -> Grammar:
    """Load and validate a ``.pcfg`` grammar.

    Args:
        path: the file to read (also used in error messages when ``text`` is given).
        text: the grammar source, if it is not to be read from ``path``.

    Raises:
        GrammarError: any syntax or semantic error, naming file:line:col.
    """
    name = str(path)
    items = _read_items(path, text, ())
    raws: dict[str, _RawRule] = {}
    start: tuple | None = None
    for item in items:
        if isinstance(item, _RawRule):
            if item.name in raws:
                q, first = item.pos, raws[item.name].pos
                raise GrammarError(
                    f"rule {item.name!r} is defined twice (first at {first}).",
                    q.path,
                    q.line,
                    q.column,
                )
            raws[item.name] = item
        elif item[0] == "import":
            _import_ops(item[1], item[2])
        elif item[0] == "start" and (start is None or item[2].path == name):
            start = item
    if not raws:
        raise GrammarError("the grammar defines no rules; expected 'name -> alternatives'.", name)
    if start is None:
        start_name = next(iter(raws))
    else:
        start_name = start[1]
        if start_name not in raws:
            q = start[2]
            raise GrammarError(
                f"start symbol {start_name!r} is not a rule of the grammar.",
                q.path,
                q.line,
                q.column,
            )
    rules: dict[str, Rule] = {}
    written: dict[str, list[Expr]] = {}  # alternatives as written (choices unexpanded)
    n_alts = 0
    for raw in raws.values():
        try:
            resolved = [(_resolve(e, raws), pr, pos) for e, pr, pos in raw.alts]
        except UnknownNameError as e:  # pragma: no cover - _resolve raises GrammarError
            raise GrammarError(str(e), raw.pos.path, raw.pos.line, raw.pos.column) from None
        for expr, _, pos in resolved:
            n_alts += _n_fixed(expr)
            if n_alts > MAX_ALTERNATIVES:
                raise GrammarError(
                    f"rule {raw.name!r} makes the grammar expand to more than "
                    f"{MAX_ALTERNATIVES:,} alternatives once parameter choices are multiplied "
                    f"out ({_n_fixed(expr):,} from this one); write the choices as rules.",
                    pos.path,
                    pos.line,
                    pos.column,
                )
        written[raw.name] = [e for e, _, _ in resolved]
        raw2 = _RawRule(raw.name, resolved, raw.pos)
        rules[raw.name] = Rule(raw.name, _normalise(raw2), raw.pos)
    grammar = Grammar(rules, start_name, name)
    # Parameter choices change neither reachability nor the minima: work on what is written.
    _check_reachable(grammar, written)
    _check_unit_cycles(written)
    _compute_minima(grammar, written)
    return grammar


def _import_ops(module: str, pos: Pos) -> None:
    """``import "mypkg.ops"``: import a user's module so that the ops it defines register."""
    from nas.ops import load_op_module

    if not all(part.isidentifier() for part in module.split(".")):
        raise GrammarError(
            f'import needs a Python module name such as "mypkg.ops", not {module!r}.',
            pos.path,
            pos.line,
            pos.column,
        )
    try:
        load_op_module(module)
    except NasError as e:
        raise GrammarError(str(e), pos.path, pos.line, pos.column) from None


def _check_unit_cycles(written: dict[str, list[Expr]]) -> None:
    """Reject rules that reach themselves through bare references only (``a -> b``,
    ``b -> a``): they add nothing to the language and let a sampler loop forever."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for root in written:
        if root in state:
            continue
        path: list[tuple[str, Iterator[Expr]]] = [(root, iter(written[root]))]
        state[root] = 1
        while path:
            name, alts = path[-1]
            expr = next(alts, None)
            if expr is None:
                state[name] = 2
                path.pop()
            elif isinstance(expr, Sym) and state.get(expr.name) == 1:
                names = [n for n, _ in path]
                chain = " -> ".join([*names[names.index(expr.name) :], expr.name])
                p = expr.pos
                raise GrammarError(
                    f"rules refer to each other with nothing else in between ({chain}); "
                    f"such a cycle derives nothing new.",
                    p.path,
                    p.line,
                    p.column,
                )
            elif isinstance(expr, Sym) and expr.name not in state:
                state[expr.name] = 1
                path.append((expr.name, iter(written[expr.name])))


def _check_reachable(g: Grammar, written: dict[str, list[Expr]]) -> None:
    seen, todo = {g.start}, [g.start]
    while todo:
        for expr in written[todo.pop()]:
            for s in _symbols(expr):
                if s.name not in seen:
                    seen.add(s.name)
                    todo.append(s.name)
    for rule in g.rules.values():
        if rule.name not in seen:
            p = rule.pos
            raise GrammarError(
                f"rule {rule.name!r} is unreachable from the start symbol "
                f"{g.start!r}; use it or remove it.",
                p.path,
                p.line,
                p.column,
            )


def _n_fixed(expr: Expr) -> int:
    """How many alternatives ``expr`` stands for once its parameter choices are expanded."""
    if not isinstance(expr, Call):
        return 1
    n = math.prod(len(vs) for _, vs in expr.params)
    for a in expr.args:
        n *= _n_fixed(a)
    return n


def _compute_minima(g: Grammar, written: dict[str, list[Expr]]) -> None:
    """Least depth and size per rule; a rule with none never terminates.

    Knuth's generalisation of Dijkstra's algorithm (both measures of an alternative are
    at least those of the rules it uses), so each rule is settled once: O(size log size).
    """
    g.min_depth = _least(written, lambda e, v: _expr_min(e, v)[0])
    g.min_size = _least(written, lambda e, v: _expr_min(e, v)[1])
    for rule in g.rules.values():
        if rule.name not in g.min_depth:
            p = rule.pos
            raise GrammarError(
                f"rule {rule.name!r} never terminates: every alternative "
                f"needs a rule that never terminates (often itself).",
                p.path,
                p.line,
                p.column,
            )


def _expr_min(expr: Expr, known: dict[str, int]) -> tuple[int, int]:
    """(depth, size) of ``expr`` given the settled values of the rules it uses."""
    if isinstance(expr, Sym):
        return known[expr.name], known[expr.name]
    kids = [_expr_min(a, known) for a in expr.args]
    comb = get_op(expr.op).is_combinator
    depth = (1 if comb else 0) + max((d for d, _ in kids), default=0)
    size = (0 if comb else 1) + sum(
        s * (2 if r else 1) for (_, s), r in zip(kids, expr.repeat, strict=True)
    )
    return depth, size


def _least(
    written: dict[str, list[Expr]], value: Callable[[Expr, dict[str, int]], int]
) -> dict[str, int]:
    """The least ``value`` over the derivations of every rule that terminates."""
    alts = [(name, expr) for name, exprs in written.items() for expr in exprs]
    users: dict[str, list[int]] = {}
    waiting: list[int] = []
    heap: list[tuple[int, int, int]] = []  # (value, tie-breaker, alternative index)
    tie = itertools.count()
    for i, (_, expr) in enumerate(alts):
        needs = {s.name for s in _symbols(expr)}
        waiting.append(len(needs))
        for n in needs:
            users.setdefault(n, []).append(i)
        if not needs:
            heapq.heappush(heap, (value(expr, {}), next(tie), i))
    settled: dict[str, int] = {}
    while heap:
        v, _, i = heapq.heappop(heap)
        name = alts[i][0]
        if name in settled:
            continue
        settled[name] = v
        for j in users.get(name, ()):
            waiting[j] -= 1
            user, expr = alts[j]
            if waiting[j] == 0 and user not in settled:
                heapq.heappush(heap, (value(expr, settled), next(tie), j))
    return settled
