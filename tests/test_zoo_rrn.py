"""zoo:rrn: Sudoku generator, scoring, training vs baseline, export parity, grammar, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from nas.zoo import config_from_arch, export_config, get_family, zoo_space

from nas.data.puzzles import count_solutions_4x4, sudoku_edges, sudoku_puzzles, sudoku_valid
from nas.exceptions import ConfigurationError

SMALL = {"hidden": 32, "steps": 4, "mlp_depth": 1}


@pytest.fixture(scope="module")
def data():
    return get_family("rrn").make_data("sudoku4", seed=0)


def test_generator_givens_uniqueness_and_determinism():
    p, s = sudoku_puzzles(500, box=2, givens=(6, 10), seed=3, unique=True)
    p2, _ = sudoku_puzzles(500, box=2, givens=(6, 10), seed=3, unique=True)
    assert np.array_equal(p, p2)
    givens = (p > 0).sum(axis=1)
    assert givens.min() == 6 and givens.max() == 10
    assert sudoku_valid(s, p, 2).all() and (count_solutions_4x4(p) == 1).all()
    p9, s9 = sudoku_puzzles(50, box=3, givens=(30, 30), seed=0)
    assert sudoku_valid(s9, p9, 3).all() and ((p9 > 0).sum(axis=1) == 30).all()
    assert sudoku_edges(2).shape == (2, 112) and sudoku_edges(3).shape == (2, 1620)


def test_solved_means_any_valid_completion():
    # A puzzle with two completions: either one counts as solved, a broken grid does not.
    sol = np.array([[1, 2, 3, 4, 3, 4, 1, 2, 2, 1, 4, 3, 4, 3, 2, 1]])
    other = sol.copy()
    other[0, [0, 1, 8, 9]] = other[0, [1, 0, 9, 8]]  # swap 1 and 2 in rows 1 and 3
    puzzle = np.where(np.isin(np.arange(16), [0, 1, 8, 9]), 0, sol)
    assert count_solutions_4x4(puzzle)[0] == 2
    assert sudoku_valid(np.concatenate([sol, other]), np.repeat(puzzle, 2, axis=0), 2).all()
    broken = sol.copy()
    broken[0, 0] = 3
    assert not sudoku_valid(broken, puzzle, 2)[0]


def test_trains_past_baseline_with_per_step_metrics(data):
    fam = get_family("rrn")
    cfg = fam.config()
    torch.manual_seed(0)
    model = fam.build(cfg, data)
    res = fam.fit(model, cfg, data, epochs=1, time_budget_s=12)
    base = fam.baseline(data)
    assert base["cell_acc"] < 0.3 and base["solved"] == 0.0
    assert res.test["cell_acc"] > base["cell_acc"] + 0.25, res.test
    extra = res.extra
    assert len(extra["cell_acc_per_step"]) == 2 * cfg["steps"]
    assert extra["cell_acc_per_step"][cfg["steps"] - 1] == pytest.approx(
        res.test["cell_acc"], abs=1e-4
    )
    assert set(extra["solved_by_givens"]) == {6, 7, 8, 9, 10}


def test_export_parity_fixed_steps(data, tmp_path):
    fam = get_family("rrn")
    torch.manual_seed(0)
    model = fam.build(fam.config(SMALL), data)
    path, diff = export_config("rrn", tmp_path / "rrn.onnx", SMALL, model=model, data=data)
    assert diff < 1e-4
    import onnx

    ops = {n.op_type for n in onnx.load(str(path)).graph.node}
    assert "MatMul" in ops and "Loop" not in ops and "Scan" not in ops


def test_grammar_samples_build_and_run(data):
    from nas.sampling import Sampler

    sampler = Sampler(zoo_space("zoo:rrn"), seed=0)
    fam = get_family("rrn")
    for _ in range(5):
        family, cfg = config_from_arch(sampler.sample())
        assert family.name == "rrn"
        model = fam.build(cfg, data)
        logits, digits = model(data["test"][0][:3])
        assert logits.shape == (3, 16, 4) and int(digits.min()) >= 1


@pytest.mark.parametrize(
    "bad, match",
    [({"steps": 0}, "steps must be >= 1"), ({"mlp_depth": 9}, "mlp_depth must be <= 8")],
)
def test_bad_config(bad, match):
    with pytest.raises(ConfigurationError, match=match):
        get_family("rrn").config(bad)


def test_cli_train(nas_cli):
    code, out, _ = nas_cli(
        "train", "zoo:rrn", "--epochs", "1", "--time-budget", "2", "--config",
        json.dumps(SMALL), "--json",
    )  # fmt: skip
    assert code == 0, out
    res = json.loads(out)
    assert res["task"] == "sudoku4" and "cell_acc" in res["test"] and "solved" in res["baseline"]
