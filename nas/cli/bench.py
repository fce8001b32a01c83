"""``nas bench ...``: build benches of architecture records for the predictor.

Thin wrappers over nas.predictors (``nas predictor ...`` lives in predictor_cmds.py); every
user mistake is a NasError (one line, exit 2).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from nas.cli._app import WORKERS, Number, app, out, progress, seed_opt
from nas.exceptions import ConfigurationError

bench_app = typer.Typer(
    help="Build benches: architecture records (graph, params, FLOPs, labels) for the predictor.",
    no_args_is_help=True,
)
app.add_typer(bench_app, name="bench")

OutOpt = Annotated[Path, typer.Option("-o", "--output", help="Folder to write.")]


def _spaces() -> dict[str, tuple[Callable[..., Any], Callable[[list[str]], Any], int]]:
    """Space name -> (bench builder, label check, number of cells)."""
    from nas.predictors.benches.nb101_bench import build_nb101_bench, nb101_labels
    from nas.predictors.benches.nb201_bench import build_nb201_bench, nb201_labels
    from nas.predictors.benches.nb301_bench import build_nb301_bench, nb301_labels

    return {
        "nb201": (build_nb201_bench, nb201_labels, 15625),
        "nb101": (build_nb101_bench, nb101_labels, 500),
        "nb301": (build_nb301_bench, nb301_labels, 725),
    }


OverwriteOpt = Annotated[
    bool, typer.Option("--overwrite", help="Replace the bench already in the -o folder.")
]


def _output(path: Path, overwrite: bool) -> Path:
    """Refuse, before any work, an -o that is a file, a folder of other files, or a bench
    (a bench can take hours to build, so it is replaced only with --overwrite)."""
    if path.exists() and not path.is_dir():
        raise ConfigurationError(f"{path} is a file; -o needs a folder for the bench.")
    if path.is_dir() and any(path.iterdir()):
        if not (path / "bench.json").exists():
            raise ConfigurationError(
                f"{path} is a folder of other files, not a bench; give a new or empty folder."
            )
        if not overwrite:
            raise ConfigurationError(
                f"{path} already holds a bench; give a new folder, or --overwrite to replace it."
            )
    return path


CellsOpt = Annotated[
    int | None,
    typer.Option(
        "--n",
        "-n",
        "--num",
        help="Cells drawn at random (default: all).",
        parser=Number("--n", 1),
    ),
]

LabelColumnsOpt = Annotated[
    str | None,
    typer.Option(
        "--labels",
        help="Comma-separated label columns: nb201 cifar10,cifar100,imagenet16-120 "
        "(default all); nb101, nb301 cifar10.",
    ),
]


@bench_app.command("build")
def bench_build(
    output: OutOpt,
    space: Annotated[
        str, typer.Option("--space", help="Benchmark: nb201, nb101 or nb301.")
    ] = "nb201",
    n: CellsOpt = None,
    labels: LabelColumnsOpt = None,
    seed: Annotated[int, seed_opt("Seed of the random draw.")] = 0,
    workers: Annotated[
        int,
        typer.Option("--workers", help="Worker processes.", parser=WORKERS),
    ] = 2,
    export: Annotated[
        bool,
        typer.Option(
            "--export",
            help="nb201: export every network to ONNX and compute its data-free signals "
            "(nwot), like the nb101/nb301 builds (slow reference path).",
        ),
    ] = False,
    overwrite: OverwriteOpt = False,
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
    _output(output, overwrite)
    kw: dict[str, Any] = {"method": "export" if export else "direct"} if space == "nb201" else {}
    with progress(n or size, f"{space} cells") as update:
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
    overwrite: OverwriteOpt = False,
) -> None:
    """Turn search runs' successful trials into one bench (label: their accuracy, the mean
    where an architecture was trained more than once)."""
    from nas.predictors.benches.run_bench import build_runs_bench, merge_trials
    from nas.searches.evaluators import claimant
    from nas.searches.store import open_run

    _output(output, overwrite)
    loaded = []
    for run in runs:
        if not run.is_dir():
            raise ConfigurationError(f"{run} is not a directory (give a search run's folder).")
        info, store = open_run(run)
        loaded.append((run, info, [r for r in store.records() if r.ok]))
    total = len(merge_trials(t for _, _, ts in loaded for t in ts)[0])
    opts = loaded[0][1]["options"]
    evaluator = claimant(opts["space"], opts["dataset"])  # the one that ran the trials
    recorder = evaluator.recorder(opts["space"], opts["dataset"])
    hooks = {"recorder": recorder, "label": _zoo_label(evaluator, opts)} if recorder else {}
    with progress(total, "architectures") as update:
        bench, skipped = build_runs_bench(loaded, out=output, progress=update, **hooks)
    source = str(runs[0]) if len(runs) == 1 else f"{len(runs)} runs"
    trials = bench.meta["trials"]
    merged = f" ({trials} trials)" if trials != len(bench) + len(skipped) else ""
    out.print(
        f"wrote {output}: {len(bench)} records from {source}{merged}, "
        f"label {bench.meta.get('label') or bench.label_names[0]}"
    )
    for reason in skipped:
        out.print(f"skipped {reason}", markup=False)


def _zoo_label(evaluator: Any, opts: dict[str, Any]) -> str:
    """What a zoo run's ``accuracy`` label means (the family's metric, negated if lower is
    better)."""
    metric = evaluator.fitness_label(opts["space"], opts["dataset"])
    return f"trial {metric} on zoo task {opts['dataset']} after each config's own epochs"
