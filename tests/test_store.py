"""The run store: trials persisted in an Optuna storage, with failures and recovery."""

from __future__ import annotations

from pathlib import Path

import pytest
from nas.searches.store import RunStore

from nas.exceptions import ConfigurationError


def test_trials_are_recorded_with_all_fields(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "run", objectives=("accuracy", "params"))
    t = store.start("compute(norm)")
    store.finish(
        t,
        "ok",
        {"accuracy": 0.5, "params": 10.0},
        metrics={"test_acc": 0.4},
        params=10,
        flops=100,
        wall_time=1.5,
    )
    t = store.start("compute(identity)")
    store.finish(t, "diverged", reason="loss became nan at epoch 1")
    again = RunStore(tmp_path / "run", objectives=("accuracy", "params"), create=False)
    recs = again.records()
    assert [r.status for r in recs] == ["ok", "diverged"]
    assert recs[0].values == {"accuracy": 0.5, "params": 10.0}
    assert recs[0].metrics == {"test_acc": 0.4} and recs[0].params == 10
    assert recs[0].flops == 100 and recs[0].wall_time == 1.5
    assert recs[1].reason == "loss became nan at epoch 1" and not recs[1].values
    assert (tmp_path / "run" / "study.db").is_file()


def test_running_trials_of_a_dead_process_become_abandoned(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    done = store.start("compute(norm)")
    store.finish(done, "ok", {"accuracy": 0.9})
    store.start("compute(identity)")  # never finished: its process "died"
    again = RunStore(tmp_path, create=False)
    assert again.fail_running() == 1
    recs = again.records()
    assert [r.status for r in recs] == ["ok", "abandoned"]
    assert len(again.completed()) == 1


def test_best_orders_by_objective(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    for acc in (0.2, 0.8, 0.5):
        store.finish(store.start(f"a{acc}"), "ok", {"accuracy": acc})
    assert [r.values["accuracy"] for r in store.best(2)] == [0.8, 0.5]


def test_resume_without_a_run_and_bad_objective(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="no search run"):
        RunStore(tmp_path / "empty", create=False)
    with pytest.raises(ConfigurationError, match="unknown objective 'speed'"):
        RunStore(tmp_path, objectives=("speed",))


def test_heartbeat_stops_and_recover_abandons_the_trial(tmp_path: Path) -> None:
    import time

    store = RunStore(tmp_path, heartbeat=1, grace=2)
    store.finish(store.start("compute(norm)"), "ok", {"accuracy": 0.9})
    live = store.start("compute(identity)")
    store._beats[live.number].set()  # the worker process dies: no more heartbeats
    time.sleep(3.5)
    again = RunStore(tmp_path, create=False, heartbeat=1, grace=2)
    assert again.recover() == 1
    assert [r.status for r in again.records()] == ["ok", "abandoned"]
