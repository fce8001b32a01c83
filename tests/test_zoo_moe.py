"""zoo:moe: shared-bottom, MMoE, HoME and TaskExpert on the synthetic pair and the digits task."""

from __future__ import annotations

import json
import math
import time

import pytest
import torch
from nas.zoo import config_from_arch, export_config, get_family, zoo_space

from nas.exceptions import ConfigurationError, UnknownNameError

VARIANTS = ("shared_bottom", "mmoe", "home", "taskexpert")


@pytest.fixture(scope="module")
def fam():
    return get_family("moe")


@pytest.fixture(scope="module")
def synthetic(fam):
    return fam.make_data("synthetic", size="small", seed=0)


def _train(fam, data, cfg, epochs):
    torch.manual_seed(0)
    model = fam.build(fam.config(cfg), data)
    return model, fam.fit(model, fam.config(cfg), data, epochs=epochs, seed=0)


@pytest.mark.parametrize("variant", VARIANTS)
def test_variant_trains_beats_baseline_and_reports_usage(fam, synthetic, variant, tmp_path):
    # mmoe is the default config (batch 64 for more steps); the others are made smaller.
    small = {"shared_experts": 4, "group_experts": 1} if variant != "mmoe" else {}
    cfg = {"variant": variant, "batch_size": 64, **small}
    model, res = _train(fam, synthetic, cfg, epochs=3)
    base = fam.baseline(synthetic)
    assert res.status == "ok" and res.epochs == 3
    assert abs(base["r2"]) < 0.05
    assert res.test["r2"] > base["r2"] + 0.25, res.test  # mean R^2 of both tasks
    assert {"r2_task1", "r2_task2"} <= set(res.test)
    use = res.extra["utilisation"]
    assert 0.0 <= use["expert_dead_units"] <= use["expert_zero_share"] + 1e-9 <= 1.0 + 1e-9
    if variant == "mmoe":  # export parity of the trained default config
        path, diff = export_config("moe", tmp_path / "m.onnx", cfg, model=model, data=synthetic)
        assert path.stat().st_size > 0 and diff < 1e-4
    if variant == "shared_bottom":
        assert use["gate_entropy"] == {}
        return
    assert set(use["gate_entropy"]) == {"task1", "task2"}
    for task, h in use["gate_entropy"].items():
        assert 0.0 <= h <= 1.0
        assert sum(use["gate_usage"][task]) == pytest.approx(1.0, abs=1e-3)
    if variant in ("home", "taskexpert"):  # Swish / GELU experts: no exact zeros
        assert use["expert_zero_share"] < 0.01


def test_export_parity_and_equal_cost(fam, synthetic, tmp_path):
    # Every variant and gate exports (BN, LayerNorm, TopK mask, memory broadcast).
    for variant, gate in (
        ("home", "topk"),
        ("taskexpert", "sigmoid"),
        ("shared_bottom", "softmax"),
    ):
        cfg = {"variant": variant, "gate": gate, "expert_depth": 2}
        _, diff = export_config("moe", tmp_path / f"{variant}.onnx", cfg, data=synthetic)
        assert diff < 1e-4, (variant, diff)
    # The shared bottom is sized to the matched variant's parameter count (+-1%).
    for match in ("mmoe", "home", "taskexpert"):
        sb = fam.build(fam.config({"variant": "shared_bottom", "sb_match": match}), synthetic)
        other = fam.build(fam.config({"variant": match}), synthetic)
        n_sb, n_other = (sum(p.numel() for p in m.parameters()) for m in (sb, other))
        assert abs(n_sb - n_other) / n_other < 0.01, (match, n_sb, n_other)


def test_grammar_samples_build_and_run(fam, synthetic):
    from nas.sampling import Sampler

    sampler = Sampler(zoo_space("zoo:moe"), seed=0)
    x = synthetic.splits["test"][0][:4]
    seen = set()
    for _ in range(12):
        family, cfg = config_from_arch(sampler.sample())
        assert family.name == "moe"
        seen.add(cfg["variant"])
        model = fam.build(cfg, synthetic).eval()
        with torch.no_grad():
            out = model(x)
        assert len(out) == 2 and all(o.shape == (4, 1) for o in out)
    assert len(seen) >= 3


def test_home_hierarchy_and_gates(fam, synthetic):
    cfg = fam.config({"variant": "home", "shared_experts": 2, "group_experts": 3})
    model = fam.build(cfg, synthetic)
    # Level-2 task gate: 2 global + 3 group + 1 task-specific experts, nothing of the other
    # group (the hierarchy mask); level-1 shared gate sees every meta expert.
    assert model.task_gate[0].n == 6 and model.meta_gate_shared.n == 2 + 2 * 3
    # Feature-gates start as the identity (B = 0) and multiply the input.
    v = synthetic.splits["test"][0][:3]
    fg = model.meta_shared.fgate
    assert torch.allclose(fg(v), v.unsqueeze(0).expand(2, -1, -1))
    with torch.no_grad():
        fg.b.fill_(5.0)
    assert torch.allclose(fg(torch.zeros_like(v)), torch.zeros(2, 3, v.shape[1]))
    one = fam.build(fam.config({"variant": "home", "groups": "0,0"}), synthetic)
    assert len(one.meta_group) == 1 and one.groups == [0, 0]
    off = fam.build(fam.config({"variant": "home", "lora_rank": 0, "self_gate": False}), synthetic)
    assert off.meta_shared.fgate is None and off.self_gate is None


