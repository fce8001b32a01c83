"""The zoo's shared training loop, multi-task loss weighting and annealed gradient noise.

Families differ in their data and losses, not in how an epoch runs: :func:`run_epochs`
takes a batch iterator and a loss function, and handles the optimiser, the time budget,
multi-task weighting (fixed or uncertainty), gradient noise, divergence and the
``on_epoch`` early-stop hook.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from nas.exceptions import ConfigurationError

WEIGHTINGS = ("fixed", "uncertainty")


class LossWeighting(nn.Module):
    """Combine per-task losses into one: fixed weights, or uncertainty weighting.

    Uncertainty weighting (Kendall, Gal & Cipolla, CVPR 2018) learns one log-variance
    ``s_i`` per task and minimises ``sum_i exp(-s_i) * L_i + s_i``, so a noisy or large
    task loss cannot drown the others.
    """

    def __init__(
        self, n_tasks: int, mode: str = "fixed", weights: Sequence[float] | None = None
    ) -> None:
        super().__init__()
        if mode not in WEIGHTINGS:
            raise ConfigurationError(
                f"unknown loss weighting {mode!r}; choose {' or '.join(WEIGHTINGS)}."
            )
        w = list(weights) if weights is not None else [1.0] * n_tasks
        if len(w) != n_tasks or any(x < 0 for x in w):
            raise ConfigurationError(f"need {n_tasks} non-negative task weights, got {w}.")
        self.mode = mode
        self.register_buffer("weights", torch.tensor(w, dtype=torch.float32))
        self.log_vars = nn.Parameter(torch.zeros(n_tasks)) if mode == "uncertainty" else None

    def forward(self, losses: Sequence[torch.Tensor]) -> torch.Tensor:
        """The combined scalar loss."""
        stacked = torch.stack([torch.as_tensor(x).reshape(()) for x in losses])
        if self.log_vars is None:
            return (self.weights * stacked).sum()
        return (torch.exp(-self.log_vars) * stacked + self.log_vars).sum()

    def task_weights(self) -> list[float]:
        """The current effective weight of each task."""
        if self.log_vars is None:
            return self.weights.tolist()
        return torch.exp(-self.log_vars.detach()).tolist()


class GradNoise:
    """Annealed Gaussian gradient noise (Neelakantan et al., 2015).

    At step ``t`` every gradient gets noise of variance ``eta / (1 + t) ** gamma``; it helps
    deep or recurrent nets escape poor early plateaus. ``eta=0`` disables it.
    """

    def __init__(self, eta: float = 0.0, gamma: float = 0.55, seed: int = 0) -> None:
        if eta < 0:
            raise ConfigurationError(f"gradient-noise eta must be >= 0, got {eta}.")
        self.eta, self.gamma, self.t = eta, gamma, 0
        self.gen = torch.Generator().manual_seed(seed)

    def variance(self) -> float:
        """The noise variance at the current step."""
        return self.eta / (1 + self.t) ** self.gamma

    def __call__(self, params: Iterable[nn.Parameter]) -> None:
        """Add noise to the gradients of ``params`` and advance the step."""
        if self.eta > 0:
            std = math.sqrt(self.variance())
            for p in params:
                if p.grad is not None:
                    noise = torch.randn(p.grad.shape, generator=self.gen) * std
                    p.grad.add_(noise.to(p.grad.device, p.grad.dtype))
        self.t += 1


def parse_task_weights(text: str, n_tasks: int) -> list[float] | None:
    """``"1,3"`` -> [1.0, 3.0] (None for ""), checked against the number of tasks.

    Raises:
        ConfigurationError: not numbers, negative, or not one per task.
    """
    if not text:
        return None
    try:
        w = [float(v) for v in text.split(",")]
    except ValueError:
        raise ConfigurationError(f"task_weights must be numbers like 1,3, got {text!r}.") from None
    if len(w) != n_tasks or any(x < 0 for x in w):
        raise ConfigurationError(
            f"task_weights needs {n_tasks} non-negative numbers, got {text!r}."
        )
    return w


def check_options(weighting: str = "fixed", grad_noise: float = 0.0) -> None:
    """One-line errors for the loop's options given in a family's config."""
    if weighting not in WEIGHTINGS:
        raise ConfigurationError(
            f"weighting must be {' or '.join(WEIGHTINGS)}, but got weighting={weighting!r}."
        )
    if grad_noise < 0:
        raise ConfigurationError(f"grad_noise must be >= 0, but got grad_noise={grad_noise}.")


@dataclass
class FitConfig:
    """Optimisation settings shared by the zoo trainers."""

    epochs: int = 10
    lr: float = 1e-3
    weight_decay: float = 0.0
    time_budget_s: float | None = None
    grad_clip: float | None = 1.0
    grad_noise: float = 0.0
    weighting: str = "fixed"
    task_weights: list[float] | None = None
    cosine: bool = True


@dataclass
class FitLog:
    """What happened during :func:`run_epochs`."""

    epochs: int = 0
    seconds: float = 0.0
    status: str = "ok"
    reason: str = ""
    history: list[dict[str, float]] = field(default_factory=list)
    task_weights: list[float] | None = None


def run_epochs(
    model: nn.Module,
    batches: Callable[[int], Iterable[Any]],
    loss_fn: Callable[[nn.Module, Any], torch.Tensor | Sequence[torch.Tensor]],
    cfg: FitConfig,
    evaluate: Callable[[], dict[str, float]] | None = None,
    on_epoch: Callable[[int, dict[str, float]], Any] | None = None,
    n_tasks: int = 1,
    seed: int = 0,
) -> FitLog:
    """Train ``model`` for ``cfg.epochs`` (or until ``cfg.time_budget_s`` runs out).

    ``batches(epoch)`` yields the epoch's batches; ``loss_fn(model, batch)`` returns a loss,
    or one loss per task (combined by ``cfg.weighting``). ``evaluate()`` gives the
    validation metrics passed to ``on_epoch``; ``on_epoch`` returning False stops early.
    A non-finite loss stops training with status ``diverged``.
    """
    weighting = LossWeighting(n_tasks, cfg.weighting, cfg.task_weights)
    params = [p for p in model.parameters() if p.requires_grad] + list(weighting.parameters())
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = (
        torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(1, cfg.epochs)) if cfg.cosine else None
    )
    noise = GradNoise(cfg.grad_noise, seed=seed)
    log, t0 = FitLog(), time.perf_counter()
    for epoch in range(cfg.epochs):
        model.train()
        total, count = 0.0, 0
        for batch in batches(epoch):
            out = loss_fn(model, batch)
            loss = weighting(out) if isinstance(out, list | tuple) else out
            if not torch.isfinite(loss):
                log.status, log.reason = "diverged", f"non-finite loss in epoch {epoch + 1}"
                break
            opt.zero_grad(set_to_none=True)
            loss.backward()
            noise(params)
            if cfg.grad_clip:
                nn.utils.clip_grad_norm_(params, cfg.grad_clip)
            opt.step()
            total, count = total + float(loss.detach()), count + 1
            if cfg.time_budget_s and time.perf_counter() - t0 > cfg.time_budget_s:
                break
        if log.status != "ok":
            break
        if sched is not None:
            sched.step()
        log.epochs = epoch + 1
        entry = {"train_loss": total / max(1, count)}
        if evaluate is not None:
            model.eval()
            with torch.no_grad():
                entry.update(evaluate())
        log.history.append(entry)
        if on_epoch is not None and on_epoch(epoch, entry) is False:
            log.status, log.reason = "stopped", f"stopped after epoch {epoch + 1}"
            break
        if cfg.time_budget_s and time.perf_counter() - t0 > cfg.time_budget_s:
            if epoch + 1 < cfg.epochs:
                log.status = "timeout"
                log.reason = f"time budget {cfg.time_budget_s:g} s used after {epoch + 1} epochs"
            break
    log.seconds = time.perf_counter() - t0
    log.task_weights = weighting.task_weights() if n_tasks > 1 else None
    model.eval()
    return log


def minibatches(n: int, batch_size: int, epoch: int, seed: int = 0) -> list[torch.Tensor]:
    """Shuffled index batches over ``n`` items for ``epoch`` (deterministic given the seed)."""
    gen = torch.Generator().manual_seed(seed * 100_003 + epoch)
    perm = torch.randperm(n, generator=gen)
    return [perm[i : i + batch_size] for i in range(0, n, batch_size)]
