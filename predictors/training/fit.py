"""Training and evaluation of the graph ranker on a bench.

Training minimises a ranking loss over a random batch (``RankerTrainConfig.loss``: pairwise
logistic over all pairs, or listwise ListNet; optionally plus MSE on the standardised
label) with AdamW. Evaluation reports Kendall tau, Spearman and precision at the top 5%
for the predictor and for the parameter-count and FLOPs baselines on the same rows.
Splits go by group (NB201: isomorphism class).
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch
from nas.predictors.benches.bench import Bench
from nas.predictors.model import GraphRanker, ModelConfig, make_batch, set_ranks
from nas.predictors.training.rankmetrics import metrics

from nas.exceptions import ConfigurationError

MAX_STEPS = 1_000_000  # about a day of steps here; more is a typo


@dataclass
class RankerTrainConfig:
    """Optimisation settings of the graph ranker (:class:`nas.train.TrainConfig` trains the
    searched networks)."""

    steps: int = 300
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 1e-4
    mse_weight: float = 0.0
    loss: str = "pairwise"  # a name in LOSSES: "pairwise" (logistic) or "listnet"
    label: str | None = None  # the bench's first label when None
    seed: int = 0

    def __post_init__(self) -> None:
        """Refuse settings no training can run with, in one line each."""
        if not 1 <= self.steps <= MAX_STEPS:
            raise ConfigurationError(f"steps must lie in 1..{MAX_STEPS:,}, got {self.steps:,}.")
        if self.batch_size < 2:
            raise ConfigurationError(f"batch size must be at least 2, got {self.batch_size}.")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ConfigurationError(f"the learning rate must be a number > 0, got {self.lr}.")
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise ConfigurationError(f"weight decay must be >= 0, got {self.weight_decay}.")


@dataclass
class TrainResult:
    """The trained model and its loss curve (mean ranking loss per step)."""

    model: GraphRanker
    losses: list[float] = field(default_factory=list)
    seconds: float = 0.0


def vocab_embeddings(bench: Bench, embedder: Any = None) -> np.ndarray:
    """(len(vocab), 384) embeddings of the bench's distinct node texts."""
    if embedder is None:
        from nas.predictors.embed import Embedder

        embedder = Embedder()
    return embedder.embed(bench.vocab)


def split_by_group(
    bench: Bench, n_train: int, seed: int = 0, n_test: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Rows for training (about ``n_train``, whole groups) and test (the other groups)."""
    groups = sorted(set(bench.groups))
    rng = np.random.default_rng(seed)
    rng.shuffle(groups)
    by_group: dict[str, list[int]] = {}
    for i, g in enumerate(bench.groups):
        by_group.setdefault(g, []).append(i)
    train: list[int] = []
    used = 0
    for g in groups:
        if len(train) >= n_train:
            break
        train.extend(by_group[g])
        used += 1
    test = [i for g in groups[used:] for i in by_group[g]]
    if not train or not test:
        raise ConfigurationError(
            f"cannot split {len(bench)} rows ({len(groups)} groups) into {n_train} for "
            "training and the rest for testing."
        )
    test_arr = np.array(sorted(test))
    if n_test is not None and n_test < len(test_arr):
        test_arr = np.sort(rng.choice(test_arr, n_test, replace=False))
    return np.array(sorted(train)), test_arr


def pairwise_loss(scores: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean logistic loss over pairs with different labels: log(1 + exp(-(s_i - s_j)))
    for every pair where y_i > y_j."""
    ds = scores.unsqueeze(1) - scores.unsqueeze(0)
    better = (y.unsqueeze(1) - y.unsqueeze(0)) > 0
    if not bool(better.any()):
        return scores.sum() * 0.0
    return torch.nn.functional.softplus(-ds[better]).mean()


def listnet_loss(scores: torch.Tensor, y: torch.Tensor, temperature: float = 0.25) -> torch.Tensor:
    """ListNet (Cao et al., 2007): cross-entropy between the softmax of the standardised
    labels (``temperature`` sharpens it towards the top) and the softmax of the scores, a
    listwise loss that weighs the order near the top more than pairs far below it."""
    target = torch.softmax(y / temperature, 0)
    return -(target * torch.log_softmax(scores, 0)).sum()


LOSSES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "pairwise": pairwise_loss,
    "listnet": listnet_loss,
}


