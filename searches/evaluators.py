"""The one ``Evaluator`` protocol, and the evaluators: training, a benchmark table (a zoo
family's is :mod:`nas.searches.zoo_evaluator`).

An evaluator turns an architecture into an :class:`Outcome` (``__call__``) and, at the end
of a search, retrains the best one (its ``retrain``); the one final step shared by all
(``final``) exports the result with the onnxruntime parity check. Runners (local processes or
Ray) see only an :class:`EvaluatorSpec`: plain, picklable data naming a registered
evaluator and its options, which every worker process builds once. Which evaluator a search
uses is decided by the evaluators themselves (``claims``), so a new evaluation scheme is
one registered class, not an edit to the search.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from nas.searches.outcome import Outcome
from nas.searches.runner import limit

from nas import tolerance
from nas.dsl import Node
from nas.exceptions import NasError
from nas.ops.spec import head_params
from nas.registry import Registry

if TYPE_CHECKING:
    from nas.export import Parity

__all__ = [
    "EVALUATORS",
    "EvaluatorSpec",
    "Outcome",
    "Retrained",
    "TableEvaluator",
    "TrainEvaluator",
    "config_dict",
    "evaluator_for",
    "trained_outcome",
]

Say = Callable[[str], None]


class Evaluator(Protocol):
    """What the runners and the search call: evaluate one architecture; retrain the best."""

    def __call__(self, arch: Node, on_epoch: Callable[..., Any] | None = None) -> Outcome:
        """Score ``arch``; ``on_epoch(epoch, metrics)`` may stop training early."""
        ...

    def final(
        self, arch: Node, epochs: int, time_budget_s: float | None, run_dir: Path, say: Say
    ) -> dict[str, Any]:
        """Retrain ``arch`` for ``epochs``, export ``run_dir/best.onnx``; the final record."""
        ...


#: The default protocol of a trained search on a 2-core CPU (docs/protocol.md).
#: The budget is the trial count; ``trial_time`` caps one trial's training in CPU seconds
#: (``nas.loop.budget_clock``: a guard against runaway networks that machine load cannot
#: move); wall time (``time_budget``) is an optional extra cap, off by default.
CPU_PROTOCOL = {
    "trials": 40,
    "epochs": 6,
    "trial_time": 30.0,
    "time_budget": math.inf,
    "final_epochs": 12,
}

#: Evaluator classes by name; ``evaluator_for`` asks them in order of ``priority``.
EVALUATORS: Registry[type] = Registry("evaluator")


@dataclass(frozen=True)
class EvaluatorSpec:
    """A picklable recipe for an evaluator: its registered name and plain options.

    Calling the spec builds the evaluator (once per worker process); datasets are read back
    from the on-disk cache, never pickled.
    """

    kind: str
    options: dict[str, Any] = field(default_factory=dict)

    def __call__(self) -> Evaluator:
        return EVALUATORS.get(self.kind)(**self.options)

    @property
    def max_epochs(self) -> int | None:
        """Epochs of a full trial (the fidelity ASHA schedules on), None if it has none."""
        return EVALUATORS.get(self.kind).max_epochs_of(self.options)

    def prepare(self) -> None:
        """Work to do once before workers start (generate and cache the dataset)."""
        EVALUATORS.get(self.kind).prepare_for(self.options)


def claimant(space: str, dataset: str | None) -> type:
    """The evaluator class that evaluates ``space`` on ``dataset`` (highest priority first)."""
    classes = sorted((c for _, c in EVALUATORS.items()), key=lambda c: -c.priority)
    for cls in classes:
        if cls.claims(space, dataset):
            return cls
    raise AssertionError("the train evaluator claims every search")  # pragma: no cover


def evaluator_for(config: Any) -> EvaluatorSpec:
    """The spec of the evaluator a search ``config`` needs (the highest-priority claimant)."""
    cls = claimant(config.space, config.dataset)
    return EvaluatorSpec(cls.name, cls.options_for(config))


@dataclass
class Retrained:
    """What an evaluator's ``retrain`` hands the shared final step.

    ``record`` is the final record (status, metrics, ...); ``export(path)`` writes the
    retrained model to ONNX and returns the file and its parity with torch, which must be
    within ``tolerance`` (the space kind's own: relative for grammar spaces, absolute for
    zoo families; :mod:`nas.tolerance`).
    """

    record: dict[str, Any]
    export: Callable[[Path], tuple[Path, Parity]]
    tolerance: float


class _Base:
    """The shared final step and the defaults of the class-level hooks ``evaluator_for``
    and the runners use."""

    name: ClassVar[str] = ""
    priority: ClassVar[int] = 0
    trains: ClassVar[bool] = True  # False: looks results up (table mode), trains nothing

    def final(
        self, arch: Node, epochs: int, time_budget_s: float | None, run_dir: Path, say: Say
    ) -> dict[str, Any]:
        """Retrain ``arch`` (the evaluator's :meth:`retrain`), then export ``best.onnx`` with
        the onnxruntime parity check against the kind's tolerance: one final step for every
        evaluator. A file past it is kept, and said and recorded as failed."""
        done = self.retrain(arch, epochs, time_budget_s, say)
        path, p = done.export(run_dir / "best.onnx")
        passed = p.ok(done.tolerance)
        check = "ok" if passed else f"failed ({p.relative:.3g} > {done.tolerance:g})"
        if not passed:
            say(
                f"parity check failed: {path.name} differs from torch by {p.relative:.3g} "
                f"(tolerance {done.tolerance:g}); the file does not compute what was trained"
            )
        return {
            **done.record,
            "onnx": path.name,
            "onnx_max_abs_diff": p.max_abs,
            "onnx_parity": check,
        }

    def retrain(self, arch: Node, epochs: int, time_budget_s: float | None, say: Say) -> Retrained:
        """Train ``arch`` once more for the final record (each evaluator's own)."""
        raise NotImplementedError

    @classmethod
    def claims(cls, space: str, dataset: str | None) -> bool:
        return False

    @classmethod
    def protocol(cls, space: str) -> dict[str, Any]:
        """Default trials, epochs, per-trial CPU seconds, search seconds and final epochs for
        ``space``: sized so that a default search on a 2-core CPU ends within minutes and
        trains; a space file's ``[protocol]`` overrides the CPU protocol (nb201: heavier
        networks)."""
        from nas.space import load_space

        try:
            own = load_space(space).protocol
        except NasError:  # the search reports a space it cannot load itself, in one line
            own = {}
        return {**CPU_PROTOCOL, **own}

    @classmethod
    def recorder(cls, space: str, dataset: str | None) -> Callable[[Any, str], Any] | None:
        """How the ``predictor`` strategy turns a candidate into an ONNX graph record, when
        the space's own build cannot (None: build or export it from the grammar space)."""
        return None

    @classmethod
    def default_dataset(cls, space: str) -> str:
        return "unseen"

    @classmethod
    def fitness_label(cls, space: str, dataset: str) -> str:
        """What the ``accuracy`` objective is when it is not an accuracy (e.g. -rel_l2)."""
        return ""

    @classmethod
    def options_for(cls, config: Any) -> dict[str, Any]:
        raise NotImplementedError

    @classmethod
    def max_epochs_of(cls, options: dict[str, Any]) -> int | None:
        return None

    @classmethod
    def prepare_for(cls, options: dict[str, Any]) -> None:
        return None

    @classmethod
    def input_of(cls, config: Any) -> tuple[tuple[int, ...], int]:
        """(input shape, classes) the search's architectures are applied to."""
        from nas.data import resolve_dataset

        info = resolve_dataset(config.dataset)
        return tuple(info.input_shape), info.num_classes


def trained_outcome(
    status: str,
    reason: str,
    fitness: float | None,
    metrics: dict[str, Any],
    params: int | None,
    flops: int | None,
    wall: float,
) -> Outcome:
    """The outcome of a trained trial, the same for every evaluator that trains.

    ``ok`` and ``stopped`` runs with a fitness give values (``accuracy`` = ``fitness``,
    higher is better); a ``timeout`` is a status of its own with the partial metrics; any
    other run (or one without a fitness) fails with its reason.
    """
    if status == "timeout":
        return Outcome("timeout", None, reason, metrics, params, flops, wall)
    if fitness is None or status not in ("ok", "stopped"):
        failed = status if status != "ok" else "failed"
        return Outcome(failed, None, reason or "no validation score", metrics, params, flops, wall)
    values = {"accuracy": float(fitness), "params": float(params or 0)}
    return Outcome("ok", values, reason, metrics, params, flops, wall)


@EVALUATORS.register()
class TrainEvaluator(_Base):
    """Train each architecture with the one trainer and score it on the validation split.

    Objectives: ``accuracy`` (the task's primary validation metric after the last epoch)
    and ``params`` (trainable parameters, for multi-objective searches).
    """

    name = "train"
    priority = -100  # the fallback: any search no other evaluator claims

    def __init__(
        self,
        space: str,
        dataset: str,
        config: dict[str, Any],
        data_dir: str | None = None,
        size: str = "small",
        data_seed: int = 0,
        input_shape: tuple[int, ...] | None = None,
        uncapped: list[str] | tuple[str, ...] = (),
    ) -> None:
        from nas.data import load_dataset
        from nas.space import load_space
        from nas.train import TrainConfig

        self.dataset = load_dataset(dataset, data_dir=data_dir, size=size, seed=data_seed)
        self.space_ref = space  # as the user named it (best.onnx's metadata)
        self.space = load_space(space).with_input(
            input_shape or self.dataset.input_shape, self.dataset.num_classes
        )
        self.config = TrainConfig(**config)
        # Architectures trained without the time cap: the seeds, which the search checked
        # to fit it before starting (searches.seeds) and must never lose to it.
        self.uncapped = frozenset(uncapped)

    @classmethod
    def claims(cls, space: str, dataset: str | None) -> bool:
        return True

    @classmethod
    def options_for(cls, config: Any) -> dict[str, Any]:
        from nas.train import TrainConfig

        cfg = TrainConfig.preset(
            config.preset,
            epochs=config.epochs,
            seed=config.seed,
            time_budget_s=limit(config.trial_time),
        )
        return {
            "space": config.space,
            "dataset": config.dataset,
            "config": config_dict(cfg),
            "data_dir": config.data_dir,
            "size": config.size,
        }

    @classmethod
    def max_epochs_of(cls, options: dict[str, Any]) -> int | None:
        return int(options["config"].get("epochs", 0)) or None

    @classmethod
    def prepare_for(cls, options: dict[str, Any]) -> None:
        from nas.data import load_dataset, resolve_dataset

        resolve_dataset(options["dataset"])  # an unknown name: every name a search takes
        load_dataset(
            options["dataset"],
            data_dir=options.get("data_dir"),
            size=options.get("size", "small"),
            seed=options.get("data_seed", 0),
        )

    def __call__(self, arch: Node, on_epoch: Callable[..., Any] | None = None) -> Outcome:
        """Train ``arch``; ``on_epoch(epoch, metrics)`` may stop it early (returns False)."""
        from nas.train import train

        start = time.perf_counter()
        try:
            a = self.space.check(arch)
        except NasError as e:
            return Outcome("invalid", reason=str(e), wall_time=time.perf_counter() - start)
        cfg = self.config
        if str(arch) in self.uncapped:
            cfg = dataclasses.replace(cfg, time_budget_s=None)
        res = train(arch, self.dataset, cfg, on_epoch=on_epoch)
        metrics = {
            "valid": res.valid,
            "test": res.test,
            "best_epoch": res.best_epoch,
            "epochs_done": res.epochs_done,
            "images_per_s": res.images_per_s,
            "train_time_s": res.train_time_s,
        }
        wall = time.perf_counter() - start
        return trained_outcome(
            res.status, res.reason, res.fitness, metrics, res.params, a.flops, wall
        )

    def retrain(self, arch: Node, epochs: int, time_budget_s: float | None, say: Say) -> Retrained:
        """Retrain on the training split for ``epochs`` and score on test."""
        import torch

        from nas.export import checked_exporter, network_metadata
        from nas.tasks import compile_for_task, task_for
        from nas.train import train

        task = task_for(self.dataset)
        cfg = dataclasses.replace(self.config, epochs=epochs, time_budget_s=time_budget_s)
        torch.manual_seed(self.config.seed)
        model = compile_for_task(arch, self.dataset.input_shape, task)
        say(f"retraining the best architecture for {cfg.epochs} epochs ...")
        res = train(model, self.dataset, cfg, task=task)
        final = {
            "status": res.status,
            "reason": res.reason,
            "valid": res.valid,
            "test": res.test,
            "epochs": res.epochs_done,
            "params": res.params,
        }
        ds = self.dataset
        meta = network_metadata(
            arch, self.space_ref, ds.input_shape, ds.num_classes, dataset=ds.name,
            dataset_source=ds.source, normalisation=res.normalisation,
            input_scale=ds.meta.get("input_scale", 1.0),
        )  # fmt: skip
        return Retrained(final, checked_exporter(model, ds.input_shape, meta), tolerance.TOLERANCE)


def train_evaluator(space: str, dataset: str, config: dict[str, Any], **kw: Any) -> TrainEvaluator:
    """Picklable factory for :class:`TrainEvaluator`."""
    return TrainEvaluator(space, dataset, config, **kw)


def config_dict(config: Any) -> dict[str, Any]:
    """A TrainConfig as plain data (to send to worker processes)."""
    return asdict(config)


@EVALUATORS.register()
class TableEvaluator(_Base):
    """Look up the measured accuracy of an NB201 cell instead of training it (table mode).

    ``accuracy`` is NB201's 200-epoch test accuracy (%) on the chosen dataset.
    """

    name = "table"
    priority = 10
    trains = False

    def __init__(self, dataset: str = "cifar10") -> None:
        from nas.benchmarks import TABLE_INPUT_SHAPE, TABLE_NUM_CLASSES, NB201Table
        from nas.space import load_space

        self.table = NB201Table.load()
        self.dataset = dataset
        self.table.optimum(dataset)  # validates the name
        self.space = load_space("nb201").with_input(TABLE_INPUT_SHAPE, TABLE_NUM_CLASSES)

    @classmethod
    def claims(cls, space: str, dataset: str | None) -> bool:
        return str(dataset).partition(":")[0] == "nb201"

    @classmethod
    def protocol(cls, space: str) -> dict[str, Any]:
        """A lookup costs milliseconds: the CPU protocol's trial count, not the trained NB201
        protocol's (nothing else of a protocol applies to a lookup)."""
        return {**super().protocol(space), "trials": CPU_PROTOCOL["trials"]}

    @classmethod
    def options_for(cls, config: Any) -> dict[str, Any]:
        from nas.data import resolve_dataset
        from nas.exceptions import ConfigurationError

        if config.space != "nb201":
            raise ConfigurationError("table mode (--dataset nb201:...) needs --space nb201.")
        resolve_dataset(config.dataset)  # an unknown table is refused before a run folder
        return {"dataset": config.dataset.partition(":")[2]}

    def __call__(self, arch: Node, on_epoch: Callable[..., Any] | None = None) -> Outcome:
        start = time.perf_counter()
        try:
            a = self.space.check(arch)
            acc = self.table.accuracy(arch, self.dataset)
        except NasError as e:
            return Outcome("invalid", reason=str(e), wall_time=time.perf_counter() - start)
        params = a.params + head_params(a.out[0], self.space.num_classes)
        return Outcome(
            "ok",
            {"accuracy": acc, "params": float(params)},
            metrics={"test": {"accuracy": acc}},
            params=params,
            flops=a.flops,
            wall_time=time.perf_counter() - start,
        )

    def retrain(self, arch: Node, epochs: int, time_budget_s: float | None, say: Say) -> Retrained:
        """Table mode trains nothing: the table's accuracy, and the untrained network."""
        from nas.compile import compile_arch
        from nas.export import checked_exporter, network_metadata

        sp = self.space
        model = compile_arch(arch, sp.input_shape, sp.num_classes)
        final = {
            "test_accuracy": self.table.accuracy(arch, self.dataset),
            "source": "NB201 table",
            "exported_weights": "untrained (table mode trains nothing)",
        }
        meta = network_metadata(
            arch, "nb201", sp.input_shape, sp.num_classes, dataset=f"nb201:{self.dataset}",
            weights=final["exported_weights"],
        )  # fmt: skip
        return Retrained(final, checked_exporter(model, sp.input_shape, meta), tolerance.TOLERANCE)


def table_evaluator(dataset: str) -> TableEvaluator:
    """Picklable factory for :class:`TableEvaluator`."""
    return TableEvaluator(dataset)


# The zoo's evaluator lives in its own module, imported when a search asks who claims it.
EVALUATORS.add_lazy("zoo", "nas.searches.zoo_evaluator:ZooEvaluator")
