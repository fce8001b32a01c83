"""The zoo contract: registry, config <-> grammar strings, training, export, CLI, search."""

from __future__ import annotations

import json

import pytest
import torch
import zoo_toy  # noqa: F401  (registers the test family)
from nas.zoo import (
    arch_from_config,
    config_from_arch,
    export_config,
    get_family,
    list_families,
    parse_config,
    train_config,
    zoo_space,
)

from nas.exceptions import ConfigurationError, UnknownNameError
from nas.regularise import GradNoise, LossWeighting


def test_registry_and_errors():
    assert "toyzoo" in list_families()
    fam = get_family("zoo:toyzoo")
    assert fam.config() == {"width": 32, "depth": 2, "act": "tanh", "lr": 0.01}
    assert fam.config({"width": "8", "lr": "0.1"})["width"] == 8
    with pytest.raises(UnknownNameError, match="toyzoo"):
        get_family("toyzo")
    with pytest.raises(ConfigurationError, match="Did you mean 'width'"):
        fam.config({"widht": 4})
    with pytest.raises(ConfigurationError, match="must be int"):
        fam.config({"depth": "two"})
    # one conversion for zoo configs and config blocks (nas.dsl.config.convert)
    assert fam.config({"depth": 3.0, "width": "16.0"})["depth"] == 3
    for bad in (2.5, "2.5", True):
        with pytest.raises(ConfigurationError, match="'depth' must be int"):
            fam.config({"depth": bad})
    moe = get_family("zoo:moe")
    assert [moe.config({"self_gate": v})["self_gate"] for v in ("0", "true", 1)] == [
        False,
        True,
        True,
    ]
    with pytest.raises(ConfigurationError, match="'self_gate' must be bool, got 'yes'"):
        moe.config({"self_gate": "yes"})
    with pytest.raises(ConfigurationError, match="relu or tanh"):
        fam.config({"act": "gelu"})
    with pytest.raises(UnknownNameError, match="tasks: wave"):
        fam.task("sine")


def test_parse_config(tmp_path):
    assert parse_config('{"width": 8}') == {"width": 8}
    f = tmp_path / "c.json"
    f.write_text('{"depth": 1}')
    assert parse_config(f"@{f}") == {"depth": 1}
    for bad in ("{width: 8}", "[1, 2]", f"@{tmp_path}/missing.json"):
        with pytest.raises(ConfigurationError):
            parse_config(bad)


def test_space_samples_configs_and_round_trips():
    from nas.evolution import mutate
    from nas.sampling import Sampler

    sp = zoo_space("zoo:toyzoo")
    fam = get_family("toyzoo")
    sampler = Sampler(sp, seed=0)
    seen = set()
    for _ in range(30):
        node = sampler.sample()
        family, cfg = config_from_arch(node)
        assert family.name == "toyzoo" and cfg["width"] in (8, 32) and cfg["lr"] == 0.01
        assert config_from_arch(arch_from_config(fam, cfg))[1] == cfg
        seen.add((cfg["width"], cfg["depth"], cfg["act"]))
    assert len(seen) == 8  # the grammar's whole cross product is reachable
    import random

    rng = random.Random(1)
    changed = []
    for _ in range(20):  # a mutation redraws one hyperparameter, or (at the root) several
        child_cfg = config_from_arch(mutate(sp, node, rng))[1]
        changed.append(sum(child_cfg[k] != cfg[k] for k in cfg))
    assert min(changed) >= 1 and changed.count(1) >= 10


def test_train_beats_baseline_and_export_parity(tmp_path):
    model, data, res = train_config("toyzoo", {"width": 32}, epochs=25, seed=0)
    base = get_family("toyzoo").baseline(data)
    assert res.status == "ok" and res.epochs == 25
    assert res.test["r2"] > 0.8 > base["r2"] + 0.5
    path, diff = export_config(
        "toyzoo", tmp_path / "m.onnx", {"width": 32}, model=model, data=data
    )
    assert path.stat().st_size > 0 and diff < 1e-5


