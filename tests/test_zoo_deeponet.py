"""zoo:deeponet: Fisher (several source families) and masked Darcy geometries, export, grammar."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from nas.zoo import config_from_arch, export_config, get_family, train_config, zoo_space

from nas.data.pde import FISHER_FAMILIES, fisher_solve, geometry_masks, source_coefficients
from nas.exceptions import ConfigurationError

SMALL = {"branch_width": 64, "trunk_width": 64, "latent": 64}


def test_fisher_solver_families():
    x = np.linspace(0, 1, 64)
    ones = np.ones(1)
    for name in FISHER_FAMILIES:  # u = 1 is a steady state of every family; u = 0.5 grows
        c = source_coefficients(name, ones, ones)
        assert np.allclose(fisher_solve(np.ones((1, 64)), c, np.array([1.0])), 1.0)
        grown = fisher_solve(np.full((1, 64), 0.5), c, np.array([1.0]))
        assert (grown > 0.5).all() and (grown < 1).all()
    # Zero flux: with no source, diffusion conserves the mass of a bump.
    bump = np.exp(-((x - 0.3) ** 2) / 0.01)[None]
    out = fisher_solve(bump, np.zeros((1, 4)), np.array([1.0]))
    assert out.sum() == pytest.approx(bump.sum(), rel=1e-2) and out.max() < bump.max()


def test_fisher_multitask_trains_beats_baseline_and_exports(tmp_path):
    fam = get_family("deeponet")
    model, data, res = train_config("deeponet", SMALL, task="fisher", epochs=12, seed=0)
    base = fam.baseline(data)
    assert res.status == "ok" and res.epochs == 12
    assert res.test["rel_l2"] < 0.4 * base["rel_l2"], (res.test, base)
    for name in FISHER_FAMILIES:  # one model, every source family learnt
        assert res.test[f"rel_l2_{name}"] < 0.5 * base[f"rel_l2_{name}"]
    path, diff = export_config("deeponet", tmp_path / "f.onnx", SMALL, model=model, data=data)
    assert (
        path.stat().st_size > 0 and diff < 1e-4
    )  # checked at batch 3 on half the query points (both axes dynamic)


def test_darcy_geometries_mask_heldout_and_export(tmp_path):
    fam = get_family("deeponet")
    model, data, res = train_config("deeponet", SMALL, task="darcy_geom", epochs=3, seed=0)
    base = fam.baseline(data)
    assert res.test["rel_l2"] < 0.6 * base["rel_l2"], (res.test, base)
    assert np.isfinite(res.test["rel_l2_heldout"]) and "rel_l2_heldout" in base
    assert res.extra["heldout_geometry"] == "lshape"
    v = data["heldout"][0][:4]
    with torch.no_grad():
        u = model(v, data["y"])
        # Nearest-cell mask lookup reproduces the mask on the grid; outside it u is exactly 0.
        assert torch.equal(model.mask_at(v[:, 1], data["y"]), v[:, 1].flatten(1))
        assert (u[v[:, 1].flatten(1) == 0] == 0).all() and (u.abs() > 0).any()
    path, diff = export_config(
        "deeponet", tmp_path / "d.onnx", SMALL, task="darcy_geom", model=model, data=data
    )
    assert path.stat().st_size > 0 and diff < 1e-4


def test_geometries_are_parameterised():
    rng = np.random.default_rng(0)
    for kind in ("square", "circle", "triangle", "lshape"):
        masks = geometry_masks(kind, 3, 32, rng)
        assert 0.2 < masks.mean() < 0.9 and not np.array_equal(masks[0], masks[1])


def test_grammar_samples_configs_that_run():
    from nas.sampling import Sampler

    fam = get_family("deeponet")
    datasets = [fam.make_data(task) for task in ("fisher", "darcy_geom")]
    sampler = Sampler(zoo_space("zoo:deeponet"), seed=0)
    for i in range(5):
        family, cfg = config_from_arch(sampler.sample())
        assert family.name == "deeponet"
        data = datasets[i % 2]
        model = fam.build(cfg, data).eval()
        with torch.no_grad():
            out = model(*fam.example_inputs(cfg, data, batch=2))
        assert out.shape == (2, len(data["y"])) and torch.isfinite(out).all()


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        ({"latent": 0}, "latent must be >= 1"),
        ({"branch_depth": 5}, "branch_depth must be in"),
        ({"act": "swish"}, "act must be one of"),
        ({"lr": -1.0}, "lr must be > 0"),
    ],
)
def test_bad_configs_are_one_line_errors(bad, match):
    with pytest.raises(ConfigurationError, match=match) as info:
        get_family("deeponet").config(bad)
    assert "\n" not in str(info.value)


def test_cli_train_one_epoch(nas_cli):
    code, out, err = nas_cli(
        "train", "zoo:deeponet", "--epochs", "1", "--config", json.dumps(SMALL), "--json"
    )
    assert code == 0, err
    res = json.loads(out)
    assert res["task"] == "fisher" and res["epochs"] == 1
    assert {"rel_l2", "rel_l2_kpp", "rel_l2_nw", "rel_l2_quartic"} <= set(res["test"])
    assert res["test"]["rel_l2"] < res["baseline"]["rel_l2"]
