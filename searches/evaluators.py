"""Evaluators turn an architecture into an Outcome: by training, or by table lookup.

Factories take only plain arguments, so worker processes can rebuild them (datasets are
read back from the on-disk cache, not pickled across processes).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from nas.searches.runner import Outcome

from nas.dsl import Node
from nas.exceptions import NasError
from nas.ops.spec import head_params


class TrainEvaluator:
    """Train each architecture with the one trainer and score it on the validation split.

    Objectives: ``accuracy`` (the task's primary validation metric after the last epoch)
    and ``params`` (trainable parameters, for multi-objective searches).
    """

    def __init__(
        self,
        space: str,
        dataset: str,
        config: dict[str, Any],
        data_dir: str | None = None,
        size: str = "small",
        data_seed: int = 0,
        input_shape: tuple[int, ...] | None = None,
    ) -> None:
        from nas.data import load_dataset
        from nas.space import load_space
        from nas.train import TrainConfig

        self.dataset = load_dataset(dataset, data_dir=data_dir, size=size, seed=data_seed)
        self.space = load_space(space).with_input(
            input_shape or self.dataset.input_shape, self.dataset.num_classes
        )
        self.config = TrainConfig(**config)

    def __call__(self, arch: Node, on_epoch: Callable[..., Any] | None = None) -> Outcome:
        """Train ``arch``; ``on_epoch(epoch, metrics)`` may stop it early (returns False)."""
        from nas.train import train

        start = time.perf_counter()
        try:
            a = self.space.check(arch)
        except NasError as e:
            return Outcome("invalid", reason=str(e), wall_time=time.perf_counter() - start)
        res = train(arch, self.dataset, self.config, on_epoch=on_epoch)
        metrics = {
            "valid": res.valid,
            "test": res.test,
            "best_epoch": res.best_epoch,
            "epochs_done": res.epochs_done,
            "images_per_s": res.images_per_s,
            "train_time_s": res.train_time_s,
        }
        wall = time.perf_counter() - start
        if res.status == "timeout":  # a status of its own, with the partial metrics
            return Outcome("timeout", None, res.reason, metrics, res.params, a.flops, wall)
        if res.fitness is None or res.status not in ("ok", "stopped"):
            return Outcome(
                res.status if res.status != "ok" else "failed",
                None,
                res.reason or "no validation score",
                metrics,
                res.params,
                a.flops,
                wall,
            )
        values = {"accuracy": float(res.fitness), "params": float(res.params)}
        return Outcome("ok", values, res.reason, metrics, res.params, a.flops, wall)


def train_evaluator(space: str, dataset: str, config: dict[str, Any], **kw: Any) -> TrainEvaluator:
    """Picklable factory for :class:`TrainEvaluator` (used by worker processes)."""
    return TrainEvaluator(space, dataset, config, **kw)


def config_dict(config: Any) -> dict[str, Any]:
    """A TrainConfig as plain data (to send to worker processes)."""
    return asdict(config)


class TableEvaluator:
    """Look up the measured accuracy of an NB201 cell instead of training it (table mode).

    ``accuracy`` is NB201's 200-epoch test accuracy (%) on the chosen dataset.
    """

    def __init__(self, dataset: str = "cifar10") -> None:
        from nas.benchmarks import NB201Table
        from nas.space import load_space

        self.table = NB201Table.load()
        self.dataset = dataset
        self.table.optimum(dataset)  # validates the name
        self.space = load_space("nb201")

    def __call__(self, arch: Node) -> Outcome:
        start = time.perf_counter()
        try:
            a = self.space.check(arch)
            acc = self.table.accuracy(arch, self.dataset)
        except NasError as e:
            return Outcome("invalid", reason=str(e), wall_time=time.perf_counter() - start)
        params = a.params + head_params(a.out[0], 10)
        return Outcome(
            "ok",
            {"accuracy": acc, "params": float(params)},
            metrics={"test": {"accuracy": acc}},
            params=params,
            flops=a.flops,
            wall_time=time.perf_counter() - start,
        )


def table_evaluator(dataset: str) -> TableEvaluator:
    """Picklable factory for :class:`TableEvaluator`."""
    return TableEvaluator(dataset)


class ZooEvaluator:
    """Train a zoo family's config (a ``fam(hp(...),...)`` string) on one of its tasks.

    The ``accuracy`` objective is the task's primary metric when higher is better, and its
    negation otherwise (e.g. minus the relative L2 error), so every strategy maximises it;
    the metric itself is in the trial's ``metrics``.
    """

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
        if value is None or res.status not in ("ok", "timeout", "stopped"):
            status = res.status if res.status != "ok" else "failed"
            reason = res.reason or "no validation score"
            return Outcome(status, None, reason, metrics, params, macs, wall)
        fitness = float(value) if self.info.higher_is_better else -float(value)
        values = {"accuracy": fitness, "params": float(params)}
        return Outcome("ok", values, res.reason, metrics, params, macs, wall)


def zoo_evaluator(family: str, task: str | None, **kw: Any) -> ZooEvaluator:
    """Picklable factory for :class:`ZooEvaluator`."""
    return ZooEvaluator(family, task, **kw)
