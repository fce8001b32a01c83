"""zoo:ait — AiT soft tokens: training beats the baseline, codes stay alive, export parity."""

from __future__ import annotations

import json

import pytest
import torch
from nas.zoo import config_from_arch, export_config, get_family, zoo_space
from nas.zoo._ait_layers import EMAQuantizer
from nas.zoo.ait import code_usage, depth_metrics, mask_patches

from nas.data import depthscenes
from nas.exceptions import ConfigurationError

SMALL = {"codebook": 32, "width": 32, "depth": 1}  # default grid 8, tokenizer and ratio
SHORT = {**SMALL, "vq_epochs": 5, "pred_epochs": 5}  # beats the baseline in ~30 s
TRAIN_N = 1000


@pytest.fixture(scope="module")
def fam():
    return get_family("zoo:ait")


@pytest.fixture(scope="module")
def data(fam):
    full = fam.make_data("depth", size="small", seed=0)
    return {**full, "train": tuple(x[:TRAIN_N] for x in full["train"])}


@pytest.fixture(scope="module")
def trained(fam, data):
    cfg = fam.config(SHORT)
    torch.manual_seed(0)
    model = fam.build(cfg, data)
    res = fam.fit(model, cfg, data, seed=0)
    return cfg, model, res


def test_scenes_are_deterministic_and_masked():
    a = depthscenes.generate((6, 2, 2), seed=3)
    b = depthscenes.generate((6, 2, 2), seed=3)
    assert all((a[k] == b[k]).all() for k in a)
    img, dep, true = a["train_image"], a["train_depth"], a["train_true"]
    assert img.shape == (6, 3, 32, 32) and dep.shape == true.shape == (6, 1, 32, 32)
    valid = dep[dep > 0]
    assert valid.min() >= depthscenes.MIN_DEPTH and valid.max() <= depthscenes.MAX_DEPTH
    assert 0.4 < (dep > 0).mean() < 0.95  # sky, occlusion shadows and dropouts are invalid
    # the true depth has no holes and agrees with the sensor wherever the sensor is valid
    assert true.min() >= depthscenes.MIN_DEPTH and (true[dep > 0] == valid).all()


def test_training_beats_mean_depth_baseline(fam, data, trained):
    _, _, res = trained
    base = fam.baseline(data)  # per-pixel mean depth: test RMSE 1.313 m
    assert res.status == "ok" and res.epochs == 5 and res.extra["vq_epochs"] == 5
    assert set(res.test) >= {"rmse", "abs_rel", "delta1"}
    assert res.test["rmse"] < base["rmse"] - 0.1, (res.test, base)


def test_codebook_does_not_collapse(trained):
    _, _, res = trained
    usage = res.extra["code_usage"]  # a collapsed codebook would use exactly one code
    assert usage["codes_used"] >= 3 and usage["perplexity"] > 2.0, usage
    assert res.extra["predicted_code_usage"]["codes_used"] > 1
    assert res.extra["vq_recon_rmse"] < res.test["rmse"]
    # soft tokens decode better than the argmax tokens of the same predictor (AiT's claim)
    assert res.test["rmse"] < res.extra["test_rmse_hard_decode"]


def test_export_parity_soft_and_hard(fam, data, trained, tmp_path):
    cfg, model, _ = trained
    path, diff = export_config(fam, tmp_path / "ait.onnx", cfg, model=model, data=data)
    assert path.stat().st_size > 0 and diff < 1e-4
    hard = {**SMALL, "soft_tokens": False}
    _, diff = export_config(fam, tmp_path / "hard.onnx", hard, data=data)
    assert diff < 1e-4


def test_eval_mode_leaves_codebook_alone():
    q = EMAQuantizer(8, 4)
    z = torch.randn(2, 4, 3, 3)
    q.train()
    q(z)  # first training call seeds the codebook from the encoder outputs
    assert bool(q.initialised)
    before = q.embed.clone()
    q.eval()
    _, idx, _ = q(z + 1.0)
    assert torch.equal(before, q.embed) and idx.shape == (2, 3, 3)


def test_soft_and_hard_decoding_differ_and_helpers(fam, data):
    torch.manual_seed(0)
    model = fam.build(fam.config(SMALL), data).eval()
    img = data["test"][0][:3]
    with torch.no_grad():
        depth, probs = model(img)
        hard = model.decode_probs(probs, soft=False)
    assert depth.shape == (3, 1, 32, 32) and probs.shape == (3, 8, 8, 32)
    assert torch.allclose(probs.sum(-1), torch.ones(3, 8, 8), atol=1e-5)
    assert not torch.allclose(depth, hard)
    torch.manual_seed(0)
    masked = mask_patches(torch.ones(200, 1, 32, 32), 0.25, 4)
    assert abs(float((masked == 0).float().mean()) - 0.25) < 0.02
    assert code_usage(torch.tensor([0, 0, 1, 1]), 4) == {
        "codes_used": 2,
        "code_share": 0.5,
        "perplexity": pytest.approx(2.0),
    }
    gt = torch.tensor([[2.0, 0.0], [4.0, 5.0]])
    m = depth_metrics(torch.tensor([[2.0, 9.0], [4.0, 5.0]]), gt)
    assert m["rmse"] == 0.0 and m["delta1"] == 1.0  # the invalid pixel is ignored


def test_grammar_samples_build_and_run(fam, data):
    from nas.sampling import Sampler

    sampler = Sampler(zoo_space("zoo:ait"), seed=0)
    img = data["test"][0][:2]
    for _ in range(5):
        family, cfg = config_from_arch(sampler.sample())
        assert family.name == "ait"
        model = fam.build(cfg, data).eval()
        with torch.no_grad():
            depth, probs = model(img)
        assert depth.shape == (2, 1, 32, 32)
        assert probs.shape == (2, cfg["grid"], cfg["grid"], cfg["codebook"])


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"grid": 6}, "grid must be a power of two"),
        ({"mask_ratio": 1.0}, "mask_ratio must be in [0, 1)"),
        ({"width": 30}, "width must be a positive multiple of 2 * heads"),
        ({"codebook": 1}, "codebook must be >= 2"),
        ({"tau": 0}, "tau must be > 0"),
        ({"mask_aug": "maybe"}, "must be bool"),
    ],
)
def test_bad_config_is_one_line_error(fam, override, message):
    with pytest.raises(ConfigurationError) as err:
        fam.config(override)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_cli_train_one_epoch(nas_cli):
    code, out, err = nas_cli(
        "train",
        "zoo:ait",
        "--epochs",
        "1",
        "--time-budget",
        "4",
        "--config",
        json.dumps(SMALL),
        "--json",
    )
    assert code == 0, err
    res = json.loads(out)
    assert res["family"] == "ait" and res["task"] == "depth"
    assert "rmse" in res["test"] and "rmse" in res["baseline"]
    assert res["extra"]["code_usage"]["codes_used"] >= 1
