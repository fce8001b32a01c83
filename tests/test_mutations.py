"""Local mutation operators (nas.mutations): one small change, every child valid and new."""

from __future__ import annotations

import random

import pytest

from nas.degenerate import canonical_key
from nas.dsl import parse_arch
from nas.exceptions import ConfigurationError, UnknownNameError
from nas.mutations import DEFAULT_WEIGHTS, MUTATIONS, Site, mutate_with
from nas.sampling import Sampler
from nas.space import load_space

OPERATORS = ("param", "swap", "insert", "remove", "branch", "repeat", "redraw")


@pytest.fixture(scope="module")
def space():
    return load_space("einspace").with_input((1, 24, 24), 10)


def leaves(arch):
    return [n for _, n in arch.walk() if not n.children]


def test_every_operator_is_registered_with_a_default_weight() -> None:
    assert set(MUTATIONS.names()) >= set(OPERATORS)
    assert all(DEFAULT_WEIGHTS[op] > 0 for op in OPERATORS)


@pytest.mark.parametrize("op", OPERATORS)
def test_every_child_is_valid_derivable_and_new(op: str, space) -> None:
    """Children of grammar draws and of the derivable seeds pass the strict checks (shape
    rules, budgets, the grammar) and differ from their parent beyond no-op wrappers."""
    sampler = Sampler(space, seed=5)
    parents = [sampler.sample() for _ in range(25)]
    cpu_seeds = ("mlp_cpu", "cnn_cpu", "resnet_cpu", "vit_cpu", "seqconv_cpu")
    parents += [space.seeds[n] for n in cpu_seeds]
    rng = random.Random(1)
    made = 0
    for parent in parents:
        child = MUTATIONS.get(op)(Site(space, parent, rng, sampler))
        if child is None:
            continue
        made += 1
        space.check(child, strict=True)
        assert canonical_key(child) != canonical_key(parent)
    # repeat needs a shape-keeping module with weights, which many grammar draws lack
    least = 8 if op == "repeat" else 15
    assert made >= least, f"{op} found children for only {made} of {len(parents)} parents"


def test_param_changes_one_value_of_one_op_preferring_a_neighbour(space) -> None:
    """mlp_cpu's widths are 256: a param change of a width is mostly 128 or 512."""
    mlp = space.seeds["mlp_cpu"]
    rng = random.Random(0)
    sampler = Sampler(space, seed=0)
    widths = []
    for _ in range(40):
        child = MUTATIONS.get("param")(Site(space, mlp, rng, sampler))
        diff = [(a, b) for a, b in zip(leaves(mlp), leaves(child), strict=True) if a != b]
        assert len(diff) == 1 and diff[0][0].op == diff[0][1].op
        changed = [k for k, v in diff[0][0].params if dict(diff[0][1].params)[k] != v]
        assert len(changed) == 1
        if diff[0][0].op == "linear":
            widths.append(dict(diff[0][1].params)["out"])
    assert widths and sum(w in (128, 512) for w in widths) >= 0.6 * len(widths)


def test_swap_replaces_one_op_by_one_of_the_same_signature(space) -> None:
    cnn = space.seeds["cnn_cpu"]
    a = space.check(cnn)
    rng = random.Random(3)
    for _ in range(10):
        child = MUTATIONS.get("swap")(Site(space, cnn, rng, Sampler(space, seed=1)))
        diff = [(x, y) for x, y in zip(leaves(cnn), leaves(child), strict=True) if x != y]
        assert len(diff) == 1 and diff[0][0].op != diff[0][1].op
        assert space.check(child).out == a.out and cnn.size == child.size


def test_insert_adds_and_remove_takes_out_one_module(space) -> None:
    mlp = space.seeds["mlp_cpu"]
    rng = random.Random(2)
    for _ in range(10):
        grown = MUTATIONS.get("insert")(Site(space, mlp, rng, Sampler(space, seed=2)))
        assert 1 <= len(leaves(grown)) - len(leaves(mlp)) <= 4  # one small module
        assert str(grown).count("seq(") > str(mlp).count("seq(")
        cut = MUTATIONS.get("remove")(Site(space, mlp, rng, Sampler(space, seed=2)))
        assert cut.size < mlp.size


