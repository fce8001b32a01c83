"""One-line messages for ``.pcfg`` syntax errors: what was found, what was expected, where."""

from __future__ import annotations

from lark import Token, UnexpectedInput
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedToken

from nas.exceptions import GrammarError

__all__ = ["syntax_error"]

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
    "LBRACE": "'{'",
    "RBRACE": "'}'",
    "SEMICOLON": "';'",
    "COLON": "':'",
    "NUMBER": "a number",
    "SIGNED_NUMBER": "a number",
    "STRING": "a quoted file name",
    "INCLUDE": "'include'",
    "IMPORT": "'import'",
    "START": "'start'",
    "$END": "the end of the file",
}


def syntax_error(err: UnexpectedInput, path: str) -> GrammarError:
    """The GrammarError (file:line:col) for a lark parse error of ``path``."""
    if isinstance(err, UnexpectedToken):
        expected = set(err.expected)
        if expected == {"ARROW", "NAME"}:  # after a rule name; "config" is one too
            expected = {"ARROW"}
        stack = getattr(err.interactive_parser, "parser_state", None)
        stack = stack.value_stack[-2:] if stack is not None else []
        if (
            expected == {"LBRACE"}
            and len(stack) == 2
            and all(isinstance(s, Token) and s.type == "NAME" for s in stack)
            and str(stack[0]) != "config"
        ):  # "a seq(...)": a rule name followed by a name, not "config NAME {"
            tok = stack[1]
            return GrammarError(
                f"unexpected {str(tok)!r}; expected '->'.", path, tok.line, tok.column
            )
        got = "end of file" if err.token.type == "$END" else repr(str(err.token))
        want = sorted({_TOKEN_NAMES.get(t, t) for t in expected})
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
