"""Optuna's samplers (TPE, NSGA-II) driving the grammar define-by-run.

Each production choice of a draw is one categorical Optuna parameter named by its
position, ``"<position>:<rule>"`` (``nas.sampling.Sampler``'s chooser hook), with all of
the rule's alternatives as choices, so every trial of a study sees the same distribution
for a name. The strategy owns an in-memory study and uses Optuna's ask-and-tell interface.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from nas.searches._base import Strategy
from nas.searches._registry import register_strategy

from nas.dsl.arch import Node
from nas.exceptions import ConfigurationError
from nas.sampling import Sampler
from nas.space import SearchSpace

if TYPE_CHECKING:
    import optuna

__all__ = ["NSGAIIStrategy", "OptunaStrategy", "TPEStrategy"]


def nearest_feasible(k: int, feasible: Sequence[int]) -> int:
    """``k`` if feasible, else the feasible index closest to it (the lower one on ties)."""
    return min(feasible, key=lambda j: (abs(j - k), j))


class OptunaStrategy(Strategy):
    """Base of strategies whose choices come from an Optuna sampler.

    A trial's suggestion that is not feasible at its position (its shapes or the budgets
    rule it out) is mapped to the nearest feasible alternative; the trial keeps the
    suggested value, so the sampler learns from what it chose. If a draw fails part-way
    (rare in einspace, never in NB201) the sampler redraws it from its own seeded random
    generator and the trial's parameters describe only the failed first attempt. Repeats of
    asked architectures are told to Optuna as failed trials (which its samplers ignore) and
    drawn again. Failed evaluations are told as ``TrialState.FAIL``.

    Args:
        space: the search space.
        seed: seed of the Optuna sampler and of the grammar sampler.
        objectives: objective names; several make a multi-objective study.
        directions: directions for objective names not in ``DIRECTIONS``.
        max_retries: redraws of a repeated architecture.
    """

    def __init__(
        self,
        space: SearchSpace,
        seed: int = 0,
        objectives: Sequence[str] | None = None,
        directions: Mapping[str, str] | None = None,
        max_retries: int = 20,
    ) -> None:
        super().__init__(space, seed, objectives, directions, max_retries)
        import optuna

        try:
            sampler = self.make_sampler(seed)
        except (TypeError, ValueError) as e:
            reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ConfigurationError(
                f"invalid option for strategy {self.name!r}: {reason}"
            ) from None
        # create_study announces itself at INFO; keep the user's verbosity otherwise.
        verbosity = optuna.logging.get_verbosity()
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        try:
            self.study = optuna.create_study(directions=list(self.directions), sampler=sampler)
        finally:
            optuna.logging.set_verbosity(verbosity)
        self.sampler = Sampler(space, seed=seed)
        self.sampler.rng = self.rng
        self._trials: dict[str, list[optuna.Trial]] = {}

    def make_sampler(self, seed: int) -> optuna.samplers.BaseSampler:
        """The Optuna sampler driving the choices."""
        raise NotImplementedError

    def propose(self) -> Node:
        trial = self.study.ask()

        def choose(param: str, labels: list[str], feasible: list[int]) -> int:
            label = trial.suggest_categorical(param, labels)
            return nearest_feasible(labels.index(label), feasible)

        self.sampler.chooser = choose
        try:
            arch = self.sampler.sample()
        finally:
            self.sampler.chooser = None
        self._trials.setdefault(str(arch), []).append(trial)
        return arch

    def discard(self, arch: Node) -> None:
        from optuna.trial import TrialState

        self.study.tell(self._trials[str(arch)].pop(), state=TrialState.FAIL)

    def observe(self, arch: Node, values: dict[str, float] | None, status: str) -> None:
        from optuna.trial import TrialState

        trial = self._trials[str(arch)].pop(0)
        if values is None:
            self.study.tell(trial, state=TrialState.FAIL)
        else:
            self.study.tell(trial, [values[o] for o in self.objectives])


@register_strategy
class TPEStrategy(OptunaStrategy):
    """Tree-structured Parzen estimator (``tpe``): Optuna's TPESampler over the grammar.

    Optuna's defaults apply (multivariate TPE for one objective, independent for several;
    constant liar for outstanding trials) unless overridden.

    Args:
        space: the search space.
        seed: seed of every draw.
        n_startup_trials: random trials before the model is used.
        multivariate: Optuna's ``multivariate`` (None: Optuna's default).
        constant_liar: Optuna's ``constant_liar``.
        **base: objectives, directions, max_retries (see ``OptunaStrategy``).

    Example:
        >>> from nas.space import load_space
        >>> tpe = TPEStrategy(load_space("nb201"), seed=0)
        >>> arch = tpe.ask()
        >>> tpe.tell(arch, {"accuracy": 90.0})
    """

    name = "tpe"
    option_help: ClassVar[dict[str, str]] = {
        "n_startup_trials": "random draws before TPE models the results",
        "multivariate": "model the grammar's choices jointly (None: Optuna's default, off)",
        "constant_liar": "penalise running trials so parallel workers do not draw alike",
    }

    def __init__(
        self,
        space: SearchSpace,
        seed: int = 0,
        n_startup_trials: int = 10,
        multivariate: bool | None = None,
        constant_liar: bool = True,
        objectives: Sequence[str] | None = None,
        directions: Mapping[str, str] | None = None,
        max_retries: int = 20,
    ) -> None:
        self._options: dict[str, Any] = {
            "n_startup_trials": n_startup_trials,
            "multivariate": multivariate,
            "constant_liar": constant_liar,
        }
        super().__init__(space, seed, objectives, directions, max_retries)

    def make_sampler(self, seed: int) -> optuna.samplers.BaseSampler:
        from optuna.samplers import TPESampler

        return TPESampler(seed=seed, **self._options)


@register_strategy
class NSGAIIStrategy(OptunaStrategy):
    """NSGA-II (``nsga2``): Optuna's NSGAIISampler, multi-objective by default.

    The default objectives are accuracy (maximised) and params (minimised): ``tell`` needs
    ``{"accuracy": ..., "params": ...}``.

    Args:
        space: the search space.
        seed: seed of every draw.
        population_size: NSGA-II's generation size.
        mutation_prob: per-parameter mutation probability (None: Optuna's default).
        crossover_prob: probability of crossover for a child.
        **base: objectives, directions, max_retries (see ``OptunaStrategy``).

    Example:
        >>> from nas.space import load_space
        >>> nsga = NSGAIIStrategy(load_space("nb201"), seed=0)
        >>> arch = nsga.ask()
        >>> nsga.tell(arch, {"accuracy": 90.0, "params": 1.2e6})
    """

    name = "nsga2"
    default_objectives = ("accuracy", "params")
    option_help: ClassVar[dict[str, str]] = {
        "population_size": "architectures per generation",
        "mutation_prob": "per-choice mutation probability (None: Optuna's, 1 / choices)",
        "crossover_prob": "probability that a child is a crossover of two parents",
    }

    def __init__(
        self,
        space: SearchSpace,
        seed: int = 0,
        population_size: int = 50,
        mutation_prob: float | None = None,
        crossover_prob: float = 0.9,
        objectives: Sequence[str] | None = None,
        directions: Mapping[str, str] | None = None,
        max_retries: int = 20,
    ) -> None:
        self._options = {
            "population_size": population_size,
            "mutation_prob": mutation_prob,
            "crossover_prob": crossover_prob,
        }
        super().__init__(space, seed, objectives, directions, max_retries)

    def make_sampler(self, seed: int) -> optuna.samplers.BaseSampler:
        from optuna.samplers import NSGAIISampler

        return NSGAIISampler(seed=seed, **self._options)
