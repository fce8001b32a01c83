"""A search run persisted in an Optuna storage: every trial, its result and its reason.

The storage is a SQLite file in the run directory by default, or any Optuna storage URL
(PostgreSQL, or ``journal:PATH`` for Optuna's journal file). Each run is its own study,
named after its run directory, so several runs can share one storage.

Crash safety rests on two single-step writes per trial and on the Optuna state being the
one truth about a trial:

1. ``start`` creates the trial RUNNING with its architecture in one write;
2. ``finish`` writes the whole result (status, reason, values, metrics) as one attribute,
   then sets the state: COMPLETE with the values when ok, FAIL otherwise.

A process killed between the two steps of ``finish`` leaves a RUNNING trial holding its
result; ``reap`` (run when a process takes over the run, see :mod:`nas.searches.lock`)
completes it as recorded. A RUNNING trial without a result is failed as ``abandoned``
with the reason, and its architecture is evaluated again by the next search.
"""

from __future__ import annotations

import json
import math
import os
import signal
import time
import warnings
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from nas.searches.objectives import DIRECTIONS, OBJECTIVES
from nas.searches.runfiles import (
    StorageLostError,
    check_run_info,
    check_storage_file,
    disk_full,
    disk_full_error,
    read_json_object,
    readonly_engine,
    storage_why,
)

from nas.exceptions import ConfigurationError

LEGACY_STUDY = "nas"  # the one study name of runs made before runs had their own
LOCK_PREFIX = "nas-lock:"  # studies that hold run locks (nas.searches.lock)
FORMAT = 2  # trial attributes: "arch", "asked", "v" at creation; "result" at the end
HEARTBEAT_S = 5  # kept for callers that pass them; the run lock replaced trial heartbeats
GRACE_S = 20
ABANDONED = "its process was killed or died before the trial finished; it is evaluated again"


@dataclass
class TrialRecord:
    """One finished (or abandoned) trial, as stored."""

    number: int
    arch: str
    status: str  # ok | failed | invalid | diverged | oom | timeout | stopped | abandoned
    reason: str = ""
    values: dict[str, float] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    params: int | None = None
    flops: int | None = None
    wall_time: float | None = None
    started: float | None = None  # POSIX timestamps, for replaying the event order
    completed: float | None = None
    retry_of: int | None = None  # the trial that first asked this architecture
    legacy: bool = False  # written by a version before FORMAT 2
    # how the strategy made it: {"op": "draw" | "seed" | OPERATOR, "parent": DIGEST}
    origin: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """Whether the trial produced objective values."""
        return self.status == "ok"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


@dataclass(frozen=True)
class TrialHandle:
    """A running trial: what ``start`` returns and ``finish`` takes."""

    number: int
    trial_id: int
    arch: str
    origin: dict[str, str] = field(default_factory=dict, compare=False)


def crash_point(name: str) -> None:
    """Test hook: ``NAS_CRASH_AT=name:N`` SIGKILLs this process the N-th time it gets here.

    The kill-campaign tests use it to land kills exactly inside a result write.
    """
    spec = os.environ.get("NAS_CRASH_AT", "")
    if not spec.startswith(name + ":"):
        return
    left = int(spec.split(":", 1)[1]) - 1
    os.environ["NAS_CRASH_AT"] = f"{name}:{left}"
    if left <= 0:
        os.kill(os.getpid(), signal.SIGKILL)


def _jsonable(obj: Any) -> Any:
    """Plain JSON data (numpy scalars become numbers, anything else its string)."""
    return json.loads(
        json.dumps(obj, default=lambda o: o.item() if hasattr(o, "item") else str(o))
    )


