"""Canonical architecture strings: parse, print, round trip, errors."""

from __future__ import annotations

import pytest

from nas.dsl import parse_arch
from nas.exceptions import ArchSyntaxError

CONV = "route(im2col(k=3,s=1,p=1),compute(linear(out=64)),col2im)"


def test_example_round_trips_exactly() -> None:
    s = f"seq({CONV},compute(norm))"
    assert str(parse_arch(s)) == s


def test_whitespace_is_not_canonical() -> None:
    assert str(parse_arch(" seq( compute(norm) ,\n compute(identity) ) ")) == (
        "seq(compute(norm),compute(identity))"
    )


def test_parameters_print_in_declared_order() -> None:
    assert str(parse_arch("im2col(p=1,k=3,s=1)")) == "im2col(k=3,s=1,p=1)"


def test_repeated_branch_is_written_once() -> None:
    four = ",".join(["compute(norm)"] * 4)
    node = parse_arch(f"branch(clone(k=4),{four},add)")
    assert str(node) == "branch(clone(k=4),compute(norm),add)"
    # k = 2 branches are independent and both are written, even when equal.
    two = "branch(clone(k=2),compute(norm),compute(norm),add)"
    assert str(parse_arch(two)) == two


def test_equal_strings_equal_trees_and_hashes() -> None:
    a, b = parse_arch(CONV), parse_arch(CONV.replace(",", " , "))
    assert a == b and hash(a) == hash(b) and a.digest == b.digest


def test_sampled_strings_round_trip(einspace_samples) -> None:
    for arch in einspace_samples:
        s = str(arch)
        parsed = parse_arch(s)
        assert parsed == arch
        assert str(parsed) == s


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("seq(compute(norm)", ["column 18"]),
        ("seq(compute(lineer(out=3)),compute(norm))", ["unknown op 'lineer'", "'linear'"]),
        ("compute(linear(out=x))", ["must be int"]),
        ("compute(linear(width=3))", ["no parameter 'width'"]),
        ("norm(identity)", ["takes no children"]),
        ("", ["ends early", "an op name"]),
        ("seq(compute(norm),,compute(norm))", ["column 19"]),
    ],
)
def test_bad_strings_say_what_and_where(text: str, words: list[str]) -> None:
    with pytest.raises(ArchSyntaxError) as info:
        parse_arch(text)
    for w in words:
        assert w in str(info.value)


def test_float_for_int_parameter_is_rejected_not_truncated() -> None:
    with pytest.raises(ArchSyntaxError, match="must be int"):
        parse_arch("compute(linear(out=64.5))")


def test_repeated_parameter_is_rejected() -> None:
    with pytest.raises(ArchSyntaxError, match="'out' of linear is given twice"):
        parse_arch("compute(linear(out=64,out=32))")
