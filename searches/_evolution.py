"""Regularised (ageing) evolution, as used by einspace (Real et al., AAAI 2019)."""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from nas.searches._base import Strategy
from nas.searches._registry import register_strategy

from nas.dsl.arch import Node
from nas.evolution import mutate
from nas.exceptions import ConfigurationError, NasError, SamplingError, UnknownNameError
from nas.sampling import Sampler
from nas.space import SearchSpace

__all__ = ["Individual", "RegularizedEvolution"]


@dataclass(frozen=True, slots=True)
class Individual:
    """A told architecture and its fitness (larger is better; -inf if it failed)."""

    arch: Node
    fitness: float


@register_strategy
class RegularizedEvolution(Strategy):
    """Regularised evolution (``re``): tournament selection, mutation, the oldest dies.

    The population is the last ``population`` told architectures, oldest first. Each child
    is a subtree mutation (``nas.evolution.mutate``) of a tournament winner: ``tournament``
    members are drawn uniformly with replacement and the fittest wins (the first drawn on
    ties). A parent that cannot be mutated (SamplingError) costs a new tournament. Every
    tell joins the population and pushes out its oldest member once it holds more than
    ``population``. A failed trial has fitness -inf but still joins and ages like any other.

    The initial population (the first ``population`` asks) is sampled from the grammar,
    or seeded: ``seed_archs`` names architectures of ``space.seeds`` (or gives Nodes); one
    name is einspace's RE(RN18), several its mixed seed. Unlike the einspace reference,
    which fills the population with copies of each evaluated seed (100 copies of one seed
    with identical fitness: 99 wasted slots), each distinct seed is evaluated once and the
    rest of the initial population are mutations of the seeds, taken in turn, each an
    evaluated trial of its own.

    Args:
        space: the search space.
        seed: seed of every draw (sampling, tournaments, mutations).
        population: population size P (einspace: 100).
        tournament: tournament size (einspace: 10).
        seed_archs: names in ``space.seeds`` or Nodes for a seeded initial population.
        max_tournaments: tournaments per ask before falling back to a grammar draw.
        **base: objectives (one), directions, max_retries (see ``Strategy``).

    Example:
        >>> from nas.space import load_space
        >>> re = RegularizedEvolution(load_space("nb201"), population=20, tournament=5)
        >>> arch = re.ask()
        >>> re.tell(arch, {"accuracy": 90.0})
    """

    name = "re"
    max_objectives = 1
    option_help: ClassVar[dict[str, str]] = {
        "population": "population size [trials // 4, between 4 and 100]",
        "tournament": "tournament size [population // 2, between 2 and 10]",
        "seed_archs": "seed architectures: seed names (resnet18, wrn16_4, vit, mlp_mixer) "
        "or architecture strings",
        "max_tournaments": "tournaments tried for a new child before a fresh draw",
    }

    @classmethod
    def resolve_options(cls, given: Mapping[str, Any], trials: int) -> dict[str, Any]:
        """Population and tournament default to sizes that suit a budget of ``trials``."""
        opts = dict(given)
        if opts.get("population") is None:
            opts["population"] = max(4, min(100, trials // 4))
        if opts.get("tournament") is None:
            opts["tournament"] = max(2, min(10, opts["population"] // 2))
        return opts

    def __init__(
        self,
        space: SearchSpace,
        seed: int = 0,
        population: int = 100,
        tournament: int = 10,
        seed_archs: Sequence[str | Node] = (),
        max_tournaments: int = 100,
        objectives: Sequence[str] | None = None,
        directions: Mapping[str, str] | None = None,
        max_retries: int = 20,
    ) -> None:
        super().__init__(space, seed, objectives, directions, max_retries)
        for opt, v in (
            ("population", population),
            ("tournament", tournament),
            ("max_tournaments", max_tournaments),
        ):
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ConfigurationError(f"{opt} must be a positive integer, but got {v!r}.")
        self.population_size = population
        self.tournament_size = tournament
        self.max_tournaments = max_tournaments
        self.seeds = self._resolve_seeds(seed_archs)
        if len(self.seeds) > population:
            raise ConfigurationError(
                f"seed_archs must hold at most population={population} distinct "
                f"architectures, but got {len(self.seeds)}."
            )
        self.sampler = Sampler(space, seed=seed)
        self.sampler.rng = self.rng
        self.population: deque[Individual] = deque()
        self.last_parent: Node | None = None

    def _resolve_seeds(self, seed_archs: Sequence[str | Node]) -> list[Node]:
        if isinstance(seed_archs, str | Node):
            seed_archs = [seed_archs]
        out: list[Node] = []
        for s in seed_archs:
            if isinstance(s, str):
                if s not in self.space.seeds:
                    known = ", ".join(sorted(self.space.seeds)) or "none"
                    raise UnknownNameError(
                        f"unknown seed architecture {s!r} in space {self.space.name!r}; "
                        f"its seeds: {known}."
                    )
                s = self.space.seeds[s]
            try:
                self.space.check(s)
            except NasError as e:
                raise ConfigurationError(f"seed architecture is not valid here: {e}") from None
            if s not in out:
                out.append(s)
        return out

    # ------------------------------------------------------------------------- core
    def propose(self) -> Node:
        self.last_parent = None
        if self.n_asked < self.population_size or not self.population:
            return self._initial(self.n_asked)
        for _ in range(self.max_tournaments):
            parent = self.select()
            try:
                child = mutate(self.space, parent.arch, self.rng, sampler=self.sampler)
            except SamplingError:
                continue
            self.last_parent = parent.arch
            return child
        return self.sampler.sample()

    def observe(self, arch: Node, values: dict[str, float] | None, status: str) -> None:
        self.population.append(Individual(arch, self.fitness(values)))
        while len(self.population) > self.population_size:
            self.population.popleft()

    # ------------------------------------------------------------------------ parts
    def _initial(self, i: int) -> Node:
        """The ``i``-th member of the initial population (a seed, its mutation or a draw)."""
        if not self.seeds:
            return self.sampler.sample()
        k = len(self.seeds)
        if i < k:
            return self.seeds[i]
        parent = self.seeds[(i - k) % k]
        try:
            child = mutate(self.space, parent, self.rng, sampler=self.sampler)
        except SamplingError:
            return self.sampler.sample()
        self.last_parent = parent
        return child

    def select(self) -> Individual:
        """Tournament: the fittest of ``tournament`` members drawn with replacement."""
        pop = self.population
        best = pop[self.rng.randrange(len(pop))]
        for _ in range(self.tournament_size - 1):
            cand = pop[self.rng.randrange(len(pop))]
            if cand.fitness > best.fitness:
                best = cand
        return best
