"""The one trial lifecycle, shared by the local and the Ray runner: ask, start, evaluate,
finish, tell; and its replay, which rebuilds a strategy from a run's record on resume.

A runner decides only where and when trials are evaluated; which architecture a trial
gets, what the store records and what the strategy is told are decided here, so both
backends write the same run record.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from nas.searches._base import ReplayError
from nas.searches.outcome import Outcome
from nas.searches.store import RunStore, TrialHandle, TrialRecord

from nas.dsl import Node


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
    return hashlib.sha1(str(arch).encode()).hexdigest()[:12]


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


# --------------------------------------------------------------------------- lifecycle
class TrialLifecycle:
    """Opens and closes a run's trials for a runner, in the store and the strategy alike.

    ``done`` holds every finished trial of the run (the replayed ones first); ``redo`` the
    asks a killed driver never finished, which :meth:`open` hands out before asking anew.
    """

    def __init__(
        self,
        strategy: Any,
        store: RunStore,
        on_result: Callable[[TrialRecord], None] | None = None,
        redo: list[tuple[Node, int]] | None = None,
        done: list[TrialRecord] | None = None,
    ) -> None:
        self.strategy, self.store, self.on_result = strategy, store, on_result
        self.redo: list[tuple[Node, int]] = list(redo or [])
        self.done: list[TrialRecord] = done if done is not None else []

    @classmethod
    def resume(
        cls,
        strategy: Any,
        store: RunStore,
        on_result: Callable[[TrialRecord], None] | None = None,
    ) -> TrialLifecycle:
        """Replay the run's record into ``strategy`` (:func:`replay_into`) and go on from it."""
        resumed = replay_into(strategy, store)
        return cls(strategy, store, on_result, resumed.pending, resumed.done)

    def check_lock(self) -> None:
        """Raise ``RunInUseError`` if another process took the run over from this one."""
        if self.store.lock is not None:
            self.store.lock.check()

    def open(self) -> tuple[Node, TrialHandle]:
        """The next trial: an unfinished ask first, else a new one, opened RUNNING in the
        store right after the ask, so a replay sees the asks in their order."""
        arch, retry_of = self.redo.pop(0) if self.redo else (self.strategy.ask(), None)
        return arch, self.store.start(str(arch), retry_of, lineage_attr(self.strategy, arch))

    def close(self, arch: Node, trial: TrialHandle, outcome: Outcome) -> TrialRecord:
        """Record ``outcome`` as ``trial``'s result, tell the strategy, report the record."""
        rec = self.store.finish_outcome(trial, outcome)
        self.strategy.tell(arch, rec.values if rec.ok else None, rec.status)
        self.done.append(rec)
        if self.on_result is not None:
            self.on_result(rec)
        return rec


__all__ = ["Resumed", "TrialLifecycle", "arch_digest", "lineage_attr", "replay_into"]
