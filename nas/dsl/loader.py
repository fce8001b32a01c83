"""Parse ``.pcfg`` files into a :class:`Grammar`, with errors that say where and why."""

from __future__ import annotations

import math
from importlib import resources
from pathlib import Path

from lark import Lark, Token, Transformer, Tree, UnexpectedInput, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedToken

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


def _read_items(path: Path | str, text: str | None, stack: tuple[str, ...]) -> list:
    """Parse one file and (recursively) its includes; returns items in file order."""
    name = str(path)
    if text is None:
        try:
            text = Path(path).read_text()
        except OSError as e:
            raise GrammarError(f"cannot read grammar file: {e.strerror}.", name) from None
    try:
        tree = _parser().parse(text)
    except UnexpectedInput as e:
        raise _syntax_error(e, name) from None
    items = _Builder(name).transform(tree)
    out: list = []
    for item in items:
        if isinstance(item, tuple) and item[0] == "include":
            target = (Path(path).parent / item[1]).resolve()
            target_s = str(target)
            if target_s in stack or target_s == str(Path(path).resolve()):
                here = str(Path(path).resolve())
                chain = " -> ".join(Path(s).name for s in (*stack, here, target_s))
                p = item[2]
                raise GrammarError(f"include cycle: {chain}.", p.path, p.line, p.column)
            if not target.exists():
                p = item[2]
                raise GrammarError(
                    f"included file {item[1]!r} does not exist (looked for {target}).",
                    p.path,
                    p.line,
                    p.column,
                )
            out.extend(_read_items(target, None, (*stack, str(Path(path).resolve()))))
        else:
            out.append(item)
    return out


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
    for raw in raws.values():
        try:
            resolved = [(_resolve(e, raws), pr, pos) for e, pr, pos in raw.alts]
        except UnknownNameError as e:  # pragma: no cover - _resolve raises GrammarError
            raise GrammarError(str(e), raw.pos.path, raw.pos.line, raw.pos.column) from None
        raw2 = _RawRule(raw.name, resolved, raw.pos)
        rules[raw.name] = Rule(raw.name, _normalise(raw2), raw.pos)
    grammar = Grammar(rules, start_name, name)
    _check_reachable(grammar)
    _compute_minima(grammar)
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


def _check_reachable(g: Grammar) -> None:
    seen, todo = {g.start}, [g.start]
    while todo:
        for alt in g.rules[todo.pop()].alts:
            for s in _symbols(alt.expr):
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


def _compute_minima(g: Grammar) -> None:
    """Least depth and size per rule by fixpoint; a rule with none never terminates."""
    inf = math.inf
    depth = {n: inf for n in g.rules}
    size = {n: inf for n in g.rules}
    g.min_depth, g.min_size = depth, size  # type: ignore[assignment]
    changed = True
    while changed:
        changed = False
        for rule in g.rules.values():
            for alt in rule.alts:
                d, s = g.expr_min(alt.expr)
                if d < depth[rule.name]:
                    depth[rule.name] = d
                    changed = True
                if s < size[rule.name]:
                    size[rule.name] = s
                    changed = True
    for rule in g.rules.values():
        if depth[rule.name] == inf:
            p = rule.pos
            raise GrammarError(
                f"rule {rule.name!r} never terminates: every alternative "
                f"needs a rule that never terminates (often itself).",
                p.path,
                p.line,
                p.column,
            )
    g.min_depth = {k: int(v) for k, v in depth.items()}
    g.min_size = {k: int(v) for k, v in size.items()}
