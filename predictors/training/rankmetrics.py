"""Ranking metrics: how well a scorer orders architectures against their labels.

Kendall tau, Spearman and precision at the top (ties handled fairly), and the margin of
one scorer over the best of several baselines with a paired-bootstrap interval (the
leave-one-space-out table's verdict, which must say when a space is too small to tell).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping

import numpy as np
from scipy import stats


def precision_at_top(pred: np.ndarray, y: np.ndarray, frac: float = 0.05) -> float:
    """Share of the predicted top ``frac`` that lies in the true top ``frac``, ties fairly:
    rows tied with the true k-th best all count as top, and predictions tied at the cut
    are picked at random (the expected share). Breaking ties by row order instead gave a
    constant scorer a perfect 1.0 whenever the labels tied at the top too."""
    pred, y = np.asarray(pred, float), np.asarray(y, float)
    k = max(1, round(len(y) * frac))
    true_top = y >= np.sort(y)[-k]
    cut = np.sort(pred)[-k]
    above, tied = pred > cut, pred == cut
    picked = above.astype(float)
    picked[tied] = (k - above.sum()) / tied.sum()  # each tied row's chance to be picked
    return float((picked * true_top).sum() / k)


def metrics(pred: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Kendall tau, Spearman and precision at the top 5% of ``pred`` against ``y`` (a
    constant scorer, e.g. a width every network shares, has NaN correlations, silently)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", stats.ConstantInputWarning)
        kendall = float(stats.kendalltau(pred, y)[0])
        spearman = float(stats.spearmanr(pred, y)[0])
    return {
        "kendall": kendall,
        "spearman": spearman,
        "p@5%": precision_at_top(np.asarray(pred, float), np.asarray(y, float)),
        "p@10%": precision_at_top(np.asarray(pred, float), np.asarray(y, float), 0.10),
    }


def margin_interval(
    pred: np.ndarray,
    baselines: Mapping[str, np.ndarray],
    y: np.ndarray,
    boots: int = 1000,
    level: float = 0.9,
    seed: int = 0,
) -> tuple[str, float, float, float]:
    """(best baseline, Spearman margin of ``pred`` over it, and the ``level`` interval of
    that margin by a paired bootstrap over rows). The best is the baseline, among those
    scoring every row, with the highest Spearman on all rows. Tiny spaces give wide
    intervals: a margin is only a finding where its interval excludes 0."""

    def rho(a: np.ndarray, b: np.ndarray) -> float:
        ra, rb = stats.rankdata(a), stats.rankdata(b)
        sa, sb = ra.std(), rb.std()
        return float(np.mean((ra - ra.mean()) * (rb - rb.mean())) / (sa * sb)) if sa * sb else 0.0

    full = {k: v for k, v in baselines.items() if not np.isnan(v).any()}
    if not full or len(y) < 3:
        return "", float("nan"), float("nan"), float("nan")
    best = max(full, key=lambda k: rho(full[k], y))
    gap = rho(pred, y) - rho(full[best], y)
    rng = np.random.default_rng(seed)
    diffs = []
    for _ in range(boots):
        i = rng.integers(0, len(y), len(y))
        diffs.append(rho(pred[i], y[i]) - rho(full[best][i], y[i]))
    lo, hi = np.quantile(diffs, [(1 - level) / 2, (1 + level) / 2])
    return best, gap, float(lo), float(hi)
