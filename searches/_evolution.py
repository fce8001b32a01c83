"""Regularised (ageing) evolution, as used by einspace (Real et al., AAAI 2019)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from nas.searches._base import Strategy
from nas.searches._registry import register_strategy

from nas.dsl.arch import Node
from nas.exceptions import ConfigurationError, NasError, SamplingError, UnknownNameError
from nas.mutations import DEFAULT_WEIGHTS, MUTATIONS, mutate_with
from nas.sampling import Sampler
from nas.space import SearchSpace

__all__ = ["Individual", "RegularizedEvolution", "mutation_weights"]


@dataclass(frozen=True, slots=True)
class Individual:
    """A told architecture and its fitness (larger is better; -inf if it failed)."""

    arch: Node
    fitness: float


@register_strategy
class RegularizedEvolution(Strategy):
    """Regularised evolution (``re``): tournament selection, mutation, the oldest dies.

    The population is the last ``population`` told architectures, oldest first. Each child
    is a mutation of a tournament winner: ``tournament`` members are drawn uniformly with
    replacement and the fittest wins (the first drawn on ties). The operator is drawn by
    the weights of ``mutations`` (:mod:`nas.mutations`: local changes, one hyperparameter,
    op, module or branch, and einspace's subtree ``redraw``). A parent no operator can
    mutate costs a new tournament. Every tell joins the population and pushes out its
    oldest member once it holds more than ``population``, except that the ``elite`` best
    members never age out (the oldest of the others goes instead): at the small budgets of
    a CPU search, ageing alone removed the best network before its children were tried.
    A failed trial has fitness -inf but still joins and ages like any other.

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
        mutations: operators and weights, ``NAME`` (its default weight) or ``NAME:WEIGHT``
            (default: every operator of :data:`nas.mutations.DEFAULT_WEIGHTS`; einspace:
            ``redraw`` alone).
        elite: how many of the best members never age out (einspace: 0).
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
        "population": "population size [trials // 6, between 5 and 100; a seeded search "
        "at least its seeds + 2]",
        "tournament": "tournament size [half the population, between 2 and 10]",
        "seed_archs": "seed architectures: seed names (resnet18, wrn16_4, vit, mlp_mixer) "
        "or architecture strings",
        "max_tournaments": "tournaments tried for a new child before a fresh draw",
        "mutations": "mutation operators, NAME or NAME:WEIGHT, comma-separated "
        "(param, swap, insert, remove, branch, redraw) [all, default weights]",
        "elite": "best members that never age out [1]",
    }
    #: What ``--preset einspace`` means for this strategy: the paper's settings.
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "einspace": {"population": 100, "tournament": 10, "mutations": ["redraw"], "elite": 0}
    }

    @classmethod
    def resolve_options(
        cls, given: Mapping[str, Any], trials: int, preset: str | None = None
    ) -> dict[str, Any]:
        """Population and tournament default to sizes that suit a budget of ``trials``;
        ``preset="einspace"`` takes the paper's settings for what is not given."""
        opts = {**cls.PRESETS.get(preset or "", {}), **given}
        if opts.get("population") is None:
            seeds = len(opts.get("seed_archs") or ())
            least = seeds + 2 if seeds else 5
            opts["population"] = max(least, min(100, trials // 6))
        if opts.get("tournament") is None:
            opts["tournament"] = max(2, min(10, (opts["population"] + 1) // 2))
        return opts

    def __init__(
        self,
        space: SearchSpace,
        seed: int = 0,
        population: int = 100,
        tournament: int = 10,
        seed_archs: Sequence[str | Node] = (),
        max_tournaments: int = 100,
        mutations: Sequence[str] | None = None,
        elite: int = 1,
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
        if not isinstance(elite, int) or isinstance(elite, bool) or not 0 <= elite < population:
            raise ConfigurationError(
                f"elite must be a whole number from 0 to population - 1 ({population - 1}), "
                f"but got {elite!r}."
            )
        self.population_size = population
        self.tournament_size = tournament
        self.max_tournaments = max_tournaments
        self.elite = elite
        self.weights = mutation_weights(mutations)
        self.seeds = self._resolve_seeds(seed_archs)
        if len(self.seeds) > population:
            raise ConfigurationError(
                f"seed_archs must hold at most population={population} distinct "
                f"architectures, but got {len(self.seeds)}."
            )
        self.sampler = Sampler(space, seed=seed)
        self.sampler.rng = self.rng
        self.population: list[Individual] = []
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
            child = self._mutate(parent.arch)
            if child is not None:
                return child
        return self.sampler.sample()

    def observe(self, arch: Node, values: dict[str, float] | None, status: str) -> None:
        self.population.append(Individual(arch, self.fitness(values)))
        if len(self.population) <= self.population_size:
            return
        guarded = set()
        if self.elite:
            ranked = sorted(
                range(len(self.population)), key=lambda i: (-self.population[i].fitness, i)
            )
            guarded = {i for i in ranked[: self.elite] if self.population[i].fitness > -math.inf}
        oldest = next(i for i in range(len(self.population)) if i not in guarded)
        del self.population[oldest]

    # ------------------------------------------------------------------------ parts
    def _mutate(self, parent: Node) -> Node | None:
        """A child of ``parent`` (its origin recorded), or None when none was found."""
        try:
            child, op = mutate_with(
                self.space, parent, self.rng, self.weights, self.sampler, self.screen
            )
        except SamplingError:
            return None
        self.last_parent = parent
        self.last_origin = {"op": op, "parent": str(parent)}
        return child

    def _initial(self, i: int) -> Node:
        """The ``i``-th member of the initial population (a seed, its mutation or a draw)."""
        if not self.seeds:
            return self.sampler.sample()
        k = len(self.seeds)
        if i < k:
            self.last_origin = {"op": "seed"}
            return self.seeds[i]
        child = self._mutate(self.seeds[(i - k) % k])
        return child if child is not None else self.sampler.sample()

    def select(self) -> Individual:
        """Tournament: the fittest of ``tournament`` members drawn with replacement."""
        pop = self.population
        best = pop[self.rng.randrange(len(pop))]
        for _ in range(self.tournament_size - 1):
            cand = pop[self.rng.randrange(len(pop))]
            if cand.fitness > best.fitness:
                best = cand
        return best


def mutation_weights(spec: Sequence[str] | None) -> dict[str, float] | None:
    """``NAME`` / ``NAME:WEIGHT`` items as operator weights (None: the defaults).

    Raises:
        ConfigurationError: an unknown operator, or a weight that is not a number >= 0.
    """
    if spec is None:
        return None
    if isinstance(spec, str):
        spec = [w for w in spec.split(",") if w.strip()]
    out: dict[str, float] = {}
    for item in spec:
        name, _, weight = str(item).partition(":")
        name = name.strip()
        if name not in MUTATIONS:
            raise ConfigurationError(
                f"unknown mutation operator {name!r}; choose from {', '.join(MUTATIONS.names())}."
            )
        try:
            w = float(weight) if weight.strip() else DEFAULT_WEIGHTS[name]
        except ValueError:
            w = math.nan
        if not 0 <= w < math.inf:
            raise ConfigurationError(f"mutation weight of {name} must be a number >= 0: {item!r}.")
        out[name] = w
    if not any(out.values()):
        raise ConfigurationError("mutations must give at least one operator a weight above 0.")
    return out
