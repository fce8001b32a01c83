"""Config spaces in the DSL: ``config NAME { KEY = V1 | V2 ; ... }`` blocks of a grammar."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from nas.dsl import load_grammar, parse_arch
from nas.dsl.config import CONFIG_SPACES
from nas.exceptions import GrammarError, NasError
from nas.ops import list_ops
from nas.sampling import Sampler
from nas.space import Budget, SearchSpace

CFG = """# an optimiser's settings
config cfgopt {
    lr: float = 0.1 | 0.01 [0.5] | 0.001 ;
    layers    = 1 | 2 | 3
    act       = relu | tanh
    nesterov  = true | false
}
"""


def _space(src: str, name: str = "cfg.pcfg") -> SearchSpace:
    return SearchSpace(
        name="cfg",
        grammar=load_grammar(name, src),
        input_shape=(1,),
        mode="col",
        num_classes=2,
        budget=Budget(max_depth=4, max_params=1, max_activation=10**9, max_ops=256),
    )


def test_a_config_block_is_a_grammar_over_its_hyperparameters() -> None:
    sp = _space(CFG)
    g = sp.grammar
    assert g.start == "cfgopt"
    assert list(g.rules) == [
        "cfgopt",
        "cfgopt.lr",
        "cfgopt.layers",
        "cfgopt.act",
        "cfgopt.nesterov",
    ]
    space = g.configs["cfgopt"]
    assert space.keys == ("lr", "layers", "act", "nesterov")
    assert [h.type for h in space.params] == [float, int, str, bool]
    node = Sampler(sp, seed=0).sample()
    text = str(node)
    assert text.startswith("cfgopt(hp(k=lr,v=") and text.count("hp(") == 4
    assert str(parse_arch(text)) == text
    values = space.values(node)
    assert values["lr"] in (0.1, 0.01, 0.001) and values["layers"] in (1, 2, 3)
    assert isinstance(values["nesterov"], bool)
    assert sp.check(node).params == 0


def test_written_probabilities_weight_the_choices() -> None:
    sp = _space(CFG)
    sampler = Sampler(sp, seed=1)
    counts = Counter(
        sp.grammar.configs["cfgopt"].values(sampler.sample())["lr"] for _ in range(2000)
    )
    assert abs(counts[0.01] / 2000 - 0.5) < 0.04  # written [0.5]
    assert abs(counts[0.1] / 2000 - 0.25) < 0.04  # the other two share the rest
    assert abs(counts[0.001] / 2000 - 0.25) < 0.04


def test_every_hyperparameter_is_searched_and_mutated_one_at_a_time() -> None:
    from nas.evolution import mutate

    sp = _space(CFG)
    cfg = sp.grammar.configs["cfgopt"]
    sampler = Sampler(sp, seed=2)
    seen = {cfg.values(sampler.sample())["layers"] for _ in range(40)}
    assert seen == {1, 2, 3}
    parent = sampler.sample()
    rng = random.Random(0)
    changed = []
    for _ in range(30):
        child = cfg.values(mutate(sp, parent, rng))
        changed.append(sum(child[k] != v for k, v in cfg.values(parent).items()))
    assert min(changed) >= 1 and changed.count(1) >= 15


def test_a_block_and_hand_written_rules_draw_the_same_configs() -> None:
    block = "config cfgsame {\n  width = 8 | 16 | 32\n  act = relu | tanh\n}\n"
    by_block = Sampler(_space(block), seed=4)
    # The form zoo grammars had before config blocks: still valid once the config exists.
    by_hand = (
        "start config\nconfig -> cfgsame(width, act)\n"
        "width -> hp(k=width, v=8|16|32)\nact -> hp(k=act, v=relu|tanh)\n"
    )
    by_rules = Sampler(_space(by_hand), seed=4)
    assert [str(by_block.sample()) for _ in range(20)] == [
        str(by_rules.sample()) for _ in range(20)
    ]


def test_config_nodes_are_not_ops_and_build_nothing() -> None:
    from nas.compile import compile_arch

    _space(CFG)
    assert "cfgopt" in CONFIG_SPACES
    assert "cfgopt" not in list_ops() and "hp" not in list_ops()
    node = parse_arch(
        "cfgopt(hp(k=lr,v=0.1),hp(k=layers,v=1),hp(k=act,v=relu),hp(k=nesterov,v=true))"
    )
    with pytest.raises(NasError, match="zoo config"):
        compile_arch(node, (1,), 2, "col")


ERRORS = [
    ("not_config", "a b { x = 1 }\n", 1, 3, ["unexpected 'b'", "expected '->'"]),
    ("empty", "config cfge { }\n", 1, 8, ["declares no hyperparameters"]),
    ("twice", "config cfgt {\n  x = 1\n  x = 2\n}\n", 3, 3, ["'x'", "declared twice", ":2:3"]),
    ("bad_type", "config cfgb { x: integer = 1 }\n", 1, 18, ["unknown type 'integer'", "int"]),
    ("wrong_type", "config cfgw { x: int = 1 | 2.5 }\n", 1, 28, ["2.5", "not of type int"]),
    ("bool_type", "config cfgbo { x: bool = true | maybe }\n", 1, 33, ["'maybe'", "bool"]),
    ("repeated", "config cfgr { x = a | b | a }\n", 1, 27, ["'a'", "written twice"]),
    ("op_name", "config linear { x = 1 }\n", 1, 8, ["'linear' is an op"]),
    ("hp_name", "config hp { x = 1 }\n", 1, 8, ["'hp' is an op"]),
    ("probs", "config cfgp { x = a [0.7] | b [0.6] }\n", 1, 15, ["sum to 1.3"]),
    ("brace", "config cfgbr { x = 1\n", 1, 20, ["end of file", "'}'"]),
    ("rule_clash", "a -> cfgc\nconfig cfgc { x = 1 }\ncfgc -> a\n", 3, 1, ["defined twice"]),
]


@pytest.mark.parametrize(
    ("name", "src", "line", "col", "words"), ERRORS, ids=[e[0] for e in ERRORS]
)
def test_config_errors_name_file_line_col(
    name: str, src: str, line: int, col: int, words: list[str]
) -> None:
    with pytest.raises(GrammarError) as info:
        load_grammar(f"{name}.pcfg", src)
    err = info.value
    assert (err.path, err.line, err.column) == (f"{name}.pcfg", line, col), str(err)
    assert str(err).startswith(f"{name}.pcfg:{line}:{col}: ")
    for w in words:
        assert w in str(err)


def test_a_config_keeps_its_keys_across_grammars() -> None:
    sp = _space("config cfgk { x = 1 | 2 ; y = a }\n")
    load_grammar("same.pcfg", "config cfgk { x = 3 ; y = b | c }\n")  # other choices: fine
    with pytest.raises(GrammarError, match=r"other\.pcfg:1:8: config 'cfgk' is already declared"):
        load_grammar("other.pcfg", "config cfgk { y = a ; x = 1 }\n")
    with pytest.raises(NasError, match="cfgk takes 2 children"):
        sp.check(parse_arch("cfgk(hp(k=x,v=1))"))


def test_config_is_still_a_rule_name() -> None:
    g = load_grammar("c.pcfg", "start config\nconfig -> seq(config, config) | compute(norm)\n")
    assert g.start == "config" and not g.configs
