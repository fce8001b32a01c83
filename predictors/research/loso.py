"""Leave-one-space-out evaluation: train on every space but one, rank the one left out.

This is the protocol that chooses the bundled model (never test cells): for each space of
the corpus, a ranker trained on the other spaces (batches drawn within one space, labels as
within-space ranks, see :mod:`nas.predictors.training.corpus`) scores the held-out space,
next to every data-free baseline (params, FLOPs, depth, nodes, width, the ONNX signals) and
every zero-cost proxy the benches carry. The variants are the training recipes of
:data:`nas.predictors.training.recipes.RECIPES` (ablations such as ``no-signals``,
``op-only text``, ``no-graph``, and recipe changes such as ``params-prior``,
``prior-listnet-wide``), the registry that ``nas predictor train --recipe`` reads too.
Each ranker's margin over the best baseline comes with a paired-bootstrap interval
(:func:`margin_interval`): on a space of 20 rows a margin of 0.05 is noise, and the table
says so.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from functools import partial
from typing import Any

import numpy as np
from nas.predictors.benches.bench import Bench
from nas.predictors.model import ModelConfig
from nas.predictors.training.corpus import default_weight, join
from nas.predictors.training.fit import (
    RankerTrainConfig,
    baseline_scores,
    evaluate_all,
    predict,
    train,
    train_ensemble,
)
from nas.predictors.training.rankmetrics import margin_interval
from nas.predictors.training.recipes import RECIPES, TEXT_VIEWS, op_only

from nas.exceptions import ConfigurationError
from nas.registry import Registry

ABLATIONS = RECIPES  # the LOSO variants: every training recipe


def _signal_blend(
    corpus: Bench, tr: np.ndarray, te: np.ndarray, space: list[str], single: bool = False
) -> np.ndarray:
    """The held-out rows scored by the signal mix (``single``: the one signal) that ranks
    the training rows' spaces best."""
    from nas.predictors.research.blend import blend_scores, fit_blend

    return blend_scores(corpus, te, fit_blend(corpus, tr, space, single=single))


