"""A zoo family's hyperparameters are a config space of the DSL, not ops in the registry."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import zoo_toy  # noqa: F401  (registers the test family)
from nas.zoo import arch_from_config, config_from_arch, get_family, zoo_space

from nas.exceptions import GrammarError

FAMILIES = ("ait", "deeponet", "mgno", "moe", "ptrnet", "rrn", "slimmable")
# Searched hyperparameters per family, as `nas spaces` counts them.
COUNTS = {"ait": 5, "deeponet": 6, "mgno": 5, "moe": 8, "ptrnet": 3, "rrn": 3, "slimmable": 6}

FRESH = """
import json, sys
from nas.ops import list_ops
from nas.space import load_space
from nas.zoo import config_from_arch, list_families
before = list_ops()
# A stored string parses before its family's grammar is loaded (registering declares it).
family, cfg = config_from_arch("rrn(hp(k=steps,v=8),hp(k=hidden,v=64),hp(k=mlp_depth,v=2))")
spaces = {f: len(load_space("zoo:" + f).grammar.rules) for f in list_families()}
print(json.dumps({"before": before, "after": list_ops(), "cfg": cfg, "spaces": spaces}))
"""


def test_loading_every_family_leaves_the_op_registry_alone() -> None:
    out = subprocess.run(
        [sys.executable, "-c", FRESH], capture_output=True, text=True, timeout=120, check=True
    )
    got = json.loads(out.stdout)
    assert got["after"] == got["before"]
    assert not {"hp", *FAMILIES} & set(got["after"])
    assert got["cfg"]["steps"] == 8 and got["cfg"]["hidden"] == 64 and got["cfg"]["mlp_depth"] == 2
    # one rule for the config and one per searched hyperparameter
    assert got["spaces"] == {f: COUNTS[f] + 1 for f in FAMILIES}


def test_nas_ops_lists_only_real_ops_after_the_zoo_loads(nas_cli) -> None:
    code, out, _ = nas_cli("spaces")  # loads every family's space
    assert code == 0
    for family, n in COUNTS.items():
        assert f"{n + 1} rules over {n} hyperparameters" in next(
            line for line in out.splitlines() if line.startswith(f"zoo:{family} ")
        )
    code, out, _ = nas_cli("ops")
    names = {line.split()[0] for line in out.splitlines() if line.strip()}
    assert code == 0 and {"seq", "linear", "nb201", "cell"} <= names
    assert not {"hp", "toyzoo", *FAMILIES} & names


@pytest.mark.parametrize("family", FAMILIES)
def test_stored_strings_mean_the_same_config(family: str) -> None:
    fam = get_family(family)
    space = zoo_space(family).grammar.configs[family]
    assert space.keys == tuple(fam.searched or fam.hyperparams)  # the family's order
    for h in space.params:  # every offered value is a valid value of the family's type
        assert [fam.config({h.key: str(v)})[h.key] for v in h.values] == [
            type(fam.hyperparams[h.key])(v) for v in h.values
        ]
    defaults = fam.config()
    assert config_from_arch(arch_from_config(fam, defaults))[1] == defaults


def _toy_grammar(tmp_path, monkeypatch, body: str) -> None:
    path = tmp_path / "toy.pcfg"
    path.write_text(body)
    monkeypatch.setattr(type(get_family("toyzoo")), "grammar_path", str(path))


def test_a_family_grammar_must_offer_values_of_the_family_types(tmp_path, monkeypatch) -> None:
    _toy_grammar(
        tmp_path,
        monkeypatch,
        "config toyzoo {\n  width = 8 | wide\n  depth = 1\n  act = relu\n}\n",
    )
    with pytest.raises(GrammarError, match=r"toy\.pcfg:2:15: .*'width' must be int, got 'wide'"):
        zoo_space("toyzoo")


def test_a_family_grammar_must_write_its_searched_keys_in_order(tmp_path, monkeypatch) -> None:
    _toy_grammar(
        tmp_path, monkeypatch, "config toyzoo {\n  depth = 1\n  width = 8\n  act = relu\n}\n"
    )
    with pytest.raises(GrammarError, match=r"toy\.pcfg:1:8: config 'toyzoo' is already declared"):
        zoo_space("toyzoo")


def test_strict_check_derives_a_stored_string(nas_cli) -> None:
    ok = "rrn(hp(k=steps,v=8),hp(k=hidden,v=64),hp(k=mlp_depth,v=2))"
    code, out, _ = nas_cli("check", "--strict", "--space", "zoo:rrn", ok)
    assert code == 0 and "derivable" in out
    code, _, err = nas_cli("check", "--strict", "--space", "zoo:rrn", ok.replace("v=8", "v=5"))
    assert code == 2 and "hp(k=steps,v=5) is not an alternative of rule 'rrn.steps'" in err


def test_sampling_a_config_space_prints_its_typed_values_not_a_parameter_count(nas_cli) -> None:
    """A zoo draw is hyperparameters: no network parameters to count (the head's 4 before)."""
    code, out, err = nas_cli("sample", "--space", "zoo:moe", "-n", "3", "--seed", "1")
    assert code == 0, err
    rows = [json.loads(line) for line in out.splitlines()]
    assert len(rows) == 3
    for row in rows:
        assert "params" not in row and set(row) == {"arch", "config"}
        assert list(row["config"]) == list(get_family("moe").searched or ())
        assert isinstance(row["config"]["shared_experts"], int)
        assert row["arch"].startswith("moe(hp(k=variant,")
