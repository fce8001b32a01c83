"""Few-shot leave-one-space-out: how far k labels of the held-out space lift the ranking.

For each held-out space, k rows are drawn at random (``draws`` times), their labels given
to :func:`~nas.predictors.fewshot.fit_few_shot` with the zero-shot ranker's scores of the
space (a ranker trained on the other spaces, as in :mod:`nas.predictors.research.loso`), and the
fitted order is scored on the space's other rows. The reference is the **oracle** best
baseline: the single data-free signal or proxy (among those scoring every row) with the
highest Spearman on the held-out space's own labels, a choice no user could make in
advance. Its Spearman is measured on the same rows as the few-shot order's, draw by draw.
The target (issue 28): mean Spearman at least the oracle's + :data:`TARGET_MARGIN` with
k = 16, on every space of at least :data:`MIN_ROWS` rows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from nas.predictors.benches.bench import Bench
from nas.predictors.fewshot import fit_few_shot, set_features, spearman

KS = (4, 8, 16, 32)
DRAWS = 10
TARGET_MARGIN = 0.05
TARGET_K = 16
MIN_ROWS = 100
T90 = 1.833  # Student t, 9 degrees of freedom, two-sided 90% (10 draws)


def bench_records(bench: Bench, rows: np.ndarray) -> list[Any]:
    """The graph records of bench ``rows`` with the bench's NASWOT column as their signal."""
    nwot = bench.signal("nwot")
    out = []
    for i in rows:
        r = bench.record(int(i))
        r.signals = {"nwot": float(nwot[int(i)])}
        out.append(r)
    return out


def oracle(baselines: Mapping[str, np.ndarray], y: np.ndarray) -> str:
    """The baseline (of those scoring every row) with the highest Spearman on ``y``."""
    full = {k: v for k, v in baselines.items() if not np.isnan(v).any()}
    return max(full, key=lambda k: spearman(full[k], y))


def few_shot_space(
    feats: Mapping[str, np.ndarray],
    zero: np.ndarray,
    y: np.ndarray,
    best: np.ndarray,
    ks: Sequence[int] = KS,
    draws: int = DRAWS,
    seed: int = 0,
) -> dict[int, dict[str, np.ndarray]]:
    """{k: {"few-shot", "zero-shot", "oracle": Spearman per draw on the unlabelled rows,
    "methods": the scorer each draw chose}} for one held-out space (``best``: the oracle
    baseline's scores of its rows)."""
    rng = np.random.default_rng(seed)
    out: dict[int, dict[str, np.ndarray]] = {}
    n = len(y)
    for k in ks:
        if k > n - 3:
            continue
        res: dict[str, list] = {"few-shot": [], "zero-shot": [], "oracle": [], "methods": []}
        for _ in range(draws):
            lab = np.sort(rng.choice(n, k, replace=False))
            rest = np.setdiff1d(np.arange(n), lab)
            fit = fit_few_shot(feats, zero, lab, y[lab])
            res["few-shot"].append(spearman(fit.scores[rest], y[rest]))
            res["zero-shot"].append(spearman(zero[rest], y[rest]))
            res["oracle"].append(spearman(best[rest], y[rest]))
            res["methods"].append(fit.method)
        out[k] = {key: np.asarray(v) for key, v in res.items()}
    return out


def few_shot_loso(
    corpus: Bench,
    zero: Mapping[str, np.ndarray],
    ks: Sequence[int] = KS,
    draws: int = DRAWS,
    seed: int = 0,
    graph: Mapping[str, np.ndarray] | None = None,
) -> dict[str, dict[str, Any]]:
    """{held-out space: {"rows", "oracle" (its name), "by_k": :func:`few_shot_space`}} for
    every space of the joined ``corpus`` whose zero-shot scores ``zero`` gives (``graph``:
    the ranker's pooled graph features of the space's rows, where it has them)."""
    from nas.predictors.training.fit import baseline_scores

    space = np.asarray(corpus.meta["space"])
    y_all = corpus.label()
    out = {}
    for held, pred in zero.items():
        te = np.flatnonzero(space == held)
        y = y_all[te]
        base = baseline_scores(corpus, te, every=True)
        name = oracle(base, y)
        head = (graph or {}).get(held)
        feats = set_features(bench_records(corpus, te), np.asarray(pred, float), head)
        by_k = few_shot_space(feats, np.asarray(pred, float), y, base[name], ks, draws, seed)
        out[held] = {"rows": len(te), "oracle": name, "by_k": by_k}
    return out


def _interval(x: np.ndarray) -> tuple[float, float, float]:
    """(mean, low, high): a 90% t-interval of the mean over draws."""
    m = float(np.mean(x))
    h = T90 * float(np.std(x, ddof=1)) / np.sqrt(len(x)) if len(x) > 1 else float("nan")
    return m, m - h, m + h


def format_few_shot(
    result: Mapping[str, Mapping[str, Any]], ranker: str = "ranker", draws: int = DRAWS
) -> str:
    """One table per k: per held-out space, the few-shot and zero-shot (``ranker``) mean
    Spearman, the oracle best baseline's, the margin with its 90% interval over draws and
    whether it meets the target."""
    ks = sorted({k for r in result.values() for k in r["by_k"]})
    lines = []
    for k in ks:
        lines.append(
            f"\nfew-shot, k={k} labelled rows of the held-out space ({draws} draws; Spearman "
            f"on the other rows; zero-shot: {ranker}; target: oracle best "
            f"+{TARGET_MARGIN:.2f} on spaces of {MIN_ROWS}+ rows)"
        )
        lines.append(
            f"{'held out':<14} {'rows':>5} {'few-shot (90% int.)':>24} {'zero-shot':>9} "
            f"{'oracle best':>24} {'margin (90% int.)':>26}  target"
        )
        for held, r in result.items():
            if k in r["by_k"]:
                lines.append(_row(held, r, k))
    return "\n".join(lines)


def _row(held: str, r: Mapping[str, Any], k: int) -> str:
    """One space's line of the k table."""
    d = r["by_k"][k]
    fs, lo, hi = _interval(d["few-shot"])
    gap, glo, ghi = _interval(d["few-shot"] - d["oracle"])
    if r["rows"] < MIN_ROWS:
        verdict = f"(< {MIN_ROWS} rows)"
    else:
        verdict = "meets" if gap >= TARGET_MARGIN else f"misses by {TARGET_MARGIN - gap:.3f}"
    best = f"{r['oracle'][:14]} {np.mean(d['oracle']):.3f}"
    return (
        f"{held:<14} {r['rows']:5d} {fs:8.3f} [{lo:.3f}, {hi:.3f}] "
        f"{np.mean(d['zero-shot']):9.3f} {best:>24} "
        f"{gap:+8.3f} [{glo:+.3f}, {ghi:+.3f}]  {verdict}"
    )
