"""Predictor figures for issue 6: NB201 ranking quality and ranking speed.

Usage (from the repository root)::

    .venv/bin/python bench/predictor.py --bench /tmp/pb/nb201-2000 --n 2000
    .venv/bin/python bench/predictor.py --bench DIR --speed 1000 --skip-train
    .venv/bin/python bench/predictor.py --skip-train --full-build /tmp/pb/nb201-full
    .venv/bin/python bench/predictor.py --skip-train --full-build /tmp/pb/nb201-full \
        --nb101 /tmp/pb/nb101

* quality: train on ``--train`` cells (whole NB201 isomorphism classes) and test on the
  bench's cells of the other classes; the same for ``--small`` training cells. Prints
  Kendall tau, Spearman and precision at the top 5% with the params/FLOPs baselines.
* speed: export ``--speed`` NB201 networks and time ``nas rank``'s work (read, canonicalise,
  embed, score) with a cold embedding cache (empty folder, model load included) and warm.
* ``--save DIR`` writes the model trained on ``--train`` cells (the bundled weights).
* full build: time building the bench of all 15,625 NB201 cells (2 worker processes), wall
  and CPU seconds; the bench is kept in ``--full-build DIR`` (reused if present).
* ``--loso SPACE=DIR[:WEIGHT] ...``: the leave-one-space-out table
  (predictors.research.loso) over benches of several spaces (``WEIGHT``: the space's share
  of the training batches, default ``corpus.default_weight``), with ``--variants
  full,no-signals,no-graph,op-only text`` ablations and the recipe variants of
  ``predictors.training.recipes.RECIPES`` (``set-signals``, ``params-prior``,
  ``prior-listnet-wide``, ...; the registry ``nas predictor train --recipe`` reads), the
  ``signal-blend`` row (``loso.SCORERS``: the signals mixed by weights fitted on the training
  spaces, no graph model), or
  the recipe itself chosen by ``--globals-norm``, ``--prior``, ``--prior-weight``,
  ``--correction``, ``--loss``. ``--seeds 0,1,2,3,4`` runs it once per seed and ends with
  the mean table (``loso.format_loso_seeds``): the one docs/predictor.md quotes. Then the
  few-shot tables (``predictors.research.fewshot_loso``, ``--few-shot 4,8,16,32``,
  ``--draws 10``; ``--few-shot 0`` skips them): k labelled rows drawn from each held-out space, the
  first variant's scores fitted to them, Spearman on the other rows against the oracle
  best baseline; the ones docs/ranking.md quotes.
* zero-shot: build the 500-cell NB101 bench in ``--nb101 DIR`` (reused if present) and score
  it with predictors trained on NB201 only: the bundled one, and one trained on every cell
  of the full NB201 bench; next to params, FLOPs and the zero-cost proxies.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch


def quality(args: argparse.Namespace) -> None:
    """Train/test figures on the bench."""
    from nas.predictors.benches.bench import Bench
    from nas.predictors.benches.nb201_bench import build_nb201_bench
    from nas.predictors.training.fit import (
        evaluate,
        format_table,
        split_by_group,
        vocab_embeddings,
    )

    folder = Path(args.bench)
    if (folder / "bench.json").is_file():
        bench = Bench.load(folder)
    else:
        t0 = time.perf_counter()
        bench = build_nb201_bench(args.n, seed=0, out=folder, workers=2)
        dt = time.perf_counter() - t0
        print(f"built {len(bench)} records in {dt:.0f} s ({dt / len(bench):.3f} s each)")
    emb = vocab_embeddings(bench)
    print(f"bench: {len(bench)} cells, {len(set(bench.groups))} classes, {len(bench.vocab)} texts")
    for n_train in (args.train, args.small):
        tr, te = split_by_group(bench, n_train, seed=args.seed)
        res = _train(args, bench, tr, emb)
        print(
            f"\ntrain {len(tr)} cells / test {len(te)} cells of other classes "
            f"({args.steps} steps x {args.members} members, {res.seconds:.0f} s), "
            "label cifar10:"
        )
        print(format_table(evaluate(res.model, bench, emb, te)))
        if args.save and n_train == args.train:
            table = evaluate(res.model, bench, emb, te)["predictor"]
            res.model.config.meta.update(
                {
                    "trained_on": f"nb201 cifar10 200-epoch test accuracy, {len(tr)} cells",
                    "test_cells": len(te),
                    "test_spearman": round(table["spearman"], 4),
                    "test_kendall": round(table["kendall"], 4),
                    "split": "by NB201 UniqueString (isomorphism class), seed "
                    f"{args.seed}; bench seed 0",
                    "recipe": _recipe(args),
                }
            )
            res.model.save(args.save)
            print(f"saved to {args.save}")


def _model_config(args: argparse.Namespace):
    from nas.predictors.model import ModelConfig

    return ModelConfig(
        globals_mode=args.globals_mode,
        dropout=args.dropout,
        globals_norm=args.globals_norm,
        prior=args.prior,
        prior_weight=args.prior_weight,
        correction=args.correction,
    )


def _recipe(args: argparse.Namespace) -> str:
    return (
        f"{args.steps} steps, {args.loss} loss, batch {args.batch}, "
        f"weight decay {args.weight_decay}, "
        f"globals {args.globals_mode} ({args.globals_norm}), prior {args.prior} "
        f"(weight {args.prior_weight}, correction {args.correction}), dropout {args.dropout}, "
        f"{args.members} member(s), seed {args.seed}"
    )


def _train(args: argparse.Namespace, bench, rows, emb):
    """Train with the command line's recipe (an ensemble when ``--members`` > 1)."""
    from nas.predictors.training.fit import RankerTrainConfig, train_ensemble

    cfg = RankerTrainConfig(
        steps=args.steps,
        batch_size=args.batch,
        seed=args.seed,
        weight_decay=args.weight_decay,
        loss=args.loss,
    )
    return train_ensemble(bench, rows, emb, args.members, cfg, _model_config(args))


