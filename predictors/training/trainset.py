"""What ``nas predictor train`` trains on: one bench, or benches of several spaces joined.

One bench trains on its own label, in random batches (the v1 way). Several benches are
joined into a corpus (:func:`~nas.predictors.training.corpus.join`: labels become ranks within each
space, groups prefixed with the space) and trained with one space per batch, each space
taking its weight's share of the batches (:func:`~nas.predictors.training.corpus.default_weight`
unless the user names one). :func:`training_set` makes the rows, the held-out test rows
and what the saved model's meta records about them; :func:`fit` trains a recipe on it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from nas.predictors.benches.bench import Bench
from nas.predictors.model import ModelConfig
from nas.predictors.textviews import op_only
from nas.predictors.training.corpus import default_weight, join
from nas.predictors.training.fit import (
    RankerTrainConfig,
    TrainResult,
    group_key,
    split_by_group,
    train,
    train_ensemble,
)

from nas.exceptions import ConfigurationError


@dataclass
class TrainingSet:
    """A bench (a joined corpus for several spaces), its training and held-out rows, and
    per space: its source, rows trained on, weight and label (for the model's meta)."""

    bench: Bench
    train: np.ndarray
    test: dict[str, np.ndarray]  # table title ("" for one bench) -> held-out rows
    spaces: dict[str, dict[str, Any]]
    trained_on: str
    split: str
    label: str | None = None  # the label column trained on (None: the bench's first)
    strata: list[str] | None = None  # each row's space, several benches only
    weights: dict[str, float] | None = None
    groups: list[str] = field(default_factory=list)  # the groups of the rows trained on
    # the training rows the model learns from (a weight-0 space's rows left out)
    used: np.ndarray = field(default_factory=lambda: np.zeros(0, int))

    def meta(self, recipe: str, config: RankerTrainConfig) -> dict[str, Any]:
        """What the saved model records about its training: spaces with their rows and
        weights, the recipe and its training settings, the labels, the split, the groups."""
        return {
            "trained_on": self.trained_on,
            "train_groups": sorted({group_key(g) for g in self.groups}),
            "split": self.split,
            "recipe": recipe,
            "training": asdict(config),
            "spaces": self.spaces,
        }


def training_set(
    benches: Mapping[str, Bench],
    sources: Mapping[str, str],
    label: str | None = None,
    n_train: int | None = None,
    seed: int = 0,
    weights: Mapping[str, float] | None = None,
) -> TrainingSet:
    """The training set of ``benches`` (space name -> bench; ``sources``: space -> its
    folder). ``label``: every bench's label column (each must have it; default each one's
    first). ``n_train``: about that many rows (whole groups; with several spaces, each
    space its share, split within it) for training, the other groups held out. ``weights``
    (several spaces): space -> share of the batches, overriding the default."""
    if not benches:
        raise ConfigurationError("give at least one bench.")
    for name, b in benches.items():
        try:
            b.label(label)
        except ConfigurationError as e:
            raise ConfigurationError(f"{sources[name]}: {e}") from None
    if len(benches) == 1:
        if weights:
            raise ConfigurationError("--weight needs several benches; one bench has one space.")
        return _one(*next(iter(benches.items())), sources, label, n_train, seed)
    return _several(benches, sources, label, n_train, seed, weights or {})


def _check_n(n_train: int | None, rows: int) -> None:
    if n_train is not None and not 1 < n_train < rows:
        raise ConfigurationError(f"--n-train must lie in 2..{rows - 1}, got {n_train}.")


def _one(
    name: str,
    b: Bench,
    sources: Mapping[str, str],
    label: str | None,
    n_train: int | None,
    seed: int,
) -> TrainingSet:
    _check_n(n_train, len(b))
    if n_train is not None:
        tr, te = split_by_group(b, n_train, seed=seed)
    else:
        tr, te = np.arange(len(b)), np.zeros(0, int)
    lab = label or b.label_names[0]
    return TrainingSet(
        bench=b,
        train=tr,
        test={"": te} if len(te) else {},
        spaces={name: {"bench": sources[name], "rows": len(tr), "weight": 1.0, "label": lab}},
        trained_on=f"{b.meta.get('space', 'bench')} {Path(sources[name]).name}: {len(tr)} rows, "
        f"label {lab}",
        split=f"by group, seed {seed}" if len(te) else "every row",
        label=label,
        groups=[b.groups[i] for i in tr],
        used=tr,
    )


def _several(
    benches: Mapping[str, Bench],
    sources: Mapping[str, str],
    label: str | None,
    n_train: int | None,
    seed: int,
    weights: Mapping[str, float],
) -> TrainingSet:
    w = _weights(benches, weights)
    corpus = join(benches, {k: label for k in benches} if label else None)
    space = list(corpus.meta["space"])
    _check_n(n_train, len(corpus))
    if n_train is not None:
        tr, te = _split_within_spaces(corpus, n_train, seed)
    else:
        tr, te = np.arange(len(corpus)), np.zeros(0, int)
    used = np.array([i for i in tr if w[space[i]] > 0], int)  # train() drops weight-0 spaces
    spaces = {
        k: {
            "bench": sources[k],
            "rows": sum(space[i] == k for i in used),
            "weight": w[k],
            "label": label or b.label_names[0],
        }
        for k, b in benches.items()
    }
    held = {k: te[[space[i] == k for i in te]] for k in benches}
    return TrainingSet(
        bench=corpus,
        train=tr,
        test={k: rows for k, rows in held.items() if len(rows)},
        spaces=spaces,
        trained_on="; ".join(
            f"{k} {Path(s['bench']).name}: {s['rows']} rows, weight {s['weight']:g}, "
            f"label {s['label']}"
            for k, s in spaces.items()
        )
        + " (labels as ranks within each space)",
        split=f"by group within each space, seed {seed}" if len(te) else "every row",
        strata=space,
        weights=w,
        groups=[corpus.groups[i][len(space[i]) + 1 :] for i in used],
        used=used,
    )


def _weights(benches: Mapping[str, Bench], given: Mapping[str, float]) -> dict[str, float]:
    """Each space's share of the batches: ``given`` where named, else the default."""
    for k, v in given.items():
        if k not in benches:
            raise ConfigurationError(
                f"--weight names space {k!r}, which no bench has; the spaces are "
                f"{', '.join(benches)}."
            )
        if not np.isfinite(v) or v < 0:
            raise ConfigurationError(f"weight of {k!r} must be a finite number >= 0, not {v}.")
    w = {k: float(given.get(k, default_weight(b))) for k, b in benches.items()}
    if not any(v > 0 for v in w.values()):
        raise ConfigurationError("every space has weight 0; give one a weight above 0.")
    return w


def _split_within_spaces(corpus: Bench, n_train: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Each space of ``corpus`` split by group, with ``n_train * its rows / all rows``
    training rows (at least one group), so every space has training and held-out rows."""
    space = np.asarray(corpus.meta["space"])
    tr, te = [], []
    for name in corpus.meta["spaces"]:
        rows = np.flatnonzero(space == name)
        want = max(1, round(n_train * len(rows) / len(corpus)))
        try:
            a, b = split_by_group(corpus.subset(rows), want, seed=seed)
        except ConfigurationError as e:
            raise ConfigurationError(f"space {name!r}: {e}") from None
        tr.append(rows[a])
        te.append(rows[b])
    return np.sort(np.concatenate(tr)), np.sort(np.concatenate(te))


def fit(
    data: TrainingSet,
    emb: np.ndarray,
    config: RankerTrainConfig,
    model_config: ModelConfig,
    on_step: Callable[[int, float], None] | None = None,
) -> TrainResult:
    """Train ``model_config`` with ``config`` on ``data`` (an ensemble when the model
    config has several members; ``on_step`` is called for single models only)."""
    kw = {"strata": data.strata, "weights": data.weights}
    if model_config.members > 1:
        return train_ensemble(
            data.bench, data.train, emb, model_config.members, config, model_config, **kw
        )
    return train(data.bench, data.train, emb, config, model_config, on_step, **kw)


def training_domain(
    bench: Bench, rows: Sequence[int] | np.ndarray | None = None, source: str = ""
) -> dict[str, Any]:
    """The op types and parameter range of a model's training rows, written as
    ``domain.json`` beside its weights so ``nas rank`` can flag files outside them."""
    rows = range(len(bench)) if rows is None else rows
    ops: set[str] = set()
    for i in rows:
        ti, _ = bench.graph(int(i))
        ops.update(op_only(bench.vocab[t]) for t in set(ti.tolist()))
    params = [int(bench.params[int(i)]) for i in rows]
    return {
        "source": source or "op types and parameter range of the model's training rows",
        "ops": sorted(ops),
        "params": [min(params, default=0), max(params, default=0)],
    }
