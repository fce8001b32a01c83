"""The local runner: ask a strategy, evaluate, record in the run store, tell; resumable.

Evaluation happens in this process (``workers=1``) or in worker processes, each of which
builds its evaluator once. The strategy and the store live in the driver only, so a crash
loses at most the trials in flight: on resume the strategy is rebuilt by replaying the
recorded trials, and the architectures that were in flight are evaluated again first.
What a trial asks, records and tells is :class:`~nas.searches.lifecycle.TrialLifecycle`'s,
shared with the Ray runner; this module decides only where and when trials run.

One trial never stops a search: an exception from the evaluator, or the death of the
worker process evaluating it, fails that trial with a one-line reason (a dead worker is
replaced). Only the loss of the storage stops a search (``StorageLostError``).
"""

from __future__ import annotations

import contextlib
import math
import signal
import time
from collections.abc import Callable
from multiprocessing import get_context
from multiprocessing.connection import wait
from typing import Any

from nas.searches.lifecycle import (
    Resumed,
    TrialLifecycle,
    arch_digest,
    lineage_attr,
    replay_into,
)
from nas.searches.lock import owning
from nas.searches.outcome import Outcome
from nas.searches.store import RunStore, TrialRecord

from nas.dsl import Node, parse_arch
from nas.exceptions import ConfigurationError

# Outcome lives in nas.searches.outcome and the replay in nas.searches.lifecycle; they are
# re-exported here, where they were first defined.
__all__ = [
    "Evaluator",
    "Outcome",
    "Resumed",
    "TrialLifecycle",
    "WorkerPool",
    "arch_digest",
    "death_reason",
    "limit",
    "lineage_attr",
    "one_line",
    "replay_into",
    "run_search",
    "safe_evaluate",
]


def limit(seconds: float | None) -> float | None:
    """A time limit as the loops take it: None for none (``inf`` on the command line)."""
    return None if seconds is None or math.isinf(seconds) else float(seconds)


Evaluator = Callable[[Node], Outcome]


def one_line(e: BaseException) -> str:
    """``Type: first line of the message`` (at most 300 characters)."""
    return f"{type(e).__name__}: {(str(e).strip().splitlines() or [''])[0]}"[:300]


def safe_evaluate(evaluate: Evaluator, arch: Node | str) -> Outcome:
    """Evaluate one architecture; any exception becomes that trial's failed outcome."""
    start = time.perf_counter()
    try:
        node = parse_arch(arch) if isinstance(arch, str) else arch
        return evaluate(node)
    except Exception as e:
        return Outcome(
            "failed",
            reason=f"the evaluator raised {one_line(e)}",
            wall_time=time.perf_counter() - start,
        )


def death_reason(exitcode: int | None) -> str:
    """Why a worker process ended, in words."""
    if exitcode is not None and exitcode < 0:
        name = signal.Signals(-exitcode).name if -exitcode in signal.valid_signals() else ""
        hint = " (out of memory, or killed)" if exitcode == -signal.SIGKILL else ""
        return f"its worker process died: killed by signal {-exitcode} {name}{hint}".rstrip()
    return f"its worker process died: exit code {exitcode}"


