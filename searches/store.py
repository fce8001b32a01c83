"""A search run persisted in an Optuna storage: every trial, its result and its reason.

The storage is a SQLite file in the run directory by default, or any Optuna storage URL
(PostgreSQL, or ``journal:PATH`` for Optuna's journal file when several processes share
a run). Trials carry the architecture string and their metrics as user attributes, so
``optuna-dashboard`` and our own ``nas runs`` read the same record. A heartbeat thread
keeps each running trial alive; after a crash, ``recover()`` marks trials whose
heartbeat stopped as failed ("abandoned"), and the search continues from the rest.
"""

from __future__ import annotations

import json
import threading
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from nas.searches.objectives import DIRECTIONS, OBJECTIVES

from nas.exceptions import ConfigurationError

STUDY = "nas"
HEARTBEAT_S = 5
GRACE_S = 20


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

    @property
    def ok(self) -> bool:
        """Whether the trial produced objective values."""
        return self.status == "ok"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


def _storage(url: str, heartbeat: int, grace: int):
    import optuna

    if url.startswith("journal:"):
        from optuna.storages.journal import JournalFileBackend

        return optuna.storages.JournalStorage(JournalFileBackend(url[len("journal:") :]))
    return optuna.storages.RDBStorage(url, heartbeat_interval=heartbeat, grace_period=grace)


class RunStore:
    """The trials of one search.

    Args:
        run_dir: the run directory (holds ``study.db`` unless ``storage`` is given).
        objectives: names of the objectives, e.g. ``("accuracy",)`` or
            ``("accuracy", "params")``.
        storage: an Optuna storage URL; default ``sqlite:///RUN_DIR/study.db``.
        create: create the study if missing (False when resuming: it must exist).
        heartbeat: seconds between heartbeats of a running trial.
        grace: seconds without a heartbeat after which a running trial is abandoned.

    Raises:
        ConfigurationError: unknown objective, or no study to resume.
    """

    def __init__(
        self,
        run_dir: str | Path,
        objectives: tuple[str, ...] = ("accuracy",),
        storage: str | None = None,
        create: bool = True,
        heartbeat: int = HEARTBEAT_S,
        grace: int = GRACE_S,
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
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.heartbeat = heartbeat
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # optuna marks heartbeats as experimental
            self.storage = _storage(self.url, heartbeat, grace)
        directions = [DIRECTIONS[o] for o in self.objectives]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # heartbeat is "experimental" in optuna
            if create:
                self.study = optuna.create_study(
                    study_name=STUDY,
                    storage=self.storage,
                    directions=directions,
                    load_if_exists=True,
                )
            else:
                try:
                    self.study = optuna.load_study(study_name=STUDY, storage=self.storage)
                except KeyError:
                    raise ConfigurationError(f"no search run in {self.url}.") from None
        self._beats: dict[int, threading.Event] = {}

    # -------------------------------------------------------------------------- trials
    def start(self, arch: str) -> Any:
        """Open a trial for ``arch`` and keep its heartbeat going until it finishes."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # optuna expects heartbeats with optimize()
            trial = self.study.ask()
        trial.set_user_attr("arch", arch)
        if hasattr(self.storage, "record_heartbeat"):
            stop = threading.Event()
            self._beats[trial.number] = stop
            tid = trial._trial_id

            def beat() -> None:
                while not stop.wait(self.heartbeat):
                    self.storage.record_heartbeat(tid)

            self.storage.record_heartbeat(tid)
            threading.Thread(target=beat, daemon=True).start()
        return trial

    def finish(
        self,
        trial: Any,
        status: str,
        values: dict[str, float] | None = None,
        reason: str = "",
        metrics: dict[str, Any] | None = None,
        params: int | None = None,
        flops: int | None = None,
        wall_time: float | None = None,
    ) -> TrialRecord:
        """Record a trial's outcome; ``values`` must hold every objective when ok."""
        import optuna

        stop = self._beats.pop(trial.number, None)
        if stop is not None:
            stop.set()
        for key, val in (
            ("status", status),
            ("reason", reason),
            ("metrics", metrics or {}),
            ("params", params),
            ("flops", flops),
            ("wall_time", wall_time),
        ):
            trial.set_user_attr(key, val)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if status == "ok" and values is not None:
                self.study.tell(trial, [float(values[o]) for o in self.objectives])
            else:
                self.study.tell(trial, state=optuna.trial.TrialState.FAIL)
        return TrialRecord(
            trial.number,
            trial.user_attrs["arch"],
            status,
            reason,
            dict(values or {}),
            metrics or {},
            params,
            flops,
            wall_time,
        )

    def recover(self) -> int:
        """Mark trials left running by a dead process as failed; returns how many."""
        import optuna

        before = self._running()
        if hasattr(self.storage, "record_heartbeat"):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                optuna.storages.fail_stale_trials(self.study)
        return before - self._running()

    def fail_running(self) -> int:
        """Mark every running trial as failed (the caller knows no process runs them)."""
        import optuna

        n = 0
        for t in self.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
            self.storage.set_trial_state_values(t._trial_id, optuna.trial.TrialState.FAIL)
            n += 1
        return n

    def _running(self) -> int:
        import optuna

        return len(
            self.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
        )

    # ------------------------------------------------------------------------- reading
    def records(self) -> list[TrialRecord]:
        """Every finished trial in order (abandoned ones included, marked as such)."""
        import optuna

        out = []
        for t in self.study.get_trials(deepcopy=False):
            if t.state == optuna.trial.TrialState.RUNNING:
                continue
            a = t.user_attrs
            status = a.get("status") or "abandoned"
            values = (
                {o: v for o, v in zip(self.objectives, t.values, strict=True)} if t.values else {}
            )
            out.append(
                TrialRecord(
                    t.number,
                    a.get("arch", ""),
                    status,
                    a.get(
                        "reason",
                        "" if status != "abandoned" else "its process died before it finished",
                    ),
                    values,
                    a.get("metrics", {}),
                    a.get("params"),
                    a.get("flops"),
                    a.get("wall_time"),
                    t.datetime_start.timestamp() if t.datetime_start else None,
                    t.datetime_complete.timestamp() if t.datetime_complete else None,
                )
            )
        return out

    def completed(self) -> list[TrialRecord]:
        """Trials that count toward the budget: every outcome except abandoned."""
        return [r for r in self.records() if r.status != "abandoned"]

    def best(self, k: int = 1, objective: str | None = None) -> list[TrialRecord]:
        """The ``k`` best successful trials by ``objective`` (default: the first)."""
        obj = objective or self.objectives[0]
        ok = [r for r in self.records() if r.ok and obj in r.values]
        sign = -1 if DIRECTIONS[obj] == "maximize" else 1
        return sorted(ok, key=lambda r: (sign * r.values[obj], r.number))[:k]


def read_run_info(run_dir: str | Path) -> dict[str, Any]:
    """The ``run.json`` of a search run (command, options, versions).

    Raises:
        ConfigurationError: the folder is not a search run.
    """
    path = Path(run_dir) / "run.json"
    if not path.is_file():
        raise ConfigurationError(f"{run_dir} is not a search run (no run.json).")
    return json.loads(path.read_text())


def open_run(run_dir: str | Path) -> tuple[dict[str, Any], RunStore]:
    """A finished or interrupted run: its ``run.json`` and its store (nothing created)."""
    info = read_run_info(run_dir)
    opts = info["options"]
    store = RunStore(run_dir, OBJECTIVES[opts["objective"]], opts.get("storage"), create=False)
    return info, store
