"""The local runner: ask a strategy, evaluate, record in the run store, tell; resumable.

Evaluation happens in this process (``workers=1``) or in a pool of worker processes,
each of which builds its evaluator once. The strategy and the store live in the driver
only, so a crash loses at most the trials in flight: on resume the strategy is rebuilt
by replaying the recorded trials.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from multiprocessing import get_context
from typing import Any

from nas.searches.store import RunStore, TrialRecord

from nas.dsl import Node, parse_arch


@dataclass
class Outcome:
    """What evaluating one architecture produced."""

    status: str  # ok, or why it failed: invalid | diverged | oom | timeout | failed
    values: dict[str, float] | None = None
    reason: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)
    params: int | None = None
    flops: int | None = None
    wall_time: float = 0.0


Evaluator = Callable[[Node], Outcome]

_WORKER_EVAL: Evaluator | None = None


def _init_worker(factory: Callable[[], Evaluator]) -> None:
    global _WORKER_EVAL
    from nas.runtime import configure

    configure()
    _WORKER_EVAL = factory()


def _work(arch: str) -> Outcome:
    assert _WORKER_EVAL is not None
    return _WORKER_EVAL(parse_arch(arch))


def replay_into(strategy: Any, store: RunStore) -> list[TrialRecord]:
    """Rebuild ``strategy`` from the recorded asks and tells, in the order they happened.

    Trials that never finished (their process died) are left out, so the strategy asks
    them again at the same point of its sequence: a crash costs the trials in flight and
    nothing else. Returns the trials that count toward the budget.
    """
    done = store.completed()
    events: list[tuple[float, int, int, tuple]] = []
    for r in done:
        arch = parse_arch(r.arch)
        events.append((r.started or 0.0, 0, r.number, ("ask", arch)))
        events.append(
            (
                r.completed or r.started or 0.0,
                1,
                r.number,
                ("tell", arch, r.values if r.ok else None, r.status),
            )
        )
    events.sort(key=lambda e: e[:3])
    strategy.replay_events([e[3] for e in events])
    return done


def run_search(
    strategy: Any,
    store: RunStore,
    trials: int,
    evaluator_factory: Callable[[], Evaluator],
    time_budget: float | None = None,
    workers: int = 1,
    on_result: Callable[[TrialRecord], None] | None = None,
) -> list[TrialRecord]:
    """Run until ``trials`` trials have finished (counting earlier ones) or time runs out.

    Args:
        strategy: an ask/tell strategy (``nas.searches``).
        store: where every trial is recorded.
        trials: total number of finished trials wanted (a resumed run counts its old ones).
        evaluator_factory: builds the evaluator (called once per process; must be
            picklable when ``workers > 1``).
        time_budget: seconds after which no new trial starts.
        workers: parallel evaluation processes.
        on_result: called with each finished trial's record.

    Returns:
        All finished trials of the run, old and new.
    """
    store.recover()
    done = replay_into(strategy, store)
    deadline = None if time_budget is None else time.monotonic() + time_budget

    def more() -> bool:
        return len(done) < trials and (deadline is None or time.monotonic() < deadline)

    def record(arch: Node, trial: Any, out: Outcome) -> None:
        rec = store.finish(
            trial,
            out.status,
            out.values,
            out.reason,
            out.metrics,
            out.params,
            out.flops,
            out.wall_time,
        )
        strategy.tell(arch, out.values if out.status == "ok" else None, out.status)
        done.append(rec)
        if on_result is not None:
            on_result(rec)

    if workers <= 1:
        evaluate = evaluator_factory()
        while more():
            arch = strategy.ask()
            trial = store.start(str(arch))
            record(arch, trial, evaluate(arch))
        return done

    ctx = get_context("spawn")
    with ProcessPoolExecutor(
        workers, mp_context=ctx, initializer=_init_worker, initargs=(evaluator_factory,)
    ) as pool:
        running: dict[Future, tuple[Node, Any]] = {}
        while more() or running:
            while more() and len(running) + len(done) < trials and len(running) < workers:
                arch = strategy.ask()
                running[pool.submit(_work, str(arch))] = (arch, store.start(str(arch)))
            if not running:
                break
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for fut in finished:
                arch, trial = running.pop(fut)
                try:
                    out = fut.result()
                except Exception as e:
                    out = Outcome("failed", reason=f"worker crashed: {type(e).__name__}: {e}")
                record(arch, trial, out)
    return done
