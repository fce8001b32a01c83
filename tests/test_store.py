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


def test_a_result_written_but_not_committed_is_completed_as_recorded(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    store.finish(store.start("compute(norm)"), "ok", {"accuracy": 0.9})
    half = store.start("compute(identity)")
    # the process died between the result write and the state change
    store.storage.set_trial_user_attr(
        half.trial_id, "result", {"status": "ok", "values": {"accuracy": 0.7}, "reason": ""}
    )
    lost = store.start("compute(leakyrelu)")  # died before writing any result
    assert [r.number for r in store.records()] == [0]  # RUNNING trials are in flight
    again = RunStore(tmp_path, create=False)
    assert again.reap() == (1, 1)
    recs = again.records()
    assert [(r.arch, r.status) for r in recs] == [
        ("compute(norm)", "ok"),
        ("compute(identity)", "ok"),
        ("compute(leakyrelu)", "abandoned"),
    ]
    assert recs[1].values == {"accuracy": 0.7}
    assert "killed or died" in recs[2].reason and recs[2].number == lost.number
    assert again.reap() == (0, 0)  # idempotent


def test_the_optuna_state_is_the_truth_for_old_half_written_trials(tmp_path: Path) -> None:
    """A run from before the fix: status=ok written, then the process died before tell."""
    import optuna

    store = RunStore(tmp_path)
    t = store.study.ask()
    for key, val in (("arch", "compute(norm)"), ("status", "ok"), ("reason", "")):
        t.set_user_attr(key, val)
    store.storage.set_trial_state_values(t._trial_id, optuna.trial.TrialState.FAIL)
    (rec,) = store.records()
    assert rec.status == "abandoned" and rec.values == {} and rec.legacy
    assert store.completed() == []
