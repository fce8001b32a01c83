"""Optional aids of the training loop: multi-task loss weighting and annealed gradient noise.

:func:`nas.loop.run_loop` combines a list of per-task losses with :class:`LossWeighting`
and adds :class:`GradNoise` to the gradients before clipping; the zoo's families turn them
on from their configs.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

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
