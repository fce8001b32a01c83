"""The Ray backend: the same search as ``run_search``, with trials run as Ray Tune trials.

The strategy and the run store stay in the driver (this process). A Tune ``Searcher``
drives the local runner's trial lifecycle (:class:`~nas.searches.lifecycle.TrialLifecycle`):
``suggest`` opens a trial, ``on_trial_complete`` closes it with the local runner's status
vocabulary, so both backends ask, record and tell alike. Each Tune
trial builds the evaluator from the same picklable factory and reports one result per
epoch (for ASHA) and a final result carrying the :class:`Outcome`.

Trials that ASHA cuts are recorded as ``stopped`` with the epoch they reached
(``metrics["epochs_done"]``). A trial whose worker dies is run again, up to
``max_failures`` more times, by the searcher itself (Tune's own recovery skips trials
that fail before they run); then it is recorded as ``failed`` with the real count. A
killed driver resumes from the store like the local runner: the architectures in flight
are evaluated again first. When the driver started Ray itself, a small watchdog
(``_reaper.py``) kills what Ray left behind if the driver is killed.
"""

from __future__ import annotations

import inspect
import json
import logging
import math
import os
import shutil
import signal
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from nas.searches.lifecycle import TrialLifecycle
from nas.searches.lock import owning
from nas.searches.outcome import Outcome
from nas.searches.ray_local import (
    SCRATCH,
    restore_sigterm,
    start_reaper,
    stop_reaper,
    sweep_scratch,
)
from nas.searches.runner import Evaluator, one_line
from nas.searches.store import RunStore, TrialRecord

from nas.dsl import parse_arch
from nas.exceptions import ConfigurationError

SCHEDULERS = ("none", "asha")
_OUTCOME = "nas_outcome"  # key of the final result that carries the Outcome (as JSON)
_EVALUATORS: dict[str, Evaluator] = {}  # per worker process: run token -> evaluator


# ----------------------------------------------------------------------------- workers
def _accepts_on_epoch(evaluate: Evaluator) -> bool:
    try:
        return "on_epoch" in inspect.signature(evaluate).parameters
    except (TypeError, ValueError):
        return False


def _evaluate(evaluate: Evaluator, arch: Any, on_epoch: Callable[..., Any]) -> Outcome:
    """Call ``evaluate`` with per-epoch callbacks when it can give them."""
    if _accepts_on_epoch(evaluate):
        return evaluate(arch, on_epoch=on_epoch)  # type: ignore[call-arg]
    return evaluate(arch)


def _score(metrics: dict[str, Any]) -> float | None:
    """The validation score of one epoch (the primary metric; accuracy first)."""
    if "valid_accuracy" in metrics:
        return float(metrics["valid_accuracy"])
    for k, v in metrics.items():
        if k.startswith("valid_") and isinstance(v, int | float):
            return float(v)
    return None


def _trainable(config: dict[str, Any], factory: Callable[[], Evaluator], settings: dict) -> None:
    """One Tune trial: evaluate ``config["arch"]``, reporting each epoch, then the outcome."""
    from ray import tune

    from nas.runtime import configure

    configure(settings["threads"])
    evaluate = _EVALUATORS.get(settings["token"])
    if evaluate is None:
        evaluate = _EVALUATORS[settings["token"]] = factory()
    max_epochs = settings["max_epochs"]

    def on_epoch(epoch: int, metrics: dict[str, Any]) -> None:
        score = _score(metrics)
        if score is None or (max_epochs is not None and epoch >= max_epochs):
            return  # the last epoch's score comes with the outcome
        row = {k: float(v) for k, v in metrics.items() if isinstance(v, int | float)}
        tune.report({**row, "score": score, "epoch": epoch})

    start = time.perf_counter()
    try:
        out = _evaluate(evaluate, parse_arch(config["arch"]), on_epoch)
    except Exception as e:
        out = Outcome(
            "failed",
            reason=f"the evaluator raised {one_line(e)}",
            wall_time=time.perf_counter() - start,
        )
    acc = (out.values or {}).get(settings["objective"]) if out.status == "ok" else None
    tune.report(
        {
            "score": float(acc) if acc is not None else -math.inf,
            "epoch": max_epochs or out.metrics.get("epochs_done", 0) or 0,
            _OUTCOME: json.dumps(asdict(out), default=str),
        }
    )