def _batch(bench: Bench, emb: np.ndarray, rows: Sequence[int], ranks: np.ndarray | None = None):
    """A GraphBatch of ``rows``; ``ranks``: their params/FLOPs ranks in the scored set."""
    p, f = bench.params[rows], bench.flops[rows]
    return make_batch(emb, [bench.graph(i) for i in rows], p, f, ranks)


def row_ranks(
    bench: Bench,
    rows: np.ndarray,
    strata: Sequence[str] | None = None,
    signals: Sequence[str] = (),
) -> np.ndarray:
    """(len(rows), 2 + len(signals)) percentile ranks of ``rows``' params, FLOPs and the
    named head signals, within each stratum (a space) when given, else within ``rows``: the
    set a ranker with set globals sees."""
    from nas.predictors.training.corpus import signal_columns

    rows = np.asarray(rows)
    extra = signal_columns(bench, rows, signals)
    out = np.zeros((len(rows), 2 + len(signals)))
    keys = [strata[int(r)] for r in rows] if strata is not None else [""] * len(rows)
    for k in set(keys):
        m = np.array([x == k for x in keys])
        out[m] = set_ranks(bench.params[rows[m]], bench.flops[rows[m]], extra[m])
    return out


def _weighted_rows(
    rows: np.ndarray, strata: Sequence[str] | None, weights: Mapping[str, float]
) -> np.ndarray:
    """``rows`` without those of weight-0 strata; checks the weights."""
    if strata is None:
        raise ConfigurationError("stratum weights need strata (one name per bench row).")
    for k, w in weights.items():
        if not np.isfinite(w) or w < 0:
            raise ConfigurationError(f"weight of {k!r} must be a finite number >= 0, not {w}.")
    return rows[[float(weights.get(strata[int(r)], 1.0)) > 0 for r in rows]]


def stratum_schedule(weights: Sequence[float], steps: int) -> np.ndarray:
    """Which pool each of ``steps`` steps draws from: deterministic weighted round-robin
    (each step the pool furthest behind its share ``w / sum(w)`` of the steps so far; ties
    to the first), so equal weights give plain turns 0, 1, 2, 0, ... and weight 0 never."""
    w = np.asarray(weights, float)
    share = w / w.sum()
    count = np.zeros(len(w))
    out = np.zeros(steps, np.int64)
    for t in range(steps):
        k = int(np.argmax((t + 1) * share - count))
        out[t] = k
        count[k] += 1
    return out


def train(
    bench: Bench,
    rows: Sequence[int] | np.ndarray,
    emb: np.ndarray,
    config: RankerTrainConfig | None = None,
    model_config: ModelConfig | None = None,
    on_step: Callable[[int, float], None] | None = None,
    strata: Sequence[str] | None = None,
    weights: Mapping[str, float] | None = None,
) -> TrainResult:
    """Train a GraphRanker on ``rows`` of ``bench`` (``emb``: vocabulary embeddings);
    ``on_step(step, loss)`` is called after every step. With ``strata`` (one name per
    bench row, e.g. its search space) every batch is drawn from one stratum, so ranking
    pairs never mix them: in turn, or with ``weights`` (stratum -> weight >= 0, 1 where
    not named) in proportion to the weights (:func:`stratum_schedule`); the rows of a
    weight-0 stratum are dropped, as if they were not in ``rows``."""
    cfg = config or RankerTrainConfig()
    rows = np.asarray(rows)
    if weights is not None:
        rows = _weighted_rows(rows, strata, weights)
    if len(rows) < 2:
        raise ConfigurationError("training needs at least 2 rows.")
    if cfg.loss not in LOSSES:
        raise ConfigurationError(f"unknown loss {cfg.loss!r}; choose {', '.join(LOSSES)}.")
    loss_fn = LOSSES[cfg.loss]
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    y_all = bench.label(cfg.label)
    glob = np.log10(np.maximum(1, np.stack([bench.params[rows], bench.flops[rows]], 1)))
    mc = model_config or ModelConfig()
    mc.global_mean = [float(v) for v in glob.mean(0)]
    mc.global_std = [float(v) for v in np.maximum(glob.std(0), 1e-3)]
    mc.meta = {**mc.meta, "label": cfg.label or bench.label_names[0]}
    model = GraphRanker(mc)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.steps)
    y_mu, y_sd = float(y_all[rows].mean()), float(y_all[rows].std() or 1.0)
    losses: list[float] = []
    t0 = time.perf_counter()
    model.train()
    ranks = row_ranks(bench, rows, strata, mc.signals)
    ranks = dict(zip(rows.tolist(), ranks, strict=True))
    pools, shares = [rows], [1.0]
    if strata is not None:
        by = {}
        for r in rows:
            by.setdefault(strata[int(r)], []).append(int(r))
        keep = [k for k in sorted(by) if len(by[k]) >= 2]
        pools = [np.asarray(by[k]) for k in keep]
        shares = [float((weights or {}).get(k, 1.0)) for k in keep]
    schedule = stratum_schedule(shares, cfg.steps)
    for step in range(cfg.steps):
        pool = pools[schedule[step]]
        pick = rng.choice(pool, size=min(cfg.batch_size, len(pool)), replace=False)
        y = torch.as_tensor((y_all[pick] - y_mu) / y_sd, dtype=torch.float32)
        s = model(_batch(bench, emb, pick, np.array([ranks[int(r)] for r in pick])))
        loss = loss_fn(s, y)
        total = loss + cfg.mse_weight * torch.mean((s - y) ** 2) if cfg.mse_weight else loss
        opt.zero_grad()
        total.backward()
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
        if on_step is not None:
            on_step(len(losses), losses[-1])
    model.eval()
    return TrainResult(model, losses, time.perf_counter() - t0)


