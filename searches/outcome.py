"""``Outcome``: what an evaluator returns for one architecture (the ``Evaluator`` protocol's
result, :mod:`nas.searches.evaluators`), and what every runner records a trial from.

A module of its own so the runners, the lifecycle and the evaluators share it without
importing one another.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Outcome:
    """What evaluating one architecture produced."""

    status: str  # ok, or why it failed: invalid | diverged | oom | timeout | failed
    values: dict[str, float] | None = None
    reason: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)
    params: int | None = None
    flops: int | None = None
    wall_time: float = 0.0


__all__ = ["Outcome"]
