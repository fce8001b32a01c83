"""Predictor-guided search: rank many candidates with the zero-shot predictor, train the best.

Each round draws a pool of candidates (half fresh grammar draws, half mutations of the best
trained architectures once there are results), scores them with the ONNX predictor
(``nas.predictors``; off NB201 the bundled transfer model, as ``nas rank`` picks), fits
that order to the finished trials' results (few-shot, as ``nas rank --labels``) and
proposes the top few for training. Training is the expensive query; scoring a candidate
costs an export (or, for NB201, a direct graph build; for a zoo family, its own export) and
a forward pass of the small ranker.
"""

from __future__ import annotations

import functools
import math
import tempfile
import warnings
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from nas.searches._base import Strategy
from nas.searches._registry import register_strategy

from nas.dsl.arch import Node
from nas.evolution import mutate
from nas.exceptions import ConfigurationError, NasError
from nas.sampling import Sampler
from nas.space import SearchSpace

if TYPE_CHECKING:
    from nas.predictors.record import GraphRecord

__all__ = ["PredictorGuided", "predictor_scorer"]

Scorer = Callable[[Sequence[Node]], np.ndarray]
Recorder = Callable[[Node, str], "GraphRecord"]


@functools.lru_cache(maxsize=4)
def _load_predictor(folder: str | None):
    from nas.predictors.model import Predictor

    return Predictor.load(folder)


def predictor_scorer(
    space: SearchSpace, model: str | None = None, recorder: Recorder | None = None
) -> Scorer:
    """Score architectures of ``space`` with the predictor in ``model``; each call's
    architectures are scored together as one set (a model with set-ranked sizes ranks them
    among each other). With ``model`` None, the model is picked as ``nas rank`` picks it, on
    the first pool and for the whole search: the bundled NB201 ranker, or the bundled
    transfer model when most candidates lie outside NB201's domain (einspace, the zoo).

    ``recorder(arch, folder)`` turns an architecture into a graph record (default: build or
    export it from ``space``; a zoo search passes its family's export). Records are cached
    per architecture; one that cannot be built or exported scores -inf.

    ``score(archs, trained)`` with (architecture, fitness) pairs of finished trials scores
    ``archs`` in one set with them and fits the order to their fitness (few-shot,
    :func:`nas.predictors.fewshot.fit_few_shot`); ``score.mode`` then describes the fit.

    Raises:
        ConfigurationError: ``model`` is given but holds no predictor.
        NasError: the predictor or its embedder cannot be loaded.
    """
    if model is not None and not (Path(model) / "config.json").is_file():
        raise ConfigurationError(f"no predictor in {model} (config.json not found).")
    from nas.predictors.benches.run_bench import arch_record

    default = _load_predictor(model)
    # exported candidates carry their signals (NASWOT: the transfer model's head reads it)
    record = recorder or (lambda arch, folder: arch_record(arch, space, folder, signals=True))
    records: dict[str, GraphRecord | None] = {}
    chosen: list[Any] = []

    def pick(recs: list[GraphRecord]) -> Any:
        if not chosen:
            chosen.append(default)
            if model is None:
                from nas.predictors.rank import choose_model

                transfer = choose_model(recs)
                if transfer is not None:
                    try:
                        chosen[0] = transfer()[0]
                    except NasError as e:  # a damaged install: the default still ranks
                        msg = f"predictor strategy: {e}; ranking with {default.name}."
                        warnings.warn(msg, stacklevel=2)
        return chosen[0]

    def build(archs: Sequence[Node]) -> None:
        """Records of the architectures not built yet (None: cannot be built)."""
        with tempfile.TemporaryDirectory() as tmp:
            for a in dict.fromkeys(archs, None):
                if str(a) not in records:
                    try:
                        records[str(a)] = record(a, tmp)
                    except (NasError, RuntimeError, ValueError):
                        records[str(a)] = None

    def score(archs: Sequence[Node], trained: Sequence[tuple[Node, float]] = ()) -> np.ndarray:
        """Scores of ``archs``, one set with ``trained`` and fitted to its fitness."""
        pairs = [(a, y) for a, y in trained if math.isfinite(y)]
        build([*archs, *(a for a, _ in pairs)])
        keys = list(dict.fromkeys([*(str(a) for a in archs), *(str(a) for a, _ in pairs)]))
        good = [k for k in keys if records[k] is not None]
        scores: dict[str, float] = {}
        score.mode = {"name": "zero-shot"}  # type: ignore[attr-defined]
        if good:
            recs = [records[k] for k in good]
            if pairs:
                values, score.mode = _refit(pick(recs), good, recs, pairs)  # type: ignore[attr-defined]
            else:
                values = pick(recs).score_records(recs)
            scores = dict(zip(good, map(float, values), strict=True))
        score.model = chosen[0].name if chosen else ""  # type: ignore[attr-defined]
        return np.array([scores.get(str(a), -math.inf) for a in archs], dtype=np.float64)

    score.few_shot = True  # type: ignore[attr-defined]
    return score


def _refit(
    predictor: Any, keys: list[str], recs: list[GraphRecord], pairs: Sequence[tuple[Node, float]]
) -> tuple[np.ndarray, dict[str, Any]]:
    """The set's scores fitted to the finished trials' fitness (``pairs``; an architecture
    trained more than once counts with its mean) and the fit's mode, as ``nas rank
    --labels`` fits them (:func:`nas.predictors.fewshot.fit_records`)."""
    from nas.predictors.fewshot import fit_records

    sums: dict[str, list[float]] = {}
    for a, y in pairs:
        sums.setdefault(str(a), []).append(y)
    lab = [i for i, k in enumerate(keys) if k in sums]
    fit = fit_records(predictor, recs, lab, [float(np.mean(sums[keys[i]])) for i in lab])
    return fit.scores, fit.describe()