def train_ensemble(
    bench: Bench,
    rows: Sequence[int] | np.ndarray,
    emb: np.ndarray,
    members: int,
    config: RankerTrainConfig | None = None,
    model_config: ModelConfig | None = None,
    strata: Sequence[str] | None = None,
    weights: Mapping[str, float] | None = None,
) -> TrainResult:
    """Train ``members`` rankers with seeds ``seed, seed+1, ...`` (``strata``, ``weights`` as in
    :func:`train`) and join them into one GraphRanker that averages their scores, each
    divided by its standard deviation on the training rows (so no member dominates by
    scale)."""
    cfg = config or RankerTrainConfig()
    mc = model_config or ModelConfig()
    if members <= 1:
        return train(bench, rows, emb, cfg, replace(mc, members=1), strata=strata, weights=weights)
    one = replace(mc, members=1)
    results = [
        train(
            bench,
            rows,
            emb,
            replace(cfg, seed=cfg.seed + k),
            replace(one),
            strata=strata,
            weights=weights,
        )
        for k in range(members)
    ]
    first = results[0].model.config
    joined = GraphRanker(replace(first, members=members))
    scales = []
    for k, res in enumerate(results):
        joined.parts[k].load_state_dict(res.model.state_dict())
        sd = float(np.std(predict(res.model, bench, emb, rows)))
        scales.append(1.0 / sd if sd > 0 else 1.0)
    joined.part_scale.copy_(torch.tensor(scales, dtype=torch.float32))
    losses = list(np.mean([r.losses for r in results], axis=0))
    return TrainResult(joined.eval(), losses, sum(r.seconds for r in results))


def predict(model: GraphRanker, bench: Bench, emb: np.ndarray, rows: Sequence[int]) -> np.ndarray:
    """Scores of ``rows`` (one scored set: set ranks are taken over all of them)."""
    rows = np.asarray(rows)
    ranks = row_ranks(bench, rows, signals=model.config.signals)
    out = []
    with torch.no_grad():
        for i in range(0, len(rows), 256):
            b = _batch(bench, emb, rows[i : i + 256], ranks[i : i + 256])
            out.append(model(b).numpy())
    return np.concatenate(out) if out else np.zeros(0)


def evaluate(
    model: GraphRanker,
    bench: Bench,
    emb: np.ndarray,
    rows: Sequence[int],
    label: str | None = None,
) -> dict[str, dict[str, float]]:
    """Metrics of the predictor and the params/FLOPs baselines on ``rows``."""
    rows = np.asarray(rows)
    y = bench.label(label)[rows]
    return {k: metrics(v, y) for k, v in _scorers(model, bench, emb, rows).items()}