def test_loss_weighting_and_grad_noise():
    fixed = LossWeighting(2, "fixed", [1.0, 3.0])
    assert float(fixed([torch.tensor(1.0), torch.tensor(2.0)])) == pytest.approx(7.0)
    unc = LossWeighting(2, "uncertainty")
    opt = torch.optim.SGD(unc.parameters(), lr=0.1)
    for _ in range(200):  # task 2's loss is 100x larger: its weight must fall
        opt.zero_grad()
        unc([torch.tensor(0.1), torch.tensor(10.0)]).backward()
        opt.step()
    w = unc.task_weights()
    assert w[0] > 1 > w[1]
    with pytest.raises(ConfigurationError):
        LossWeighting(2, "learned")
    noise = GradNoise(eta=0.3, gamma=0.55)
    p = torch.nn.Parameter(torch.zeros(10_000))
    p.grad = torch.zeros_like(p)
    noise([p])
    assert float(p.grad.var()) == pytest.approx(0.3, rel=0.1)
    noise.t = 99
    assert noise.variance() == pytest.approx(0.3 / 100**0.55)


def test_cli_zoo_list_train_export(nas_cli, tmp_path):
    code, out, _ = nas_cli("zoo", "list", "--json", "--no-params")
    assert code == 0 and all("default_params" not in r for r in json.loads(out))
    assert {"moe", "mgno", "deeponet"} <= {r["name"] for r in json.loads(out)}
    code, out, _ = nas_cli("zoo", "list", "zoo:toyzoo", "--json")
    assert code == 0
    rows = {r["name"]: r for r in json.loads(out)}
    assert rows["toyzoo"]["metric"] == "r2" and rows["toyzoo"]["default_params"] == 1153
    onnx = tmp_path / "toy.onnx"
    code, out, _ = nas_cli(
        "train",
        "zoo:toyzoo",
        "--epochs",
        "5",
        "--config",
        '{"depth": 1}',
        "-o",
        str(onnx),
        "--json",
    )
    assert code == 0, out
    res = json.loads(out)
    assert res["config"]["depth"] == 1 and res["epochs"] == 5 and "r2" in res["baseline"]
    assert onnx.is_file() and res["onnx_max_abs_diff"] < 1e-5
    code, out, _ = nas_cli("zoo", "export", "toyzoo", "-o", str(tmp_path / "d.onnx"))
    assert code == 0 and "max |diff|" in out
    code, _, err = nas_cli(
        "zoo", "export", "toyzoo", "-o", str(tmp_path / "e.onnx"), "--config", '{"depth": "x"}'
    )
    assert code == 2 and err.startswith("error:") and "must be int" in err
    code, _, err = nas_cli("train", "zoo:nope")
    assert code == 2 and "unknown zoo family" in err
    code, _, err = nas_cli("zoo", "configure", "toyzoo", "--prefs", "0.5,0.5")
    assert code == 2 and "no configure step" in err


def test_search_over_a_family(nas_cli, tmp_path, monkeypatch):
    run = tmp_path / "run"
    code, _, err = nas_cli(
        "search",
        "--space",
        "zoo:toyzoo",
        "--strategy",
        "tpe",
        "--trials",
        "3",
        "--epochs",
        "3",
        "--final-epochs",
        "3",
        "--run-dir",
        str(run),
    )
    assert code == 0, err
    from nas.searches.store import open_run

    _, store = open_run(run)
    done = store.completed()
    assert len(done) == 3 and all(r.arch.startswith("toyzoo(hp(") for r in done)
    for r in done:  # an MLP 1 -> w (-> w) -> 1 on one sample: its weight count in MACs
        cfg = config_from_arch(r.arch)[1]
        w = cfg["width"]
        assert r.flops == w + (cfg["depth"] - 1) * w * w + w
    final = json.loads((run / "final.json").read_text())
    assert "r2" in final["test"] and (run / "best.onnx").is_file()
    assert final["onnx_max_abs_diff"] < 1e-5 and final["onnx_parity"] == "ok"
    # any trial of a zoo run exports through its family (it has no space to compile in)
    ranked = store.best(3)
    for rank in (2, 3):
        onnx = tmp_path / f"r{rank}.onnx"
        code, out, err = nas_cli("export", "--run", str(run), "--rank", str(rank), "-o", str(onnx))
        assert code == 0, err
        assert ranked[rank - 1].arch in out and "zoo:toyzoo" in out and onnx.is_file()
    for rank, message in (("0", "at least 1, but got 0"), ("4", "between 1 and 3")):
        code, _, err = nas_cli("export", "--run", str(run), "--rank", rank, "-o", str(onnx))
        assert code == 2 and f"--rank must be {message}" in err
    # --tolerance reaches a zoo trial's parity check (absolute, default 1e-3)
    import nas.zoo

    real = nas.zoo.export_config
    monkeypatch.setattr(nas.zoo, "export_config", lambda *a, **k: (real(*a, **k)[0], 5e-4))
    code, out, err = nas_cli("export", "--run", str(run), "--rank", "2", "-o", str(onnx))
    assert code == 0, err
    args = ("export", "--run", str(run), "--rank", "2", "-o", str(onnx), "--tolerance", "1e-4")
    code, out, _ = nas_cli(*args)
    assert code == 1 and "parity check failed: max |torch - onnxruntime| 0.0005 > 0.0001" in out


