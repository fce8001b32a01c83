"""Parse ``.pcfg`` files into a :class:`Grammar`, with errors that say where and why."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from lark import Lark, Token, Transformer, Tree, UnexpectedInput, v_args
from lark.exceptions import VisitError

from nas.dsl.checks import (
    check_nesting,
    check_reachable,
    check_unit_cycles,
    compute_minima,
    n_fixed,
    normalise,
)
from nas.dsl.config import ConfigSpace
from nas.dsl.config_block import RawConfig, RawHyper, config_rules, config_space
from nas.dsl.files import UnreadableFileError, read_text
from nas.dsl.grammar import Call, Expr, Grammar, Pos, Rule, Sym
from nas.dsl.syntax import syntax_error
from nas.dsl.vocab import is_node, node_class
from nas.exceptions import GrammarError, NasError, ShapeError, UnknownNameError
from nas.ops import suggest_ops

_PARSER: Lark | None = None

# Bounds that keep loading fast whatever the file: nesting (the parser and the checks
# recurse), included files, and alternatives after parameter choices are multiplied out
# (a sampler's first draw over 20,000 alternatives takes about a second).
MAX_NESTING = 100
MAX_INCLUDES = 64
MAX_INCLUDE_DEPTH = 16
MAX_ALTERNATIVES = 20_000


def _parser() -> Lark:
    global _PARSER
    if _PARSER is None:
        text = resources.files("nas.dsl").joinpath("pcfg.lark").read_text()
        _PARSER = Lark(text, parser="lalr", propagate_positions=True, maybe_placeholders=False)
    return _PARSER


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

    @v_args(inline=True, meta=True)
    def choice(self, meta: object, value: int | float | str, prob: tuple | None = None) -> tuple:
        pos = Pos(self.path, meta.line, meta.column)  # type: ignore[attr-defined]
        return (value, None if prob is None else prob[1], pos)

    def hparam(self, key: Token, *rest: object) -> RawHyper:
        kind = rest[0] if isinstance(rest[0], Token) else None
        choices = [c for c in rest if isinstance(c, tuple)]
        return RawHyper(str(key), kind, choices, self._pos(key))

    def config_decl(self, keyword: Token, name: Token, *params: RawHyper) -> RawConfig:
        if str(keyword) != "config":
            p = self._pos(name)
            raise GrammarError(
                f"unexpected {str(name)!r}; expected '->' after rule name {str(keyword)!r} "
                f"(or 'config NAME {{ ... }}').",
                p.path,
                p.line,
                p.column,
            )
        return RawConfig(str(name), list(params), self._pos(name))

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
    check_nesting(text, name, MAX_NESTING)
    try:
        tree = _parser().parse(text)
    except UnexpectedInput as e:
        raise syntax_error(e, name) from None
    try:
        items = _Builder(name).transform(tree)
    except VisitError as e:  # a GrammarError raised while building (e.g. 'a b { }')
        raise e.orig_exc from None
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


def _check_call(call: Call, rules: dict[str, _RawRule]) -> Expr:
    """Validate an op call against the registry; returns the call, or a Sym for a rule name."""
    p = call.pos
    if not is_node(call.op):
        close = suggest_ops(call.op)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise GrammarError(f"unknown op {call.op!r}.{hint}", p.path, p.line, p.column)
    cls = node_class(call.op)
    ppos = getattr(call, "_param_pos", {})
    typed: list[tuple[str, tuple]] = []  # values as the op stores them (hp: v=8 -> "8")
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
        kept = []
        for v in values:
            try:
                kept.append(dict(cls(**{**_defaults(cls), pname: v}).values)[pname])
            except ShapeError as e:
                q = ppos.get(pname, p)
                raise GrammarError(str(e), q.path, q.line, q.column) from None
        typed.append((pname, tuple(kept)))
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
    args = tuple(_resolve(a, rules) for a in call.args)
    return Call(call.op, tuple(typed), args, call.repeat, call.pos)


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
    if is_node(expr.name):
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
    configs: dict[str, ConfigSpace] = {}
    start: tuple | None = None
    for item in items:
        if isinstance(item, RawConfig):
            configs[item.name] = space = config_space(item)
            for rule_name, alts, pos in config_rules(space):
                _add_rule(raws, _RawRule(rule_name, alts, pos))
        elif isinstance(item, _RawRule):
            _add_rule(raws, item)
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
            n_alts += n_fixed(expr)
            if n_alts > MAX_ALTERNATIVES:
                raise GrammarError(
                    f"rule {raw.name!r} makes the grammar expand to more than "
                    f"{MAX_ALTERNATIVES:,} alternatives once parameter choices are multiplied "
                    f"out ({n_fixed(expr):,} from this one); write the choices as rules.",
                    pos.path,
                    pos.line,
                    pos.column,
                )
        written[raw.name] = [e for e, _, _ in resolved]
        raw2 = _RawRule(raw.name, resolved, raw.pos)
        rules[raw.name] = Rule(raw.name, normalise(raw2), raw.pos)
    grammar = Grammar(rules, start_name, name, configs=configs)
    # Parameter choices change neither reachability nor the minima: work on what is written.
    check_reachable(grammar, written)
    check_unit_cycles(written)
    compute_minima(grammar, written)
    return grammar


def _add_rule(raws: dict[str, _RawRule], rule: _RawRule) -> None:
    """Add a rule (written, or from a config block); a name defined twice is an error."""
    if rule.name in raws:
        q, first = rule.pos, raws[rule.name].pos
        raise GrammarError(
            f"rule {rule.name!r} is defined twice (first at {first}).", q.path, q.line, q.column
        )
    raws[rule.name] = rule


def _import_ops(module: str, pos: Pos) -> None:
    """``import "mypkg.ops"``: import a user's module (beside the file first) so ops register."""
    from nas.ops import load_op_module

    if not all(part.isidentifier() for part in module.split(".")):
        raise GrammarError(
            f'import needs a Python module name such as "mypkg.ops", not {module!r}.',
            pos.path,
            pos.line,
            pos.column,
        )
    try:
        load_op_module(module, near=[Path(pos.path).parent])
    except NasError as e:
        raise GrammarError(str(e), pos.path, pos.line, pos.column) from None