def _scorers(
    model: GraphRanker | None,
    bench: Bench,
    emb: np.ndarray,
    rows: np.ndarray,
    scores: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """The predictor's scores of ``rows`` (``scores`` when the caller has them) and the
    data-free baselines beside them: params, FLOPs, depth, node count and width."""
    if scores is None:
        if model is None:
            raise ValueError("give a model or its scores.")
        scores = predict(model, bench, emb, rows)
    return {"predictor": scores, **baseline_scores(bench, rows)}


def baseline_scores(bench: Bench, rows: np.ndarray, every: bool = False) -> dict[str, np.ndarray]:
    """The data-free baselines' scores of ``rows``: params, FLOPs, depth, node count and
    width; with ``every``, also each signal from the ONNX files (:func:`signal_row`) and
    each published proxy, NaN where a row has none."""
    from nas.predictors.training.corpus import structure_signals

    rows = np.asarray(rows)
    out = {
        "params": bench.params[rows].astype(float),
        "flops": bench.flops[rows].astype(float),
        **structure_signals(bench, rows),
    }
    if every:
        out.update({signal_row(k): bench.signal(k)[rows] for k in bench.signal_names})
        out.update({k: bench.proxies[rows, j] for j, k in enumerate(bench.proxy_names)})
    return out


def group_key(group: str) -> str:
    """A short hash of a group name, stored in a model's meta for its training groups."""
    return hashlib.sha1(group.encode()).hexdigest()[:10]


def unseen_rows(bench: Bench, train_groups: Sequence[str]) -> np.ndarray:
    """Rows of ``bench`` whose group key is not among ``train_groups``."""
    seen = set(train_groups)
    return np.array([i for i, g in enumerate(bench.groups) if group_key(g) not in seen], int)


def signal_row(name: str) -> str:
    """The table row of a signal computed from the ONNX files (``nwot (onnx)``), apart
    from a published proxy of the same name."""
    return f"{name} (onnx)"


def evaluate_all(
    model: GraphRanker | None,
    bench: Bench,
    emb: np.ndarray,
    rows: Sequence[int],
    label: str | None = None,
    scores: np.ndarray | None = None,
) -> dict[str, dict[str, float]]:
    """:func:`evaluate` plus a ``rows`` count per scorer, each signal the bench computed
    from its ONNX files (:func:`signal_row`) and, where it has zero-cost proxy scores, each
    proxy; when only some rows have them, the predictor and
    the baselines are scored again on those rows (names ending in ``@zc``)."""
    rows = np.asarray(rows)
    y_all = bench.label(label)
    scorers = _scorers(model, bench, emb, rows, scores)
    table = {k: {**metrics(v, y_all[rows]), "rows": len(rows)} for k, v in scorers.items()}
    for j, name in enumerate(bench.signal_names):  # our own signals, from the ONNX files
        v = bench.signals[rows, j]
        ok = ~np.isnan(v)
        if ok.sum() >= 2:
            table[signal_row(name)] = {**metrics(v[ok], y_all[rows][ok]), "rows": int(ok.sum())}
    if not bench.proxy_names:
        return table
    prox = bench.proxies[rows]
    have = ~np.all(np.isnan(prox), axis=1)
    if have.sum() < 2:
        return table
    if not have.all():
        for k, v in scorers.items():
            table[f"{k}@zc"] = {**metrics(v[have], y_all[rows][have]), "rows": int(have.sum())}
    for j, name in enumerate(bench.proxy_names):
        ok = ~np.isnan(prox[:, j])
        if ok.sum() >= 2:
            table[name] = {**metrics(prox[ok, j], y_all[rows][ok]), "rows": int(ok.sum())}
    return table


def format_table(table: dict[str, dict[str, float]]) -> str:
    """A plain-text table of :func:`evaluate`'s result."""
    lines = [f"{'scorer':<12} {'kendall':>8} {'spearman':>9} {'p@5%':>6} {'p@10%':>6}"]
    for name, m in table.items():
        lines.append(
            f"{name:<12} {m['kendall']:8.3f} {m['spearman']:9.3f} {m['p@5%']:6.2f} "
            f"{m['p@10%']:6.2f}"
        )
    return "\n".join(lines)
