"""``nas bench ...`` and ``nas predictor ...``: build benches, train and evaluate the predictor.

Thin wrappers over nas.predictors; every user mistake is a NasError (one line, exit 2).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from nas.cli._app import app, out
from nas.exceptions import ConfigurationError

bench_app = typer.Typer(
    help="Build benches: architecture records (graph, params, FLOPs, labels) for the predictor.",
    no_args_is_help=True,
)
predictor_app = typer.Typer(
    help="Train and evaluate the zero-shot predictor.", no_args_is_help=True
)
app.add_typer(bench_app, name="bench")
app.add_typer(predictor_app, name="predictor")

OutOpt = Annotated[Path, typer.Option("-o", "--output", help="Folder to write.")]
BenchOpt = Annotated[Path, typer.Option("--bench", help="Bench folder (from `nas bench`).")]
LabelOpt = Annotated[
    str | None, typer.Option("--label", help="Label column (default: the bench's first).")
]


def _spaces() -> dict[str, tuple[Callable[..., Any], Callable[[list[str]], Any], int]]:
    """Space name -> (bench builder, label check, number of cells)."""
    from nas.predictors.nb101_bench import build_nb101_bench, nb101_labels
    from nas.predictors.nb201_bench import build_nb201_bench, nb201_labels
    from nas.predictors.nb301_bench import build_nb301_bench, nb301_labels

    return {
        "nb201": (build_nb201_bench, nb201_labels, 15625),
        "nb101": (build_nb101_bench, nb101_labels, 500),
        "nb301": (build_nb301_bench, nb301_labels, 725),
    }


@contextmanager
def _progress(total: int, what: str) -> Iterator[Callable[[int], None]]:
    """A rich progress bar; yields ``update(done)``."""
    with Progress(
        TextColumn(what),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=out,
        transient=False,
    ) as bar:
        task = bar.add_task(what, total=total)
        yield lambda done: bar.update(task, completed=done)


def _output(path: Path) -> Path:
    if path.exists() and not path.is_dir():
        raise ConfigurationError(f"{path} is a file; -o needs a folder for the bench.")
    return path


def _load_bench(path: Path):
    from nas.predictors.bench import Bench

    if not path.exists():
        raise ConfigurationError(f"bench {path} does not exist (build one with `nas bench`).")
    return Bench.load(path)


@bench_app.command("build")
def bench_build(
    output: OutOpt,
    space: Annotated[
        str, typer.Option("--space", help="Benchmark: nb201, nb101 or nb301.")
    ] = "nb201",
    n: Annotated[
        int | None, typer.Option("--n", help="Cells drawn at random (default: all).")
    ] = None,
    labels: Annotated[
        str | None,
        typer.Option(
            "--labels",
            help="Comma-separated label columns: nb201 cifar10,cifar100,imagenet16-120 "
            "(default all); nb101, nb301 cifar10.",
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the random draw.")] = 0,
    workers: Annotated[int, typer.Option(help="Worker processes.", min=1)] = 2,
    export: Annotated[
        bool,
        typer.Option(
            "--export",
            help="nb201: export every network to ONNX and compute its data-free signals "
            "(nwot), like the nb101/nb301 builds (slow reference path).",
        ),
    ] = False,
) -> None:
    """Build a bench of a tabular benchmark's cells: graphs, params, FLOPs, labels, proxies."""
    spaces = _spaces()
    if space not in spaces:
        raise ConfigurationError(f"unknown bench space {space!r}; choose {', '.join(spaces)}.")
    build, check_labels, size = spaces[space]
    names = None
    if labels is not None:
        names = [x.strip() for x in labels.split(",") if x.strip()]
        if not names:
            raise ConfigurationError("--labels is empty; give e.g. --labels cifar10,cifar100.")
        check_labels(names)
    if n is not None and not 0 < n <= size:
        raise ConfigurationError(f"--n must lie in 1..{size} for {space}, got {n}.")
    _output(output)
    kw: dict[str, Any] = {"method": "export" if export else "direct"} if space == "nb201" else {}
    with _progress(n or size, f"{space} cells") as update:
        kw.update(seed=seed, out=output, workers=workers, labels=names, progress=update)
        bench = build(n, **kw)
    out.print(
        f"wrote {output}: {len(bench)} records, {len(set(bench.groups))} groups, "
        f"{len(bench.vocab)} distinct node texts, labels {', '.join(bench.label_names)}"
        + (f", {len(bench.proxy_names)} zero-cost proxies" if bench.proxy_names else "")
        + (f", signals {', '.join(bench.signal_names)}" if bench.signal_names else "")
        + f" ({bench.meta.get('build_seconds', 0):.0f} s)"
    )


