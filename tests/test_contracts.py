"""Contract suites over every registry: each op, strategy, zoo family and dataset.

The suites live in ``nas.testing`` so that a newcomer's op, strategy or family, once
registered, is tested here with no test of its own.
"""

from __future__ import annotations

import re
import sys
import textwrap

import pytest
from nas.searches import list_strategies
from nas.zoo import list_families

from nas.data import list_datasets
from nas.ops import list_ops
from nas.registry import DuplicateNameError
from nas.testing import check_dataset, check_family, check_op, check_strategy

# Small settings per strategy so the suite stays fast.
OPTIONS = {"predictor": {"pool": 16, "batch": 4}}


@pytest.mark.parametrize("name", list_ops())
def test_every_op_keeps_its_contract(name: str) -> None:
    check_op(name)


@pytest.mark.parametrize("name", list_strategies())
def test_every_strategy_keeps_its_contract(name: str) -> None:
    check_strategy(name, OPTIONS.get(name))


@pytest.mark.parametrize("name", list_families())
def test_every_zoo_family_keeps_its_contract(name: str) -> None:
    check_family(name)


@pytest.mark.slow
@pytest.mark.parametrize("name", list_families())
def test_every_zoo_family_builds_and_runs(name: str) -> None:
    check_family(name, deep=True)


@pytest.mark.parametrize("name", list_datasets())
def test_every_dataset_keeps_its_contract(name: str) -> None:
    check_dataset(name)


def _user_module(tmp_path, monkeypatch, name: str, body: str) -> None:
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(body))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, name, raising=False)


OP_MODULE = """
    from typing import ClassVar
    from nas.ops import Op, register_op

    @register_op
    class {cls}(Op):
        \"\"\"Scales its input by a constant (a user's op, outside the project).\"\"\"

        name = "{name}"
        params: ClassVar[dict] = {{"by": (float, 2.0)}}
        examples = ("seq(compute({name}),compute(linear(out=16)))",)

        def infer(self, x):
            return {infer}

        def flops(self, x, y):
            return x[0].numel

        def build(self, x):
            import torch

            class Scale(torch.nn.Module):
                def forward(self, t, by=self.by):
                    return t * by

            return Scale()
"""


def test_a_users_op_from_their_own_module_is_used_and_checked(tmp_path, monkeypatch) -> None:
    from nas.sampling import Sampler
    from nas.space import load_space

    _user_module(
        tmp_path, monkeypatch, "userops", OP_MODULE.format(cls="Scale", name="scale", infer="x")
    )
    grammar = tmp_path / "mine.pcfg"
    grammar.write_text(
        'import "userops"\nstart network\n'
        "network -> seq(compute(scale(by=0.5|3.0)), compute(linear(out=8|16)))\n"
    )
    space = load_space(str(grammar))
    arch = Sampler(space, seed=0).sample()
    assert "scale(by=" in str(arch)
    space.check(arch)
    check_op("scale")  # the contract suite covers it with no test of its own


def test_the_contract_catches_an_op_whose_shape_rule_lies(tmp_path, monkeypatch) -> None:
    from nas.ops import load_op_module

    liar = OP_MODULE.format(
        cls="Liar", name="liar", infer="(x[0].with_shape(x[0].shape[:-1] + (5,)),)"
    )
    _user_module(tmp_path, monkeypatch, "liarops", liar)
    load_op_module("liarops")
    with pytest.raises(AssertionError, match="op 'liar'"):
        check_op("liar")


def test_grammar_import_errors_name_the_line(tmp_path) -> None:
    from nas.dsl import load_grammar
    from nas.exceptions import GrammarError

    g = tmp_path / "bad.pcfg"
    g.write_text('start n\nimport "no_such_module_xyz"\nn -> compute(identity)\n')
    with pytest.raises(GrammarError, match=r"bad.pcfg:2:8: .*no_such_module_xyz"):
        load_grammar(g)
    g.write_text('import "../evil.py"\nn -> compute(identity)\n')
    with pytest.raises(GrammarError, match="needs a Python module name"):
        load_grammar(g)


def test_registering_a_taken_op_name_is_an_error(tmp_path, monkeypatch) -> None:
    from nas.ops import load_op_module

    clash = OP_MODULE.format(cls="Clash", name="linear", infer="x")
    _user_module(tmp_path, monkeypatch, "clashops", clash)
    with pytest.raises(DuplicateNameError, match="op 'linear' is already registered"):
        load_op_module("clashops")


def test_ops_from_an_installed_entry_point(tmp_path, monkeypatch) -> None:
    """A package declaring a ``nas.ops`` entry point registers its ops with no import."""
    from nas.ops import OPS, get_op

    _user_module(
        tmp_path, monkeypatch, "epops", OP_MODULE.format(cls="Ep", name="epscale", infer="x")
    )
    dist = tmp_path / "epops-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: epops\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[nas.ops]\nepops = epops\n")
    monkeypatch.setattr(OPS, "_discovered", False)
    assert get_op("epscale").__module__ == "epops"
    check_op("epscale")


def _other_entry(*args: object) -> None:
    """A stand-in for a second object trying to take a registered name."""


@pytest.mark.parametrize(
    ("module", "table", "name"),
    [
        ("nas.predictors.training.recipes", "RECIPES", "full"),
        ("nas.predictors.signals", "HEAD_SIGNALS", "nwot"),
        ("nas.predictors.research.loso", "SCORERS", "signal-blend"),
    ],
)
def test_registering_a_taken_table_name_is_an_error(module: str, table: str, name: str) -> None:
    """The predictor's recipe, head-signal and LOSO-scorer tables refuse a second object
    under a taken name instead of overwriting the first; the same object again is fine."""
    import importlib

    registry = getattr(importlib.import_module(module), table)
    before = registry.get(name)
    with pytest.raises(DuplicateNameError, match=re.escape(f"{name!r} is already registered")):
        registry.add(name, _other_entry)
    assert registry.get(name) is before
    registry.add(name, before)  # an alias of one object (``shape-free text``) is no clash


def test_registry_tables_keep_their_listing_order() -> None:
    """Ordered tables list names as registered (``--recipe``'s help, ``nas data list``)."""
    from nas.predictors.signals import HEAD_SIGNALS
    from nas.predictors.training.recipes import RECIPES

    assert HEAD_SIGNALS.names() == ["depth", "nodes", "width", "nwot"]
    assert RECIPES.names()[:3] == ["full", "op-only text", "no-signals"]
    assert list_datasets()[0] == "unseen:addnist" and list_datasets()[-1] == "standin:shapetile"


@pytest.mark.parametrize("name", ["standin:addnist", "Standin:Add_NIST"])
def test_registering_a_taken_dataset_name_is_an_error(name: str) -> None:
    """A dataset name taken up to case and separators is a DuplicateNameError (a
    ConfigurationError: the CLI prints one line), and the first loader stays."""
    from nas.data import get_dataset_info, register_dataset
    from nas.exceptions import ConfigurationError

    before = get_dataset_info("standin:addnist")
    deco = register_dataset(
        name, input_shape=(1, 8, 8), num_classes=2, description="clash", has_standin=False
    )
    with pytest.raises(DuplicateNameError, match=r"dataset .* is already registered") as exc:
        deco(lambda data_dir, size, seed: None)
    assert isinstance(exc.value, ConfigurationError) and len(str(exc.value).splitlines()) == 1
    assert get_dataset_info(name) is before and list_datasets().count("standin:addnist") == 1