def speed(args: argparse.Namespace) -> None:
    """Time ranking ``args.speed`` exported NB201 networks, cold and warm cache."""
    from nas.predictors.embed import Embedder
    from nas.predictors.model import Predictor
    from nas.predictors.record import file_record

    from nas.benchmarks.nb201 import NB201Table
    from nas.compile import compile_arch
    from nas.export import export_onnx
    from nas.nb201 import from_nb201

    table = NB201Table.load()
    rng = np.random.default_rng(1)
    picks = rng.choice(len(table), args.speed, replace=False)
    with tempfile.TemporaryDirectory() as tmp:
        files = []
        t0 = time.perf_counter()
        for k, i in enumerate(picks):
            model = compile_arch(from_nb201(table.archs[int(i)]), (3, 32, 32), 10)
            files.append(export_onnx(model, (3, 32, 32), Path(tmp) / f"{k}.onnx"))
        print(f"exported {len(files)} files in {time.perf_counter() - t0:.0f} s")
        for name, cache in (("cold", Path(tmp) / "cache"), ("warm", Path(tmp) / "cache")):
            t0 = time.perf_counter()
            pred = Predictor.load(embedder=Embedder(cache_dir=cache))
            records = [file_record(f) for f in files]
            t1 = time.perf_counter()
            scores = pred.score_records(records)
            t2 = time.perf_counter()
            print(
                f"{name} cache: {len(scores)} files in {t2 - t0:.1f} s "
                f"(read+canonicalise {t1 - t0:.1f} s, embed+score {t2 - t1:.1f} s)"
            )
        env = {**os.environ, "XDG_CACHE_HOME": str(Path(tmp) / "xdg")}
        for name in ("cold", "warm"):
            t0 = time.perf_counter()
            cmd = [str(Path(sys.executable).parent / "nas"), "rank", tmp, "--json"]
            subprocess.run(cmd, env=env, check=True, capture_output=True)
            rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
            print(
                f"`nas rank DIR --json`, {name} cache: {time.perf_counter() - t0:.1f} s "
                f"(largest child RSS so far {rss:.0f} MB)"
            )


