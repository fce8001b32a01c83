"""Baselines of a trained search, the Found-vs-baselines table, and the search's screen."""

from __future__ import annotations

from nas.searches import baselines
from nas.searches.store import TrialRecord

from nas.dsl import parse_arch
from nas.train import TrainConfig
from tests.test_degenerate import ISSUE_14
from tests.test_train import _dataset


def test_measured_baselines_order_chance_probe_cnn() -> None:
    ds = _dataset(n_train=512)
    # a tiny trial time budget must not cut a reference short
    cfg = TrainConfig.preset("quick", epochs=4, batch_size=64, lr=1e-2, time_budget_s=1e-6)
    rows = baselines.measure(ds, cfg)
    assert [b.name for b in rows] == ["chance", "linear probe", "converged linear", "small CNN"]
    chance, probe, converged, cnn = rows
    assert [b.note for b in (chance, probe, cnn)] == ["majority class", "", ""]
    assert 0.15 < chance.test < 0.4 and chance.params == 0
    assert probe.params == converged.params == 3 * 8 * 8 * 4 + 4
    assert probe.test > 0.8 and cnn.test > 0.8  # the clusters are linearly separable
    # the converged probe trains longer, at the learning rate the valid split picks
    assert converged.valid >= probe.valid and converged.note.endswith(" epochs, picked on valid")


def test_converged_linear_reaches_what_a_short_protocol_leaves_undone() -> None:
    ds = _dataset(n_train=512)
    cfg = TrainConfig.preset("quick", epochs=1, batch_size=64, lr=1e-5)  # far too little
    probe = baselines.measure(ds, cfg)[1]
    converged = baselines.converged_linear(ds, cfg, probe)
    assert probe.valid < 0.6 < 0.8 < converged.valid
    assert converged.note.endswith(", 10 epochs, picked on valid")


def test_table_and_summary_put_the_found_network_first(tmp_path) -> None:
    seed_arch = "compute(linear(out=16))"
    recs = [
        TrialRecord(
            0,
            seed_arch,
            "ok",
            values={"accuracy": 0.4},
            metrics={"test": {"accuracy": 0.38}},
            params=100,
        ),
        TrialRecord(
            1,
            "compute(norm)",
            "ok",
            values={"accuracy": 0.6},
            metrics={"test": {"accuracy": 0.55}},
            params=50,
        ),
        TrialRecord(2, "compute(identity)", "failed", reason="x"),
    ]
    baselines.save(tmp_path, [baselines.Baseline("chance", 0.1, 0.1, 0, "majority class")])
    rows = baselines.collect(tmp_path, recs, {"tiny": seed_arch})
    assert [b.name for b in rows] == ["chance", "best seed (tiny)"]
    found = baselines.found_row(recs)
    assert found.name == "found (trial 1)" and found.test == 0.55
    lines = baselines.table(found, rows)
    assert lines[2].startswith("| found (trial 1) | 60.0% | 55.0% |")
    assert "+45.0 pts" in lines[3] and "+17.0 pts" in lines[4]
    assert baselines.summary(found, rows) == (
        "found 55.0% test vs baselines: chance 10.0%, best seed (tiny) 38.0%"
    )
    assert baselines.load(tmp_path / "nothing") is None


def test_a_trained_einspace_search_screens_degenerate_and_seeds_on_cpu(tmp_path) -> None:
    from nas.searches import Search, SearchConfig

    four = SearchConfig(dataset="unseen:language", trials=4, strategy_options={"population": 4})
    job = Search(four, tmp_path / "run")
    assert job.space.input[0].shape == (1, 24, 24)  # drawn for the dataset's input
    assert job.config.strategy_options["seed_archs"] == [  # population 4 holds 4 seeds
        "cnn_cpu",
        "mlp_cpu",
        "resnet_cpu",
        "vit_cpu",
    ]
    big = Search(SearchConfig(dataset="unseen:language"), tmp_path / "run2")
    assert len(big.config.strategy_options["seed_archs"]) == 6
    small = Search(SearchConfig(dataset="unseen:language", trials=4), tmp_path / "run3")
    assert small.config.strategy_options["population"] == 8  # room for the 6 seeds + 2
    assert job.strategy.screen(parse_arch(ISSUE_14)) == "no learnable computation before the head"
    assert job.strategy.screen(job.space.seeds["cnn_cpu"]) is None
    a = parse_arch("compute(linear(out=16))")
    b = parse_arch("route(identity,seq(compute(identity),compute(linear(out=16))),identity)")
    assert job.strategy.identity(a) == job.strategy.identity(b)


def test_baselines_do_not_depend_on_what_ran_before() -> None:
    import torch

    ds = _dataset(n_train=256)
    cfg = TrainConfig.preset("quick", epochs=1, batch_size=64)
    first = baselines.measure(ds, cfg)
    torch.rand(17)  # another search's draws, a dataset generated first...
    assert baselines.measure(ds, cfg) == first
