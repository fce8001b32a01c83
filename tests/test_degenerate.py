"""Degenerate architectures (nothing learnable before the head) and canonical duplicates."""

from __future__ import annotations

import pytest

from nas.degenerate import canonical_key, constant_output, degenerate_reason, learnable_ops
from nas.dsl import parse_arch
from nas.ops.spec import Spec

X = (Spec((3, 28, 28), "im"),)
ISSUE_14 = (
    "route(im2col(k=1,s=1,p=0),seq(route(permute(order=21),route(identity,compute(identity),"
    "permute(order=21)),identity),compute(identity)),permute(order=21))"
)


def test_the_issue_14_best_is_degenerate() -> None:
    assert degenerate_reason(parse_arch(ISSUE_14), X) == "no learnable computation before the head"
    assert learnable_ops(parse_arch(ISSUE_14), X) == 0


def test_norm_and_positional_offsets_alone_are_degenerate() -> None:
    arch = parse_arch("seq(compute(norm),seq(compute(pos_enc),compute(leakyrelu)))")
    assert degenerate_reason(arch, X) is not None


def test_a_conv_or_a_linear_is_learnable() -> None:
    conv = parse_arch("route(im2col(k=3,s=1,p=1),compute(linear(out=16)),col2im)")
    assert degenerate_reason(conv, X) is None
    assert learnable_ops(conv, X) == 1
    lin = parse_arch("seq(compute(norm),compute(linear(out=32)))")
    assert degenerate_reason(lin, X) is None


def test_every_seed_is_learnable() -> None:
    from nas.space import load_space

    sp = load_space("einspace")
    assert sp.seeds
    for name, arch in sp.seeds.items():
        assert degenerate_reason(arch, sp.input) is None, name


def test_invalid_architectures_are_left_to_the_normal_checks() -> None:
    bad = parse_arch("route(identity,compute(linear(out=16)),col2im)")
    assert degenerate_reason(bad, X) is None


def test_canonical_key_drops_no_op_wrappers() -> None:
    a = parse_arch("compute(linear(out=16))")
    b = parse_arch("route(identity,seq(compute(identity),compute(linear(out=16))),identity)")
    c = parse_arch("seq(compute(linear(out=16)),compute(identity))")
    assert canonical_key(a) == canonical_key(b) == canonical_key(c) == str(a)
    assert canonical_key(parse_arch("compute(linear(out=32))")) != canonical_key(a)
    perm = parse_arch("route(permute(order=132),compute(linear(out=16)),identity)")
    assert canonical_key(perm) == str(perm)


LANGUAGE = (Spec((1, 24, 24), "im"),)
FLAT = "route(im2col(k=1,s=1,p=0),{inner},permute(order=21))"
MLP_TAIL = "seq(compute(linear(out=256)),seq(compute(leakyrelu),compute(linear(out=256))))"


@pytest.mark.parametrize(
    "inner",
    [
        "compute(norm)",  # LayerNorm of one feature: always its bias
        "compute(softmax)",  # softmax of one value: always 1
        "seq(compute(pos_enc),compute(norm))",
    ],
)
def test_a_norm_or_softmax_over_one_value_on_every_path_is_constant(inner: str) -> None:
    """einspace's redraws of mlp_cpu put these on the flattened input (576 tokens of one
    feature): those children trained to exactly chance."""
    arch = parse_arch(f"seq({FLAT.format(inner=inner)},{MLP_TAIL})")
    assert constant_output(arch, LANGUAGE)
    assert "cannot depend on the input" in degenerate_reason(arch, LANGUAGE)


def test_a_path_around_the_constant_op_keeps_the_input() -> None:
    skip = "branch(clone(k=2),compute(norm),compute(identity),add)"
    arch = parse_arch(f"seq({FLAT.format(inner=skip)},{MLP_TAIL})")
    assert not constant_output(arch, LANGUAGE) and degenerate_reason(arch, LANGUAGE) is None


def test_one_pooled_feature_is_degenerate_for_more_than_two_classes() -> None:
    """A linear on an image acts on its last dimension: 1x24x24 stays one channel, and the
    head's global pool leaves one number to separate ten classes (trained to 10%)."""
    arch = parse_arch("seq(compute(leakyrelu),seq(compute(linear(out=256)),compute(leakyrelu)))")
    assert (
        degenerate_reason(arch, LANGUAGE, num_classes=10)
        == "the head would see one pooled feature"
    )
    assert degenerate_reason(arch, LANGUAGE, num_classes=2) is None
