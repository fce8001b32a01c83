"""Random search: independent draws from the space's grammar."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from nas.searches._base import Strategy
from nas.searches._registry import register_strategy

from nas.dsl.arch import Node
from nas.sampling import Sampler
from nas.space import SearchSpace

__all__ = ["RandomSearch"]


@register_strategy
class RandomSearch(Strategy):
    """Random search (``rs``): each ask is a fresh draw from the grammar's distribution.

    Results are ignored. Repeats of asked architectures are redrawn (see ``Strategy``), so
    on a small space such as NB201 this is sampling without replacement.

    Args:
        space: the search space.
        seed: seed of the draws.
        **base: objectives, directions, max_retries (see ``Strategy``).

    Example:
        >>> from nas.space import load_space
        >>> rs = RandomSearch(load_space("nb201"), seed=0)
        >>> arch = rs.ask()
    """

    name = "rs"

    def __init__(
        self,
        space: SearchSpace,
        seed: int = 0,
        objectives: Sequence[str] | None = None,
        directions: Mapping[str, str] | None = None,
        max_retries: int = 20,
    ) -> None:
        super().__init__(space, seed, objectives, directions, max_retries)
        self.sampler = Sampler(space, seed=seed)
        self.sampler.rng = self.rng

    def propose(self) -> Node:
        return self.sampler.sample()

    def observe(self, arch: Node, values: dict[str, float] | None, status: str) -> None:
        """Random search learns nothing from results."""
