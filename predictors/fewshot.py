"""Few-shot ranking: adapt a set's zero-shot order to a few labels the user has.

A user who trained k of the files (``nas rank --labels``) or a search with finished trials
(the ``predictor`` strategy) knows which signal ranks *their* space: the zero-shot ranker
cannot, and the signal that wins differs from space to space (docs/predictor.md).
:func:`fit_few_shot` fits a handful of small scorers on the k labels and rates each, and
the zero-shot order, by how many pairs of labelled files they put in the right order; the
zero-shot order is kept unless a fit beats it, and otherwise averaged (as set ranks) with
every fit that does, so with few or uninformative labels the order stays near zero-shot's.

Every feature is computed within the scored set, as the zero-shot score is
(:func:`set_features`): the set ranks of the model's score, of params, FLOPs, depth, node
count, width and the NASWOT proxy, the share of each op (its shape-free node text: op,
kernel, stride, groups) among a file's nodes, and the pooled graph features the ranker's
head scored (:func:`head_inputs`). The scorers (:data:`CANDIDATES`) are ridge regressions
on groups of those columns, fitted to the labels' ranks; each is rated by its exact
leave-pair-out concordance (every pair predicted by the fit without both of its files),
so fitting and rating on 16 labels cost milliseconds, not a training run.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from nas.predictors.model import set_ranks
from nas.predictors.signals import HEAD_SIGNALS
from nas.predictors.textviews import shape_free

MIN_K = 10  # fewer labels than this: the zero-shot order is kept, and the mode says so
MAX_OPS = 48  # op-share columns kept (those that vary most over the set)
MAX_PAIRS = 2000  # labelled pairs a fit is rated on (drawn at random beyond that)
SIGNALS = ("params", "flops", "depth", "nodes", "width", "nwot")
# candidate scorer -> (feature groups, ridge strengths tried); the zero-shot order is the
# reference every candidate must beat
CANDIDATES: dict[str, tuple[tuple[str, ...], tuple[float, ...]]] = {
    "signals": (("model", "signals"), (0.3, 1.0, 3.0)),
    "signals+ops": (("model", "signals", "ops"), (0.3, 1.0, 3.0)),
    "graph+signals": (("model", "signals", "graph"), (0.3, 1.0, 3.0)),
    "all": (("model", "signals", "ops", "graph"), (0.3, 1.0, 3.0)),
}


@dataclass
class FewShot:
    """The fitted scores of a set and how they were chosen, for the output's mode line."""

    scores: np.ndarray  # one per file of the set, higher is better
    k: int  # labels used
    method: str  # "zero-shot" (kept), or the fits averaged with it
    pairs: float  # the best fit's leave-pair-out concordance on the labels (-1..1)
    pairs_zero: float  # the zero-shot order's concordance on the same pairs
    note: str = ""  # why the zero-shot order was kept, when it was

    @property
    def fitted(self) -> bool:
        """Whether the scores differ from the zero-shot order."""
        return self.method != "zero-shot"

    def describe(self) -> dict[str, Any]:
        """The fit as ``--json``'s ``mode`` object carries it."""
        return {
            "name": "few-shot",
            "k": self.k,
            "fitted": self.fitted,
            "method": self.method,
            "pair_concordance": _round(self.pairs),
            "zero_shot_concordance": _round(self.pairs_zero),
            "note": self.note,
        }


def _round(x: float) -> float | None:
    """``x`` to 4 decimals for JSON (None when not finite)."""
    return None if not np.isfinite(x) else round(float(x), 4)


def op_shares(texts: Sequence[Sequence[str]]) -> np.ndarray:
    """(n, m) share of each shape-free op among each graph's nodes, for the :data:`MAX_OPS`
    ops whose share varies most over the set (columns constant over the set dropped)."""
    keys: dict[str, int] = {}
    rows = []
    for tx in texts:
        count: dict[int, int] = {}
        for t in tx:
            j = keys.setdefault(shape_free(t), len(keys))
            count[j] = count.get(j, 0) + 1
        rows.append((count, max(1, len(tx))))
    out = np.zeros((len(texts), len(keys)))
    for i, (count, total) in enumerate(rows):
        for j, c in count.items():
            out[i, j] = c / total
    spread = out.std(axis=0)
    keep = np.argsort(-spread, kind="stable")[:MAX_OPS]
    return out[:, keep[spread[keep] > 0]]


