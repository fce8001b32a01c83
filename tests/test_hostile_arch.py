"""Hostile architecture strings: out-of-domain parameters, deep nesting, huge factors.

Every one must fail fast with the project's own error (never ZeroDivisionError,
OverflowError, RecursionError, ...), and what ``check`` accepts must compile and run.
"""

from __future__ import annotations

import time

import pytest
import torch

from nas.analysis import analyse
from nas.compile import compile_arch
from nas.dsl import parse_arch
from nas.dsl.arch import MAX_ARCH_CHARS, MAX_NESTING
from nas.dsl.fuzz import deep_seq, nested_clones
from nas.exceptions import ArchSyntaxError, BudgetError, NasError
from nas.space import Budget, load_space

EIN = load_space("einspace")
NB201 = load_space("nb201")
CELL = "cell(none,skip_connect,nor_conv_3x3,nor_conv_3x3,nor_conv_1x1,avg_pool_3x3)"


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("route(im2col(k=3,s=0,p=1),compute(linear(out=64)),col2im)", ["'s'", "im2col", "got 0"]),
        ("route(im2col(k=-3,s=1,p=1),compute(linear(out=64)),col2im)", ["'k'", "got -3"]),
        ("route(im2col(k=3,s=1,p=-1),compute(linear(out=8)),col2im)", ["'p'", "got -1"]),
        ("route(permute(order=-21),compute(identity),identity)", ["order", "-21"]),
        ("route(permute(order=11),compute(identity),identity)", ["order", "once each"]),
        ("route(permute(order=0),compute(identity),identity)", ["order"]),
        ("branch(clone(k=9223372036854775808),compute(identity),add)", ["'k'", "clone"]),
        ("branch(clone(k=1),compute(identity),add)", ["'k'", "between 2 and"]),
        ("branch(group(k=2,dim=0),compute(identity),add)", ["'dim'", "group"]),
        ("branch(clone(k=2),compute(identity),compute(identity),cat(dim=-1))", ["'dim'"]),
        ("seq(compute(norm),compute(linear(out=0)))", ["'out'", "got 0"]),
        ("seq(compute(norm),compute(linear(out=" + "9" * 60 + ")))", ["'out'", "chars"]),
        ("seq(compute(norm),compute(linear(out=1e400)))", ["must be int"]),
        ("seq(compute(norm),compute(linear_rel(mul=-2)))", ["'mul'"]),
        (f"nb201(c=0,n=5,{CELL})", ["'c'", "nb201"]),
        (f"nb201(c=16,n=-1,{CELL})", ["'n'", "nb201"]),
        (f"nb201(c=16,n=99999999,{CELL})", ["'n'", "between 1 and 1000"]),
    ],
)
def test_out_of_domain_parameters_are_rejected_when_parsing(text: str, words: list[str]) -> None:
    with pytest.raises(ArchSyntaxError) as info:
        parse_arch(text)
    msg = str(info.value)
    assert "\n" not in msg and len(msg) < 300
    for w in words:
        assert w in msg


def test_deep_nesting_is_a_clean_error_not_recursion() -> None:
    with pytest.raises(ArchSyntaxError, match=f"deeper than {MAX_NESTING} levels"):
        parse_arch(deep_seq(500))
    with pytest.raises(ArchSyntaxError, match="deeper than"):
        parse_arch("(" * 100_000)
    # Just under the limit parses; the depth budget then rejects it, naming the place.
    node = parse_arch(deep_seq(MAX_NESTING - 2))
    with pytest.raises(BudgetError, match=r"max_depth=40 .*more \.\.\."):
        EIN.check(node)


def test_overlong_string_is_rejected_before_parsing() -> None:
    text = "seq(compute(norm)," + " " * MAX_ARCH_CHARS + "compute(norm))"
    with pytest.raises(ArchSyntaxError, match="characters; the limit is"):
        parse_arch(text)


@pytest.mark.parametrize(
    "text",
    [
        "branch(clone(k=4096),compute(identity),add)",
        "branch(clone(k=4096),branch(clone(k=4096),compute(norm),add),add)",
        f"nb201(c=16,n=1000,{CELL})",
    ],
)
def test_budgets_cut_the_analysis_short(text: str) -> None:
    space = NB201 if text.startswith("nb201") else EIN
    t = time.perf_counter()
    with pytest.raises(BudgetError, match=r"over the budget max_ops=256 \(analysis stopped"):
        space.check(parse_arch(text))
    assert time.perf_counter() - t < 0.5


def test_analysis_time_grows_with_the_written_string_not_the_network() -> None:
    # 30 nested branch(clone(k=2), ...): a 700-character string denoting 2**30 ops.
    times = {}
    for levels in (15, 30):
        node = parse_arch(nested_clones(levels))
        t = time.perf_counter()
        a = analyse(node, EIN.input)
        times[levels] = time.perf_counter() - t
        assert a.n_ops == 3 * 2**levels - 2  # identity per leaf, clone and add per level
    assert times[30] < 0.25
    assert times[30] < 6 * times[15] + 0.02  # linear, not 2**15 times slower


def test_budget_exceeded_by_depth_and_ops_is_named() -> None:
    node = parse_arch(nested_clones(12))
    with pytest.raises(BudgetError, match="max_ops=100"):
        analyse(node, EIN.input, budget=Budget(max_ops=100))
    with pytest.raises(BudgetError, match="max_depth=5"):
        analyse(node, EIN.input, budget=Budget(max_depth=5))
    # Without a budget the exact totals come back.
    assert analyse(node, EIN.input).n_ops == 3 * 2**12 - 2


def test_reused_children_keep_their_per_node_records() -> None:
    node = parse_arch("branch(clone(k=4),seq(compute(norm),compute(linear(out=8))),add)")
    a = analyse(node, EIN.input, record=True)
    assert a.nodes[()].copies == 4
    assert a.n_ops == 4 * 2 + 2
    lin = a.nodes[(1, 1, 0)]
    assert lin.node.op == "linear" and lin.params == 28 * 8 + 8
    assert a.params == 4 * (2 * 3 + 28 * 8 + 8)


@pytest.mark.parametrize(
    "text",
    [
        "route(im2col(k=3,s=1,p=1000),compute(linear(out=4)),col2im)",
        "route(im2col(k=1024,s=1,p=0),compute(linear(out=4)),col2im)",
        "route(im2col(k=3,s=1024,p=1),compute(linear(out=4)),col2im)",
        "seq(compute(norm),compute(linear(out=2147483647)))",
    ],
)
def test_edge_of_domain_is_checked_or_runs(text: str) -> None:
    """At the ends of the domains, check either refuses or the model really runs."""
    node = parse_arch(text)
    try:
        EIN.check(node)
    except NasError:
        return
    model = compile_arch(node, EIN.input_shape, EIN.num_classes)
    with torch.no_grad():
        assert model(torch.randn(2, *EIN.input_shape)).shape == (2, EIN.num_classes)
