"""Search backends (``--backend``): how a search's trials run to its budget.

``local`` runs them in this process or in worker processes (:mod:`nas.searches.runner`),
``ray`` as Ray Tune trials (:mod:`nas.searches.ray_runner`). A new backend registers a
function here that takes the search and the per-trial callback.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from nas.searches.runner import limit
from nas.searches.store import RunStore, TrialRecord

from nas.registry import Registry

__all__ = ["RUNNERS", "BackendSearch"]


class BackendSearch(Protocol):
    """What a backend reads of the search it runs (:class:`nas.searches.api.Search`), named
    structurally: the search application imports its backends, never the other way."""

    config: Any  # SearchConfig, which imports this registry
    store: RunStore
    strategy: Any
    evaluator: Callable[[], Any]

    def local_evaluator(self) -> Any: ...


def _common(search: BackendSearch, on_result: Callable[[TrialRecord], None] | None) -> tuple:
    """What every backend takes: strategy, store, budget, evaluator, workers, callback."""
    c = search.config
    store, strategy = search.store, search.strategy
    budget = limit(c.time_budget)
    return (strategy, store, c.trials, search.evaluator, budget, c.workers, on_result)


def _run_local(search: BackendSearch, on_result: Callable[[TrialRecord], None] | None) -> None:
    from nas.searches.runner import run_search

    args = list(_common(search, on_result))
    if search.config.workers <= 1:  # in this process: the evaluator (and the one copy of
        args[3] = search.local_evaluator  # its data) that measured the baselines
    run_search(*args)


def _run_ray(search: BackendSearch, on_result: Callable[[TrialRecord], None] | None) -> None:
    from nas.searches.ray_runner import run_search_ray

    c = search.config
    run_search_ray(
        *_common(search, on_result),
        cpus=c.cpus,
        gpus=c.gpus,
        address=c.address,
        scheduler=c.scheduler,
    )


#: Backends (``--backend``): a function running the search's trials to its budget.
RUNNERS: Registry[Callable[..., None]] = Registry("backend")
RUNNERS.add("local", _run_local)
RUNNERS.add("ray", _run_ray)
