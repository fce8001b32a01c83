"""A search run as the context of an architecture: its space, input shape, classes and
ranked trials (``nas show|check|export --run``)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nas.exceptions import ConfigurationError

__all__ = ["RunContext", "run_context"]


@dataclass(frozen=True)
class RunContext:
    """What a search run applied its architectures to, and the trial asked for."""

    run: Path
    space: str
    dataset: str | None
    input_shape: tuple[int, ...] | None  # None: the space's own (an old zoo run)
    num_classes: int | None
    arch: str | None = None  # the rank-th best trial's architecture, when a rank was asked
    rank: int | None = None
    trial: int | None = None


def run_context(run: Path, rank: int | None = None, what: str = "use") -> RunContext:
    """A run's space, input shape and classes, and (``rank``) its rank-th best trial.

    The input is run.json's ``input``; a run older than that records has its dataset's
    (a zoo run: its space's own). ``what`` names the command in the no-trial error.

    Raises:
        ConfigurationError: not a run folder, or ``rank`` is not one of its successful trials.
    """
    from nas.searches.store import open_run, read_run_info

    if not run.is_dir():
        raise ConfigurationError(f"--run {run}: no such folder.")
    info = read_run_info(run)
    opts = info.get("options") if isinstance(info, dict) else None
    if not isinstance(opts, dict) or not isinstance(opts.get("space"), str):
        raise ConfigurationError(f"{run / 'run.json'} names no space: not a search run's.")
    shape, classes = _run_input(run, info, opts)
    ctx = RunContext(run, opts["space"], opts.get("dataset"), shape, classes)
    if rank is None:
        return ctx
    _, store = open_run(run)
    ranked = store.best(None)  # every successful trial, read once
    if not 1 <= rank <= len(ranked):
        if not ranked:
            raise ConfigurationError(f"{run} has no successful trial to {what}.")
        raise ConfigurationError(f"--rank must be between 1 and {len(ranked)} for {run}.")
    best = ranked[rank - 1]
    return dataclasses.replace(ctx, arch=best.arch, rank=rank, trial=best.number)


def _run_input(
    run: Path, info: dict[str, Any], opts: dict[str, Any]
) -> tuple[tuple[int, ...] | None, int | None]:
    """(input shape, classes) of a run: recorded, else its dataset's (None: the space's)."""
    recorded = info.get("input")
    if recorded is not None:
        try:
            shape = tuple(int(d) for d in recorded["shape"])
            classes = int(recorded["num_classes"])
        except (KeyError, TypeError, ValueError):
            shape, classes = (), 0
        if not shape or min(shape) < 1 or classes < 1:
            raise ConfigurationError(f"{run / 'run.json'} has a malformed input: {recorded!r}.")
        return shape, classes
    from nas.space import space_scheme

    if space_scheme(opts["space"]) == "zoo":  # a zoo search keeps its space's input
        return None, None
    from nas.data import resolve_dataset

    data = resolve_dataset(str(opts.get("dataset") or ""))
    return tuple(data.input_shape), data.num_classes
