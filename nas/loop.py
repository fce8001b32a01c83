"""The one step/epoch training loop, shared by the einspace trainer and the zoo's families.

A client supplies the model, ``batches(epoch)`` (the epoch's batches), ``loss_fn(model,
batch)`` (a loss, or one loss per task) and ``validate()`` (metrics of the current
weights). The loop owns the rest: the optimiser and its schedule, multi-task loss weighting,
gradient noise and clipping, the time budget (checked before every step but a run's first,
so a timed-out run still has trained weights), divergence, the ``on_epoch`` hook and
:class:`StopTraining`, the history, and the statuses with their reasons:

* ``ok``: every epoch ran; ``timeout``: the time budget ended it; ``stopped``: ``on_epoch``
  ended it (these three have usable metrics, :data:`OK_STATUSES`);
* ``diverged``: a non-finite training loss; ``oom``: out of memory; ``failed``: a torch,
  value or memory error (one-line reason). A :class:`~nas.exceptions.NasError` is a user
  mistake and propagates.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from nas.exceptions import ConfigurationError, NasError
from nas.regularise import GradNoise, LossWeighting

# A run ends "ok", "timeout" or "stopped" (metrics usable), or "diverged", "oom" or "failed".
OK_STATUSES = ("ok", "timeout", "stopped")
# Exceptions of one run that make it a failed record instead of propagating.
RUN_ERRORS = (RuntimeError, ValueError, FloatingPointError, MemoryError)

# A run stops early when its pace puts all epochs over this many times its time budget.
COURSE_MARGIN = 1.1

Loss = torch.Tensor | Sequence[torch.Tensor]
OnEpoch = Callable[[int, dict[str, float]], "bool | None"]


class StopTraining(Exception):
    """Raised by an ``on_epoch`` callback to end a run early (status ``"stopped"``)."""


@dataclass
class LoopConfig:
    """How the loop optimises: optimiser, schedule, budgets, gradient and loss aids."""

    epochs: int
    optimizer: str = "adamw"  # "sgd" (heavy-ball momentum) or "adamw"
    lr: float = 1e-3
    momentum: float = 0.9  # SGD only
    weight_decay: float = 0.0
    schedule: str = "cosine"  # "cosine" (to 0 over all epochs) or "constant"
    schedule_unit: str = "epoch"  # cosine stepped per "epoch" or per "step"
    # training + per-epoch validation, in seconds of budget_clock (CPU seconds on a CPU)
    time_budget_s: float | None = None
    eval_every: int = 1  # validate after every n-th epoch (0: only after training)
    grad_clip: float | None = None  # max global gradient norm
    grad_noise: float = 0.0  # eta of GradNoise (0: off)
    weighting: str = "fixed"  # how per-task losses combine: "fixed" or "uncertainty"
    task_weights: list[float] | None = None
    n_tasks: int = 1
    check_every: int = 1  # steps between host syncs of the divergence check
    seed: int = 0  # of the gradient noise

    def __post_init__(self) -> None:
        choices = {
            "optimizer": ("sgd", "adamw"),
            "schedule": ("cosine", "constant"),
            "schedule_unit": ("epoch", "step"),
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ConfigurationError(
                    f"{name} must be one of {', '.join(allowed)}, got {getattr(self, name)!r}."
                )


@dataclass
class LoopResult:
    """What one run of the loop did; its clients copy it into their own records."""

    status: str = "ok"  # see the module docstring
    reason: str = ""
    epochs_done: float = 0  # fractional when a time budget stopped mid-epoch
    steps_done: int = 0
    history: list[dict[str, float]] = field(default_factory=list)  # one entry per validation
    train_time_s: float = 0.0  # wall time less validation
    eval_time_s: float = 0.0  # validation inside the loop
    seconds: float = 0.0  # wall time of the whole loop
    task_weights: list[float] | None = None  # the effective task weights (several tasks)

    @property
    def ok(self) -> bool:
        """Whether the run's metrics can be used (finished, timed out or stopped early)."""
        return self.status in OK_STATUSES

    @property
    def epochs(self) -> int:
        """Epochs begun (a partial epoch counts), as the zoo reports them."""
        return math.ceil(self.epochs_done)


def budget_clock(device: torch.device) -> Callable[[], float]:
    """The clock a training time budget is measured on: the process's CPU time on a CPU,
    so that other jobs on the machine cannot change which runs finish (one torch thread
    keeps it equal to compute time); wall time on an accelerator, whose work the CPU only
    waits for."""
    return time.process_time if device.type == "cpu" else time.perf_counter


