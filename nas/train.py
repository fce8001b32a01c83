"""The einspace/NB201 trainer: a network + a dataset + a config -> a :class:`TrainResult`.

Fitness is defined once here: the task's primary metric on the valid split after the LAST
epoch (the best-valid epoch is recorded too, never used silently). The steps, budgets,
divergence and the ``on_epoch`` hook are the shared loop's (:mod:`nas.loop`); this module
adds the data feed (normalisation, resident splits, batch sizes that fit), compiling an
architecture for its task, and the test evaluation. Divergence, out-of-memory and torch
errors end as failed results, so one bad architecture cannot kill a search.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from nas.compile import count_params
from nas.exceptions import ConfigurationError, NasError, UnknownNameError
from nas.feed import Feed, channel_stats, fit_batches, module_activation, resolve_device
from nas.loop import (
    OK_STATUSES,
    RUN_ERRORS,
    LoopConfig,
    OnEpoch,
    StopTraining,
    budget_clock,
    failure,
    run_loop,
)
from nas.tasks import Task, compile_for_task, task_for

if TYPE_CHECKING:
    from nas.data.base import Dataset
    from nas.dsl.arch import Node

MAX_EPOCHS = 100_000  # more epochs than any protocol here needs by three orders of magnitude

__all__ = ["OK_STATUSES", "PRESETS", "StopTraining", "TrainConfig", "TrainResult", "train"]


@dataclass
class TrainConfig:
    """How to train one network (see :data:`PRESETS` for named protocols)."""

    # Optimiser: "sgd" (heavy-ball momentum) or "adamw".
    optimizer: str = "sgd"
    lr: float = 0.04
    momentum: float = 0.9  # SGD only
    weight_decay: float = 3e-4
    # Schedule: "cosine" anneals lr to 0 over `epochs`, stepped per "epoch" or per "step".
    schedule: str = "cosine"
    schedule_unit: str = "epoch"
    label_smoothing: float = 0.0  # passed to the task (classification)
    # Budgets: whichever ends first. The time budget counts training steps and per-epoch
    # validation, not data preparation or the final test evaluation; it stops cleanly. It
    # is CPU seconds of this process on a CPU (machine load cannot change it), wall seconds
    # on a GPU (nas.loop.budget_clock).
    epochs: int = 8
    time_budget_s: float | None = None
    batch_size: int = 256
    eval_batch_size: int = 1024
    eval_every: int = 1  # validate after every n-th epoch (0: only after training)
    # Reproducibility: seeds torch, numpy, random and the shuffling generator.
    seed: int = 0
    # Device and speed. AMP (bfloat16) and channels-last apply on CUDA only.
    device: str = "auto"  # "auto" (cuda if available), "cpu", "cuda", "cuda:1"
    amp: bool = True
    channels_last: bool = True
    compile: bool = False  # torch.compile the model
    threads: int | None = None  # CPU torch threads (None: nas.runtime default)
    # Data: whole normalised splits stay resident (on the GPU, or as one CPU tensor) when
    # they fit; otherwise batches are read from the arrays.
    normalise: bool = True  # per-channel, statistics of the train split only
    max_resident_bytes: int | None = None  # None: half the free GPU memory / 2 GiB on CPU
    # Activation memory one step may hold (estimated from the architecture's analysis);
    # batch sizes are halved until it fits. None: ACTIVATION_BUDGET on CPU, no limit on CUDA.
    max_activation_bytes: int | None = None

    def __post_init__(self) -> None:
        choices = {"optimizer": ("sgd", "adamw"), "schedule": ("cosine", "constant")}
        for name, allowed in {**choices, "schedule_unit": ("epoch", "step")}.items():
            if getattr(self, name) not in allowed:
                raise ConfigurationError(
                    f"{name} must be one of {', '.join(allowed)}, got {getattr(self, name)!r}."
                )
        for name in ("lr", "epochs", "batch_size", "eval_batch_size", "time_budget_s"):
            if getattr(self, name) is not None and not getattr(self, name) > 0:
                raise ConfigurationError(f"{name} must be positive, got {getattr(self, name)}.")
        if self.eval_every < 0:
            raise ConfigurationError(f"eval_every must be >= 0, got {self.eval_every}.")
        if self.epochs > MAX_EPOCHS:  # a typo, not a plan: it would never end
            raise ConfigurationError(
                f"epochs must be at most {MAX_EPOCHS:,}, got {self.epochs:,}."
            )

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> TrainConfig:
        """A named protocol from :data:`PRESETS`, with some fields overridden."""
        if name not in PRESETS:
            raise UnknownNameError(
                f"unknown training preset {name!r}; known: {', '.join(sorted(PRESETS))}."
            )
        known = {f.name for f in fields(cls)}
        bad = sorted(set(overrides) - known)
        if bad:
            raise ConfigurationError(f"unknown training option(s): {', '.join(bad)}.")
        return replace(PRESETS[name], **overrides)


PRESETS: dict[str, TrainConfig] = {
    # einspace reference (Unseen NAS configs): search-time fitness training ...
    "einspace": TrainConfig(optimizer="sgd", lr=0.04, momentum=0.9, weight_decay=3e-4, epochs=8),
    # ... and the final retraining of the best architecture.
    "einspace-final": TrainConfig(lr=0.04, momentum=0.9, weight_decay=3e-4, epochs=64),
    # CPU smoke runs.
    "quick": TrainConfig(optimizer="adamw", lr=1e-3, weight_decay=1e-2, epochs=2, batch_size=128),
}


@dataclass
class TrainResult:
    """What one training run produced; ``to_dict()`` is JSON-serialisable."""

    status: str  # see OK_STATUSES
    reason: str = ""
    primary_metric: str = ""
    fitness: float | None = None  # valid[primary_metric] after the last epoch
    valid: dict[str, float] = field(default_factory=dict)  # final weights
    test: dict[str, float] = field(default_factory=dict)  # final weights
    best_epoch: float | None = None  # epoch with the best valid primary metric
    best_valid: dict[str, float] = field(default_factory=dict)
    history: list[dict[str, float]] = field(default_factory=list)  # one entry per validation
    epochs_requested: int = 0
    epochs_done: float = 0  # fractional when a time budget stopped mid-epoch
    steps_done: int = 0
    params: int = 0
    flops: int | None = None  # backbone MACs per sample (nas.analysis), if an arch was given
    train_time_s: float = 0.0
    eval_time_s: float = 0.0
    images_per_s: float = 0.0  # training throughput (forward + backward + step)
    batch_size: int = 0  # the training batch actually used (may be below the config's)
    device: str = ""
    normalisation: dict[str, list[float]] = field(default_factory=dict)  # mean/std used
    arch: str | None = None
    task: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """Whether the run's metrics can be used (finished, timed out or stopped early)."""
        return self.status in OK_STATUSES

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for JSON."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainResult:
        """Inverse of :meth:`to_dict`."""
        return cls(**data)

    def to_json(self) -> str:
        """The record as one JSON document (non-finite floats become null)."""
        return json.dumps(_finite(self.to_dict()))


