"""Search strategies (nas.searches): ask for architectures, be told their results.

Strategies register by name (``rs``, ``re``, ``tpe``, ``nsga2``); create one with
``create_strategy(name, space, seed=..., **options)``.
"""

from __future__ import annotations

from nas.searches import _evolution, _optuna, _predictor, _random  # noqa: F401  (registers them)
from nas.searches._base import (
    DIRECTIONS,
    STATUSES,
    Event,
    HistoryEntry,
    ReplayError,
    Strategy,
)
from nas.searches._evolution import Individual, RegularizedEvolution
from nas.searches._optuna import NSGAIIStrategy, OptunaStrategy, TPEStrategy
from nas.searches._random import RandomSearch
from nas.searches._registry import (
    create_strategy,
    get_strategy,
    is_strategy,
    list_strategies,
    register_strategy,
)

__all__ = [
    "DIRECTIONS",
    "STATUSES",
    "Event",
    "HistoryEntry",
    "Individual",
    "NSGAIIStrategy",
    "OptunaStrategy",
    "RandomSearch",
    "RegularizedEvolution",
    "ReplayError",
    "Strategy",
    "TPEStrategy",
    "create_strategy",
    "get_strategy",
    "is_strategy",
    "list_strategies",
    "register_strategy",
]
