"""``SearchConfig``: everything that defines a search, with the one place that checks it.

``Search`` (:mod:`nas.searches.api`) resolves what the config leaves open (the evaluator's
protocol, the strategy's budget-dependent options) and stores the result in run.json.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any

from nas.searches.backends import RUNNERS
from nas.searches.objectives import objectives_of
from nas.searches.store import mask_url

from nas.exceptions import ConfigurationError

__all__ = ["WORKERS_PER_CORE", "SearchConfig"]

WORKERS_PER_CORE = (
    4  # local worker processes per CPU core, at most (each loads torch and the data)
)


@dataclass
class SearchConfig:
    """Everything that defines a search. Defaults are small enough for a laptop CPU.

    ``dataset=None`` means the evaluator's default (``unseen`` for training, a zoo
    family's first task for ``zoo:FAMILY``). ``trials``, ``epochs``, ``trial_time``,
    ``time_budget`` and ``final_epochs`` left at None take the evaluator's protocol for the
    space (40 trials of 6 epochs, at most 30 CPU seconds each, no wall-time cap, 12 final
    epochs for einspace; a zoo family's own epochs and a cap scaled to its training time);
    ``math.inf`` lifts a time cap. The budget is the trial count: ``trial_time`` is CPU
    seconds of the trial's process, so machine load cannot change which trials finish;
    ``time_budget`` (wall seconds) is an optional extra cap. ``objective=None`` the strategy's own
    (``accuracy``, or ``accuracy+params`` for NSGA-II). ``strategy_options`` are the strategy's own
    options (``nas search --strategy-option key=value``); budget-dependent defaults (the
    RE population) are resolved when the run starts and stored with it.
    """

    space: str = "einspace"
    dataset: str | None = None
    strategy: str = "re"
    trials: int | None = None
    time_budget: float | None = None
    trial_time: float | None = None
    epochs: int | None = None
    final_epochs: int | None = None
    preset: str = "quick"
    seed: int = 0
    storage: str | None = None
    workers: int = 1
    objective: str | None = None
    data_dir: str | None = None
    size: str = "small"
    strategy_options: dict[str, Any] = field(default_factory=dict)
    backend: str = "local"
    address: str | None = None
    cpus: float = 1.0
    gpus: float = 0.0
    scheduler: str = "none"

    #: Fields a resumed run may change; the others come from its run.json.
    RESUMABLE = (
        "trials",
        "time_budget",
        "workers",
        "backend",
        "address",
        "cpus",
        "gpus",
        "scheduler",
        "storage",
    )

    @property
    def objectives(self) -> tuple[str, ...]:
        """The objectives recorded per trial (the first is the fitness)."""
        return objectives_of(self.objective or "accuracy")

    def validate(self) -> None:
        """Check the combination of values; raises ConfigurationError with the fix."""
        self.objectives  # noqa: B018 - validates the preset name
        if (self.trials is not None and self.trials < 1) or self.workers < 1:
            raise ConfigurationError("--trials and --workers must be at least 1.")
        if (self.epochs is not None and self.epochs < 1) or (
            self.final_epochs is not None and self.final_epochs < 0
        ):
            raise ConfigurationError("--epochs must be at least 1 and --final-epochs at least 0.")
        if self.trial_time is not None and not self.trial_time > 0:  # nan too
            raise ConfigurationError(f"--trial-time must be positive, but got {self.trial_time}.")
        if self.time_budget is not None and not self.time_budget > 0:
            raise ConfigurationError(
                f"--time-budget must be positive, but got {self.time_budget}."
            )
        if self.backend not in RUNNERS:
            raise ConfigurationError(
                f"--backend must be one of {', '.join(RUNNERS.names())}, but got {self.backend!r}."
            )
        cap = WORKERS_PER_CORE * (os.cpu_count() or 1)
        if self.backend == "local" and self.workers > cap:
            raise ConfigurationError(
                f"--workers {self.workers:,} is more than this machine can run: at most {cap} "
                f"here ({WORKERS_PER_CORE} per CPU core; each worker is a process holding its "
                "own copy of the data). A cluster's workers: --backend ray."
            )
        if self.backend == "local" and (self.address or self.scheduler != "none"):
            raise ConfigurationError("--address and --scheduler need --backend ray.")
        if self.scheduler not in ("none", "asha"):
            raise ConfigurationError(
                f"--scheduler must be none or asha, but got {self.scheduler!r}."
            )

    def public(self) -> dict[str, Any]:
        """The options as stored in run.json (credentials of the storage URL masked)."""
        opts = dataclasses.asdict(self)
        opts["storage"] = mask_url(self.storage)
        return opts

    @classmethod
    def from_run_info(cls, info: dict[str, Any]) -> SearchConfig:
        """The configuration a run was started with (run.json of this or older versions)."""
        names = {f.name for f in dataclasses.fields(cls)}
        opts = {k: v for k, v in info.get("options", {}).items() if k in names}
        stored = dict(info.get("strategy_options") or opts.get("strategy_options") or {})
        stored.pop("objectives", None)  # older runs stored the objectives here too
        opts["strategy_options"] = stored
        return cls(**opts)