# ------------------------------------------------------------------------------ driver
def _outcome(result: dict[str, Any] | None, error: bool, runs: int) -> Outcome:
    """What a finished Tune trial means, in the local runner's vocabulary."""
    if error:
        return Outcome(
            "failed",
            reason=f"the Ray trial failed {runs} time(s) (run {runs}x, "
            f"{runs - 1} retr{'y' if runs == 2 else 'ies'}): its worker died or raised outside "
            "the evaluator (see the Ray logs).",
        )
    result = result or {}
    if _OUTCOME in result:
        return Outcome(**json.loads(result[_OUTCOME]))
    if "epoch" in result:
        epoch = result["epoch"]
        metrics: dict[str, Any] = {
            "valid": {k[6:]: v for k, v in result.items() if k.startswith("valid_")},
            "epochs_done": epoch,
        }
        return Outcome(
            "stopped",
            reason=f"stopped early by ASHA after epoch {epoch:g} "
            f"(validation score {result.get('score', math.nan):.4g}).",
            metrics=metrics,
            wall_time=float(result.get("time_total_s") or 0.0),
        )
    return Outcome("failed", reason="the Ray trial ended without a result.")


def _searcher_class() -> type:
    from ray.tune.search import Searcher

    class StrategySearcher(Searcher):
        """A Tune Searcher that opens and closes a run's trials through its lifecycle."""

        def __init__(
            self, life: TrialLifecycle, remaining: int, deadline: float | None, retries: int
        ) -> None:
            super().__init__(metric="score", mode="max")
            self.life, self.remaining = life, remaining
            self.deadline, self.retries = deadline, retries
            self.max_concurrent = 0
            self.live: dict[str, tuple[Any, Any, int]] = {}  # tune id -> (arch, trial, runs)
            self.again: list[tuple[Any, Any, int]] = []  # dead workers' trials, to rerun

        def set_max_concurrency(self, max_concurrent: int) -> bool:
            self.max_concurrent = max_concurrent
            return True

        def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
            self.life.check_lock()
            out_of_time = self.deadline is not None and time.monotonic() >= self.deadline
            if self.max_concurrent and len(self.live) >= self.max_concurrent:
                return None
            if self.again:  # a retry keeps its store trial
                self.live[trial_id] = self.again.pop(0)
                return {"arch": str(self.live[trial_id][0])}
            if self.remaining <= 0 or out_of_time:
                return None if self.live else Searcher.FINISHED
            arch, trial = self.life.open()
            self.live[trial_id] = (arch, trial, 1)
            self.remaining -= 1
            return {"arch": str(arch)}

        def on_trial_complete(
            self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False
        ) -> None:
            if trial_id not in self.live:
                return
            arch, trial, runs = self.live.pop(trial_id)
            if error and runs <= self.retries:
                self.again.append((arch, trial, runs + 1))
                return
            self.life.close(arch, trial, _outcome(result, error, runs))

        def save(self, checkpoint_path: str) -> None:
            # Nothing to save: the run store is the record, and a resume replays it.
            with open(checkpoint_path, "w") as f:
                f.write("{}")

        def restore(self, checkpoint_path: str) -> None:
            return None

        def __getstate__(self) -> dict[str, Any]:
            # Tune pickles its config (tuner.pkl); the strategy and store stay here.
            return {"_metric": self._metric, "_mode": self._mode}

    return StrategySearcher


@dataclass(frozen=True)
class TuneOptions:
    """How the Tune experiment runs (``run_search_ray``'s arguments of the same names)."""

    workers: int = 1  # trials run at once
    cpus: float = 1.0  # resources of one trial
    gpus: float = 0.0
    address: str | None = None  # an existing cluster; None starts (or reuses) a local Ray
    scheduler: str = "none"  # or "asha"
    max_epochs: int | None = None  # ASHA's max_t
    reduction_factor: float = 2.0
    local_cpus: int | None = None  # CPUs of a Ray started here (None: all cores)


def _trial_name(trial: Any) -> str:
    return str(trial.trial_id)  # the default embeds the config: too long for einspace archs


