"""One owner per run: a lock held in the run's own storage, with a stale-lock rule.

The lock is a study named ``nas-lock:<run study>`` in the same storage. Creating a study
is atomic in every Optuna storage (a duplicate name is refused), so at most one process
holds it. The owner writes who it is (host, pid, command) and refreshes a heartbeat every
few seconds. A lock is stale, and taken over, when its owner's process is gone (same
host), when its owner is this process but no longer holds it (a lock it could not delete,
say on a full disk), or when its heartbeat is older than ``stale_s``. A stale lock is
deleted by its id, so two processes that both find it stale cannot delete each other's new
lock.

Taking over a run reaps what the dead owner left RUNNING (``RunStore.reap``).
"""

from __future__ import annotations

import contextlib
import os
import shlex
import socket
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from nas.searches.store import LOCK_PREFIX, RunStore, StorageLostError

from nas.exceptions import NasError

BEAT_S = 3.0
STALE_S = 30.0
_HELD: set[str] = set()  # tokens of the locks this process holds now


class RunInUseError(NasError):
    """Another live process owns the run (a second search or resume of it)."""


def _alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


class RunLock:
    """The lock of one run's study; ``acquire`` or raise :class:`RunInUseError`."""

    def __init__(self, store: RunStore, beat_s: float = BEAT_S, stale_s: float = STALE_S):
        self.store, self.beat_s, self.stale_s = store, beat_s, stale_s
        self.name = LOCK_PREFIX + store.name
        self.token = uuid.uuid4().hex
        self.lock_id: int | None = None
        self.lost = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------------ reading
    def _read(self) -> tuple[int, dict[str, Any]] | None:
        storage = self.store.storage
        try:
            sid = storage.get_study_id_from_name(self.name)
            return sid, storage.get_study_system_attrs(sid)
        except KeyError:
            return None

    def holder(self) -> dict[str, Any] | None:
        """Who holds the lock now (owner fields and ``beat``), or None."""
        got = self.store._guard(self._read)
        return None if got is None else got[1].get("owner", {}) | {"beat": got[1].get("beat")}

    def _stale(self, attrs: dict[str, Any]) -> bool:
        owner, beat = attrs.get("owner") or {}, attrs.get("beat")
        same_host = owner.get("host") == socket.gethostname()
        if same_host and owner.get("pid") and not _alive(int(owner["pid"])):
            return True
        if same_host and owner.get("pid") == os.getpid() and owner.get("token") not in _HELD:
            return True  # this process let it go (a full disk kept it from deleting the lock)
        return beat is not None and time.time() - float(beat) > self.stale_s

    # ------------------------------------------------------------------------ owning
    def check_free(self) -> None:
        """Raise :class:`RunInUseError` now if a live process owns the run (a resume asks
        before it says or measures anything; :meth:`acquire` still decides races)."""
        got = self.store._guard(self._read)
        if got is not None and "beat" in got[1] and not self._stale(got[1]):
            raise RunInUseError(self._describe(got[1]))

    def acquire(self) -> None:
        """Take the run, or raise :class:`RunInUseError` naming its live owner."""
        import optuna

        storage = self.store.storage
        for _ in range(5):
            try:
                sid = self.store._guard(
                    storage.create_new_study, [optuna.study.StudyDirection.MINIMIZE], self.name
                )
            except optuna.exceptions.DuplicatedStudyError:
                got = self.store._guard(self._read)
                if got is None:
                    continue
                old_id, attrs = got
                if "beat" not in attrs:  # being created right now, or its creator died
                    time.sleep(min(2.0, self.stale_s))
                    again = self.store._guard(self._read)
                    if again is None or again[0] != old_id or "beat" in again[1]:
                        continue
                elif not self._stale(attrs):
                    raise RunInUseError(self._describe(attrs)) from None
                with contextlib.suppress(KeyError):
                    self.store._guard(storage.delete_study, old_id)
                continue
            self.lock_id = sid
            owner = {
                "host": socket.gethostname(),
                "pid": os.getpid(),
                "since": time.time(),
                "command": shlex.join(["nas", *sys.argv[1:]]) if sys.argv else "",
                "token": self.token,
            }
            _HELD.add(self.token)
            self.store._guard(storage.set_study_system_attr, sid, "owner", owner)
            self.store._guard(storage.set_study_system_attr, sid, "beat", time.time())
            self._thread = threading.Thread(target=self._beat, daemon=True, name="nas-run-lock")
            self._thread.start()
            self.store.lock = self
            self.store.reap()
            return
        raise RunInUseError(f"could not take the lock of run {self.store.name!r}; try again.")

    def _describe(self, attrs: dict[str, Any]) -> str:
        owner, beat = attrs.get("owner") or {}, attrs.get("beat")
        since = datetime.fromtimestamp(owner.get("since") or 0).strftime("%Y-%m-%d %H:%M:%S")
        ago = f"{time.time() - float(beat):.0f} s ago" if beat is not None else "never"
        return (
            f"run {self.store.name!r} is in use by process {owner.get('pid')} on "
            f"{owner.get('host')} ({owner.get('command') or 'unknown command'}; since {since}, "
            f"last heartbeat {ago}); wait for it to end or stop it. A lock whose owner "
            f"stopped beating is taken over after {self.stale_s:.0f} s."
        )

    def _beat(self) -> None:
        storage = self.store.storage
        while not self._stop.wait(self.beat_s):
            try:
                got = self._read()
                if got is None or (got[1].get("owner") or {}).get("token") != self.token:
                    self.lost = True
                    return
                storage.set_study_system_attr(got[0], "beat", time.time())
            except Exception:  # a storage hiccup: the next beat tries again
                continue

    def check(self) -> None:
        """Raise if another process took the run over (this one stalled past the rule)."""
        if self.lost:
            raise RunInUseError(
                f"run {self.store.name!r} was taken over by another process "
                f"({self.holder() or 'unknown'}); this one stops."
            )

    def release(self) -> None:
        """Stop the heartbeat and delete the lock (if still ours)."""
        self._stop.set()
        _HELD.discard(self.token)
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self.store.lock is self:
            self.store.lock = None
        if self.lock_id is None or self.lost:
            return
        got = None
        with contextlib.suppress(Exception):
            got = self._read()
        if got is not None and (got[1].get("owner") or {}).get("token") == self.token:
            with contextlib.suppress(Exception):
                self.store.storage.delete_study(got[0])
        self.lock_id = None


@contextlib.contextmanager
def owning(store: RunStore, stale_s: float = STALE_S) -> Iterator[RunLock | None]:
    """Hold the run's lock for the block (nothing to do if this store already holds it)."""
    if store.lock is not None:
        yield store.lock
        return
    lock = RunLock(store, stale_s=stale_s)
    lock.acquire()
    try:
        yield lock
    finally:
        lock.release()


__all__ = ["RunInUseError", "RunLock", "StorageLostError", "owning"]