# ----------------------------------------------------------------------------- workers
def _die_with_parent() -> None:
    """Linux: this process gets SIGKILL when its parent dies (no orphaned workers)."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _worker_main(conn: Any, factory: Callable[[], Evaluator]) -> None:
    """A worker process: build the evaluator once, then evaluate what arrives."""
    from nas.exceptions import NasError
    from nas.runtime import configure

    _die_with_parent()
    configure()
    try:
        evaluate = factory()
    except Exception as e:
        conn.send(("init_error", isinstance(e, NasError), one_line(e)))
        return
    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError):
            return
        if task is None:
            return
        key, arch = task
        conn.send((key, safe_evaluate(evaluate, arch)))


class WorkerPool:
    """Worker processes that each evaluate one trial at a time; a dead one is replaced."""

    def __init__(self, n: int, factory: Callable[[], Evaluator]) -> None:
        self.ctx = get_context("spawn")
        self.factory = factory
        self.workers: list[dict[str, Any]] = [self._spawn() for _ in range(n)]

    def _spawn(self) -> dict[str, Any]:
        parent, child = self.ctx.Pipe()
        proc = self.ctx.Process(target=_worker_main, args=(child, self.factory), daemon=True)
        proc.start()
        child.close()
        return {"proc": proc, "conn": parent, "task": None}

    def idle(self) -> int:
        """Workers without a trial."""
        return sum(w["task"] is None for w in self.workers)

    def submit(self, key: Any, arch: str) -> None:
        """Hand ``arch`` to an idle worker; ``key`` comes back with its outcome."""
        w = next(w for w in self.workers if w["task"] is None)
        if not w["proc"].is_alive():  # died while idle: replace it before use
            w["proc"].join(1)
            w["conn"].close()
            w.update(self._spawn())
        w["task"] = key
        with contextlib.suppress(BrokenPipeError, OSError):  # died: wait() reports it
            w["conn"].send((key, arch))

    def wait(self) -> list[tuple[Any, Outcome]]:
        """Block until some trial ends; its outcome (a failed one if its worker died)."""
        busy = [w for w in self.workers if w["task"] is not None]
        ready = wait([w["conn"] for w in busy] + [w["proc"].sentinel for w in busy])
        out = []
        for w in busy:
            msg = None
            if w["conn"] in ready or w["proc"].sentinel in ready:
                with contextlib.suppress(EOFError, OSError):
                    if w["conn"].poll():
                        msg = w["conn"].recv()
                if msg is None and w["proc"].sentinel not in ready:
                    continue
            else:
                continue
            if msg is not None and msg[0] == "init_error":
                self.close()
                if msg[1]:
                    raise ConfigurationError(msg[2])
                raise RuntimeError(f"building the evaluator failed in a worker: {msg[2]}")
            if msg is not None:
                out.append((w["task"], msg[1]))
                w["task"] = None
                continue
            w["proc"].join(5)
            out.append((w["task"], Outcome("failed", reason=death_reason(w["proc"].exitcode))))
            w["conn"].close()
            w.update(self._spawn())
        return out

    def close(self) -> None:
        """Stop every worker (those still evaluating are terminated)."""
        for w in self.workers:
            with contextlib.suppress(Exception):
                w["conn"].send(None)
        for w in self.workers:
            w["proc"].join(2 if w["task"] is None else 0.1)
            if w["proc"].is_alive():
                w["proc"].terminate()
                w["proc"].join(2)
            with contextlib.suppress(Exception):
                w["conn"].close()


# ------------------------------------------------------------------------------ search
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

    Takes the run's lock for the whole search (``RunInUseError`` if another live process
    owns it), closes what a dead owner left running, and replays the history.

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
    with owning(store):
        life = TrialLifecycle.resume(strategy, store, on_result)
        done = life.done
        deadline = None if time_budget is None else time.monotonic() + time_budget

        def more(in_flight: int = 0) -> bool:
            life.check_lock()
            return len(done) + in_flight < trials and (
                deadline is None or time.monotonic() < deadline
            )

        if workers <= 1:
            evaluate = evaluator_factory()
            while more():
                arch, trial = life.open()
                life.close(arch, trial, safe_evaluate(evaluate, arch))
            return done

        # no more processes than trials left to run (each one loads torch and the data)
        pool = WorkerPool(min(workers, max(1, trials - len(done))), evaluator_factory)
        running: dict[int, tuple[Node, Any]] = {}
        try:
            while True:
                while pool.idle() and more(len(running)):
                    arch, trial = life.open()
                    running[trial.number] = (arch, trial)
                    pool.submit(trial.number, str(arch))
                if not running:
                    break
                for key, out in pool.wait():
                    arch, trial = running.pop(key)
                    life.close(arch, trial, out)
        finally:
            pool.close()
        return done