def failure(e: BaseException) -> tuple[str, str]:
    """``("oom" or "failed", one-line reason)`` for an exception that ended a run."""
    from nas.feed import is_oom

    reason = f"{type(e).__name__}: {(str(e).splitlines() or [''])[0]}"[:300]
    return ("oom" if is_oom(e) else "failed"), reason


def make_optimiser(
    params: list[nn.Parameter], cfg: LoopConfig, steps_per_epoch: int | None
) -> tuple[torch.optim.Optimizer, Any]:
    """The optimiser and its learning-rate schedule (stepped per epoch or per step)."""
    if cfg.optimizer == "sgd":
        opt: torch.optim.Optimizer = torch.optim.SGD(
            params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay
        )
    else:
        opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.schedule == "constant":
        return opt, torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
    if cfg.schedule_unit == "step" and steps_per_epoch is None:
        raise ConfigurationError("a per-step schedule needs the number of steps per epoch.")
    total = cfg.epochs * (steps_per_epoch if cfg.schedule_unit == "step" else 1)
    return opt, torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(1, total))


def run_loop(
    model: nn.Module,
    batches: Callable[[int], Iterable[Any]],
    loss_fn: Callable[[nn.Module, Any], Loss],
    cfg: LoopConfig,
    *,
    validate: Callable[[], dict[str, float]] | None = None,
    on_epoch: OnEpoch | None = None,
    steps_per_epoch: int | None = None,
    net: nn.Module | None = None,
) -> LoopResult:
    """Train ``model`` for ``cfg.epochs`` or until the time budget; never raises for a run.

    ``loss_fn(net, batch)`` runs on ``net`` (``model`` unless a compiled wrapper is given).
    ``validate()`` runs under ``no_grad`` with the model in eval mode; its metrics join the
    epoch's history entry (``epoch``, ``steps``, ``train_loss``, ``lr``, ``elapsed_s``).
    ``on_epoch(epoch, entry)`` (1-based) returning False or raising :class:`StopTraining`
    stops the run. The last history entry always holds the final weights' metrics (except
    after divergence). ``steps_per_epoch`` is needed by a per-step schedule and makes a
    partial epoch count fractionally.
    """
    res, start = LoopResult(), time.perf_counter()
    try:
        _Loop(model, net or model, batches, loss_fn, cfg, validate, on_epoch, res).run(
            steps_per_epoch
        )
    except NasError:
        raise
    except RUN_ERRORS as e:
        res.status, res.reason = failure(e)
        res.seconds = time.perf_counter() - start
    model.eval()
    return res


