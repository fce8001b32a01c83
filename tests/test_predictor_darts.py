"""The DARTS / NB301 network matches the zero-cost table's parameter counts; its bench."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from nas.exceptions import ConfigurationError


def _check_params(keys: list[str]) -> None:
    from nas.predictors.benches.benchdata import nb301_zero_cost
    from nas.predictors.benches.darts import DartsNetwork, parse_genotype

    table = nb301_zero_cost()
    for key in keys:
        n = sum(p.numel() for p in DartsNetwork(parse_genotype(key)).parameters())
        assert n == round(table[key]["params"] * 1e6), key


def test_params_match_the_table_on_60_cells() -> None:
    from nas.predictors.benches.benchdata import nb301_zero_cost

    keys = list(nb301_zero_cost())
    _check_params([keys[i] for i in np.random.default_rng(0).choice(len(keys), 60, False)])


@pytest.mark.slow
def test_params_match_the_table_on_all_725_cells() -> None:
    from nas.predictors.benches.benchdata import nb301_zero_cost

    _check_params(list(nb301_zero_cost()))


def test_genotype_errors() -> None:
    from nas.predictors.benches.darts import parse_genotype

    for bad in ("", "((0, 1),)", "(((0, 9),) * 8, ((0, 0),) * 8)", "(((5, 0),) * 8,) * 2"):
        with pytest.raises(ConfigurationError):
            parse_genotype(bad)


def test_one_cell_bench_exports_and_counts(tmp_path: Path) -> None:
    from nas.predictors.benches.bench import Bench
    from nas.predictors.benches.benchdata import nb301_zero_cost
    from nas.predictors.benches.nb301_bench import build_nb301_bench

    bench = build_nb301_bench(1, seed=3, out=tmp_path / "b")
    again = Bench.load(tmp_path / "b")
    key = again.names[0]
    entry = nb301_zero_cost()[key]
    assert again.label()[0] == entry["val_accuracy"]
    assert "nwot" in again.proxy_names
    # the file's counts are torch's for the same module (BatchNorm folding accounted for)
    from nas.predictors.benches.darts import DartsNetwork, parse_genotype
    from test_predictor_cost import torch_counts

    params, macs = torch_counts(DartsNetwork(parse_genotype(key)), (torch.randn(1, 3, 32, 32),))
    assert again.params[0] == params
    assert again.flops[0] == pytest.approx(macs, rel=0.01)
    assert bench.meta["space"] == "nb301"
