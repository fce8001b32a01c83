"""zoo:slimmable: scenes task, super-net training, slim export, preference-driven configure."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from nas.zoo import export_config, get_family, zoo_space
from nas.zoo._slim_layers import materialise
from nas.zoo.slimmable import COLUMNS, Slimmable, choose_widths, parse_flops

from nas.compile import count_params
from nas.data import scenes
from nas.exceptions import ConfigurationError

# A smaller super-net trained on part of the training split: seconds, not minutes.
SMALL = {
    "enc_channels": 12,
    "dec_channels": 16,
    "n_widths": 2,
    "batch_size": 32,
    "n_random": 1,
    "lr": 0.006,
}


@pytest.fixture(scope="module")
def trained():
    """(family, config, data, model, result) of SMALL trained for a few epochs."""
    fam = get_family("slimmable")
    cfg = fam.config(SMALL)
    data = dict(fam.make_data("scenes", seed=0))
    data["train"] = tuple(t[:640] for t in data["train"])
    data["valid"] = tuple(t[:128] for t in data["valid"])
    torch.manual_seed(0)
    model = fam.build(cfg, data)
    result = fam.fit(model, cfg, data, epochs=5, seed=0)
    return fam, cfg, data, model, result


@pytest.fixture
def cache_home(tmp_path, monkeypatch):
    """Generated data and cached super-nets go to a temporary directory."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_scenes_are_deterministic_and_consistent():
    a, b = scenes.generate((6, 2, 2), seed=3), scenes.generate((6, 2, 2), seed=3)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert a["train_x"].shape == (6, 3, 32, 32) and a["train_seg"].shape == (6, 32, 32)
    seg, depth = a["train_seg"], a["train_depth"]
    assert set(np.unique(seg)) <= set(range(len(scenes.CLASSES))) and (seg > 0).any()
    assert depth.min() >= scenes.NEAR and depth.max() <= scenes.FAR
    assert depth[seg > 0].mean() < depth[seg == 0].mean()  # shapes stand before the ground
    assert scenes.miou(seg, seg) == 1.0 and scenes.rmse(depth, depth) == 0.0


def test_train_beats_baseline_and_slim_export(trained, tmp_path):
    import onnx

    fam, _cfg, data, model, res = trained
    base = fam.baseline(data)
    assert res.status == "ok" and res.epochs == 5
    assert res.test["score"] > base["score"] + 0.2, (res.test, base)
    assert res.test["miou"] > base["miou"] + 0.1 and res.test["rmse"] < 0.8 * base["rmse"]
    # Export a slim sub-network of the trained super-net: only its sliced weights travel.
    slim = fam.config({**SMALL, **fam.configure(widths="0.25,1,0.25")})
    path, diff = export_config(fam, tmp_path / "slim.onnx", slim, model=model, data=data)
    assert diff < 1e-4
    graph = onnx.load(str(path)).graph
    sizes = {t.name: int(np.prod(t.dims)) for t in graph.initializer}
    # The exporter may share equal tensors through Identity nodes; count those too.
    shared = [n.input[0] for n in graph.node if n.op_type == "Identity" and n.input[0] in sizes]
    n_onnx = sum(sizes.values()) + sum(sizes[name] for name in shared)
    n_slim = count_params(fam.export_module(model, slim))
    n_full = count_params(materialise(model, (1, 1, 1)))
    assert n_onnx == n_slim < 0.7 * n_full


def test_configure_follows_preferences(trained):
    fam, _cfg, data, model, _ = trained
    table = fam.width_table(model, data)
    assert table.shape == (2**3, len(COLUMNS))
    full = table[:, 3].max()
    strict = []
    for frac in (0.4, 0.6, 0.8):
        a = table[choose_widths(table, np.array([0.8, 0.2]), frac * full)]
        b = table[choose_widths(table, np.array([0.2, 0.8]), frac * full)]
        assert max(a[3], b[3]) <= frac * full
        assert a[1] >= a[2] and b[2] >= b[1]  # the preferred task's decoder is not narrower
        assert a[5] >= b[5] and b[6] <= a[6]  # preferring a task helps it (predicted)
        if a[5] > b[5] and b[6] < a[6]:
            strict.append((a, b))
    assert strict
    # The same holds for the materialised sub-networks on held-out test images.
    a, b = strict[0]
    ma = fam.evaluate(materialise(model, tuple(int(i) for i in a[:3])), data, "test")
    mb = fam.evaluate(materialise(model, tuple(int(i) for i in b[:3])), data, "test")
    assert ma["miou"] > mb["miou"] and mb["rmse"] < ma["rmse"], (ma, mb, a[:3], b[:3])