def test_taskexpert_memory_is_an_expert(fam, synthetic):
    model = fam.build(fam.config({"variant": "taskexpert", "shared_experts": 3}), synthetic)
    assert all(g.n == 4 for layer in model.gates for g in layer)  # 3 experts + memory slot
    x = synthetic.splits["test"][0][:5]
    model.eval()
    with torch.no_grad():
        before = [o.clone() for o in model(x)]
        model.memory0.fill_(1.0)
        after = model(x)
    assert not torch.allclose(before[0], after[0])  # the memory feeds the outputs


def test_synthetic_correlation_option(fam):
    hi = fam.make_data(fam.task("synthetic:0.95").name)
    lo = fam.make_data("synthetic:0.1")
    assert hi.info["correlation"] == 0.95 and lo.info["correlation"] == 0.1
    assert hi.info["label_pearson"] > 0.7 > 0.2 > lo.info["label_pearson"]
    again = fam.make_data("synthetic:0.95")
    assert torch.equal(hi.splits["train"][0], again.splits["train"][0])
    with pytest.raises(UnknownNameError, match="correlation"):
        fam.task("synthetic:high")
    with pytest.raises(ConfigurationError, match="in \\[-1, 1\\]"):
        fam.task("synthetic:1.5")


def test_digits_task(fam):
    from nas.data.digits import label_of

    data = fam.make_data("digits", size="small", seed=0)
    x, (add, mult) = data.splits["train"]
    assert x.shape[1:] == (3, 28, 28) and x.dtype == torch.float32
    assert int(add.max()) < 20 and int(mult.max()) < 10
    base = fam.baseline(data)
    assert base["acc_addnist"] < 0.1 and 0.4 < base["acc_multnist"] < 0.7
    assert torch.equal(mult[:5], torch.as_tensor(label_of("multnist", _digits()[:5])))
    x, ys = data.splits["train"]  # a short run on a slice keeps the test fast
    data.splits["train"] = (x[:256], [y[:256] for y in ys])
    _, res = _train(fam, data, {"variant": "home", "shared_experts": 2}, epochs=1)
    assert res.status == "ok" and 0.0 <= res.test["accuracy"] <= 1.0
    assert set(res.extra["utilisation"]["gate_entropy"]) == {"addnist", "multnist"}


def _digits():
    from nas.data import load_components

    return load_components("unseen:addnist", "small", 0)["train_digits"]


@pytest.mark.parametrize(
    ("cfg", "match"),
    [
        ({"gate": "argmax"}, "gate must be one of"),
        ({"variant": "switch"}, "no variant 'switch'"),
        ({"shared_experts": 0}, "shared_experts must be in"),
        ({"expert_depth": 12}, "expert_depth must be in"),
        ({"groups": "0,x"}, "comma-separated"),
        ({"groups": "0,2"}, "without gaps"),
        ({"sb_match": "shared_bottom"}, "sb_match must be one of"),
        ({"tower_width": 0}, "tower_width must be in"),
    ],
)
def test_bad_config_one_line_error(fam, cfg, match):
    with pytest.raises(ConfigurationError, match=match) as err:
        fam.config(cfg)
    assert "\n" not in str(err.value)


def test_groups_must_cover_the_tasks(fam, synthetic):
    with pytest.raises(ConfigurationError, match="one group per task"):
        fam.build(fam.config({"variant": "home", "groups": "0,0,1"}), synthetic)


def test_cli_train(nas_cli):
    code, out, _ = nas_cli(
        "train", "zoo:moe", "--dataset", "synthetic:0.9", "--epochs", "1", "--json"
    )
    assert code == 0, out
    res = json.loads(out)
    assert res["family"] == "moe" and res["task"] == "synthetic:0.9" and res["epochs"] == 1
    assert "r2" in res["test"] and "r2" in res["baseline"]
    assert 0 <= res["extra"]["utilisation"]["expert_zero_share"] <= 1
    assert res["extra"]["correlation"] == 0.9


def _search(nas_cli, tmp_path):
    run = tmp_path / "run"
    t0 = time.perf_counter()
    code, _, err = nas_cli(
        "search",
        "--space",
        "zoo:moe",
        "--dataset",
        "synthetic",
        "--strategy",
        "rs",
        "--trials",
        "2",
        "--epochs",
        "1",
        "--run-dir",
        str(run),
    )
    seconds = time.perf_counter() - t0
    assert code == 0, err
    final = json.loads((run / "final.json").read_text())
    assert math.isfinite(final["test"]["r2"]) and final["onnx_max_abs_diff"] < 1e-4
    return seconds


@pytest.mark.slow  # about 50 s on the loaded 2-core machine (trials + 5-epoch retraining)
def test_cli_search(nas_cli, tmp_path):
    assert _search(nas_cli, tmp_path) > 0
