"""Budgets that machine load cannot change: trials as the budget, a per-trial cap in CPU
seconds, seeds that never lose to the cap unannounced."""

from __future__ import annotations

import json

from nas.searches import Search, SearchConfig


def test_a_seed_over_the_cap_is_named_and_left_out_before_the_first_trial(tmp_path) -> None:
    """cnn_cpu needs about 1.5 CPU s for one epoch on Language, mlp_cpu about 0.05 s: under
    --trial-time 0.5 the CNN is announced and left out before any trial, the MLP trains."""
    said: list[str] = []
    events: list[str] = []
    cfg = SearchConfig(
        trials=2,
        epochs=1,
        trial_time=0.5,
        final_epochs=0,
        strategy_options={"seed_archs": ["cnn_cpu", "mlp_cpu"], "population": 4},
    )
    job = Search(cfg, tmp_path / "run", say=lambda m: (said.append(m), events.append("say")))
    result = job.run(on_result=lambda rec: events.append(f"trial {rec.number}"))
    left = [m for m in said if m.startswith("seed cnn_cpu cannot finish its 1 epochs")]
    assert len(left) == 1 and "--trial-time 0.5" in left[0] and "left out" in left[0]
    assert not any(m.startswith("seed mlp_cpu cannot") for m in said)
    assert events.index("trial 0") > max(i for i, e in enumerate(events) if e == "say")
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert info["strategy_options"]["seed_archs"] == ["mlp_cpu"]
    assert set(info["seeds_left_out"]) == {"cnn_cpu"} and info["seeds_left_out"]["cnn_cpu"] > 0.5
    mlp = str(job.space.seeds["mlp_cpu"])
    assert result.records[0].arch == mlp and result.records[0].status == "ok"
    assert all(r.arch != str(job.space.seeds["cnn_cpu"]) for r in result.records)
    assert info["input"] == {"shape": [1, 24, 24], "mode": "im", "num_classes": 10}


def test_kept_seeds_train_their_full_epochs_whatever_the_cap(tmp_path) -> None:
    """A seed that fits by its estimate is never cut by the cap: the trial runs uncapped."""
    from nas.searches.evaluators import TrainEvaluator

    job = Search(
        SearchConfig(
            trials=1, epochs=2, trial_time=30.0, strategy_options={"seed_archs": ["mlp_cpu"]}
        ),
        tmp_path / "run",
    )
    ev = job.local_evaluator()
    assert isinstance(ev, TrainEvaluator)
    capped = TrainEvaluator(**{**job.evaluator.options, "uncapped": ()})
    capped.config.time_budget_s = 1e-9  # a cap nothing fits
    seed = job.space.seeds["mlp_cpu"]
    assert capped(seed).status == "timeout"
    free = TrainEvaluator(**job.evaluator.options)
    free.config.time_budget_s = 1e-9
    out = free(seed)
    assert out.status == "ok" and out.metrics["epochs_done"] == 2


def _trials(run) -> list[tuple[str, str, dict, dict]]:
    from nas.searches.store import open_run

    _, store = open_run(run)
    return [(r.arch, r.status, r.values, r.origin) for r in store.records()]


def test_the_same_search_makes_the_same_trials_on_a_busy_machine(tmp_path) -> None:
    """Twice the same small search: once as it is, once with two CPU-burning processes
    beside it (the machine's two cores taken). Architectures, statuses, values and origins
    are the same: no wall-time cap decides anything, the per-trial cap counts CPU seconds."""
    import subprocess
    import sys

    cfg = SearchConfig(
        trials=8,
        epochs=2,
        final_epochs=0,
        strategy_options={"seed_archs": ["mlp_cpu", "vit_cpu"], "population": 4},
    )
    Search(cfg, tmp_path / "idle").run()
    burn = [sys.executable, "-c", "while True: pass"]
    burners = [subprocess.Popen(burn) for _ in range(2)]
    try:
        Search(cfg, tmp_path / "busy").run()
    finally:
        for p in burners:
            p.kill()
            p.wait()
    idle, busy = _trials(tmp_path / "idle"), _trials(tmp_path / "busy")
    assert len(idle) == 8 and all(status == "ok" for _, status, _, _ in idle)
    assert busy == idle
    assert {o["op"] for *_, o in idle} - {"seed"}  # evolution made children, not only seeds