@bench_app.command("from-run")
def bench_from_run(
    runs: Annotated[
        list[Path],
        typer.Argument(
            help="Finished search run directories of one protocol (space, dataset, epochs).",
            show_default=False,
        ),
    ],
    output: OutOpt,
) -> None:
    """Turn search runs' successful trials into one bench (label: their accuracy, the mean
    where an architecture was trained more than once)."""
    from nas.predictors.run_bench import build_runs_bench, merge_trials
    from nas.searches.store import open_run

    _output(output)
    loaded = []
    for run in runs:
        if not run.is_dir():
            raise ConfigurationError(f"{run} is not a directory (give a search run's folder).")
        info, store = open_run(run)
        loaded.append((run, info, [r for r in store.records() if r.ok]))
    total = len(merge_trials(t for _, _, ts in loaded for t in ts)[0])
    opts = loaded[0][1]["options"]
    zoo = str(opts["space"]).startswith("zoo:")
    hooks = {"recorder": _zoo_recorder(opts), "label": _zoo_label(opts)} if zoo else {}
    with _progress(total, "architectures") as update:
        bench, skipped = build_runs_bench(loaded, out=output, progress=update, **hooks)
    source = str(runs[0]) if len(runs) == 1 else f"{len(runs)} runs"
    trials = bench.meta["trials"]
    merged = f" ({trials} trials)" if trials != len(bench) + len(skipped) else ""
    out.print(
        f"wrote {output}: {len(bench)} records from {source}{merged}, label {bench.label_names[0]}"
    )
    for reason in skipped:
        out.print(f"skipped {reason}", markup=False)


def _metrics_table(table: dict[str, dict[str, float]]) -> Table:
    t = Table("scorer", "rows", "kendall", "spearman", "p@5%", "p@10%")
    for name, m in table.items():
        t.add_row(
            name, str(int(m["rows"])), f"{m['kendall']:.3f}", f"{m['spearman']:.3f}",
            f"{m['p@5%']:.2f}", f"{m['p@10%']:.2f}",
        )  # fmt: skip
    return t


