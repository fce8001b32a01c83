"""Property-based tests (hypothesis): generated and mutated architecture strings and grammars.

Properties: every input either works or raises a NasError with a one-line message, within
a time bound; what ``check`` accepts compiles and runs; accepted strings round-trip. The
default run tries a bounded number of examples; ``pytest -m fuzz`` runs many more.
"""

from __future__ import annotations

import random
import time
from importlib import resources

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nas.compile import compile_arch
from nas.dsl import load_grammar, parse_arch
from nas.dsl.fuzz import EDGE_VALUES, arch_inputs, grammar_inputs, mutate, random_grammar
from nas.exceptions import NasError
from nas.sampling import Sampler
from nas.space import SearchSpace, load_space

EIN = load_space("einspace")
NB201 = load_space("nb201")
_SAMPLER = Sampler(EIN, seed=3)
_SEEDS = [str(_SAMPLER.sample()) for _ in range(40)]  # valid strings to mutate
_GRAMMARS = [
    resources.files("nas.grammars").joinpath(f).read_text()
    for f in ("einspace.pcfg", "nb201.pcfg")
]

QUICK = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
MANY = settings(QUICK, max_examples=3000, derandomize=False)


def _space_for(text: str) -> SearchSpace:
    return NB201 if "cell(" in text or text.startswith("nb201") else EIN


def _arch_property(text: str) -> None:
    """Parse + check either raise a one-line NasError or give a runnable, round-tripping arch."""
    t = time.perf_counter()
    space = _space_for(text)
    try:
        node = parse_arch(text)
        space.check(node)
    except NasError as e:
        assert "\n" not in str(e) and str(e)
        assert time.perf_counter() - t < 5
        return
    assert time.perf_counter() - t < 5
    assert parse_arch(str(node)) == node
    model = compile_arch(node, space.input_shape, space.num_classes, space.mode)
    with torch.no_grad():
        y = model(torch.randn(2, *space.input_shape))
    assert y.shape == (2, space.num_classes)


def _grammar_property(src: bytes, tmp_path) -> None:
    """Loading a grammar file either raises a one-line GrammarError or gives a Grammar."""
    f = tmp_path / "g.pcfg"
    f.write_bytes(src)
    t = time.perf_counter()
    try:
        g = load_grammar(f)
    except NasError as e:
        assert "\n" not in str(e)
        assert time.perf_counter() - t < 5
        return
    assert time.perf_counter() - t < 5
    assert g.start in g.rules
    assert all(abs(sum(a.prob for a in r.alts) - 1) < 1e-6 for r in g.rules.values())


# ------------------------------------------------------------------------ architectures
_param = st.sampled_from(EDGE_VALUES) | st.integers(-10, 5000).map(str)
_leaf = st.sampled_from(
    ["identity", "norm", "leakyrelu", "softmax", "pos_enc", "add", "dot", "col2im", "none"]
) | st.builds(lambda v: f"linear(out={v})", _param)
_pre = st.builds(lambda k, s, p: f"im2col(k={k},s={s},p={p})", _param, _param, _param) | (
    st.builds(lambda o: f"permute(order={o})", _param)
)


def _combine(kids: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return (
        st.builds(lambda a, b: f"seq({a},{b})", kids, kids)
        | st.builds(lambda a: f"compute({a})", kids)
        | st.builds(lambda p, a: f"route({p},{a},identity)", _pre, kids)
        | st.builds(
            lambda k, a, m: f"branch(clone(k={k}),{a},{m})",
            _param,
            kids,
            st.sampled_from(["add", "cat(dim=1)", "dot"]),
        )
    )


ARCHS = st.recursive(_leaf, _combine, max_leaves=12)


@QUICK
@given(ARCHS)
def test_generated_architectures_fail_cleanly_or_run(text: str) -> None:
    _arch_property(text)


@QUICK
@given(st.sampled_from(_SEEDS), st.randoms(use_true_random=False))
def test_mutated_architectures_fail_cleanly_or_run(seed: str, rng: random.Random) -> None:
    _arch_property(mutate(rng, seed, rounds=4))


@QUICK
@given(st.randoms(use_true_random=False))
def test_hostile_architecture_mix(rng: random.Random) -> None:
    _arch_property(arch_inputs(rng, _SEEDS)()[1])


@QUICK
@given(st.text(max_size=200))
def test_arbitrary_text_fails_cleanly(text: str) -> None:
    _arch_property(text)


# ----------------------------------------------------------------------------- grammars
@QUICK
@given(st.randoms(use_true_random=False))
def test_generated_grammars_load_or_fail_cleanly(tmp_path_factory, rng: random.Random) -> None:
    _grammar_property(random_grammar(rng).encode(), tmp_path_factory.mktemp("g"))


@QUICK
@given(st.randoms(use_true_random=False))
def test_mutated_and_hostile_grammars(tmp_path_factory, rng: random.Random) -> None:
    _grammar_property(grammar_inputs(rng, _GRAMMARS)()[1], tmp_path_factory.mktemp("g"))


@QUICK
@given(st.binary(max_size=300))
def test_arbitrary_bytes_as_grammar(tmp_path_factory, data: bytes) -> None:
    _grammar_property(data, tmp_path_factory.mktemp("g"))


# ------------------------------------------------------------------- many more: -m fuzz
@pytest.mark.fuzz
@MANY
@given(st.randoms(use_true_random=False))
def test_fuzz_architectures_many(rng: random.Random) -> None:
    _arch_property(arch_inputs(rng, _SEEDS)()[1])


@pytest.mark.fuzz
@MANY
@given(st.randoms(use_true_random=False))
def test_fuzz_grammars_many(tmp_path_factory, rng: random.Random) -> None:
    _grammar_property(grammar_inputs(rng, _GRAMMARS)()[1], tmp_path_factory.mktemp("g"))