def _finite(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    return obj


def _seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def train(
    model: nn.Module | Node | str,
    dataset: Dataset,
    config: TrainConfig | None = None,
    *,
    task: Task | None = None,
    on_epoch: OnEpoch | None = None,
) -> TrainResult:
    """Train ``model`` on ``dataset.train``, validate on ``valid``, evaluate on ``test``.

    ``model`` is a module, or an architecture (string or node) compiled here with the task's
    head after seeding (so the seed fixes the initial weights too). ``on_epoch(epoch,
    metrics)`` is called after every epoch; returning False or raising :class:`StopTraining`
    ends the run with status ``"stopped"``. Divergence, out-of-memory and torch errors come
    back as failed records; only user mistakes (:class:`NasError`) raise.
    """
    from nas import runtime

    cfg = config or TrainConfig()
    task = task or task_for(dataset, label_smoothing=cfg.label_smoothing)
    device = resolve_device(cfg.device)
    if device.type == "cpu":
        runtime.configure(cfg.threads)
    _seed(cfg.seed)
    arch, flops = None, None
    if not isinstance(model, nn.Module):
        from nas.analysis import analyse
        from nas.dsl import parse_arch
        from nas.ops.spec import Spec

        node = parse_arch(model.strip()) if isinstance(model, str) else model
        mode = "im" if len(dataset.input_shape) == 3 else "col"
        a = analyse(node, (Spec(tuple(dataset.input_shape), mode),))
        flops = a.flops
        model, arch = compile_for_task(node, dataset.input_shape, task, mode), str(node)
        cfg = fit_batches(cfg, a.activation, device)
    elif cfg.max_activation_bytes is not None or device.type == "cpu":  # a given module
        try:
            act = module_activation(model, tuple(dataset.input_shape))
        except RUN_ERRORS:  # the training itself fails and records why
            act = 0
        cfg = fit_batches(cfg, act, device)
    res = TrainResult(
        status="ok",
        primary_metric=task.primary_metric,
        epochs_requested=cfg.epochs,
        params=count_params(model),
        flops=flops,
        device=str(device),
        arch=arch,
        task=task.describe(),
        config=asdict(cfg),
        batch_size=cfg.batch_size,
    )
    try:
        _Run(model, dataset, cfg, task, device, res, on_epoch).fit()
    except NasError:
        raise
    except RUN_ERRORS as e:  # the data feed or the test evaluation
        res.status, res.reason = failure(e)
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return res


class _Run:
    """The state of one training run (kept out of ``train`` so failures free it at once)."""

    def __init__(
        self,
        model: nn.Module,
        dataset: Dataset,
        cfg: TrainConfig,
        task: Task,
        device: torch.device,
        res: TrainResult,
        on_epoch: OnEpoch | None,
    ) -> None:
        self.model, self.ds, self.cfg, self.task, self.device = model, dataset, cfg, task, device
        self.res, self.on_epoch = res, on_epoch
        self.cuda = device.type == "cuda"
        self.amp = self.cuda and cfg.amp and torch.cuda.is_bf16_supported()
        self.eval_time, self.seen = 0.0, 0
        self.gen = torch.Generator().manual_seed(cfg.seed)  # shuffling
        self.clock = budget_clock(device)  # what the time budget is measured on
        self.t0 = self.clock()  # reset when training starts

    def autocast(self) -> Any:
        return torch.autocast("cuda", dtype=torch.bfloat16) if self.amp else nullcontext()

    def prepare(self) -> tuple[Feed, Feed, Feed]:
        """Normalisation statistics of the train split; the splits resident if they fit."""
        cfg, ds = self.cfg, self.ds
        c = ds.train.x.shape[1 if ds.train.x.ndim == 4 else -1]
        norm = channel_stats(ds.train.x) if cfg.normalise else (np.zeros(c), np.ones(c))
        self.res.normalisation = {"mean": norm[0].tolist(), "std": norm[1].tolist()}
        limit = cfg.max_resident_bytes
        if limit is None:
            limit = torch.cuda.mem_get_info(self.device)[0] // 2 if self.cuda else 2**31
        splits = (ds.train, ds.valid, ds.test)
        resident = sum(s.x.size * 4 for s in splits) <= limit
        cl = self.cuda and cfg.channels_last
        return tuple(Feed(s, self.task, norm, self.device, resident, cl) for s in splits)

    def eval_seconds(self) -> float | None:
        """How long one evaluation may take: the trial's time left, and once the budget is
        spent a grace of a quarter of it (at least 2 s), so that a slow network's partial
        metrics cannot take longer than its training did; None without a budget."""
        budget = self.cfg.time_budget_s
        if budget is None:
            return None
        return max(2.0, 0.25 * budget, budget - (self.clock() - self.t0))

    def evaluate(self, net: nn.Module, data: Feed) -> dict[str, float]:
        """Metrics on ``data``; when :meth:`eval_seconds` runs out first, on the batches
        evaluated by then, with ``images`` = their number. Batch j holds samples j, j+k,
        j+2k, ... (k batches), so any first batches sample the whole split, sorted or not."""
        t, bs, limit = self.clock(), self.cfg.eval_batch_size, self.eval_seconds()
        net.eval()
        k = -(-data.n // bs)
        outs: list[torch.Tensor] = []
        with torch.no_grad(), self.autocast():
            for j in range(k):
                outs.append(net(data.batch(slice(j, data.n, k))[0]).float().cpu())
                if limit is not None and self.clock() - t >= limit:
                    break
        order = torch.cat([torch.arange(j, data.n, k) for j in range(len(outs))])
        metrics = self.task.metrics(torch.cat(outs), data.y.cpu()[order])
        if len(order) < data.n:
            metrics["images"] = len(order)
        self.eval_time += self.clock() - t
        return metrics

    def batches(self, data: Feed, per_epoch: int) -> Callable[[int], Iterator[Any]]:
        """The loop's ``batches(epoch)``: one shuffled pass, a trailing single sample dropped."""
        bs = self.cfg.batch_size

        def epoch_batches(epoch: int) -> Iterator[Any]:
            perm = torch.randperm(data.n, generator=self.gen)
            perm = perm.to(self.device) if data.x is not None else perm  # one copy per epoch
            for s in range(per_epoch):
                yield data.batch(perm[s * bs : (s + 1) * bs])

        return epoch_batches

    def loss(self, net: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        xb, yb = batch
        with self.autocast():
            loss = self.task.loss(net(xb), yb)
        self.seen += len(yb)
        return loss

    def loop_config(self) -> LoopConfig:
        """The trainer's config as the shared loop's (no clipping, noise or task weights)."""
        cfg = self.cfg
        return LoopConfig(
            epochs=cfg.epochs,
            optimizer=cfg.optimizer,
            lr=cfg.lr,
            momentum=cfg.momentum,
            weight_decay=cfg.weight_decay,
            schedule=cfg.schedule,
            schedule_unit=cfg.schedule_unit,
            time_budget_s=cfg.time_budget_s,
            eval_every=cfg.eval_every,
            check_every=16 if self.cuda else 1,  # host syncs for the NaN check
            seed=cfg.seed,
        )

    def fit(self) -> None:
        cfg, res, task = self.cfg, self.res, self.task
        train_d, valid_d, test_d = self.prepare()
        cl = self.cuda and cfg.channels_last and train_d.arr.ndim == 4
        model = self.model.to(self.device, memory_format=torch.channels_last if cl else None)
        net = torch.compile(model) if cfg.compile else model
        # A trailing batch of one sample is dropped (BatchNorm cannot train on it).
        per_epoch = max(1, train_d.n // cfg.batch_size + (train_d.n % cfg.batch_size >= 2))

        def validate() -> dict[str, float]:
            return {f"valid_{k}": v for k, v in self.evaluate(net, valid_d).items()}

        self.t0 = self.clock()
        loop = run_loop(
            model,
            self.batches(train_d, per_epoch),
            self.loss,
            self.loop_config(),
            validate=validate,
            on_epoch=self.on_epoch,
            steps_per_epoch=per_epoch,
            net=net,
        )
        res.status, res.reason, res.history = loop.status, loop.reason, loop.history
        res.epochs_done, res.steps_done = loop.epochs_done, loop.steps_done
        res.train_time_s = loop.train_time_s
        res.images_per_s = self.seen / max(res.train_time_s, 1e-9)
        for entry in res.history:  # the best epoch by the validation primary metric
            valid = {k[6:]: v for k, v in entry.items() if k.startswith("valid_")}
            score, best = valid.get(task.primary_metric), res.best_valid.get(task.primary_metric)
            if score is not None and (best is None or task.better(score, best)):
                res.best_epoch, res.best_valid = entry["epoch"], valid
            res.valid = valid
        if not loop.ok:
            return
        res.fitness = res.valid.get(task.primary_metric)
        res.test = self.evaluate(net, test_d)
        res.eval_time_s = self.eval_time
        if not all(math.isfinite(v) for v in res.valid.values()):
            res.status, res.reason, res.fitness = (
                "diverged",
                "non-finite validation metrics.",
                None,
            )
