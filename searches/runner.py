"""The local runner: ask a strategy, evaluate, record in the run store, tell; resumable.

Evaluation happens in this process (``workers=1``) or in worker processes, each of which
builds its evaluator once. The strategy and the store live in the driver only, so a crash
loses at most the trials in flight: on resume the strategy is rebuilt by replaying the
recorded trials, and the architectures that were in flight are evaluated again first.

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
from dataclasses import dataclass, field
from multiprocessing import get_context
from multiprocessing.connection import wait
from typing import Any

from nas.searches._base import ReplayError
from nas.searches.lock import owning
from nas.searches.store import RunStore, TrialRecord

from nas.dsl import Node, parse_arch
from nas.exceptions import ConfigurationError


def limit(seconds: float | None) -> float | None:
    """A time limit as the loops take it: None for none (``inf`` on the command line)."""
    return None if seconds is None or math.isinf(seconds) else float(seconds)


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


def lineage_attr(strategy: Any, arch: Node | str) -> dict[str, str]:
    """How ``strategy`` made ``arch``, as a trial records it: ``{"op": ...}`` and, for a
    mutation, ``"parent"``: the parent's digest (the short hash of its canonical string)."""
    origin = strategy.origin(arch) if hasattr(strategy, "origin") else {"op": "draw"}
    parent = origin.pop("parent", None)
    if parent is not None:
        origin["parent"] = arch_digest(parent)
    return origin


def arch_digest(arch: Node | str) -> str:
    """The short stable hash of an architecture's canonical string (``Node.digest``)."""
    import hashlib

    return hashlib.sha1(str(arch).encode()).hexdigest()[:12]


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


# ------------------------------------------------------------------------------ replay
@dataclass
class Resumed:
    """What a replay left: the trials that count, and the asks never finished."""

    done: list[TrialRecord]
    pending: list[tuple[Node, int]]  # (architecture, number of the trial that asked it)


def replay_into(strategy: Any, store: RunStore) -> Resumed:
    """Rebuild ``strategy`` from the recorded asks and tells, in the order they happened.

    Every ask is replayed, including those whose trials were abandoned (their process
    died): they stay asked-and-untold, and are returned as ``pending`` so the runner
    evaluates them again before asking anything new. A search that is killed and resumed
    thus asks exactly what an uninterrupted one asks.

    Raises:
        ReplayError: the strategy asks something other than the recorded trial (it was
            made with another seed, other options or another version of nas).
    """
    groups: dict[int, list[TrialRecord]] = {}
    for r in sorted(store.records(), key=lambda r: r.number):
        if r.legacy and r.status == "abandoned":
            continue  # old runs re-asked abandoned architectures as new asks
        groups.setdefault(r.retry_of if r.retry_of is not None else r.number, []).append(r)
    events: list[tuple[float, int, int, tuple]] = []
    done: list[TrialRecord] = []
    unfinished: list[int] = []
    for key, recs in groups.items():
        first = next((r for r in recs if r.number == key), recs[0])
        events.append((first.started or 0.0, 0, key, ("ask", first.arch)))
        final = [r for r in recs if r.status != "abandoned"]
        if final:
            f = final[-1]
            told = (f.values if f.ok else None, f.status)
            events.append((f.completed or f.started or 0.0, 1, key, ("tell", f.arch, *told)))
            done.append(f)
        else:
            unfinished.append(key)
    events.sort(key=lambda e: e[:3])
    asked: dict[int, Node] = {}
    for _, kind, key, event in events:
        if kind == 0:
            node = strategy.ask()
            if str(node) != event[1]:
                raise ReplayError(
                    f"cannot rebuild the strategy of run {store.name!r}: its trial {key} "
                    f"asked {_short(event[1])}, but this strategy now asks {_short(str(node))}."
                    " The recorded trials are intact; the run was made with another seed, "
                    "other strategy options or another version of nas."
                )
            asked[key] = node
        else:
            strategy.tell(asked[key], event[2], event[3])
    return Resumed(done, [(asked[k], k) for k in unfinished])


def _short(text: str) -> str:
    return text if len(text) < 70 else text[:67] + "..."


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
    with owning(store) as lock:
        resumed = replay_into(strategy, store)
        done, redo = resumed.done, list(resumed.pending)
        deadline = None if time_budget is None else time.monotonic() + time_budget

        def more(in_flight: int = 0) -> bool:
            if lock is not None:
                lock.check()
            return len(done) + in_flight < trials and (
                deadline is None or time.monotonic() < deadline
            )

        def ask() -> tuple[Node, Any]:
            arch, retry_of = redo.pop(0) if redo else (strategy.ask(), None)
            return arch, store.start(str(arch), retry_of, lineage_attr(strategy, arch))

        def record(arch: Node, trial: Any, out: Outcome) -> None:
            rec = store.finish_outcome(trial, out)
            strategy.tell(arch, rec.values if rec.ok else None, rec.status)
            done.append(rec)
            if on_result is not None:
                on_result(rec)

        if workers <= 1:
            evaluate = evaluator_factory()
            while more():
                arch, trial = ask()
                record(arch, trial, safe_evaluate(evaluate, arch))
            return done

        # no more processes than trials left to run (each one loads torch and the data)
        pool = WorkerPool(min(workers, max(1, trials - len(done))), evaluator_factory)
        running: dict[int, tuple[Node, Any]] = {}
        try:
            while True:
                while pool.idle() and more(len(running)):
                    arch, trial = ask()
                    running[trial.number] = (arch, trial)
                    pool.submit(trial.number, str(arch))
                if not running:
                    break
                for key, out in pool.wait():
                    arch, trial = running.pop(key)
                    record(arch, trial, out)
        finally:
            pool.close()
        return done