def zero_cost(args: argparse.Namespace) -> None:
    """Train on ``--small`` cells of the bench and test on the 725 zero-cost cells (those of
    the training classes dropped), next to nwot/synflow/params on the same cells."""

    from nas.predictors.benches.bench import Bench
    from nas.predictors.benches.benchdata import nb201_zero_cost
    from nas.predictors.benches.nb201_bench import build_nb201_bench
    from nas.predictors.training.fit import (
        metrics,
        predict,
        split_by_group,
        vocab_embeddings,
    )

    from nas.benchmarks.nb201 import NB201Table
    from nas.nb201 import from_index_tuple, to_nb201

    zc = nb201_zero_cost()["cifar10"]
    table = NB201Table.load()
    index = {a: i for i, a in enumerate(table.archs)}
    keys = list(zc)
    rows = [index[to_nb201(from_index_tuple(k))] for k in keys]
    folder = Path(args.zc_bench)
    if (folder / "bench.json").is_file():
        zb = Bench.load(folder)
    else:
        zb = build_nb201_bench(None, indices=rows, out=folder, workers=2)
    bench = Bench.load(args.bench)
    tr, _ = split_by_group(bench, args.small, seed=args.seed)
    seen = {bench.groups[i] for i in tr}
    keep = [k for k in range(len(zb)) if zb.groups[k] not in seen]
    emb = vocab_embeddings(bench)
    model = _train(args, bench, tr, emb).model
    # score the zero-cost cells with the training bench's vocabulary extended
    vocab = {t: i for i, t in enumerate(bench.vocab)}
    extra = [t for t in zb.vocab if t not in vocab]
    zemb = vocab_embeddings(zb)
    pred = predict(model, zb, zemb, keep)
    by_row = {r: k for k, r in enumerate(rows)}
    val = np.array([zc[keys[by_row[zb.meta["indices"][k]]]]["val_accuracy"] for k in keep])
    test = zb.label("cifar10")[keep]
    print(
        f"\ntrain {len(tr)} cells, test {len(keep)} of the 725 zero-cost cells "
        f"({len(extra)} node texts unseen in training)"
    )
    print(f"{'scorer':<10} {'spearman(val)':>13} {'spearman(test)':>14}")
    scorers = {"predictor": pred}
    for name in ("nwot", "synflow", "params"):
        entries = [zc[keys[by_row[zb.meta["indices"][k]]]] for k in keep]
        vals = [e.get(name, np.nan) for e in entries]
        scorers[name] = np.array(vals, float)
    for name, sc in scorers.items():
        ok = ~np.isnan(sc)  # a few cells lack some proxies
        print(
            f"{name:<10} {metrics(sc[ok], val[ok])['spearman']:13.3f} "
            f"{metrics(sc[ok], test[ok])['spearman']:14.3f}  ({int(ok.sum())} cells)"
        )


def _cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def full_build(args: argparse.Namespace):
    """Build (or load) the bench of all 15,625 NB201 cells, timing the build."""
    from nas.predictors.benches.bench import Bench
    from nas.predictors.benches.nb201_bench import build_nb201_bench

    folder = Path(args.full_build)
    if (folder / "bench.json").is_file():
        bench = Bench.load(folder)
        print(f"full NB201 bench: {len(bench)} cells, built in {bench.meta['build_seconds']} s")
        return bench
    t0, c0 = time.perf_counter(), _cpu_seconds()
    bench = build_nb201_bench(None, out=folder, workers=2)
    wall, cpu = time.perf_counter() - t0, _cpu_seconds() - c0
    print(
        f"full NB201 bench: {len(bench)} cells in {wall:.0f} s wall, {cpu:.0f} s CPU "
        f"({1000 * cpu / len(bench):.1f} ms CPU per cell; load average {os.getloadavg()[0]:.1f})"
    )
    return bench


