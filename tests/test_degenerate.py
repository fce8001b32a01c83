"""Degenerate architectures (nothing learnable before the head) and canonical duplicates."""

from __future__ import annotations

from nas.degenerate import canonical_key, degenerate_reason, learnable_ops
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
