"""The zoo's face of the shared training loop (:mod:`nas.loop`) and its config helpers.

Families differ in their data and losses, not in how an epoch runs: :func:`run_epochs`
maps a family's :class:`FitConfig` (AdamW, cosine per epoch, gradient clipping, noise and
multi-task weighting) onto :func:`nas.loop.run_loop`, which owns the optimiser, the time
budget, divergence, failures, the ``on_epoch`` hook and the statuses.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from nas.exceptions import ConfigurationError
from nas.loop import LoopConfig, LoopResult, OnEpoch, run_loop
from nas.regularise import WEIGHTINGS

__all__ = [
    "WEIGHTINGS",
    "FitConfig",
    "FitLog",
    "check_options",
    "minibatches",
    "parse_task_weights",
    "run_epochs",
]

#: What :func:`run_epochs` returns: the loop's record (``epochs``: epochs begun).
FitLog = LoopResult


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


def run_epochs(
    model: nn.Module,
    batches: Callable[[int], Iterable[Any]],
    loss_fn: Callable[[nn.Module, Any], torch.Tensor | Sequence[torch.Tensor]],
    cfg: FitConfig,
    evaluate: Callable[[], dict[str, float]] | None = None,
    on_epoch: OnEpoch | None = None,
    n_tasks: int = 1,
    seed: int = 0,
) -> FitLog:
    """Train ``model`` for ``cfg.epochs`` (or until ``cfg.time_budget_s`` runs out).

    ``batches(epoch)`` yields the epoch's batches; ``loss_fn(model, batch)`` returns a loss,
    or one loss per task (combined by ``cfg.weighting``). ``evaluate()`` gives the
    validation metrics passed to ``on_epoch(epoch, entry)`` (1-based); returning False
    stops early. Statuses and reasons are the loop's: a budget that ends training is
    ``timeout``, a non-finite loss ``diverged``, a torch error ``failed`` or ``oom``.
    """
    loop = LoopConfig(
        epochs=cfg.epochs,
        optimizer="adamw",
        lr=cfg.lr,
        weight_decay=cfg.weight_decay,
        schedule="cosine" if cfg.cosine else "constant",
        time_budget_s=cfg.time_budget_s,
        grad_clip=cfg.grad_clip,
        grad_noise=cfg.grad_noise,
        weighting=cfg.weighting,
        task_weights=cfg.task_weights,
        n_tasks=n_tasks,
        seed=seed,
    )
    return run_loop(model, batches, loss_fn, loop, validate=evaluate, on_epoch=on_epoch)


def minibatches(n: int, batch_size: int, epoch: int, seed: int = 0) -> list[torch.Tensor]:
    """Shuffled index batches over ``n`` items for ``epoch`` (deterministic given the seed)."""
    gen = torch.Generator().manual_seed(seed * 100_003 + epoch)
    perm = torch.randperm(n, generator=gen)
    return [perm[i : i + batch_size] for i in range(0, n, batch_size)]