def zero_shot(args: argparse.Namespace, nb201) -> None:
    """NB201-trained predictors on the 500 NB101 cells, with baselines and proxies."""
    from nas.predictors.benches.bench import Bench
    from nas.predictors.benches.nb101_bench import build_nb101_bench
    from nas.predictors.model import GraphRanker, bundled_dir
    from nas.predictors.training.fit import evaluate_all, format_table, vocab_embeddings

    folder = Path(args.nb101)
    if (folder / "bench.json").is_file():
        nb101 = Bench.load(folder)
    else:
        t0, c0 = time.perf_counter(), _cpu_seconds()
        nb101 = build_nb101_bench(None, out=folder, workers=2)
        print(
            f"NB101 bench: {len(nb101)} cells exported in {time.perf_counter() - t0:.0f} s "
            f"wall, {_cpu_seconds() - c0:.0f} s CPU"
        )
    emb = vocab_embeddings(nb101)
    rows = np.arange(len(nb101))
    models = {"bundled (1,000 NB201 cells)": GraphRanker.load(bundled_dir())}
    if nb201 is not None:
        res = _train(args, nb201, np.arange(len(nb201)), vocab_embeddings(nb201))
        models[f"trained on all {len(nb201):,} NB201 cells"] = res.model
    for name, model in models.items():
        table = evaluate_all(model, nb101, emb, rows)
        print(f"\nzero-shot on {len(nb101)} NB101 cells (108-epoch val accuracy), {name}:")
        print(format_table(table))
        gap = table["predictor"]["spearman"] - table["params"]["spearman"]
        print(f"predictor - params Spearman: {gap:+.3f}")


def parse_loso_item(item: str) -> tuple[str, str, float | None]:
    """``SPACE=DIR`` or ``SPACE=DIR:WEIGHT`` -> (space, folder, weight or None).

    A folder that exists is taken whole, so a path with a ':' in it is never read as a weight.
    """
    from pathlib import Path

    from nas.exceptions import ConfigurationError

    name, eq, folder = item.partition("=")
    if not eq or not name or not folder:
        raise ConfigurationError(f"--loso item {item!r} must read SPACE=BENCH_DIR[:WEIGHT].")
    head, sep, tail = folder.rpartition(":")
    if not sep or Path(folder).exists():
        return name, folder, None
    try:
        weight = float(tail)
    except ValueError:
        raise ConfigurationError(
            f"{name!r}: no bench folder {folder!r}, and {tail!r} is not a weight."
        ) from None
    if not np.isfinite(weight) or weight < 0:
        raise ConfigurationError(f"weight of {name!r} must be a finite number >= 0, not {tail}.")
    return name, head, weight


def loso_cmd(args: argparse.Namespace) -> None:
    """Leave-one-space-out table over ``--loso NAME=BENCH_DIR ...`` (see
    predictors.research.loso)."""
    from nas.predictors.benches.bench import Bench
    from nas.predictors.embed import Embedder
    from nas.predictors.research.loso import format_loso, format_loso_seeds, loso
    from nas.predictors.training.fit import RankerTrainConfig, vocab_embeddings

    benches, weights = {}, {}
    for item in args.loso:
        name, folder, weight = parse_loso_item(item)
        benches[name] = Bench.load(folder)
        if weight is not None:
            weights[name] = weight
    embedder = Embedder()
    cfg = RankerTrainConfig(
        steps=args.steps,
        batch_size=args.batch,
        seed=args.seed,
        weight_decay=args.weight_decay,
        loss=args.loss,
    )
    variants = tuple(args.variants.split(","))
    seeds = args.seeds or [args.seed]
    results, zero = [], {}
    for seed in seeds:
        t0 = time.perf_counter()
        result = loso(
            benches, lambda b: vocab_embeddings(b, embedder), replace(cfg, seed=seed),
            _model_config(args), variants, embedder.embed, weights=weights,
            scores=zero if seed == seeds[0] else None,
        )  # fmt: skip
        print(f"\n== seed {seed}" if len(seeds) > 1 else "", format_loso(result))
        print(f"\nLOSO over {', '.join(benches)}: {time.perf_counter() - t0:.0f} s")
        results.append(result)
    if len(seeds) > 1:
        print("\n" + format_loso_seeds(results))
    if args.few_shot:
        few_shot_cmd(benches, zero, variants[0], args.few_shot, args.draws)


