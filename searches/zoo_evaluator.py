"""The zoo's evaluator: train a family's config (a ``fam(hp(...),...)`` string) on its task.

Registered lazily as ``zoo`` in :data:`nas.searches.evaluators.EVALUATORS`; it claims the
``zoo:FAMILY`` spaces. Training is the family's ``fit`` on the shared loop
(:mod:`nas.loop`), and the outcome is built like every trained trial's
(:func:`~nas.searches.evaluators.trained_outcome`): a spent time budget is ``timeout``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

from nas.searches.evaluators import Retrained, Say, _Base, trained_outcome
from nas.searches.runner import Outcome, limit

from nas import tolerance
from nas.dsl import Node
from nas.exceptions import NasError

__all__ = ["ZOO_TRIALS", "ZooEvaluator", "zoo_evaluator", "zoo_recorder"]

#: Trials of a zoo search left at its defaults: each trial is one full training of a config.
ZOO_TRIALS = 10


def zoo_recorder(task: str | None) -> Callable[[Any, str], Any]:
    """Graph records of a family's configs (``fam(hp(...),...)`` strings or their parsed
    form) for ``task``: the family's own ONNX export, untrained (seed 0), read back like a
    user's file with its signals. ``nas bench from-run`` labels zoo runs with it, and the
    ``predictor`` strategy scores zoo candidates with it (the predictor imports no zoo)."""
    from pathlib import Path

    from nas.predictors.record import file_record
    from nas.zoo import config_from_arch, export_config

    def record(arch: Any, folder: str) -> Any:
        family, config = config_from_arch(str(arch))
        path, _ = export_config(family, Path(folder) / "trial.onnx", config, task=task, seed=0)
        try:
            return file_record(path, signals=True)
        finally:
            path.unlink()

    return record


class ZooEvaluator(_Base):
    """Train a zoo family's config (a ``fam(hp(...),...)`` string) on one of its tasks.

    The ``accuracy`` objective is the task's primary metric when higher is better, and its
    negation otherwise (e.g. minus the relative L2 error), so every strategy maximises it;
    the metric itself is in the trial's ``metrics``.
    """

    name = "zoo"
    priority = 20

    def __init__(
        self,
        family: str,
        task: str | None,
        epochs: int | None = None,
        time_budget_s: float | None = None,
        seed: int = 0,
        size: str = "small",
    ) -> None:
        from nas.zoo import get_family

        self.family = get_family(family)
        self.info = self.family.task(task)
        self.data = self.family.make_data(self.info.name, size=size, seed=seed)
        self.epochs, self.time_budget_s, self.seed = epochs, time_budget_s, seed
        self.size = size

    @classmethod
    def claims(cls, space: str, dataset: str | None) -> bool:
        return str(space).partition(":")[0] == "zoo"

    @classmethod
    def recorder(cls, space: str, dataset: str | None) -> Callable[[Any, str], Any]:
        """A config's record is its family's own untrained export (:func:`zoo_recorder`)."""
        return zoo_recorder(dataset)

    @classmethod
    def protocol(cls, space: str) -> dict[str, Any]:
        """Each config trains its own epochs; the per-trial cap scales with the family's
        measured training time (``Family.train_seconds``), so a slow family is not cut off at
        the einspace cap; ten trials (about ten of its trainings), no wall-time cap."""
        from nas.zoo import get_family

        seconds = get_family(space).train_seconds
        return {
            "trials": ZOO_TRIALS,
            "epochs": None,
            "trial_time": max(30.0, 4 * seconds),
            "time_budget": math.inf,
            "final_epochs": None,
        }

    @classmethod
    def fitness_label(cls, space: str, dataset: str) -> str:
        from nas.zoo import get_family

        info = get_family(space).task(dataset)
        return info.metric if info.higher_is_better else f"-{info.metric}"

    @classmethod
    def default_dataset(cls, space: str) -> str:
        from nas.zoo import get_family

        return get_family(space).task().name

    @classmethod
    def options_for(cls, config: Any) -> dict[str, Any]:
        return {
            "family": config.space,
            "task": config.dataset,
            "epochs": config.epochs,
            "time_budget_s": limit(config.trial_time),
            "seed": config.seed,
            "size": config.size,
        }

    @classmethod
    def max_epochs_of(cls, options: dict[str, Any]) -> int | None:
        return options.get("epochs") or None

    @classmethod
    def prepare_for(cls, options: dict[str, Any]) -> None:
        """Refuse a task the family lacks before the search announces a run folder."""
        from nas.zoo import get_family

        get_family(options["family"]).task(options["task"])

    @classmethod
    def input_of(cls, config: Any) -> tuple[tuple[int, ...], int]:
        return (1,), 2  # a zoo config is no network on a tensor input

    def __call__(self, arch: Node, on_epoch: Callable[..., Any] | None = None) -> Outcome:
        import torch
        from nas.zoo import config_from_arch, count_macs, count_params

        start = time.perf_counter()
        try:
            _, cfg = config_from_arch(arch)
            torch.manual_seed(self.seed)
            model = self.family.build(cfg, self.data)
        except NasError as e:
            return Outcome("invalid", reason=str(e), wall_time=time.perf_counter() - start)
        params = count_params(model)
        macs = count_macs(self.family, model, cfg, self.data)
        res = self.family.fit(
            model,
            cfg,
            self.data,
            epochs=self.epochs,
            time_budget_s=self.time_budget_s,
            seed=self.seed,
            on_epoch=on_epoch,
        )
        metrics = {"valid": res.valid, "test": res.test, "epochs_done": res.epochs}
        wall = time.perf_counter() - start
        value = res.valid.get(self.info.metric)
        fitness = (
            None if value is None else float(value) * (1 if self.info.higher_is_better else -1)
        )
        return trained_outcome(res.status, res.reason, fitness, metrics, params, macs, wall)

    def retrain(self, arch: Node, epochs: int, time_budget_s: float | None, say: Say) -> Retrained:
        """Retrain the best config for ``epochs`` and score it on test."""
        from pathlib import Path

        from nas.zoo import config_from_arch, export_config, train_config

        from nas.export import Parity

        family, cfg = config_from_arch(arch)
        say(f"retraining the best zoo:{family.name} config for {epochs} epochs ...")
        model, data, res = train_config(
            family, cfg, self.info.name, epochs, time_budget_s, self.seed, self.size
        )
        record = {**res.to_dict(), "config": cfg}
        task = self.info.name
        meta = {"space": f"zoo:{family.name}", "dataset": task, "architecture": str(arch)}

        def export(path: Path) -> tuple[Path, Parity]:
            out, diff = export_config(family, path, cfg, task, model, data, metadata=meta)
            return out, Parity(max_abs=diff, scale=1.0, relative=diff)  # absolute for the zoo

        return Retrained(record, export, tolerance.ZOO_TOLERANCE)


def zoo_evaluator(family: str, task: str | None, **kw: Any) -> ZooEvaluator:
    """Picklable factory for :class:`ZooEvaluator`."""
    return ZooEvaluator(family, task, **kw)
