"""The .pcfg language: what it accepts, and an exact file:line:col for every mistake."""

from __future__ import annotations

from pathlib import Path

import pytest

from nas.dsl import load_grammar
from nas.exceptions import GrammarError

# (name, source, line, column, words the message must contain)
ERRORS = [
    ("syntax_eof", "start a\na -> seq(a, \n", 2, 11, ["end of file", "expected a name"]),
    ("missing_arrow", "a seq(a, a)\n", 1, 3, ["expected '->'"]),
    ("bad_char", "a -> compute(norm) $\n", 1, 20, ["unexpected character '$'"]),
    ("unknown_symbol", "start a\na -> compute(b)\n", 2, 14, ["unknown symbol 'b'"]),
    (
        "unknown_op",
        "start a\na -> compute(lineer(out=3))\n",
        2,
        14,
        ["unknown op 'lineer'", "'linear'"],
    ),
    (
        "unknown_bare_op",
        "a -> seq(compute(norm), compte(norm))\n",
        1,
        25,
        ["unknown op 'compte'", "'compute'"],
    ),
    ("unknown_param", "a -> compute(linear(width=3))\n", 1, 21, ["no parameter 'width'", "out"]),
    ("missing_param", "a -> compute(linear)\n", 1, 14, ["needs parameter 'out'"]),
    (
        "unreachable",
        "start a\na -> compute(norm)\nb -> compute(norm)\n",
        3,
        1,
        ["'b' is unreachable"],
    ),
    ("non_terminating", "start a\na -> seq(a, a)\n", 2, 1, ["'a' never terminates"]),
    (
        "probs_over",
        "a -> compute(norm) [0.7] | compute(identity) [0.6]\n",
        1,
        1,
        ["sum to 1.3", "at most 1"],
    ),
    ("probs_under", "a -> compute(norm) [0.5] | compute(identity) [0.4]\n", 1, 1, ["sum to 0.9"]),
    ("probs_starve", "a -> compute(norm) [1.0] | compute(identity)\n", 1, 1, ["never be chosen"]),
    ("arity", "a -> seq(compute(norm))\n", 1, 6, ["seq takes 2 children, got 1"]),
    (
        "negative_prob",
        "a -> compute(norm) [-0.5] | compute(identity)\n",
        1,
        21,
        ["must be between 0 and 1"],
    ),
    ("float_for_int", "a -> compute(linear(out=16.5))\n", 1, 21, ["must be int"]),
    ("bad_repeat", "a -> seq(compute(norm)*, compute(norm))\n", 1, 10, ["cannot be repeated"]),
    ("terminal_children", "a -> compute(norm(identity))\n", 1, 14, ["takes no children"]),
    ("duplicate", "a -> compute(norm)\na -> compute(identity)\n", 2, 1, ["defined twice"]),
    ("unknown_start", "start z\na -> compute(norm)\n", 1, 7, ["start symbol 'z'"]),
]


@pytest.mark.parametrize(
    ("name", "src", "line", "col", "words"), ERRORS, ids=[e[0] for e in ERRORS]
)
def test_errors_name_file_line_col(
    name: str, src: str, line: int, col: int, words: list[str]
) -> None:
    with pytest.raises(GrammarError) as info:
        load_grammar(f"{name}.pcfg", src)
    err = info.value
    assert (err.path, err.line, err.column) == (f"{name}.pcfg", line, col)
    assert str(err).startswith(f"{name}.pcfg:{line}:{col}: ")
    for w in words:
        assert w in str(err)
    assert "\n" not in str(err)


def test_probabilities_default_uniform_and_share_rest() -> None:
    g = load_grammar("p.pcfg", "a -> compute(norm) | compute(identity) | seq(a, a) [0.4]\n")
    assert [round(alt.prob, 6) for alt in g.rules["a"].alts] == [0.3, 0.3, 0.4]


def test_param_choices_expand_into_uniform_alternatives() -> None:
    # As in the reference, each linear width is one alternative among 13 computation ops.
    g = load_grammar("grammars/einspace.pcfg")
    comp = g.rules["computation_fn"].alts
    assert len(comp) == 13
    assert all(abs(a.prob - 1 / 13) < 1e-12 for a in comp)
    module = {str(a.expr.name): a.prob for a in g.rules["module"].alts}
    assert module["computation"] == pytest.approx(0.32)
    assert module["sequential"] == pytest.approx(0.68 / 3)
    assert len(g.rules["branch_fn"].alts) == 12
    assert len(g.rules["prerouting"].alts) == 14
    assert len(g.rules["postrouting"].alts) == 8


def test_explicit_probability_is_split_over_its_choices() -> None:
    g = load_grammar("p.pcfg", "a -> compute(linear(out=8|16)) [0.5] | compute(norm)\n")
    assert [round(alt.prob, 6) for alt in g.rules["a"].alts] == [0.25, 0.25, 0.5]


def test_comments_start_and_multiline_rules() -> None:
    src = """# a comment
start net   # trailing comment
net -> seq(m, m)
m -> compute(norm)
   | compute(linear(out=4|8))  # continued on the next line
"""
    g = load_grammar("c.pcfg", src)
    assert g.start == "net"
    assert len(g.rules["m"].alts) == 3


def test_start_defaults_to_first_rule() -> None:
    assert load_grammar("s.pcfg", "b -> compute(norm)\n").start == "b"


def test_include_pulls_rules_from_other_files(tmp_path: Path) -> None:
    (tmp_path / "lib.pcfg").write_text("# shared terminals\nc -> norm | identity\n")
    main = tmp_path / "main.pcfg"
    main.write_text('start a\ninclude "lib.pcfg"\na -> compute(c)\n')
    g = load_grammar(main)
    assert set(g.rules) == {"a", "c"}


def test_include_cycle_is_reported_with_the_chain(tmp_path: Path) -> None:
    (tmp_path / "a.pcfg").write_text('include "b.pcfg"\nstart a\na -> compute(c)\n')
    (tmp_path / "b.pcfg").write_text('include "a.pcfg"\nc -> norm\n')
    with pytest.raises(GrammarError) as info:
        load_grammar(tmp_path / "a.pcfg")
    assert info.value.line == 1 and info.value.column == 9
    assert "include cycle: a.pcfg -> b.pcfg -> a.pcfg" in str(info.value)


def test_missing_include(tmp_path: Path) -> None:
    (tmp_path / "m.pcfg").write_text('include "nope.pcfg"\na -> compute(norm)\n')
    with pytest.raises(GrammarError, match=r"m.pcfg:1:9: included file 'nope.pcfg'"):
        load_grammar(tmp_path / "m.pcfg")


def test_missing_file() -> None:
    with pytest.raises(GrammarError, match="cannot read grammar file"):
        load_grammar("/nonexistent/x.pcfg")


def test_einspace_grammar_minima() -> None:
    g = load_grammar("grammars/einspace.pcfg")
    assert g.start == "network"
    assert g.min_size["module"] == 1 and g.min_depth["module"] == 1
    assert g.min_size["network"] == 2  # a network is never a bare computation