def test_configure_widths_and_errors():
    fam = get_family("slimmable")
    over = fam.configure(widths="0.5,1,0.25")
    assert over == {"enc_width": 0.5, "dec_width_seg": 1.0, "dec_width_depth": 0.25}
    assert fam.selection(fam.config(over)) == (1, 3, 0)
    assert parse_flops("50M") == 50e6 and parse_flops("1.2G") == 1.2e9 and parse_flops(300) == 300
    bad = [
        (lambda: fam.configure(widths="0.5,1"), "3 comma-separated"),
        (lambda: fam.configure(widths="0.5,1,2"), r"\(0, 1\]"),
        (lambda: fam.configure(prefs="0.5,0.5", widths="1,1,1"), "either"),
        (lambda: fam.configure(prefs="a,b"), "comma-separated"),
        (lambda: fam.configure(prefs="-1,2"), "non-negative"),
        (lambda: parse_flops("fast"), "positive number of MACs"),
        (lambda: fam.config({"enc_width": 0.3}), "one of the width multipliers 0.25, 0.5"),
        (lambda: fam.config({"min_width": 1.5}), "min_width must be in"),
        (lambda: fam.config({"dec_depth": 4}), "dec_depth must be"),
        (lambda: fam.config({"n_widths": 1}), "n_widths must be"),
    ]
    for call, match in bad:
        with pytest.raises(ConfigurationError, match=match) as err:
            call()
        assert "\n" not in str(err.value)
    table = np.array([[0, 0, 0, 1e6, 10, 0.5, 1.0, 0.4, 1.5]])
    with pytest.raises(ConfigurationError, match="below the smallest sub-network"):
        choose_widths(table, np.array([0.5, 0.5]), 1e5)


def test_grammar_samples_build_and_run():
    from nas.zoo import config_from_arch

    from nas.sampling import Sampler

    fam = get_family("slimmable")
    data = fam.make_data("scenes")
    sampler = Sampler(zoo_space("zoo:slimmable"), seed=0)
    x = data["test"][0][:2]
    for _ in range(5):
        _, cfg = config_from_arch(sampler.sample())
        model = fam.build(cfg, data).eval()
        seg, depth = model(x)
        assert seg.shape == (2, len(scenes.CLASSES), 32, 32) and depth.shape == (2, 32, 32)
        plain = fam.export_module(model, {**cfg, "enc_width": cfg["min_width"]})
        assert count_params(plain) < count_params(fam.export_module(model, cfg))


def test_cli_train_export_configure(nas_cli, cache_home, tmp_path, monkeypatch):
    tiny = {"enc_channels": 8, "dec_channels": 16, "dec_depth": 1, "n_random": 0, "batch_size": 64}
    code, out, _ = nas_cli(
        "train", "zoo:slimmable", "--epochs", "1", "--config", json.dumps(tiny), "--json"
    )
    assert code == 0, out
    res = json.loads(out)
    assert res["epochs"] == 1 and {"score", "miou", "rmse"} <= set(res["test"])
    code, out, _ = nas_cli(
        "zoo", "export", "slimmable", "--widths", "0.5,1,0.25", "-o", str(tmp_path / "s.onnx")
    )
    assert code == 0 and "max |diff|" in out, out
    bad = ("zoo", "export", "slimmable", "--widths", "0.6,1,1", "-o", str(tmp_path / "x.onnx"))
    code, _, err = nas_cli(*bad)
    assert code == 2 and "width multipliers" in err
    # configure trains the default super-net once (shrunk here), then reads the cache.
    for key, value in {**tiny, "epochs": 1, "n_widths": 2}.items():
        monkeypatch.setitem(Slimmable.hyperparams, key, value)
    args = ("zoo", "configure", "slimmable", "--prefs", "0.7,0.3", "--budget-flops", "2M")
    code, out, err = nas_cli(*args, "--json")
    assert code == 0, err
    first = json.loads(out)
    assert first["macs"] <= 2e6 and first["dec_width_seg"] >= first["dec_width_depth"]
    assert "generated" in first["supernet"] and set(first["predicted"]) == {
        "miou",
        "rmse",
        "score",
    }
    code, out, _ = nas_cli(*args, "--json")
    again = json.loads(out)
    assert "reused" in again["supernet"] and again["predicted"] == first["predicted"]
    code, out, _ = nas_cli(*args)  # the table: counts with separators, the budget as a count
    assert code == 0 and "│ budget_macs     │ 2,000,000" in out
    assert f"│ macs            │ {again['macs']:,}" in out
    code, _, err = nas_cli("zoo", "configure", "slimmable", "--budget-flops", "1k")
    assert code == 2 and "below the smallest" in err


@pytest.mark.slow
def test_default_supernet_controllability(cache_home):
    """The default super-net (full training): preferences steer the configured widths."""
    fam = get_family("slimmable")
    model, data, table, _ = fam.supernet(fam.config())
    res_full = fam.evaluate(model, data, "test", (3, 3, 3))
    base = fam.baseline(data)
    assert res_full["score"] > base["score"] + 0.3 and res_full["miou"] > 0.5
    full = int(table[:, 3].max())
    seg = fam.configure(prefs="0.8,0.2", budget_flops=str(0.6 * full))
    dep = fam.configure(prefs="0.2,0.8", budget_flops=str(0.6 * full))
    assert max(seg["macs"], dep["macs"]) <= 0.6 * full
    assert seg["predicted"]["miou"] > dep["predicted"]["miou"]
    assert dep["predicted"]["rmse"] < seg["predicted"]["rmse"]
    measured = [
        fam.evaluate(fam.export_module(model, fam.config(fam.configure(widths=c["widths"]))), data)
        for c in (seg, dep)
    ]
    assert measured[0]["miou"] == pytest.approx(seg["predicted"]["miou"], abs=1e-3)
    assert measured[0]["miou"] > measured[1]["miou"] and measured[1]["rmse"] < measured[0]["rmse"]