@predictor_app.command("train")
def predictor_train(
    bench: BenchOpt,
    output: Annotated[Path, typer.Option("-o", "--output", help="Folder for the model.")],
    n_train: Annotated[
        int | None,
        typer.Option(
            "--n-train",
            help="Train on about N rows (whole groups) and test on the other groups "
            "(default: train on every row).",
        ),
    ] = None,
    label: LabelOpt = None,
    steps: Annotated[int, typer.Option(help="Optimisation steps.", min=1)] = 400,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Graphs per step.", min=2)] = 64,
    lr: Annotated[float, typer.Option(help="AdamW learning rate.")] = 2e-3,
    hidden: Annotated[int, typer.Option(help="Hidden size of the graph network.", min=1)] = 64,
    layers: Annotated[int, typer.Option(help="Message-passing rounds.", min=0)] = 4,
    seed: Annotated[int, typer.Option(help="Seed of the split and the training.")] = 0,
) -> None:
    """Train a predictor on a bench (pairwise ranking loss; splits by group, never by row)."""
    import numpy as np

    from nas.predictors.fit import (
        TrainConfig,
        evaluate_all,
        group_key,
        split_by_group,
        train,
        vocab_embeddings,
    )
    from nas.predictors.model import ModelConfig

    b = _load_bench(bench)
    b.label(label)  # an unknown label fails here, before any work
    if n_train is not None:
        if not 1 < n_train < len(b):
            raise ConfigurationError(f"--n-train must lie in 2..{len(b) - 1}, got {n_train}.")
        tr, te = split_by_group(b, n_train, seed=seed)
    else:
        tr, te = np.arange(len(b)), np.zeros(0, int)
    emb = vocab_embeddings(b)
    cfg = TrainConfig(steps=steps, batch_size=batch_size, lr=lr, label=label, seed=seed)
    mc = ModelConfig(hidden=hidden, layers=layers)
    with _progress(steps, "steps") as update:
        res = train(b, tr, emb, cfg, mc, on_step=lambda step, _loss: update(step))
    res.model.config.meta.update(
        {
            "trained_on": f"{b.meta.get('space', 'bench')} {bench.name}: {len(tr)} rows, "
            f"label {label or b.label_names[0]}",
            "train_groups": sorted({group_key(b.groups[i]) for i in tr}),
            "split": f"by group, seed {seed}" if len(te) else "every row",
        }
    )
    res.model.save(output)
    out.print(f"wrote {output}: trained on {len(tr)} rows in {res.seconds:.0f} s")
    if len(te):
        out.print(f"test: the {len(te)} rows of the other groups")
        out.print(_metrics_table(evaluate_all(res.model, b, emb, te, label)))


@predictor_app.command("eval")
def predictor_eval(
    bench: BenchOpt,
    model: Annotated[
        Path | None, typer.Option("--model", help="Predictor folder (default: bundled).")
    ] = None,
    label: LabelOpt = None,
    include_train: Annotated[
        bool,
        typer.Option("--include-train", help="Also score rows of the model's training groups."),
    ] = False,
) -> None:
    """Kendall tau, Spearman, precision at top 5%: predictor vs params, FLOPs, proxies."""
    import numpy as np

    from nas.predictors.fit import evaluate_all, unseen_rows, vocab_embeddings
    from nas.predictors.model import GraphRanker, bundled_dir

    ranker = GraphRanker.load(model or bundled_dir())
    b = _load_bench(bench)
    b.label(label)
    seen = ranker.config.meta.get("train_groups", [])
    rows = np.arange(len(b)) if include_train else unseen_rows(b, seen)
    if len(rows) < 2:
        raise ConfigurationError(
            f"only {len(rows)} rows of {bench} lie outside the model's training groups; "
            "use --include-train to score them anyway."
        )
    emb = vocab_embeddings(b)
    lab = label or b.label_names[0]
    left = len(b) - len(rows)
    note = f" ({left} rows of the model's training groups left out)" if left else ""
    out.print(f"{bench}: {len(rows)} rows, label {lab}{note}")
    if not seen and not include_train:
        out.print("note: the model records no training groups; none were left out.")
    out.print(_metrics_table(evaluate_all(ranker, b, emb, rows, label)))


def _zoo_recorder(opts: dict[str, Any]) -> Any:
    """Records of a zoo run's configs: the family's own ONNX export, untrained (seed 0), for
    the run's task, read back like a user's file (the predictor knows nothing of the zoo)."""
    from nas.predictors.bench import file_record
    from nas.zoo import config_from_arch, export_config

    def record(arch: str, folder: str) -> Any:
        family, config = config_from_arch(arch)
        path, _ = export_config(
            family, Path(folder) / "trial.onnx", config, task=opts["dataset"], seed=0
        )
        try:
            return file_record(path, signals=True)
        finally:
            path.unlink()

    return record


def _zoo_label(opts: dict[str, Any]) -> str:
    """What a zoo run's ``accuracy`` label means (the family's metric, negated if lower is
    better)."""
    from nas.searches.zoo_evaluator import ZooEvaluator

    metric = ZooEvaluator.fitness_label(opts["space"], opts["dataset"])
    return f"trial {metric} on zoo task {opts['dataset']} after each config's own epochs"
