"""Shape-aware sampling: validity, budgets, determinism, dead-end memo, distribution."""

from __future__ import annotations

import random

import pytest
import torch

from nas.compile import compile_arch, count_params
from nas.dsl import load_grammar
from nas.evolution import crossover, mutate
from nas.exceptions import SamplingError
from nas.sampling import Sampler
from nas.space import Budget, SearchSpace


def test_every_sample_compiles_and_runs_forward(einspace, einspace_samples) -> None:
    x = torch.randn(2, *einspace.input_shape)
    for arch in einspace_samples:
        a = einspace.check(arch, strict=True)  # shapes, budgets, derivable
        model = compile_arch(arch, einspace.input_shape, einspace.num_classes).eval()
        assert count_params(model.backbone) == a.params, str(arch)
        with torch.no_grad():
            y = model(x)
        assert y.shape == (2, einspace.num_classes), str(arch)


def test_same_seed_same_draws_other_seed_other_draws(einspace) -> None:
    a = [str(Sampler(einspace, seed=7).sample()) for _ in range(1)]
    s1, s2, s3 = Sampler(einspace, seed=7), Sampler(einspace, seed=7), Sampler(einspace, seed=8)
    first = [str(s1.sample()) for _ in range(50)]
    assert first == [str(s2.sample()) for _ in range(50)]
    assert first != [str(s3.sample()) for _ in range(50)]
    assert a[0] == first[0]


@pytest.mark.parametrize("shape", [(3, 28, 28), (1, 24, 24), (3, 64, 64), (12, 8, 8), (1, 27, 18)])
def test_samples_fit_tight_budgets_on_unseen_shapes(einspace, shape) -> None:
    tight = Budget(
        max_depth=8, max_params=20_000, max_activation=200_000, max_ops=20, max_flops=5_000_000
    )
    space = einspace.with_input(shape)
    space.budget = tight
    sampler = Sampler(space, seed=1)
    for _ in range(100):
        a = space.check(sampler.sample())
        assert a.depth <= 8 and a.params <= 20_000 and a.n_ops <= 20
        assert a.activation <= 200_000 and a.flops <= 5_000_000


def _space(src: str, shape: tuple[int, ...] = (3, 8, 8)) -> SearchSpace:
    return SearchSpace("t", load_grammar("t.pcfg", src), shape)


def test_failed_subtree_does_not_remove_the_parents_production() -> None:
    # The branch is valid only when both inner modules agree (1/2): rejection keeps the
    # grammar's distribution conditioned on validity, P(branch) = .25 / (.25 + .5) = 1/3.
    # The reference drops the branch production after a failure (P = 1/4).
    src = """start a
a -> branch(clone(k=2), m*, add) [0.5] | compute(norm)
m -> compute(linear(out=4)) | compute(identity)
"""
    sampler = Sampler(_space(src), seed=0)
    n = 3000
    hits = sum(sampler.sample().op == "branch" for _ in range(n))
    assert abs(hits / n - 1 / 3) < 0.04


def test_dead_ends_are_memoised_and_never_explored_twice() -> None:
    src = """start a
a -> route(pre, m, col2im) | compute(norm)
pre -> im2col(k=16, s=16, p=0)
m -> compute(identity)
"""
    sampler = Sampler(_space(src), seed=0)
    calls = []
    orig = sampler._options
    sampler._options = lambda name, x: calls.append(name) or orig(name, x)  # type: ignore
    archs = {str(sampler.sample()) for _ in range(200)}
    assert archs == {"compute(norm)"}  # 16x16 patches do not fit an 8x8 image
    assert calls.count("pre") == 1
    assert any(k[0] == "pre" for k in sampler._dead)


def test_impossible_space_is_a_clear_error() -> None:
    src = "start a\na -> route(im2col(k=16, s=16, p=0), compute(identity), col2im)\n"
    with pytest.raises(SamplingError, match="no architecture"):
        Sampler(_space(src), seed=0).sample()


def test_mutation_preserves_output_shape_and_validity(einspace, einspace_samples) -> None:
    rng = random.Random(0)
    sampler = Sampler(einspace, seed=0)
    done = 0
    for parent in einspace_samples[:200]:
        try:
            child = mutate(einspace, parent, rng, sampler=sampler)
        except SamplingError:
            # e.g. branch(clone(k=8),compute(linear(out=32)),add): only linear(out=32)
            # itself maps 28 -> 32 features in one op, and larger same-shape subtrees are
            # rare draws; evolution then picks another parent.
            continue
        done += 1
        assert child != parent
        a, b = einspace.check(parent), einspace.check(child)
        assert a.out == b.out
    assert done >= 150


def test_mutation_of_a_seed(einspace) -> None:
    rng = random.Random(1)
    seed = einspace.seeds["resnet18"]
    for _ in range(5):
        child = mutate(einspace, seed, rng)
        assert einspace.check(child).out == einspace.check(seed).out


def test_crossover_yields_valid_children(einspace, einspace_samples) -> None:
    rng = random.Random(0)
    made = 0
    for a, b in zip(einspace_samples[:400:2], einspace_samples[1:400:2], strict=True):
        child = crossover(einspace, a, b, rng)
        if child is None:  # unrelated random networks rarely share a same-shape subtree
            continue
        made += 1
        assert child != a
        assert einspace.check(child).out == einspace.check(a).out
    assert made >= 3
    # Relatives (a parent and its mutant, as in evolution) share their positions; only a
    # mutation that redrew the whole network leaves nothing to swap.
    tried = swapped = 0
    for parent in einspace_samples[:60]:
        try:
            other = mutate(einspace, parent, rng)
        except SamplingError:
            continue
        tried += 1
        child = crossover(einspace, other, parent, rng)
        if child is not None:
            swapped += 1
            assert child != other
            assert einspace.check(child).out == einspace.check(parent).out
    assert swapped >= 0.7 * tried


def test_chooser_picks_alternatives_by_position() -> None:
    from nas.space import load_space

    asked: list[tuple[str, list[str], list[int]]] = []

    def last(name: str, labels: list[str], feasible: list[int]) -> int:
        asked.append((name, labels, feasible))
        return feasible[-1]

    arch = Sampler(load_space("nb201"), seed=0, chooser=last).sample()
    assert str(arch) == "nb201(c=16,n=5,cell(" + ",".join(["avg_pool_3x3"] * 6) + "))"
    edges = [a for a in asked if a[0].endswith(":edge")]
    assert [a[0] for a in edges] == [f"/0/{i}:edge" for i in range(6)]
    assert edges[0][1] == ["none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"]


def test_chooser_is_offered_only_applicable_alternatives() -> None:
    src = """start a
a -> route(pre, compute(identity), col2im)
pre -> im2col(k=16, s=16, p=0) | im2col(k=3, s=1, p=1)
"""
    offered: list[list[int]] = []

    def first(name: str, labels: list[str], feasible: list[int]) -> int:
        offered.append(feasible)
        return feasible[0]

    arch = Sampler(_space(src), seed=0, chooser=first).sample()
    assert "im2col(k=3,s=1,p=1)" in str(arch)
    assert [1] in offered  # k=16 does not fit an 8x8 image
