"""Objective names: their optimisation directions, and the ``--objective`` presets.

One table for the strategies, the run store and the report, so an objective a strategy
accepts is one the store can record.
"""

from __future__ import annotations

from nas.exceptions import ConfigurationError

#: Default optimisation direction of well-known objective names.
DIRECTIONS: dict[str, str] = {
    "accuracy": "maximize",
    "score": "maximize",
    "params": "minimize",
    "flops": "minimize",
    "latency": "minimize",
    "loss": "minimize",
    "error": "minimize",
}
#: ``--objective`` value -> the objectives a search records (the first one is the fitness).
OBJECTIVES: dict[str, tuple[str, ...]] = {
    "accuracy": ("accuracy",),
    "accuracy+params": ("accuracy", "params"),
    "accuracy+flops": ("accuracy", "flops"),
}


def objectives_of(preset: str) -> tuple[str, ...]:
    """The objectives of an ``--objective`` preset.

    Raises:
        ConfigurationError: unknown preset; the message lists the valid ones.
    """
    try:
        return OBJECTIVES[preset]
    except (KeyError, TypeError):
        raise ConfigurationError(
            f"--objective must be one of {', '.join(OBJECTIVES)}, but got {preset!r}."
        ) from None