def open_storage(url: str, readonly: bool = False) -> Any:
    """The Optuna storage behind ``url`` (``journal:PATH`` for a journal file);
    ``readonly`` for reading commands: a missing or empty file is refused, not created, and
    SQLite is opened read-only.

    Raises:
        StorageLostError: the storage cannot be opened (server down, bad URL, no driver).
    """
    import optuna

    if readonly:
        check_storage_file(url, str(mask_url(url)))
    for attempt in range(_CREATE_RETRIES + 1):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                if url.startswith("journal:"):
                    from optuna.storages.journal import JournalFileBackend

                    backend = JournalFileBackend(url[len("journal:") :])
                    return optuna.storages.JournalStorage(backend)
                if readonly:  # no schema written into a database that lacks one
                    engine = readonly_engine(url)
                    return optuna.storages.RDBStorage(
                        _with_driver(url), engine, skip_table_creation=bool(engine)
                    )
                return optuna.storages.RDBStorage(_with_driver(url))
        except ImportError as e:
            raise ConfigurationError(
                f"storage {mask_url(url)} needs a database driver ({_one_line(e)}); for "
                "PostgreSQL: pip install psycopg2-binary."
            ) from None
        except Exception as e:
            if attempt < _CREATE_RETRIES and _creation_race(e):
                time.sleep(0.2 * (attempt + 1))  # the other process finishes the schema
                continue
            raise StorageLostError(
                f"cannot open storage {mask_url(url)}: {storage_why(e, readonly)}"
            ) from None
    raise AssertionError("unreachable")  # pragma: no cover


_CREATE_RETRIES = 5


def _with_driver(url: str) -> str:
    """``postgresql://`` with the PostgreSQL driver that is installed: SQLAlchemy 2.1 reads
    it as psycopg 3, so a machine with only psycopg2 (this project's) failed to connect."""
    import importlib.util

    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in ("postgresql", "postgres"):
        return url
    if importlib.util.find_spec("psycopg") is None and importlib.util.find_spec("psycopg2"):
        return f"postgresql+psycopg2://{rest}"
    return url


def _creation_race(e: Exception) -> bool:
    """Two processes opened a new database at once and both created its schema (Optuna's
    table creation is not atomic): the loser sees a taken table or version row."""
    text = str(e)
    return "already exists" in text or "UNIQUE constraint failed: alembic_version" in text


def mask_url(url: str | None) -> str | None:
    """``url`` with its password replaced by ``***`` (for run.json, reports and errors)."""
    if not url or "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    auth, sep, host = rest.rpartition("@")
    if not sep or ":" not in auth:
        return url
    return f"{scheme}://{auth.split(':', 1)[0]}:***@{host}"


def unmask_url(url: str | None) -> str | None:
    """A masked URL without its password, so the driver reads it from PGPASSWORD/.pgpass."""
    return url.replace(":***@", "@") if url else url


