"""Starting and resuming a search run safely: its study, its lock, its ``run.json``.

* A new run gets its own study, named after its run directory, and never joins another
  run's study in a shared storage.
* The run is owned (``nas.searches.lock``) before anything is written, so a second
  search or resume of it stops at once with exit 2 and the owner's name.
* ``run.json`` is written atomically, with the storage password masked (here and in the
  command line it records); a resume reads the password from ``--storage`` or from
  PostgreSQL's ``PGPASSWORD``/``.pgpass``.
* A resume rebuilds the strategy from the options the run recorded, never from the new
  ``--trials``, so a finished run can be extended (``--resume RUN --trials N``).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from nas.searches.lock import RunLock
from nas.searches.runfiles import disk_full_stops
from nas.searches.store import (
    LOCK_PREFIX,
    OBJECTIVES,
    RunStore,
    mask_url,
    open_storage,
    unmask_url,
)

from nas.exceptions import ConfigurationError

# CLI option -> strategy keyword, for the strategy options a resume must not change.
STRATEGY_OPTIONS = {
    "population": "population",
    "tournament": "tournament",
    "seed_arch": "seed_archs",
    "predictor_model": "model",
}


def mask_text(text: str) -> str:
    """Every ``scheme://user:password@`` in ``text`` with the password masked."""
    return re.sub(r"(\w[\w+.-]*://[^:/@\s]+:)[^@\s]+@", r"\1***@", text)


def masked(info: dict[str, Any]) -> dict[str, Any]:
    """A copy of a run's info with every storage password masked."""
    return json.loads(mask_text(json.dumps(info, default=str)))


def write_run_info(run_dir: str | Path, info: dict[str, Any]) -> dict[str, Any]:
    """Write ``run.json`` atomically (a kill leaves the old file or the new one, whole).

    Returns the masked info that was written (use it for reports too).
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    safe = masked(info)
    fd, tmp = tempfile.mkstemp(prefix=".run.json.", dir=run_dir)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(json.dumps(safe, indent=2, default=str) + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, run_dir / "run.json")
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return safe


def resume_storage(recorded: str | None, given: str | None) -> str | None:
    """The storage URL of a resumed run: ``--storage`` (same place) or the recorded one.

    Raises:
        ConfigurationError: ``--storage`` names another storage than the run's.
    """
    if given is None:
        return unmask_url(recorded)
    if mask_url(given) != recorded and given != recorded:
        raise ConfigurationError(
            f"this run lives in {recorded}; --storage on resume may only add its password, "
            f"but got {mask_url(given)}."
        )
    return given


def resume_strategy_options(info: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    """The strategy options of a resumed run: those it recorded, unchanged.

    Raises:
        ConfigurationError: an option given on resume differs from the recorded one.
    """
    kw = dict(info.get("strategy_options") or {})
    if "objectives" in kw:
        kw["objectives"] = tuple(kw["objectives"])
    for option, key in STRATEGY_OPTIONS.items():
        if given.get(option) is None:
            continue
        want = given[option]
        if option == "seed_arch":
            want = [s.strip() for s in str(want).split(",") if s.strip()]
        have = kw.get(key)
        if option == "predictor_model":
            want, have = str(want), None if have is None else str(have)
        if want != have:
            raise ConfigurationError(
                f"--{option.replace('_', '-')} cannot change when resuming: the run uses "
                f"{have!r} (a resume replays the recorded trials with the same strategy)."
            )
    return kw


@contextlib.contextmanager
def search_store(
    run_dir: str | Path,
    objective: str,
    storage: str | None,
    study: str | None,
    new: bool,
) -> Iterator[RunStore]:
    """The run's store, owned for the block: created for a new run, opened for a resume.
    A full disk, in the storage or in any file the block writes, stops the search with
    :class:`~nas.searches.runfiles.DiskFullError` (the folder and the resume command).

    Raises:
        RunInUseError: another live process owns the run.
        ConfigurationError: a new run's name is taken in a shared storage.
    """
    with disk_full_stops(run_dir):
        store = RunStore(
            run_dir, OBJECTIVES[objective], storage, create=True, study=study, exclusive=new
        )
        lock = RunLock(store)
        lock.acquire()
        try:
            yield store
        finally:
            lock.release()


def list_runs(url: str) -> list[dict[str, Any]]:
    """The runs (studies) in a storage: name, trials by state, best value, owner."""
    import optuna

    storage = open_storage(url, readonly=True)
    studies = storage.get_all_studies()
    locks = {
        s.study_name[len(LOCK_PREFIX) :]: s
        for s in studies
        if s.study_name.startswith(LOCK_PREFIX)
    }
    rows = []
    for s in studies:
        if s.study_name.startswith(LOCK_PREFIX):
            continue
        trials = storage.get_all_trials(s._study_id, deepcopy=False)
        counts: dict[str, int] = {}
        for t in trials:
            counts[t.state.name.lower()] = counts.get(t.state.name.lower(), 0) + 1
        done = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE and t.values]
        sign = 1 if s.directions[0] == optuna.study.StudyDirection.MAXIMIZE else -1
        best = max((t.values[0] for t in done), key=lambda v: sign * v, default=None)
        lock = locks.get(s.study_name)
        owner = (lock.system_attrs.get("owner") or {}) if lock is not None else {}
        rows.append(
            {
                "run": s.study_name,
                "trials": len(trials),
                "states": counts,
                "best": best,
                "owner": f"pid {owner.get('pid')} on {owner.get('host')}" if owner else "",
            }
        )
    return rows