class _Loop:
    """The state of one run (kept out of ``run_loop`` so a failure frees it at once)."""

    def __init__(
        self,
        model: nn.Module,
        net: nn.Module,
        batches: Callable[[int], Iterable[Any]],
        loss_fn: Callable[[nn.Module, Any], Loss],
        cfg: LoopConfig,
        validate: Callable[[], dict[str, float]] | None,
        on_epoch: OnEpoch | None,
        res: LoopResult,
    ) -> None:
        self.model, self.net, self.batches, self.loss_fn = model, net, batches, loss_fn
        self.cfg, self.validate_fn, self.on_epoch, self.res = cfg, validate, on_epoch, res
        self.t0 = self.c0 = 0.0
        self.clock: Callable[[], float] = time.process_time

    def out_of_time(self) -> bool:
        budget = self.cfg.time_budget_s
        return budget is not None and self.clock() - self.c0 >= budget

    def on_course_over(self, epochs_done: int) -> float | None:
        """The budget-clock seconds all epochs will take at this run's pace, when that is
        clearly over the time budget (by :data:`COURSE_MARGIN`), else None: a run that cannot
        finish stops after an epoch instead of spending the whole budget first."""
        budget, spent = self.cfg.time_budget_s, self.clock() - self.c0
        if budget is None or not epochs_done:
            return None
        total = spent * self.cfg.epochs / epochs_done
        return total if total > COURSE_MARGIN * budget else None

    def run(self, per_epoch: int | None) -> None:
        cfg, res = self.cfg, self.res
        params = [p for p in self.model.parameters() if p.requires_grad]
        device = params[0].device if params else torch.device("cpu")
        weighting = LossWeighting(cfg.n_tasks, cfg.weighting, cfg.task_weights).to(device)
        params += list(weighting.parameters())
        opt, sched = make_optimiser(params, cfg, per_epoch)
        noise = GradNoise(cfg.grad_noise, seed=cfg.seed)
        self.clock = budget_clock(device)
        self.t0, self.c0, stop, entry = time.perf_counter(), self.clock(), "", {}
        course: float | None = None
        for epoch in range(cfg.epochs):
            stop, entry = self.epoch(epoch, per_epoch, params, weighting, opt, sched, noise)
            entry["elapsed_s"] = time.perf_counter() - self.t0
            if stop:
                break
            if cfg.eval_every and (epoch + 1) % cfg.eval_every == 0:
                self.validate(entry)
            stop = self.callback(epoch + 1, entry)
            if not stop and epoch + 1 < cfg.epochs:
                course = self.on_course_over(epoch + 1)
                if course is not None or self.out_of_time():
                    stop = "timeout"
            if stop:
                break
        res.train_time_s = time.perf_counter() - self.t0 - res.eval_time_s
        res.status = stop or "ok"
        res.task_weights = weighting.task_weights() if cfg.n_tasks > 1 else None
        if stop != "diverged":
            if stop == "timeout":
                unit = "CPU s" if self.clock is time.process_time else "s"
                res.reason = (
                    f"time budget of {cfg.time_budget_s:g} {unit} reached after "
                    f"{res.epochs_done:.3g} of {cfg.epochs} epochs."
                    if course is None
                    else f"stopped after {res.epochs_done:.3g} of {cfg.epochs} epochs: on "
                    f"course for {course:.0f} {unit}, over the time budget of "
                    f"{cfg.time_budget_s:g} {unit}."
                )
            if not res.history or res.history[-1]["steps"] != res.steps_done:
                self.validate(entry)
        res.seconds = time.perf_counter() - self.t0

    def epoch(
        self,
        epoch: int,
        per_epoch: int | None,
        params: list[nn.Parameter],
        weighting: LossWeighting,
        opt: torch.optim.Optimizer,
        sched: Any,
        noise: GradNoise,
    ) -> tuple[str, dict[str, float]]:
        """One pass over the epoch's batches: ("", entry), or "diverged"/"timeout" and entry."""
        cfg, res = self.cfg, self.res
        self.net.train()
        running, count, lr, stop = None, 0, opt.param_groups[0]["lr"], ""
        for batch in self.batches(epoch):
            # One step is never interrupted; a run's first step always runs.
            if (count or epoch) and self.out_of_time():
                stop = "timeout"
                break
            out = self.loss_fn(self.net, batch)
            loss = weighting(out) if isinstance(out, list | tuple) else out
            opt.zero_grad(set_to_none=True)
            loss.backward()
            noise(params)
            if cfg.grad_clip:
                nn.utils.clip_grad_norm_(params, cfg.grad_clip)
            opt.step()
            lr = opt.param_groups[0]["lr"]
            if cfg.schedule_unit == "step":
                sched.step()
            part = loss.detach().float()
            running = part if running is None else running + part
            count, res.steps_done = count + 1, res.steps_done + 1
            done = per_epoch is not None and count >= per_epoch
            res.epochs_done = epoch + count / per_epoch if per_epoch and not done else epoch + 1
            if count % cfg.check_every == 0 and not math.isfinite(running.item()):
                stop = "diverged"
                break
        if not stop and running is not None and not math.isfinite(running.item()):
            stop = "diverged"
        if stop == "diverged":
            res.reason = f"non-finite training loss in epoch {epoch + 1}."
        if cfg.schedule_unit == "epoch" and count:
            sched.step()
        mean = running.item() / count if running is not None else math.nan
        return stop, {
            "epoch": res.epochs_done,
            "steps": res.steps_done,
            "train_loss": mean,
            "lr": lr,
        }

    def validate(self, entry: dict[str, float]) -> None:
        """Validate the current weights into ``entry`` and append it to the history."""
        t = time.perf_counter()
        if self.validate_fn is not None:
            self.net.eval()
            with torch.no_grad():
                entry.update(self.validate_fn())
        self.res.eval_time_s += time.perf_counter() - t
        self.res.history.append(entry)

    def callback(self, epoch: int, entry: dict[str, float]) -> str:
        """Ask ``on_epoch`` whether to go on: "" or "stopped"."""
        default = f"stopped by callback after epoch {epoch}."
        try:
            if self.on_epoch is None or self.on_epoch(epoch, entry) is not False:
                return ""
            self.res.reason = default
        except StopTraining as e:
            self.res.reason = str(e) or default
        return "stopped"
