"""Leave-one-space-out evaluation: train on every space but one, rank the one left out.

This is the protocol that chooses the bundled model (never test cells): for each space of
the corpus, a ranker trained on the other spaces (batches drawn within one space, labels
as within-space ranks, see :mod:`nas.predictors.corpus`) scores the held-out space, next to
every data-free baseline (params, FLOPs, depth, nodes) and every zero-cost proxy the
benches carry. Ablations train the same recipe without a part:

* ``no-signals``: the head does not see log params / log FLOPs (``globals_mode='none'``);
* ``op-only text``: each node's text embedding is replaced by that of its op type alone
  (no attributes, shapes or weights);
* ``no-graph``: no message passing (0 rounds), a bag of node texts;
* ``shape-free text``: node texts without sizes (:func:`shape_free`: no weight shapes, the
  output's rank only), so a conv reads the same in every space whatever its widths.

Variants that change the recipe rather than remove a part (see
:class:`~nas.predictors.model.ModelConfig`):

* ``set-signals``: the head sees params/FLOPs as percentile ranks within the scored space
  (``globals_norm='set'``), not on the training spaces' scale;
* ``params-prior``: set signals, and the score is the rank of params plus a bounded learned
  correction (``prior='params'``): a residual on the best-transferring baseline;
* ``prior-short`` (a third of the steps), ``prior-half`` (correction bound 0.5),
  ``prior-listnet`` (ListNet loss), ``prior-ensemble`` (3 seeds averaged), ``prior-no-graph``,
  ``prior-no-signals``, ``prior-op-only``: the prior recipe with one more change;
* ``prior-listnet-wide``: ListNet, correction bound 2 (half the prior's range), a third of
  the steps: the best of these by LOSO (README), still short of the issue's target;
* ``prior-shape-free``: ``prior-listnet-wide`` on shape-free texts.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

import numpy as np
from nas.predictors.bench import Bench
from nas.predictors.corpus import default_weight, join
from nas.predictors.fit import TrainConfig, evaluate_all, train, train_ensemble
from nas.predictors.model import ModelConfig

from nas.exceptions import ConfigurationError

Recipe = tuple[ModelConfig, TrainConfig]


def _model(**kw: Any) -> Callable[[ModelConfig, TrainConfig], Recipe]:
    return lambda mc, tc: (replace(mc, **kw), tc)


PRIOR = {"globals_norm": "set", "prior": "params"}

# variant name -> how it changes the command line's recipe (model and training config);
# the TEXT_VIEWS variants keep a recipe and swap the node embeddings
ABLATIONS: dict[str, Callable[[ModelConfig, TrainConfig], Recipe]] = {
    "full": lambda mc, tc: (mc, tc),
    "op-only text": lambda mc, tc: (mc, tc),
    "no-signals": _model(globals_mode="none"),
    "no-graph": _model(layers=0),
    "set-signals": _model(globals_norm="set"),
    "params-prior": _model(**PRIOR),
    "prior-no-graph": _model(**PRIOR, layers=0),
    "prior-no-signals": _model(**PRIOR, globals_mode="none"),
    "prior-half": _model(**PRIOR, correction=0.5),
    "prior-short": lambda mc, tc: (replace(mc, **PRIOR), replace(tc, steps=tc.steps // 3)),
    "prior-listnet": lambda mc, tc: (replace(mc, **PRIOR), replace(tc, loss="listnet")),
    "prior-ensemble": _model(**PRIOR, members=3),
    "prior-op-only": _model(**PRIOR),
    "prior-listnet-wide": lambda mc, tc: (
        replace(mc, **PRIOR, correction=2.0),
        replace(tc, loss="listnet", steps=tc.steps // 3),
    ),
}
ABLATIONS["shape-free text"] = ABLATIONS["full"]  # same recipe, other texts (TEXT_VIEWS)
ABLATIONS["prior-shape-free"] = ABLATIONS["prior-listnet-wide"]


def op_only(text: str) -> str:
    """A node text reduced to its op type."""
    return text.split(" ", 1)[0]


def shape_free(text: str) -> str:
    """A node text without sizes: op and attributes (kernel, stride, groups...) kept,
    weight and constant tensors dropped, the output shape reduced to its rank. Channel
    widths and resolutions differ from space to space; kernels and wiring are shared."""
    head, arrow, out = text.partition(" -> ")
    kept = [t for t in head.split(" ") if not t.startswith(("W[", "C["))]
    return " ".join(kept) + (f" -> {len(out.split('x'))}d" if arrow else "")


# variant -> the view of node texts it trains and scores on (others: the full text)
TEXT_VIEWS: dict[str, Callable[[str], str]] = {
    "op-only text": op_only,
    "prior-op-only": op_only,
    "shape-free text": shape_free,
    "prior-shape-free": shape_free,
}


def view_embeddings(
    bench: Bench, embed: Callable[[list[str]], np.ndarray], view: Callable[[str], str]
) -> np.ndarray:
    """Embeddings of each vocabulary text seen through ``view`` (one per distinct view)."""
    seen = [view(t) for t in bench.vocab]
    uniq = sorted(set(seen))
    table = dict(zip(uniq, embed(uniq), strict=True))
    return np.stack([table[o] for o in seen])


def op_only_embeddings(bench: Bench, embed: Callable[[list[str]], np.ndarray]) -> np.ndarray:
    """Embeddings of each vocabulary text's op type alone (the ``op-only text`` ablation)."""
    return view_embeddings(bench, embed, op_only)


