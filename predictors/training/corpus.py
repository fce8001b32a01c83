"""A multi-space corpus: benches of several search spaces joined into one, labels as ranks.

Accuracies of different spaces and tasks are not comparable (NB101's 108-epoch validation
accuracy is not NB201's 200-epoch test accuracy), so the joined bench's label is each
row's percentile rank within its own space (0 = worst, 1 = best) and training draws each
batch from one space (:func:`nas.predictors.training.fit.train` with ``strata``): pairs are only
ever formed within a space. Each space has a training weight, its share of the batches
(:func:`default_weight`: 1 for table benches, :data:`RUN_BENCH_WEIGHT` for benches built
from the project's own search runs, whose labels are noisier).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from nas.predictors.benches.bench import Bench
from nas.predictors.signals import depth, node_width
from scipy import stats

SPACE_LABEL = "rank_in_space"
# default training weight of a bench built from search runs (`nas bench from-run`): its
# labels are a few short trainings, noisier than a table's; chosen by LOSO (docs/predictor.md)
RUN_BENCH_WEIGHT = 0.5


def from_runs(bench: Bench) -> bool:
    """Whether ``bench`` was built from search runs (``nas bench from-run``), not a table."""
    return str(bench.meta.get("source", "")).startswith("search run")


def default_weight(bench: Bench) -> float:
    """A space's default share of the training batches: :data:`RUN_BENCH_WEIGHT` for a
    bench from search runs, 1 for a table bench."""
    return RUN_BENCH_WEIGHT if from_runs(bench) else 1.0


def within_space_rank(y: np.ndarray) -> np.ndarray:
    """Percentile ranks of ``y`` in [0, 1] (ties share their mean rank)."""
    if len(y) < 2:
        return np.full(len(y), 0.5)
    return (stats.rankdata(y) - 1) / (len(y) - 1)


def join(benches: Mapping[str, Bench], labels: Mapping[str, str] | None = None) -> Bench:
    """One bench of ``benches`` (space name -> bench), labelled by within-space rank of the
    label ``labels[space]`` (each bench's first label when not given). Proxy and signal
    columns are the union of the benches' (NaN where a space has none); ``meta['space']``
    names each row's space and groups are prefixed with it."""
    labels = labels or {}
    proxy_names = sorted({p for b in benches.values() for p in b.proxy_names})
    signal_names = sorted({p for b in benches.values() for p in b.signal_names})
    vocab: dict[str, int] = {}
    parts: dict[str, list] = {
        k: [] for k in ("idx", "edges", "params", "flops", "y", "prox", "sig")
    }
    names, groups, space = [], [], []
    node_ptr, edge_ptr = [0], [0]
    for name, b in benches.items():
        remap = np.array([vocab.setdefault(t, len(vocab)) for t in b.vocab], np.int32)
        for i in range(len(b)):
            ti, ed = b.graph(i)
            parts["idx"].append(remap[ti])
            parts["edges"].append(ed)
            node_ptr.append(node_ptr[-1] + len(ti))
            edge_ptr.append(edge_ptr[-1] + len(ed))
        parts["params"].append(b.params)
        parts["flops"].append(b.flops)
        parts["y"].append(within_space_rank(b.label(labels.get(name))))
        prox = np.full((len(b), len(proxy_names)), np.nan)
        for j, p in enumerate(proxy_names):
            if p in b.proxy_names:
                prox[:, j] = b.proxies[:, b.proxy_names.index(p)]
        parts["prox"].append(prox)
        sig = [b.signal(k) for k in signal_names]
        parts["sig"].append(np.stack(sig, 1) if sig else np.zeros((len(b), 0)))
        names += [f"{name}/{n}" for n in b.names]
        groups += [f"{name}/{g}" for g in b.groups]
        space += [name] * len(b)
    return Bench(
        vocab=list(vocab),
        names=names,
        groups=groups,
        text_idx=np.concatenate(parts["idx"]).astype(np.int32),
        node_ptr=np.asarray(node_ptr, np.int64),
        edges=np.concatenate(parts["edges"]).astype(np.int32).reshape(-1, 2),
        edge_ptr=np.asarray(edge_ptr, np.int64),
        params=np.concatenate(parts["params"]),
        flops=np.concatenate(parts["flops"]),
        labels=np.concatenate(parts["y"]).reshape(-1, 1),
        label_names=[SPACE_LABEL],
        meta={"space": space, "spaces": list(benches)},
        proxy_names=proxy_names,
        proxies=np.concatenate(parts["prox"]),
        signal_names=signal_names,
        signals=np.concatenate(parts["sig"]),
    )


def structure_signals(bench: Bench, rows: np.ndarray) -> dict[str, np.ndarray]:
    """Data-free structural signals of ``rows``: depth (longest path), node count and width
    (the widest node output's channels)."""
    widths = np.array([node_width(t) for t in bench.vocab] or [0])
    d, n, w = [], [], []
    for i in rows:
        ti, ed = bench.graph(int(i))
        d.append(depth(len(ti), [tuple(e) for e in ed.tolist()]))
        n.append(len(ti))
        w.append(int(widths[ti].max()) if len(ti) else 0)
    return {
        "depth": np.asarray(d, float),
        "nodes": np.asarray(n, float),
        "width": np.asarray(w, float),
    }


def signal_columns(bench: Bench, rows: np.ndarray, names: Sequence[str]) -> np.ndarray:
    """(len(rows), len(names)) values of the named head signals for bench rows (names of
    :data:`~nas.predictors.signals.HEAD_SIGNALS`, as a model's config holds them, checked
    when the model is built): structure from the graphs, the rest from the bench's stored
    signals (NaN where it has none)."""
    out = np.full((len(rows), len(names)), np.nan)
    structure = structure_signals(bench, rows) if names else {}
    for j, name in enumerate(names):
        if name in structure:
            out[:, j] = structure[name]
        else:
            out[:, j] = bench.signal(name)[rows]
    return out
