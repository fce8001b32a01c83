"""Both runners open and close every trial through the one ``TrialLifecycle``, and record
what the ask/start/finish/tell sequence they replaced recorded (redo and lock included)."""

from __future__ import annotations

import functools
import sys
from typing import Any

import pytest
from nas.searches import create_strategy, evaluators
from nas.searches.lifecycle import TrialLifecycle, lineage_attr, replay_into
from nas.searches.lock import owning
from nas.searches.outcome import Outcome
from nas.searches.runner import Outcome as RunnerOutcome
from nas.searches.runner import run_search, safe_evaluate
from nas.searches.store import RunStore

from nas.space import load_space

TABLE = functools.partial(evaluators.table_evaluator, "cifar10")


@pytest.fixture(autouse=True)
def _env(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("NAS_DATA_DIR", raising=False)


@pytest.fixture
def spy(monkeypatch) -> list[tuple[str, Any]]:
    """Every ``open`` and ``close`` of any lifecycle, in order: (method, trial number)."""
    calls: list[tuple[str, Any]] = []
    real_open, real_close = TrialLifecycle.open, TrialLifecycle.close

    def open_(self: TrialLifecycle) -> Any:
        arch, trial = real_open(self)
        calls.append(("open", trial.number))
        return arch, trial

    def close(self: TrialLifecycle, arch: Any, trial: Any, outcome: Outcome) -> Any:
        rec = real_close(self, arch, trial, outcome)
        calls.append(("close", rec.number))
        return rec

    monkeypatch.setattr(TrialLifecycle, "open", open_)
    monkeypatch.setattr(TrialLifecycle, "close", close)
    return calls


def _re() -> Any:
    return create_strategy("re", load_space("nb201"), seed=0, population=4, tournament=2)


def _rows(store: RunStore) -> list[tuple]:
    return [(r.number, r.arch, r.status, r.values, r.retry_of, r.origin) for r in store.records()]


def _reference(strategy: Any, store: RunStore, trials: int) -> None:
    """The one-worker loop as ``run_search`` wrote it before the lifecycle existed."""
    with owning(store) as lock:
        resumed = replay_into(strategy, store)
        done, redo = resumed.done, list(resumed.pending)
        evaluate = TABLE()
        while True:
            if lock is not None:
                lock.check()
            if len(done) >= trials:
                return
            arch, retry_of = redo.pop(0) if redo else (strategy.ask(), None)
            trial = store.start(str(arch), retry_of, lineage_attr(strategy, arch))
            rec = store.finish_outcome(trial, safe_evaluate(evaluate, arch))
            strategy.tell(arch, rec.values if rec.ok else None, rec.status)
            done.append(rec)


def test_outcome_is_one_class_wherever_it_is_imported() -> None:
    assert RunnerOutcome is Outcome is evaluators.Outcome


def test_the_local_runner_records_every_trial_through_the_lifecycle(tmp_path, spy) -> None:
    store, seen = RunStore(tmp_path / "local"), []
    done = run_search(_re(), store, 8, TABLE, on_result=seen.append)
    assert spy == [(kind, n) for n in range(8) for kind in ("open", "close")]
    assert [r.number for r in done] == [r.number for r in seen] == list(range(8))
    _reference(_re(), ref := RunStore(tmp_path / "ref"), 8)
    assert _rows(store) == _rows(ref)
    assert {r.origin["op"] for r in store.records()} > {"draw"}  # the RE mutated: told


def test_a_resume_redoes_the_unfinished_ask_first_through_the_lifecycle(tmp_path, spy) -> None:
    store = RunStore(tmp_path / "run")
    run_search(_re(), store, 3, TABLE)
    life = TrialLifecycle.resume(_re(), store)
    arch, trial = life.open()  # a driver that dies with this trial in flight
    spy.clear()
    done = run_search(_re(), store, 5, TABLE)  # takes the run over: the trial is abandoned
    recs = store.records()
    assert [r.status for r in recs] == ["ok"] * 3 + ["abandoned", "ok", "ok"]
    assert recs[4].retry_of == trial.number == 3 and recs[4].arch == str(arch)
    assert spy == [("open", 4), ("close", 4), ("open", 5), ("close", 5)]
    assert [r.number for r in done] == [0, 1, 2, 4, 5]
    _reference(_re(), ref := RunStore(tmp_path / "ref"), 5)
    assert [r.arch for r in done] == [r.arch for r in ref.records()]  # as if never killed


def test_the_lock_check_stops_a_taken_over_run(tmp_path, spy) -> None:
    from nas.searches.lock import RunInUseError

    store = RunStore(tmp_path / "run")

    def taken_over(rec: Any) -> None:
        if rec.number == 1:
            store.lock.lost = True  # what the heartbeat sets when another process took it

    with pytest.raises(RunInUseError, match="taken over"):
        run_search(_re(), store, 6, TABLE, on_result=taken_over)
    assert spy[-1] == ("close", 1) and len(store.records()) == 2


@pytest.fixture
def ray_cluster():
    ray = pytest.importorskip("ray")
    from ray import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_the_ray_runner_records_every_trial_through_the_lifecycle(
    tmp_path, spy, ray_cluster
) -> None:
    from nas.searches.ray_runner import run_search_ray

    store, seen = RunStore(tmp_path / "ray"), []
    done = run_search_ray(_re(), store, 6, TABLE, workers=1, on_result=seen.append)
    assert spy == [(kind, n) for n in range(6) for kind in ("open", "close")]
    assert [r.number for r in done] == [r.number for r in seen] == list(range(6))
    _reference(_re(), ref := RunStore(tmp_path / "ref"), 6)
    assert _rows(store) == _rows(ref)