def _quiet_task_r2(weighting: str, loud: float) -> float:
    """R² of task 1 (sin 3x) when a shared trunk also fits task 2: noise of scale ``loud``.

    Task 2 cannot be learned; with equal fixed weights its large, random gradients swamp
    the shared trunk. Uncertainty weighting learns task 2's variance and turns it down.
    """
    from nas.zoo._fit import FitConfig, minibatches, run_epochs

    g = torch.Generator().manual_seed(0)
    x = torch.rand(2048, 1, generator=g) * 4 - 2
    y1, y2 = torch.sin(3 * x), loud * torch.randn(2048, 1, generator=g)
    torch.manual_seed(0)
    trunk = torch.nn.Sequential(
        torch.nn.Linear(1, 32), torch.nn.Tanh(), torch.nn.Linear(32, 32), torch.nn.Tanh()
    )
    h1, h2 = torch.nn.Linear(32, 1), torch.nn.Linear(32, 1)

    def loss(_, idx):
        z = trunk(x[idx])
        return [((h1(z) - y1[idx]) ** 2).mean(), ((h2(z) - y2[idx]) ** 2).mean()]

    cfg = FitConfig(epochs=30, lr=0.01, weighting=weighting, grad_clip=None)
    model = torch.nn.ModuleList([trunk, h1, h2])
    run_epochs(model, lambda e: minibatches(2048, 64, e), loss, cfg, n_tasks=2)
    with torch.no_grad():
        return 1 - float(((h1(trunk(x)) - y1) ** 2).mean() / y1.var())


def test_uncertainty_weighting_protects_the_quiet_task():
    assert _quiet_task_r2("fixed", 1.0) > 0.98  # a quiet second task does no harm
    loud_fixed = _quiet_task_r2("fixed", 100.0)
    loud_unc = _quiet_task_r2("uncertainty", 100.0)
    assert loud_fixed < 0.9  # measured 0.78
    assert loud_unc > 0.98  # measured 0.997


def test_gradient_noise_escapes_a_saddle():
    """A deep linear chain initialised at zero has zero gradient: plain descent never
    moves; annealed noise lets it escape and fit (Neelakantan et al.'s motivation)."""
    from nas.zoo._fit import FitConfig, run_epochs

    x = torch.randn(256, 4, generator=torch.Generator().manual_seed(0))
    y = x @ torch.tensor([[1.0], [-2.0], [0.5], [1.5]])

    def fit(eta: float) -> float:
        net = torch.nn.Sequential(
            *(torch.nn.Linear(4, 4, bias=False) for _ in range(3)),
            torch.nn.Linear(4, 1, bias=False),
        )
        for p in net.parameters():
            torch.nn.init.zeros_(p)
        cfg = FitConfig(epochs=300, lr=0.01, grad_noise=eta, cosine=False, grad_clip=None)
        run_epochs(net, lambda e: [None], lambda m, _: ((m(x) - y) ** 2).mean(), cfg, seed=0)
        with torch.no_grad():
            return float(((net(x) - y) ** 2).mean() / y.var())

    assert fit(0.0) == pytest.approx(1.0, abs=0.05)  # stuck at the saddle
    assert fit(0.01) < 0.1