@register_strategy
class PredictorGuided(Strategy):
    """Predictor-guided search (``predictor``): train only what the predictor ranks highest.

    Every round draws ``pool`` distinct candidates not asked before: fresh grammar draws,
    and, once trials have finished, ``mutate_frac`` of them are mutations of the ``parents``
    best trained architectures. The predictor scores them and the top ``batch`` are asked
    in order of score. Results steer the search through the parents and, with ``refit``
    (default), the scores: each round the pool is scored together with the finished trials
    and the order is fitted to their fitness as ``nas rank --labels`` fits it (few-shot,
    :mod:`nas.predictors.fewshot`; the network itself is not retrained).

    If the predictor cannot be loaded (e.g. the embedding model is missing) the strategy
    says so once and proposes plain grammar draws, so a search still runs.

    Args:
        space: the search space.
        seed: seed of every draw.
        pool: candidates scored per round.
        batch: candidates proposed (trained) per round.
        parents: best trained architectures mutated for the pool.
        mutate_frac: share of the pool drawn as mutations once there are results.
        model: predictor folder (None: the bundled ranker ``nas rank`` would pick for the
            space's candidates: NB201's own, or the transfer model off NB201).
        refit: fit each round's order to the finished trials (few-shot); a ``scorer``
            given without a ``few_shot`` attribute is never refitted.
        scorer: a function scoring a list of architectures (overrides ``model``; used by
            benchmarks that precompute scores).
        recorder: turns a candidate into a graph record (set by the search: a zoo family's
            export; default: built or exported from the space).
        **base: objectives (one), directions, max_retries (see ``Strategy``).
    """

    name = "predictor"
    max_objectives = 1
    option_help: ClassVar[dict[str, str]] = {
        "pool": "candidates scored per round",
        "batch": "top-scored candidates trained per round",
        "parents": "best trained architectures whose mutations enter the pool",
        "mutate_frac": "share of the pool drawn as mutations once there are results",
        "model": "predictor folder [the bundled ranker nas rank picks for the space]",
        "refit": "fit the order to the finished trials each round (few-shot)",
    }

    def __init__(
        self,
        space: SearchSpace,
        seed: int = 0,
        pool: int = 64,
        batch: int = 8,
        parents: int = 5,
        mutate_frac: float = 0.5,
        model: str | None = None,
        refit: bool = True,
        scorer: Scorer | None = None,
        recorder: Recorder | None = None,
        objectives: Sequence[str] | None = None,
        directions: Mapping[str, str] | None = None,
        max_retries: int = 20,
    ) -> None:
        super().__init__(space, seed, objectives, directions, max_retries)
        if pool < 1 or not 1 <= batch <= pool or parents < 1 or not 0 <= mutate_frac <= 1:
            raise ConfigurationError(
                "predictor needs pool >= batch >= 1, parents >= 1 and 0 <= mutate_frac <= 1."
            )
        self.pool, self.batch, self.parents, self.mutate_frac = pool, batch, parents, mutate_frac
        self.refit = refit
        self.sampler = Sampler(space, seed=seed)
        self.sampler.rng = self.rng
        self.unavailable = ""
        if scorer is None:
            try:
                scorer = predictor_scorer(space, model, recorder)
            except ConfigurationError:
                raise
            except (NasError, ImportError, OSError) as e:
                self.unavailable = f"{type(e).__name__}: {e}"
                warnings.warn(
                    f"predictor strategy: no predictor ({self.unavailable}); "
                    "proposing plain grammar draws instead.",
                    stacklevel=2,
                )
        self.scorer = scorer
        self.queue: deque[Node] = deque()
        self.results: list[tuple[float, int, Node]] = []  # (fitness, order, arch)

    def _fitness(self, values: dict[str, float]) -> float:
        v = values[self.objectives[0]]
        return v if self.directions[0] == "maximize" else -v

    def _candidates(self) -> list[Node]:
        best = [a for _, _, a in sorted(self.results, key=lambda t: (-t[0], t[1]))]
        best = best[: self.parents]
        n_mut = round(self.pool * self.mutate_frac) if best else 0
        seen, out = set(self._asked), []
        for i in range(self.pool * 3):
            if len(out) >= self.pool:
                break
            try:
                if i < n_mut:
                    arch = mutate(self.space, best[i % len(best)], self.rng, tries=50)
                else:
                    arch = self.sampler.sample()
            except NasError:
                continue
            if str(arch) not in seen:
                seen.add(str(arch))
                out.append(arch)
        return out

    def propose(self) -> Node:
        if self.scorer is None:
            return self.sampler.sample()
        if not self.queue:
            cands = self._candidates()
            if not cands:
                return self.sampler.sample()
            scores = self._score(cands)
            order = sorted(range(len(cands)), key=lambda i: (-scores[i], i))
            self.queue.extend(cands[i] for i in order[: self.batch])
        return self.queue.popleft()

    def _score(self, cands: list[Node]) -> np.ndarray:
        """The scorer's scores of ``cands``, fitted to the finished trials with ``refit``."""
        if self.refit and self.results and getattr(self.scorer, "few_shot", False):
            return self.scorer(cands, [(a, fit) for fit, _, a in self.results])
        return self.scorer(cands)

    def observe(self, arch: Node, values: dict[str, float] | None, status: str) -> None:
        fit = self._fitness(values) if values is not None and status == "ok" else -math.inf
        if math.isfinite(fit):
            self.results.append((fit, self.n_told, arch))
