"""``nas predictor train|eval``: train the predictor on a bench and evaluate it.

Thin wrappers over nas.predictors; every user mistake is a NasError (one line, exit 2).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from nas.cli._app import out, progress, sub_app
from nas.exceptions import ConfigurationError

predictor_app = sub_app("predictor", "Train and evaluate the zero-shot predictor.")

BenchOpt = Annotated[Path, typer.Option("--bench", help="Bench folder (from `nas bench`).")]
LabelOpt = Annotated[
    str | None, typer.Option("--label", help="Label column (default: the bench's first).")
]


def _load_bench(path: Path):
    from nas.predictors.bench import Bench

    if not path.exists():
        raise ConfigurationError(f"bench {path} does not exist (build one with `nas bench`).")
    return Bench.load(path)


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
    with progress(steps, "steps") as update:
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