def run_search_ray(
    strategy: Any,
    store: RunStore,
    trials: int,
    evaluator_factory: Callable[[], Evaluator],
    time_budget: float | None = None,
    workers: int = 1,
    on_result: Callable[[TrialRecord], None] | None = None,
    *,
    cpus: float = 1.0,
    gpus: float = 0.0,
    address: str | None = None,
    scheduler: str = "none",
    max_epochs: int | None = None,
    reduction_factor: float = 2.0,
    max_failures: int = 2,
    prepare: Callable[[], Any] | None = None,
    local_cpus: int | None = None,
) -> list[TrialRecord]:
    """``run_search`` on Ray Tune: same arguments, same store content, same return.

    Args:
        strategy, store, trials, evaluator_factory, time_budget, workers, on_result: as for
            :func:`nas.searches.runner.run_search` (``workers``: trials run at once).
        cpus, gpus: resources of one trial (Tune's per-trial resources).
        address: an existing cluster (``"auto"`` or ``"HOST:PORT"``); None starts a local
            Ray with this machine's cores (unless Ray is already running in this process).
        scheduler: ``"none"``, or ``"asha"`` to stop poor trials early (epochs as fidelity).
        max_epochs: epochs of a full trial (ASHA's ``max_t``); read from an
            :class:`~nas.searches.evaluators.EvaluatorSpec` when not given.
        reduction_factor: ASHA's reduction factor.
        max_failures: retries of a trial whose worker dies.
        prepare: called once before the trials start (default: the spec's ``prepare``,
            which caches the dataset on disk, so the workers read it from there).
        local_cpus: CPUs of a Ray started here (default: all of this machine's cores).

    Returns:
        All finished trials of the run, old and new.

    Raises:
        ConfigurationError: an unknown scheduler, bad resources, or ASHA without epochs.
    """
    if scheduler not in SCHEDULERS:
        raise ConfigurationError(
            f"--scheduler must be one of {', '.join(SCHEDULERS)}, but got {scheduler!r}."
        )
    if workers < 1 or cpus <= 0 or gpus < 0 or max_failures < 0:
        raise ConfigurationError(
            "--workers and --cpus must be positive, --gpus and max_failures non-negative."
        )
    max_epochs = max_epochs or getattr(evaluator_factory, "max_epochs", None)
    if scheduler == "asha" and not max_epochs:
        raise ConfigurationError(
            "--scheduler asha needs trials that train for epochs (train mode, --epochs >= 1)."
        )
    with owning(store):
        life = TrialLifecycle.resume(strategy, store, on_result)
        done = life.done
        remaining = trials - len(done)
        if remaining <= 0:
            return done
        deadline = None if time_budget is None else time.monotonic() + time_budget
        prepare = prepare or getattr(evaluator_factory, "prepare", None)
        if prepare is not None:
            prepare()
        searcher = _searcher_class()(life, remaining, deadline, max_failures)
        options = TuneOptions(
            workers=workers,
            cpus=cpus,
            gpus=gpus,
            address=address,
            scheduler=scheduler,
            max_epochs=max_epochs,
            reduction_factor=reduction_factor,
            local_cpus=local_cpus,
        )
        _tune(searcher, evaluator_factory, store.objectives[0], options)
    return done


def _tune(
    searcher: Any,
    evaluator_factory: Callable[[], Evaluator],
    objective: str,
    options: TuneOptions,
) -> None:
    """Run the Tune experiment that the searcher feeds (starting Ray if needed);
    ``objective`` is the run's first objective, the one a trial's score reports."""
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    try:
        import ray
        from ray import tune
    except ImportError:
        raise ConfigurationError("--backend ray needs Ray: pip install 'nas[ray]'.") from None

    logging.getLogger("ray.tune.analysis.experiment_analysis").setLevel(logging.ERROR)
    started, reaper = False, None
    if not ray.is_initialized():
        if options.address is None:
            reaper = start_reaper()
        term = signal.getsignal(signal.SIGTERM)
        ray.init(
            address=options.address,
            num_cpus=None if options.address else (options.local_cpus or os.cpu_count()),
            include_dashboard=False,
            logging_level=logging.WARNING,
            log_to_driver=False,
        )
        restore_sigterm(term)
        started = True
    sweep_scratch()
    tmp = tempfile.mkdtemp(prefix=f"{SCRATCH}{os.getpid()}-")
    try:
        settings = {
            "token": uuid.uuid4().hex,
            "threads": max(1, int(options.cpus)),
            "max_epochs": options.max_epochs,
            "objective": objective,
        }
        trainable = tune.with_resources(
            tune.with_parameters(_trainable, factory=evaluator_factory, settings=settings),
            {"cpu": options.cpus, "gpu": options.gpus},
        )
        sched = None
        if options.scheduler == "asha":
            from ray.tune.schedulers import ASHAScheduler

            sched = ASHAScheduler(
                time_attr="epoch",
                max_t=options.max_epochs,
                grace_period=1,
                reduction_factor=options.reduction_factor,
            )
        tuner = tune.Tuner(
            trainable,
            tune_config=tune.TuneConfig(
                metric="score",
                mode="max",
                search_alg=searcher,
                scheduler=sched,
                num_samples=-1,  # the searcher says when the search is finished
                max_concurrent_trials=options.workers,
                # a cut trial's thread cannot be stopped inside a reused actor
                reuse_actors=sched is None,
                trial_name_creator=_trial_name,
                trial_dirname_creator=_trial_name,
            ),
            run_config=tune.RunConfig(
                name="tune",
                storage_path=tmp,
                verbose=0,
                # retries are the searcher's: Tune skips trials that fail before running
                failure_config=tune.FailureConfig(max_failures=0),
            ),
        )
        tuner.fit()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if started:
            ray.shutdown()
        stop_reaper(reaper)