def few_shot_cmd(benches, zero, name: str, ks: list[int], draws: int) -> None:
    """The few-shot tables (predictors.research.fewshot_loso) from variant ``name``'s held-out
    scores (and pooled graph features) of the first seed: k labelled rows of each held-out
    space, ``draws`` draws."""
    from nas.predictors.research.fewshot_loso import few_shot_loso, format_few_shot
    from nas.predictors.training.corpus import join

    t0 = time.perf_counter()
    pred = {h: s[name] for h, s in zero.items()}
    head = {h: s[f"{name} head"] for h, s in zero.items() if f"{name} head" in s}
    res = few_shot_loso(join(benches), pred, ks, draws, graph=head)
    print(format_few_shot(res, name, draws))
    print(f"\nfew-shot tables ({name} as the zero-shot score): {time.perf_counter() - t0:.0f} s")


def _seed_list(text: str) -> list[int]:
    """``0,1,2`` -> [0, 1, 2] (argparse reports anything else as a usage error)."""
    try:
        seeds = [int(x) for x in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"seeds are whole numbers: {text!r}") from None
    return seeds


def main() -> None:
    """Parse arguments and run the requested measurements."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bench", default="/tmp/pb/nb201-2000")
    p.add_argument("--n", type=int, default=2000)
    p.add_argument("--train", type=int, default=1000)
    p.add_argument("--small", type=int, default=100)
    p.add_argument("--steps", type=int, default=400)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--globals-mode", default="mlp", choices=("mlp", "linear", "none"))
    p.add_argument("--dropout", type=float, default=0.0)
    p.add_argument("--globals-norm", default="train", choices=("train", "set"))
    p.add_argument("--prior", default="none", choices=("none", "params", "flops"))
    p.add_argument("--prior-weight", type=float, default=4.0)
    p.add_argument("--correction", type=float, default=1.0)
    p.add_argument("--loss", default="pairwise", choices=("pairwise", "listnet"))
    p.add_argument("--members", type=int, default=1, help="ensemble of seeds seed..")
    p.add_argument("--save", default=None)
    p.add_argument("--speed", type=int, default=0)
    p.add_argument("--skip-train", action="store_true")
    p.add_argument("--zc", action="store_true", help="compare with zero-cost proxies")
    p.add_argument("--zc-bench", default="/tmp/pb/nb201-zc725")
    p.add_argument("--full-build", default=None, help="folder of the full NB201 bench")
    p.add_argument("--nb101", default=None, help="folder of the NB101 bench (zero-shot)")
    p.add_argument(
        "--loso", nargs="*", default=None, help="SPACE=BENCH_DIR[:WEIGHT] ... (LOSO table)"
    )
    p.add_argument("--variants", default="full", help="LOSO ablations, e.g. full,no-signals")
    p.add_argument(
        "--seeds",
        type=_seed_list,
        default=None,
        help="LOSO seeds, e.g. 0,1,2,3,4: a table each, then the mean",
    )
    p.add_argument(
        "--few-shot",
        type=_seed_list,
        default=[4, 8, 16, 32],
        help="LOSO few-shot tables for these k (labelled rows of the held-out space); "
        "0 skips them",
    )
    p.add_argument("--draws", type=int, default=10, help="few-shot draws per k")
    args = p.parse_args()
    args.few_shot = [k for k in args.few_shot if k > 0]
    torch.set_num_threads(1)
    if args.loso:
        loso_cmd(args)
        return
    if not args.skip_train:
        quality(args)
    if args.zc:
        zero_cost(args)
    nb201 = full_build(args) if args.full_build else None
    if args.nb101:
        zero_shot(args, nb201)
    if args.speed:
        speed(args)


if __name__ == "__main__":
    from nas.exceptions import NasError

    try:
        main()
    except NasError as e:  # a wrong folder, weight or variant: one line, not a traceback
        sys.exit(f"error: {e}")
