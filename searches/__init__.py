"""Searches (nas.searches): the search application, its strategies, runners and store.

Run a search with ``Search(SearchConfig(...)).run()`` (or ``nas.search(...)``); resume one
with ``Search.resume(run_dir)``. Strategies register by name (``rs``, ``re``, ``tpe``,
``nsga2``, ``predictor``); create one with ``create_strategy(name, space, seed=..., **options)``.
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
    StrategyOption,
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
from nas.searches.api import Search, SearchResult, search
from nas.searches.config import SearchConfig

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
    "Search",
    "SearchConfig",
    "SearchResult",
    "Strategy",
    "StrategyOption",
    "TPEStrategy",
    "create_strategy",
    "get_strategy",
    "is_strategy",
    "list_strategies",
    "register_strategy",
    "search",
]
