"""Leave-one-space-out evaluation: train on every space but one, rank the one left out.

This is the protocol that chooses the bundled model (never test cells): for each space of
the corpus, a ranker trained on the other spaces (batches drawn within one space, labels
as within-space ranks, see :mod:`nas.predictors.corpus`) scores the held-out space, next to
every data-free baseline (params, FLOPs, depth, nodes) and every zero-cost proxy the
benches carry. Ablations train the same recipe without a part:

* ``no-signals``: the head does not see log params / log FLOPs (``globals_mode='none'``);
* ``op-only text``: each node's text embedding is replaced by that of its op type alone
  (no attributes, shapes or weights);
* ``no-graph``: no message passing (0 rounds), a bag of node texts.

Variants that change the recipe rather than remove a part (see
:class:`~nas.predictors.model.ModelConfig`):

* ``set-signals``: the head sees params/FLOPs as percentile ranks within the scored space
  (``globals_norm='set'``), not on the training spaces' scale;
* ``params-prior``: set signals, and the score is the rank of params plus a bounded learned
  correction (``prior='params'``): a residual on the best-transferring baseline.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

import numpy as np
from nas.predictors.bench import Bench
from nas.predictors.corpus import join
from nas.predictors.fit import TrainConfig, evaluate_all, train
from nas.predictors.model import ModelConfig

ABLATIONS: dict[str, Callable[[ModelConfig], ModelConfig]] = {
    "full": lambda mc: mc,
    "no-signals": lambda mc: replace(mc, globals_mode="none"),
    "no-graph": lambda mc: replace(mc, layers=0),
    "set-signals": lambda mc: replace(mc, globals_norm="set"),
    "params-prior": lambda mc: replace(mc, globals_norm="set", prior="params"),
}


def op_only_embeddings(bench: Bench, embed: Callable[[list[str]], np.ndarray]) -> np.ndarray:
    """Embeddings of each vocabulary text's op type alone (the ``op-only text`` ablation)."""
    ops = [t.split(" ", 1)[0] for t in bench.vocab]
    uniq = sorted(set(ops))
    table = dict(zip(uniq, embed(uniq), strict=True))
    return np.stack([table[o] for o in ops])


def loso(
    benches: Mapping[str, Bench],
    emb_of: Callable[[Bench], np.ndarray],
    config: TrainConfig,
    model_config: ModelConfig,
    variants: tuple[str, ...] = ("full",),
    embed: Callable[[list[str]], np.ndarray] | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, dict[str, dict[str, Any]]]:
    """{held-out space: {scorer: metrics}}; scorer names are the variants (``ranker`` for
    ``full``), the baselines and the proxies."""
    corpus = join(benches)
    space = list(corpus.meta["space"])
    emb = emb_of(corpus)
    embs = {"op-only text": op_only_embeddings(corpus, embed)} if embed else {}
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for held in benches:
        tr = np.array([i for i, s in enumerate(space) if s != held])
        te = np.array([i for i, s in enumerate(space) if s == held])
        table: dict[str, dict[str, Any]] = {}
        for v in variants:
            mc = ABLATIONS.get(v, ABLATIONS["full"])(replace(model_config))
            e = embs.get(v, emb)
            res = train(corpus, tr, e, config, mc, strata=space)
            rows = evaluate_all(res.model, corpus, e, te)
            name = "ranker" if v == "full" else f"ranker {v}"
            table[name] = rows.pop("predictor")
            for k, m in rows.items():
                if not k.startswith("predictor"):
                    table.setdefault(k, m)
            log(f"held out {held}: {v} trained on {len(tr)} rows in {res.seconds:.0f} s")
        out[held] = table
    return out


def format_loso(result: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> str:
    """The LOSO table: per held-out space, every scorer's Spearman, Kendall and p@10%, and
    the ranker's margin over the best baseline."""
    lines = []
    for held, table in result.items():
        lines.append(f"\nheld out: {held}")
        lines.append(f"{'scorer':<22} {'rows':>6} {'spearman':>9} {'kendall':>8} {'p@10%':>6}")
        for name, m in table.items():
            lines.append(
                f"{name:<22} {int(m['rows']):6d} {m['spearman']:9.3f} {m['kendall']:8.3f} "
                f"{m['p@10%']:6.2f}"
            )
        base = {k: m for k, m in table.items() if not k.startswith("ranker")}
        best = max(base, key=lambda k: np.nan_to_num(base[k]["spearman"], nan=-2))
        for name, r in table.items():
            if not name.startswith("ranker"):
                continue
            gap = r["spearman"] - base[best]["spearman"]
            top = r["p@10%"] - max(m["p@10%"] for m in base.values())
            lines.append(f"{name} - best baseline ({best}): Spearman {gap:+.3f}, p@10% {top:+.2f}")
    return "\n".join(lines)