def loso(
    benches: Mapping[str, Bench],
    emb_of: Callable[[Bench], np.ndarray],
    config: TrainConfig,
    model_config: ModelConfig,
    variants: tuple[str, ...] = ("full",),
    embed: Callable[[list[str]], np.ndarray] | None = None,
    log: Callable[[str], None] = print,
    weights: Mapping[str, float] | None = None,
) -> dict[str, dict[str, dict[str, Any]]]:
    """{held-out space: {scorer: metrics}}; scorer names are the variants (``ranker`` for
    ``full``), the baselines and the proxies. ``weights`` (space -> share of the training
    batches, >= 0) override :func:`~nas.predictors.corpus.default_weight`."""
    unknown = [v for v in variants if v not in ABLATIONS]
    if unknown:
        raise ConfigurationError(
            f"unknown LOSO variant {unknown[0]!r}; choose from {', '.join(ABLATIONS)}."
        )
    w = {k: float((weights or {}).get(k, default_weight(b))) for k, b in benches.items()}
    corpus = join(benches)
    space = list(corpus.meta["space"])
    emb = emb_of(corpus)
    views = {TEXT_VIEWS[v] for v in variants if v in TEXT_VIEWS}
    if views and embed is None:
        raise ConfigurationError("text-view variants need an embed function.")
    embs = {f: view_embeddings(corpus, embed, f) for f in views}
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for held in benches:
        tr = np.array([i for i, s in enumerate(space) if s != held])
        te = np.array([i for i, s in enumerate(space) if s == held])
        table: dict[str, dict[str, Any]] = {}
        for v in variants:
            mc, tc = ABLATIONS[v](replace(model_config), replace(config))
            e = embs[TEXT_VIEWS[v]] if v in TEXT_VIEWS else emb
            if mc.members > 1:
                res = train_ensemble(corpus, tr, e, mc.members, tc, mc, strata=space, weights=w)
            else:
                res = train(corpus, tr, e, tc, mc, strata=space, weights=w)
            rows = evaluate_all(res.model, corpus, e, te)
            name = "ranker" if v == "full" else f"ranker {v}"
            for k, m in rows.items():  # predictor@zc: the ranker on the proxies' rows
                table.setdefault(k.replace("predictor", name, 1), m)
            log(f"held out {held}: {v} trained on {len(tr)} rows in {res.seconds:.0f} s")
        out[held] = table
    return out


def format_loso(result: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> str:
    """The LOSO table: per held-out space, every scorer's Spearman, Kendall and p@10%, and
    the ranker's margin over the best baseline."""
    lines = []
    for held, table in result.items():
        lines.append(f"\nheld out: {held}")
        lines.append(f"{'scorer':<28} {'rows':>6} {'spearman':>9} {'kendall':>8} {'p@10%':>6}")
        for name, m in table.items():
            lines.append(
                f"{name:<28} {int(m['rows']):6d} {m['spearman']:9.3f} {m['kendall']:8.3f} "
                f"{m['p@10%']:6.2f}"
            )
        for name in table:
            if name.startswith("ranker") and not name.endswith("@zc"):
                lines.append(_margin(table, name))
    return "\n".join(lines)


def _gap(r: Mapping[str, Any], base: Mapping[str, Mapping[str, Any]], scope: str) -> str:
    best = max(base, key=lambda k: np.nan_to_num(base[k]["spearman"], nan=-2))
    gap = r["spearman"] - base[best]["spearman"]
    top = r["p@10%"] - max(m["p@10%"] for m in base.values())
    return f"{scope} vs {best} {gap:+.3f} (p@10% {top:+.2f})"


def _margin(table: Mapping[str, Mapping[str, Any]], name: str) -> str:
    """A ranker's Spearman and p@10% margins over the best baseline scored on the same
    rows: on all rows, and (``name@zc``) on the rows that carry the zero-cost proxies when
    only some do."""
    base = {k: m for k, m in table.items() if not k.startswith("ranker")}
    parts = []
    for key in (name, f"{name}@zc"):
        r = table.get(key)
        same = {k: m for k, m in base.items() if r is not None and m["rows"] == r["rows"]}
        if same:
            scope = "all rows" if key == name else f"{int(r['rows'])} proxy rows"
            parts.append(_gap(r, same, scope))
    return f"{name} - best baseline, Spearman: " + "; ".join(parts)
