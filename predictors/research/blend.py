"""A learned blend of the data-free signals: the ablation that asks what graph and text add.

The leave-one-space-out variant ``signal-blend`` scores a space by a weighted sum of the
within-space percentile ranks of params, FLOPs, depth, node count, width and the NASWOT
proxy: the signals the ranker's head sees, without the graph or the node texts. Its weights
are chosen on the training spaces only (every vector of a small grid, keeping the one with
the highest mean within-space Spearman), so it is a zero-shot scorer like the ranker, and
stronger than any single signal chosen in advance. ``signal-pick`` is that single signal:
the one that ranks the training spaces best, the baseline a user could pick without labels
of the space they rank (the table's "best baseline" is picked with them).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
from nas.predictors.benches.bench import Bench
from nas.predictors.model import set_ranks
from nas.predictors.training.corpus import signal_columns
from scipy import stats

BLEND_SIGNALS = ("params", "flops", "depth", "nodes", "width", "nwot")
GRID = (0.0, 0.5, 1.0, 2.0)  # each signal's weight is one of these (not all zero)


def blend_ranks(bench: Bench, rows: np.ndarray) -> np.ndarray:
    """(len(rows), 6) within-set percentile ranks of :data:`BLEND_SIGNALS` (0.5 where a
    signal is missing or constant, so it adds nothing to the order)."""
    rows = np.asarray(rows)
    extra = signal_columns(bench, rows, list(BLEND_SIGNALS[2:]))
    return set_ranks(bench.params[rows], bench.flops[rows], extra)


def _spearman_columns(scores: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Spearman of each column of ``scores`` with ``y`` (0 for a constant column)."""
    r = stats.rankdata(scores, axis=0)
    r -= r.mean(axis=0)
    t = stats.rankdata(y) - (len(y) + 1) / 2
    den = np.sqrt((r * r).sum(axis=0) * (t * t).sum())
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (r * t[:, None]).sum(axis=0) / den, 0.0)


def weight_grid(single: bool = False) -> np.ndarray:
    """Every weight vector of :data:`GRID` (not all zero); with ``single``, one signal each."""
    if single:
        return np.eye(len(BLEND_SIGNALS))
    return np.array([w for w in itertools.product(GRID, repeat=len(BLEND_SIGNALS)) if any(w)])


def fit_blend(
    bench: Bench, rows: np.ndarray, space: Sequence[str], single: bool = False
) -> np.ndarray:
    """The grid weights with the best mean within-space Spearman over the spaces of
    ``rows`` (``space[i]`` names row i's space); ties go to the first in grid order. With
    ``single``: the one signal that ranks the training spaces best (``signal-pick``)."""
    rows = np.asarray(rows)
    grid = weight_grid(single)
    y = bench.label()
    total = np.zeros(len(grid))
    names = sorted({space[i] for i in rows})
    for name in names:
        r = rows[[space[i] == name for i in rows]]
        if len(r) > 2:
            total += _spearman_columns(blend_ranks(bench, r) @ grid.T, y[r])
    return grid[int(np.argmax(total))]


def blend_scores(bench: Bench, rows: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The blend's score of ``rows`` (ranked as one set, like ``nas rank`` scores a folder)."""
    return blend_ranks(bench, rows) @ np.asarray(weights, float)