def test_family_options_for_weighting_and_noise():
    fam = get_family("moe")
    assert fam.config({"weighting": "uncertainty", "task_weights": "1,3"})["grad_noise"] == 0
    with pytest.raises(ConfigurationError, match="weighting must be"):
        fam.config({"weighting": "learned"})
    with pytest.raises(ConfigurationError, match="task_weights needs 2"):
        fam.config({"task_weights": "1,2,3"})
    for name in ("rrn", "ptrnet"):
        with pytest.raises(ConfigurationError, match="grad_noise must be >= 0"):
            get_family(name).config({"grad_noise": -1})


def test_nas_spaces_lists_the_zoo(nas_cli):
    code, out, _ = nas_cli("spaces")
    assert code == 0 and "einspace" in out
    for family in ("moe", "slimmable", "deeponet", "mgno", "rrn", "ptrnet", "ait"):
        assert f"zoo:{family}" in out
    assert "8 hyperparameters, tasks synthetic, digits" in out


def test_train_flags_reach_the_config_or_are_refused(nas_cli):
    """--lr sets the config's lr; bad epochs, budgets and arch-only flags are one-line errors."""
    code, out, _ = nas_cli("train", "zoo:toyzoo", "--epochs", "1", "--lr", "0.05", "--json")
    assert code == 0, out
    assert json.loads(out)["config"]["lr"] == 0.05
    cases = {
        ("--epochs", "0"): "--epochs must be at least 1, but got 0",  # as the flags are read
        ("--epochs", "-3"): "--epochs must be at least 1, but got -3",
        ("--epochs", "99999999999"): "--epochs must be at most 2,147,483,647",
        ("--epochs", "999999"): "epochs must lie in 1..100,000, got 999,999",  # the family's
        ("--time-budget", "-5"): "--time-budget must be positive",
        ("--time-budget", "nan"): "--time-budget must be positive",
        ("--batch-size", "8"): "no hyperparameter 'batch_size'",
        ("--preset", "einspace"): "--preset: for a space's architectures only",
        ("--device", "cpu", "--space", "nb201"): "--space, --device: for a space's",
    }
    for flags, message in cases.items():
        code, _, err = nas_cli("train", "zoo:toyzoo", *flags)
        assert code == 2 and err.startswith("error:") and message in err, (flags, err)
        assert len(err.strip().splitlines()) == 1


def test_train_config_checks_epochs_and_budget():
    cases = (
        {"epochs": 0},
        {"epochs": 10**9},
        {"time_budget_s": 0.0},
        {"time_budget_s": float("nan")},
    )
    for kwargs in cases:
        with pytest.raises(ConfigurationError, match=r"must (be|lie in)"):
            train_config("toyzoo", **kwargs)


def test_a_zoo_run_folder_name_has_no_colon(nas_cli, tmp_path, monkeypatch):
    """The default run folder of zoo:FAMILY reads zoo_FAMILY (':' breaks scp and SPACE=DIR:W)."""
    monkeypatch.chdir(tmp_path)
    code, _, err = nas_cli(
        "search", "--space", "zoo:toyzoo", "--strategy", "rs", "--trials", "1",
        "--epochs", "1", "--final-epochs", "0",
    )  # fmt: skip
    assert code == 0, err
    (run,) = (tmp_path / "runs").iterdir()
    assert run.name.startswith("zoo_toyzoo-") and ":" not in run.name


def test_search_on_a_task_the_family_lacks_is_refused_before_any_run_line(nas_cli, tmp_path):
    run = tmp_path / "run"
    code, out, err = nas_cli(
        "search", "--space", "zoo:toyzoo", "--dataset", "nosuch", "--run-dir", str(run)
    )
    assert code == 2 and "has no task 'nosuch'" in err
    assert "run directory" not in out and not run.exists()