def test_branch_wraps_a_module_in_a_skip_or_redraws_one_branch(space) -> None:
    mlp, resnet = space.seeds["mlp_cpu"], space.seeds["resnet_cpu"]
    rng = random.Random(4)
    child = MUTATIONS.get("branch")(Site(space, mlp, rng, Sampler(space, seed=4)))
    assert "branch(clone(k=2)," in str(child) and ",compute(identity),add)" in str(child)
    for _ in range(5):
        child = MUTATIONS.get("branch")(Site(space, resnet, rng, Sampler(space, seed=4)))
        assert str(child).count("branch(") >= str(resnet).count("branch(")


def test_repeat_deepens_by_a_copy_of_a_shape_keeping_block(space) -> None:
    """seqconv_cpu (three 128-wide row convolutions) gets deeper: one of its 128 -> 128
    modules (the second or third block, or both as one module) written twice in a row."""
    seqconv = space.seeds["seqconv_cpu"]
    conv = "route(im2col(k=3,s=1,p=1),compute(linear(out=128)),col2im)"
    a = space.check(seqconv)
    rng = random.Random(0)
    for _ in range(10):
        child = MUTATIONS.get("repeat")(Site(space, seqconv, rng, Sampler(space, seed=0)))
        assert str(child).count(conv) in (4, 5) and space.check(child).out == a.out
        assert space.check(child).params > a.params
    mlp = space.seeds["mlp_cpu"]  # 576 -> 256 -> 256: only the second linear keeps its shape
    child = MUTATIONS.get("repeat")(Site(space, mlp, rng, Sampler(space, seed=0)))
    assert str(child).count("linear(out=256)") == 3


def test_a_changed_branching_factor_rewrites_the_repeated_children(space) -> None:
    """clone(k=2) writes two children, clone(k=4) one shared: a param change of k keeps
    the branch derivable (the grammar's rule for repeated children)."""
    two = parse_arch(
        "seq(route(im2col(k=1,s=1,p=0),compute(identity),permute(order=21)),"
        "branch(clone(k=2),compute(linear(out=32)),seq(compute(linear(out=32)),compute(norm)),add))"
    )
    site = Site(space, two, random.Random(0), Sampler(space, seed=0))
    path = next(p for p, n in two.walk() if n.op == "clone")
    four = site.child(path, parse_arch("clone(k=4)"))
    assert four is not None and "clone(k=4),compute(linear(out=32)),add)" in str(four)
    space.check(four, strict=True)


def test_mutate_with_names_its_operator_and_checks_its_weights(space) -> None:
    mlp = space.seeds["mlp_cpu"]
    rng = random.Random(0)
    seen = {mutate_with(space, mlp, rng)[1] for _ in range(60)}
    assert seen <= set(OPERATORS) and len(seen) >= 4
    assert {mutate_with(space, mlp, rng, {"param": 1.0})[1] for _ in range(5)} == {"param"}
    with pytest.raises(UnknownNameError, match="unknown mutation 'grow'"):
        mutate_with(space, mlp, rng, {"grow": 1.0})


def test_re_takes_its_operators_and_the_einspace_preset(space) -> None:
    from nas.searches._evolution import RegularizedEvolution, mutation_weights

    assert mutation_weights(["param:2", "swap"]) == {"param": 2.0, "swap": DEFAULT_WEIGHTS["swap"]}
    for bad, says in (
        (["grow"], "unknown mutation operator 'grow'; choose from"),
        (["param:-1"], "must be a number >= 0"),
        (["param:x"], "must be a number >= 0"),
        (["param:0"], "at least one operator a weight above 0"),
    ):
        with pytest.raises(ConfigurationError, match=says):
            mutation_weights(bad)
    paper = RegularizedEvolution.resolve_options({}, 1000, "einspace")
    assert paper == {"population": 100, "tournament": 10, "mutations": ["redraw"], "elite": 0}
    small = RegularizedEvolution.resolve_options({"seed_archs": ["a"] * 5}, 30)
    assert small["population"] == 7 and small["tournament"] == 4
    re = RegularizedEvolution(space, seed=0, population=6, tournament=2, seed_archs=["mlp_cpu"])
    re.tell(re.ask(), {"accuracy": 0.7})
    child = re.ask()
    origin = re.origin(child)
    assert origin["op"] in OPERATORS and origin["parent"] == str(space.seeds["mlp_cpu"])
    assert re.origin(space.seeds["mlp_cpu"]) == {"op": "seed"}