# LOSO variants that are not graph rankers: name -> scores of the held-out rows, fitted on
# the training rows (corpus, training rows, held-out rows, each row's space)
SCORERS: Registry[Callable[[Bench, np.ndarray, np.ndarray, list[str]], np.ndarray]] = Registry(
    "LOSO scorer", ordered=True
)
SCORERS.add("signal-blend", _signal_blend)
SCORERS.add("signal-pick", partial(_signal_blend, single=True))
TARGET_MARGIN = 0.05  # Spearman a ranker must gain over the best baseline on each space


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
    config: RankerTrainConfig,
    model_config: ModelConfig,
    variants: tuple[str, ...] = ("full",),
    embed: Callable[[list[str]], np.ndarray] | None = None,
    log: Callable[[str], None] = print,
    weights: Mapping[str, float] | None = None,
    scores: dict[str, dict[str, np.ndarray]] | None = None,
) -> dict[str, dict[str, dict[str, Any]]]:
    """{held-out space: {scorer: metrics}}; scorer names are the variants (``ranker`` for
    ``full``), the baselines and the proxies. ``weights`` (space -> share of the training
    batches, >= 0) override :func:`~nas.predictors.training.corpus.default_weight`.
    ``scores``, when given, is filled with {held-out space: {variant: its held-out scores,
    and for a graph ranker "VARIANT head": its pooled graph features}} (the few-shot tables
    start from them: :mod:`nas.predictors.research.fewshot_loso`)."""
    unknown = [v for v in variants if v not in ABLATIONS and v not in SCORERS]
    if unknown:
        raise ConfigurationError(
            f"unknown LOSO variant {unknown[0]!r}; choose from "
            f"{', '.join([*ABLATIONS.names(), *SCORERS.names()])}."
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
        base = baseline_scores(corpus, te, every=True)
        y = corpus.label()[te]
        for v in variants:
            if v in SCORERS:  # fitted on the training rows, no graph model
                pred, note = SCORERS.get(v)(corpus, tr, te, space), "fitted"
            else:
                pred, note, head = _train_predict(
                    v, corpus, tr, te, emb, embs, config, model_config, w, space
                )
                if scores is not None:
                    scores.setdefault(held, {})[f"{v} head"] = head
            rows = evaluate_all(None, corpus, emb, te, scores=pred)
            name = "ranker" if v == "full" else f"ranker {v}"
            if scores is not None:
                scores.setdefault(held, {})[v] = pred
            for k, m in rows.items():  # predictor@zc: the ranker on the proxies' rows
                table.setdefault(k.replace("predictor", name, 1), m)
            table[name]["margin"] = margin_interval(pred, base, y)
            log(f"held out {held}: {v} {note} on {len(tr)} rows")
        out[held] = table
    return out


def _train_predict(
    v: str,
    corpus: Bench,
    tr: np.ndarray,
    te: np.ndarray,
    emb: np.ndarray,
    embs: Mapping[Callable[[str], str], np.ndarray],
    config: RankerTrainConfig,
    model_config: ModelConfig,
    w: Mapping[str, float],
    space: list[str],
) -> tuple[np.ndarray, str, np.ndarray]:
    """Train recipe ``v`` on the rows ``tr`` (``space``: each row's space, the batches'
    strata); (its scores of ``te``, a log note, the pooled graph features its heads scored:
    :func:`~nas.predictors.fewshot.head_inputs`)."""
    from nas.predictors.fewshot import head_inputs

    mc, tc = ABLATIONS.get(v)(replace(model_config), replace(config))
    e = embs[TEXT_VIEWS[v]] if v in TEXT_VIEWS else emb
    if mc.members > 1:
        res = train_ensemble(corpus, tr, e, mc.members, tc, mc, strata=space, weights=w)
    else:
        res = train(corpus, tr, e, tc, mc, strata=space, weights=w)
    with head_inputs(res.model) as head:
        pred = predict(res.model, corpus, e, te)
    return pred, f"trained in {res.seconds:.0f} s", head[0]


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
                if "margin" in table[name]:
                    best, gap, lo, hi = table[name]["margin"]
                    lines.append(
                        f"  {name} - {best}: {gap:+.3f}, 90% bootstrap interval "
                        f"[{lo:+.3f}, {hi:+.3f}] over {int(table[name]['rows'])} rows"
                    )
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


def format_loso_seeds(results: Sequence[Mapping[str, Mapping[str, Mapping[str, Any]]]]) -> str:
    """Several seeds' LOSO results in one table: per held-out space, every scorer's mean
    Spearman (min..max over seeds; baselines do not depend on the seed), Kendall and p@10%,
    and each ranker's mean margin over the best baseline with the seeds' bootstrap
    intervals pooled (the mean of their bounds) and whether it meets the +0.05 target."""
    lines = [f"LOSO over {len(results)} seeds"]
    for held in results[0]:
        tables = [r[held] for r in results]
        lines.append(f"\nheld out: {held}")
        lines.append(
            f"{'scorer':<28} {'rows':>6} {'spearman':>9} {'(min..max)':>16} {'kendall':>8} "
            f"{'p@10%':>6}"
        )
        for name in tables[0]:
            ms = [t[name] for t in tables if name in t]
            sp = np.array([m["spearman"] for m in ms])
            span = f"{np.nanmin(sp):.3f}..{np.nanmax(sp):.3f}" if np.isfinite(sp).any() else ""
            lines.append(
                f"{name:<28} {int(ms[0]['rows']):6d} {np.mean(sp):9.3f} {span:>16} "
                f"{np.mean([m['kendall'] for m in ms]):8.3f} "
                f"{np.mean([m['p@10%'] for m in ms]):6.2f}"
            )
        for name in tables[0]:
            margins = [t[name]["margin"] for t in tables if "margin" in t.get(name, {})]
            if not margins:
                continue
            best = margins[0][0]
            gap, lo, hi = (float(np.mean([m[k] for m in margins])) for k in (1, 2, 3))
            verdict = "meets" if gap >= TARGET_MARGIN else "misses"
            lines.append(
                f"  {name} - {best}: {gap:+.3f} (90% interval [{lo:+.3f}, {hi:+.3f}]); "
                f"{verdict} the +{TARGET_MARGIN:.2f} target"
            )
    return "\n".join(lines)