def _storage_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that mean the storage itself failed (database or journal file; Optuna
    wraps a failed SQL commit, a full disk's among them, in StorageInternalError)."""
    from optuna.exceptions import StorageInternalError

    try:
        from sqlalchemy.exc import SQLAlchemyError
    except ImportError:  # pragma: no cover
        return (OSError, StorageInternalError)
    return (SQLAlchemyError, OSError, StorageInternalError)


def _one_line(e: BaseException) -> str:
    return f"{type(e).__name__}: {(str(e).strip().splitlines() or [''])[0]}"[:300]


class RunStore:
    """The trials of one search.

    Args:
        run_dir: the run directory (holds ``study.db`` unless ``storage`` is given).
        objectives: names of the objectives, e.g. ``("accuracy",)``.
        storage: an Optuna storage URL; default ``sqlite:///RUN_DIR/study.db``.
        create: create the study if missing (False when resuming: it must exist).
        heartbeat, grace: accepted for compatibility; the run lock decides staleness.
        study: the study name; default: the one in ``RUN_DIR/run.json``, else the run
            directory's name (or the legacy ``"nas"`` for old runs).
        exclusive: with ``create``, fail if the study already exists (a new run must
            never join another run's study).
        readonly: for reading commands: the storage is opened read-only and nothing is
            created (see :func:`open_storage`).

    Raises:
        ConfigurationError: unknown objective, no study to resume, or a name taken.
    """

    def __init__(
        self,
        run_dir: str | Path,
        objectives: tuple[str, ...] = ("accuracy",),
        storage: str | None = None,
        create: bool = True,
        heartbeat: int = HEARTBEAT_S,
        grace: int = GRACE_S,
        study: str | None = None,
        exclusive: bool = False,
        readonly: bool = False,
    ) -> None:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.run_dir = Path(run_dir)
        for o in objectives:
            if o not in DIRECTIONS:
                raise ConfigurationError(
                    f"unknown objective {o!r}; choose from {', '.join(DIRECTIONS)}."
                )
        self.objectives = tuple(objectives)
        self.url = storage or f"sqlite:///{self.run_dir / 'study.db'}"
        self.readonly = readonly and not create
        if create:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        elif storage is None and not (self.run_dir / "study.db").is_file():
            raise ConfigurationError(f"no search run in {self.run_dir} (no study.db).")
        else:  # a run to read or resume: its storage file is never created or filled here
            check_storage_file(self.url, str(mask_url(self.url)))
        self.storage = open_storage(self.url, readonly=self.readonly)
        names = set(self._guard(lambda: [s.study_name for s in self.storage.get_all_studies()]))
        self.name = self._resolve_name(study, names, create)
        if self.name in names:
            taken = LOCK_PREFIX + self.name in names or self._has_trials(self.name)
            if exclusive and taken:
                raise ConfigurationError(
                    f"storage {mask_url(self.url)} already holds a run named {self.name!r}; "
                    "resume it with --resume, or choose another --run-dir."
                )
            self.study = self._guard(optuna.load_study, study_name=self.name, storage=self.storage)
        elif create:
            directions = [DIRECTIONS[o] for o in self.objectives]
            self.study = optuna.create_study(
                study_name=self.name, storage=self.storage, directions=directions
            )
            self.study.set_user_attr("nas_format", FORMAT)
        else:
            raise ConfigurationError(f"no search run in {mask_url(self.url)}.")
        self.study_id = self.study._study_id
        self.lock: Any = None  # the RunLock while this store owns the run

    def _has_trials(self, name: str) -> bool:
        sid = self._guard(self.storage.get_study_id_from_name, name)
        return bool(self._guard(self.storage.get_n_trials, sid))

    def _resolve_name(self, study: str | None, names: set[str], create: bool) -> str:
        if study:
            return study
        info = self.run_dir / "run.json"
        if info.is_file():  # a CLI run: its recorded study, or the legacy name
            try:
                recorded = json.loads(info.read_text())
            except (OSError, ValueError):
                recorded = None
            if isinstance(recorded, dict):  # a damaged run.json is read_run_info's to report
                return recorded.get("study") or LEGACY_STUDY
        own = self.run_dir.name or "run"
        if own not in names and LEGACY_STUDY in names and not create:
            return LEGACY_STUDY
        return own

    def _guard(self, fn: Any, *args: Any, **kw: Any) -> Any:
        """Call ``fn(*args)`` on the storage; a failing database or file becomes
        :class:`StorageLostError`."""
        try:
            return fn(*args, **kw)
        except _storage_errors() as e:
            why = disk_full(e)
            if why is not None:
                custom = self.url != f"sqlite:///{self.run_dir / 'study.db'}"
                raise disk_full_error(
                    self.run_dir, why, mask_url(self.url) if custom else None
                ) from None
            why = storage_why(e, self.readonly)
            raise StorageLostError(
                f"lost the run's storage {mask_url(self.url)} ({why}); the finished trials "
                "are safe: resume the run once the storage is back."
            ) from None

    # -------------------------------------------------------------------------- trials
    def start(
        self, arch: str, retry_of: int | None = None, origin: dict[str, str] | None = None
    ) -> TrialHandle:
        """Open a RUNNING trial for ``arch`` in one write (a re-run names its first trial;
        ``origin`` says how the strategy made it, see :func:`lineage_attr`)."""
        from optuna.trial import FrozenTrial, TrialState

        attrs: dict[str, Any] = {"arch": arch, "asked": time.time(), "v": FORMAT}
        if retry_of is not None:
            attrs["retry_of"] = retry_of
        if origin:
            attrs["origin"] = dict(origin)
        template = FrozenTrial(
            number=-1,
            state=TrialState.RUNNING,
            value=None,
            datetime_start=datetime.now(),
            datetime_complete=None,
            params={},
            distributions={},
            user_attrs=attrs,
            system_attrs={},
            intermediate_values={},
            trial_id=-1,
        )
        tid = self._guard(self.storage.create_new_trial, self.study_id, template)
        number = self._guard(self.storage.get_trial_number_from_id, tid)
        return TrialHandle(number, tid, arch, dict(origin or {}))

    def finish_outcome(self, trial: TrialHandle, out: Any) -> TrialRecord:
        """Record an evaluator's ``Outcome`` (the runners' one way to finish a trial)."""
        return self.finish(
            trial,
            out.status,
            out.values,
            out.reason,
            out.metrics,
            out.params,
            out.flops,
            out.wall_time,
        )

    def finish(
        self,
        trial: TrialHandle,
        status: str,
        values: dict[str, float] | None = None,
        reason: str = "",
        metrics: dict[str, Any] | None = None,
        params: int | None = None,
        flops: int | None = None,
        wall_time: float | None = None,
    ) -> TrialRecord:
        """Record a trial's outcome durably; ``values`` must hold every objective when ok."""
        vals: dict[str, float] = {}
        if status == "ok":
            try:
                vals = {o: float((values or {})[o]) for o in self.objectives}
            except (KeyError, TypeError, ValueError) as e:
                status, reason = "failed", f"the evaluator gave no usable objective value ({e})"
            else:
                bad = [o for o, v in vals.items() if not math.isfinite(v)]
                if bad:
                    status, reason = "failed", f"objective {bad[0]} is {vals[bad[0]]}"
            if status != "ok":
                vals = {}
        result = _jsonable(
            {
                "status": status,
                "reason": reason,
                "values": vals,
                "metrics": metrics or {},
                "params": params,
                "flops": flops,
                "wall_time": wall_time,
                "done": time.time(),
            }
        )
        self._guard(self.storage.set_trial_user_attr, trial.trial_id, "result", result)
        crash_point("finish")
        self._close(trial.trial_id, result)
        return self._record(trial.number, trial.arch, result, {"origin": trial.origin})

    def _close(self, trial_id: int, result: dict[str, Any]) -> None:
        """Set the Optuna state from a written result (the commit point of a trial)."""
        from optuna.trial import TrialState

        if result["status"] == "ok":
            values = [float(result["values"][o]) for o in self.objectives]
            self._guard(self.storage.set_trial_state_values, trial_id, TrialState.COMPLETE, values)
        else:
            self._guard(self.storage.set_trial_state_values, trial_id, TrialState.FAIL)

    def reap(self) -> tuple[int, int]:
        """Close the RUNNING trials of a dead owner: (completed from their result, abandoned).

        Call only while owning the run (``nas.searches.lock``): every RUNNING trial is then
        an orphan. A trial whose result was written is closed as recorded; one without a
        result is failed as ``abandoned`` with the reason.
        """
        repaired = abandoned = 0
        for t in self._trials(running=True):
            result = t.user_attrs.get("result")
            if not isinstance(result, dict) or "status" not in result:
                result = {"status": "abandoned", "reason": ABANDONED, "done": time.time()}
                tid = t._trial_id
                self._guard(self.storage.set_trial_user_attr, tid, "result", result)
                abandoned += 1
            else:
                repaired += 1
            self._close(t._trial_id, result)
        return repaired, abandoned

    def recover(self) -> int:
        """Reap orphaned RUNNING trials (see :meth:`reap`); returns how many were closed."""
        return sum(self.reap())

    def fail_running(self) -> int:
        """Same as :meth:`recover` (kept for callers of the old name)."""
        return self.recover()

    def _trials(self, running: bool = False) -> list[Any]:
        from optuna.trial import TrialState

        states = (TrialState.RUNNING,) if running else None
        return self._guard(
            self.storage.get_all_trials, self.study_id, deepcopy=False, states=states
        )

    # ------------------------------------------------------------------------- reading
    def _record(self, number: int, arch: str, res: dict[str, Any], a: dict) -> TrialRecord:
        origin = a.get("origin")
        return TrialRecord(
            number,
            arch,
            res["status"],
            res.get("reason", ""),
            dict(res.get("values") or {}),
            res.get("metrics") or {},
            res.get("params"),
            res.get("flops"),
            res.get("wall_time"),
            a.get("asked"),
            res.get("done"),
            a.get("retry_of"),
            origin=dict(origin) if isinstance(origin, dict) else {},
        )

    def records(self) -> list[TrialRecord]:
        """Every finished trial in order (abandoned ones included, marked as such).

        The Optuna state decides: COMPLETE is ok with its values, FAIL is the recorded
        failure (or ``abandoned`` when no failure was recorded); RUNNING trials are in
        flight and left out.
        """
        from optuna.trial import TrialState

        out = []
        for t in self._trials():
            if t.state == TrialState.RUNNING:
                continue
            a = t.user_attrs
            res = a.get("result")
            legacy = "v" not in a
            if not isinstance(res, dict):  # written before FORMAT 2: one attribute per field
                res = {k: a.get(k) for k in ("status", "reason", "metrics", "params", "flops")}
                res["wall_time"] = a.get("wall_time")
            res = dict(res)
            if t.state == TrialState.COMPLETE and t.values:
                res["status"] = "ok"
                res["values"] = dict(zip(self.objectives, t.values, strict=False))
            else:
                res["values"] = {}
                if res.get("status") in (None, "ok"):  # a result never committed
                    res["status"], res["reason"] = "abandoned", ABANDONED
            res.setdefault("reason", "")
            res["reason"] = res["reason"] or ""
            if legacy:
                a = {"asked": t.datetime_start.timestamp() if t.datetime_start else None}
                res["done"] = t.datetime_complete.timestamp() if t.datetime_complete else None
            elif not res.get("done") and t.datetime_complete:
                res["done"] = t.datetime_complete.timestamp()
            rec = self._record(t.number, t.user_attrs.get("arch", ""), res, a)
            rec.legacy = legacy
            out.append(rec)
        return out

    def completed(self) -> list[TrialRecord]:
        """Trials that count toward the budget: every outcome except abandoned."""
        return [r for r in self.records() if r.status != "abandoned"]

    def n_running(self) -> int:
        """Trials in flight (RUNNING) in the storage, whichever process runs them."""
        return len(self._trials(running=True))

    def best(self, k: int | None = 1, objective: str | None = None) -> list[TrialRecord]:
        """The ``k`` best successful trials by ``objective`` (default: the first); all of
        them, best first, when ``k`` is None."""
        obj = objective or self.objectives[0]
        ok = [r for r in self.records() if r.ok and obj in r.values]
        sign = -1 if DIRECTIONS[obj] == "maximize" else 1
        return sorted(ok, key=lambda r: (sign * r.values[obj], r.number))[:k]


def read_run_info(run_dir: str | Path) -> dict[str, Any]:
    """The ``run.json`` of a search run (command, options, versions), checked once here
    for every command that reads a run (:func:`~nas.searches.runfiles.check_run_info`).

    Raises:
        ConfigurationError: the folder is not a search run (the message says what to do),
            or its run.json is damaged (``RunFileError``: the file and the problem).
    """
    path = Path(run_dir) / "run.json"
    if not path.is_file():
        if (Path(run_dir) / "study.db").is_file():
            raise ConfigurationError(
                f"{run_dir} is not a search run (no run.json): its search was stopped before "
                f"it recorded its options, so there is nothing to resume; start it again with "
                f"--run-dir {run_dir}."
            )
        raise ConfigurationError(f"{run_dir} is not a search run (no run.json).")
    return check_run_info(path, read_json_object(path))


def open_run(run_dir: str | Path, storage: str | None = None) -> tuple[dict[str, Any], RunStore]:
    """A finished or interrupted run, for reading: its ``run.json`` and its store, opened
    read-only (nothing is created or written).

    ``storage`` overrides the recorded URL (whose password run.json does not keep).
    """
    from nas.searches._registry import get_strategy

    info = read_run_info(run_dir)
    opts = info["options"]
    objective = opts.get("objective")  # none recorded: the strategy's, as a resume takes
    objectives = OBJECTIVES[objective] if objective else None
    url = storage or unmask_url(opts.get("storage"))
    store = RunStore(
        run_dir,
        objectives or get_strategy(opts.get("strategy") or "re").default_objectives,
        url,
        create=False,
        study=info.get("study"),
        readonly=True,
    )
    return info, store