@contextlib.contextmanager
def head_inputs(model: Any) -> Iterator[list[np.ndarray]]:
    """While open, the input of every ranker head of ``model`` (a GraphRanker, one head a
    member of an ensemble) is collected; on exit the list holds one (graphs, features)
    array: the pooled graph features each head scored, members side by side."""
    from nas.predictors.model import GraphRanker

    heads = [m.head for m in model.modules() if isinstance(m, GraphRanker) and hasattr(m, "head")]
    seen: list[list[np.ndarray]] = [[] for _ in heads]
    hooks = [
        h.register_forward_pre_hook(lambda _m, x, j=j: seen[j].append(x[0].detach().numpy()))
        for j, h in enumerate(heads)
    ]
    out: list[np.ndarray] = []
    try:
        yield out
    finally:
        for hook in hooks:
            hook.remove()
    if seen and all(seen):
        out.append(np.hstack([np.concatenate(s) for s in seen]))


def set_features(
    records: Sequence[Any], zero: np.ndarray, graph: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """Feature groups of a scored set of graph records (texts, edges, params, flops and
    ``signals['nwot']``) whose zero-shot scores are ``zero``: set ranks of the score
    (``model``) and of :data:`SIGNALS` (``signals``), op shares (``ops``) and the ranker's
    pooled graph features (``graph``, :func:`head_inputs`; empty when not given)."""
    compute = [HEAD_SIGNALS.get(s) for s in SIGNALS[2:]]
    extra = np.array([[f(r) for f in compute] for r in records], float)
    ranks = set_ranks(
        [r.params for r in records], [r.flops for r in records], extra.reshape(len(records), -1)
    )
    n = len(records)
    return {
        "model": set_ranks(zero, zero)[:, :1],
        "signals": ranks,
        "ops": op_shares([r.texts for r in records]),
        "graph": np.zeros((n, 0)) if graph is None else np.asarray(graph, float).reshape(n, -1),
    }


def fit_records(
    predictor: Any, records: Sequence[Any], lab: Sequence[int], y: Sequence[float]
) -> FewShot:
    """Score ``records`` as one set with ``predictor`` (a :class:`Predictor`; its heads'
    pooled graph features kept) and fit the scores to the labels ``y`` of rows ``lab``
    (:func:`fit_few_shot`): what ``nas rank --labels`` and the ``predictor`` strategy do."""
    model = getattr(predictor, "model", None)
    with head_inputs(model) if model is not None else contextlib.nullcontext([]) as head:
        zero = np.asarray(predictor.score_records(records), float)
    graph = head[0] if head and len(head[0]) == len(records) else None
    return fit_few_shot(set_features(records, zero, graph), zero, lab, y)


def _rank_target(y: np.ndarray) -> np.ndarray:
    """Labels as centred percentile ranks (ties share their mean): a diverged run or an
    accuracy scale weighs no more than its place in the order."""
    return set_ranks(y, y)[:, 0] - 0.5


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman correlation (0 when either side is constant)."""
    ra, rb = set_ranks(a, a)[:, 0], set_ranks(b, b)[:, 0]
    ra, rb = ra - ra.mean(), rb - rb.mean()
    den = float(np.sqrt((ra * ra).sum() * (rb * rb).sum()))
    return float((ra * rb).sum() / den) if den > 0 else 0.0


def _standardise(x: np.ndarray) -> np.ndarray:
    """Columns scaled to unit spread over the set (constant columns zeroed)."""
    sd = x.std(axis=0)
    return np.where(sd > 0, (x - x.mean(axis=0)) / np.where(sd > 0, sd, 1), 0.0)


def design(feats: Mapping[str, np.ndarray], groups: Sequence[str]) -> np.ndarray:
    """The named feature groups side by side, each column standardised over the set and
    each group scaled by 1/sqrt(its columns), so every group weighs alike in the ridge
    whatever its width (402 pooled graph features against one model score)."""
    parts = [_standardise(feats[g]) / np.sqrt(feats[g].shape[1]) for g in groups if feats[g].size]
    return np.hstack(parts) if parts else np.zeros((len(feats["model"]), 0))


@dataclass
class Ridge:
    """A ridge regression fitted on the labelled rows: its scores of the whole set, its
    in-sample fit and hat matrix on the labelled rows (for exact held-out predictions)."""

    scores: np.ndarray
    fitted: np.ndarray
    hat: np.ndarray


def ridge(x: np.ndarray, lab: np.ndarray, t: np.ndarray, alpha: float) -> Ridge:
    """A ridge regression of ``t`` on ``x[lab]`` with an unpenalised intercept, in the
    dual (k x k) form, so 400 features on 16 labels cost a 16 x 16 solve."""
    xl = x[lab]
    mu = xl.mean(axis=0)
    xc, tc = xl - mu, t - t.mean()
    k = len(lab)
    gram = xc @ xc.T
    inv = np.linalg.solve(gram + alpha * np.eye(k), np.eye(k))
    coef = inv @ tc
    scores = (x - mu) @ (xc.T @ coef) + t.mean()
    return Ridge(scores, gram @ coef + t.mean(), gram @ inv + 1.0 / k)


def label_pairs(t: np.ndarray, most: int = MAX_PAIRS, seed: int = 0) -> np.ndarray:
    """(p, 2) pairs of labelled rows with different labels (at most ``most``, drawn at
    random beyond that)."""
    i, j = np.triu_indices(len(t), 1)
    keep = t[i] != t[j]
    pairs = np.stack([i[keep], j[keep]], 1)
    if len(pairs) > most:
        pairs = pairs[np.random.default_rng(seed).choice(len(pairs), most, replace=False)]
    return pairs


def concordance(pred: np.ndarray, t: np.ndarray, pairs: np.ndarray) -> float:
    """How well ``pred`` (one value per labelled row, or (p, 2) values per pair) orders
    ``pairs`` as ``t`` does: 2 * (share in order, a tie counting half) - 1, Kendall's
    scale (1: every pair in order, 0: chance)."""
    i, j = pairs[:, 0], pairs[:, 1]
    p = pred if pred.ndim == 2 else np.stack([pred[i], pred[j]], 1)
    agree = np.sign(p[:, 0] - p[:, 1]) * np.sign(t[i] - t[j])
    return float(2 * np.mean((agree > 0) + 0.5 * (agree == 0)) - 1) if len(pairs) else 0.0


def leave_pair_out(r: Ridge, t: np.ndarray, pairs: np.ndarray) -> float:
    """The ridge's leave-pair-out :func:`concordance`: each pair predicted by the fit
    without both of its rows (exact: r_S = (I - H_SS)^-1 e_S), the nearly unbiased way to
    rate a ranking fitted on few labels (Airola et al., 2011, leave-pair-out
    cross-validation of AUC)."""
    i, j = pairs[:, 0], pairs[:, 1]
    e_i, e_j = t[i] - r.fitted[i], t[j] - r.fitted[j]
    a, b = 1 - r.hat[i, i], -r.hat[i, j]
    c, d = -r.hat[j, i], 1 - r.hat[j, j]
    det = a * d - b * c
    det = np.where(np.abs(det) > 1e-12, det, 1e-12)
    held = np.stack([t[i] - (d * e_i - b * e_j) / det, t[j] - (a * e_j - c * e_i) / det], 1)
    return concordance(held, t, pairs)


def _candidates(
    feats: Mapping[str, np.ndarray], lab: np.ndarray, t: np.ndarray, pairs: np.ndarray
) -> dict[str, tuple[np.ndarray, float]]:
    """name -> (scores of the set, leave-pair-out concordance on the labels) of every
    candidate scorer but zero-shot."""
    out = {}
    for name, (groups, alphas) in CANDIDATES.items():
        x = design(feats, groups)
        if x.shape[1] == 0 or not x[lab].std(axis=0).any():
            continue
        for a in alphas:
            r = ridge(x, lab, t, a)
            out[f"{name} (ridge {a:g})" if len(alphas) > 1 else name] = (
                r.scores,
                leave_pair_out(r, t, pairs),
            )
    return out


def fit_few_shot(
    feats: Mapping[str, np.ndarray], zero: np.ndarray, lab: Sequence[int], y: Sequence[float]
) -> FewShot:
    """Scores of the set adapted to the labels ``y`` of its rows ``lab`` (higher is
    better): the mean set rank of the zero-shot scores ``zero`` and of every candidate fit
    whose leave-pair-out concordance on the labels beats zero-shot's concordance on them
    (none: ``zero`` itself); fewer than :data:`MIN_K` labels (or labels all equal) keep
    zero-shot with a note."""
    lab = np.asarray(lab, int)
    y = np.asarray(y, float)
    k = len(lab)
    zero = np.asarray(zero, float)
    if k < MIN_K or np.ptp(y) == 0:
        why = f"k={k} < {MIN_K}" if k < MIN_K else "the labels are all equal"
        return FewShot(zero, k, "zero-shot", np.nan, np.nan, f"{why}: zero-shot order kept")
    t = _rank_target(y)
    pairs = label_pairs(t)
    base = concordance(zero[lab], t, pairs)
    cands = _candidates(feats, lab, t, pairs)
    ahead = sorted((c for c in cands if cands[c][1] > base), key=lambda c: -cands[c][1])
    if not ahead:
        note = "no fit ordered the labelled files better than zero-shot: its order kept"
        return FewShot(zero, k, "zero-shot", base, base, note)
    ranks = [set_ranks(v, v)[:, 0] for v in (zero, *(cands[c][0] for c in ahead))]
    method = f"zero-shot + {len(ahead)} fit(s) averaged, best {ahead[0]}"
    return FewShot(np.mean(ranks, axis=0) - 0.5, k, method, cands[ahead[0]][1], base)
