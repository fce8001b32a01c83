"""``nas predictor train|eval``: train the ranker on benches of one or several spaces, score it.

Thin wrappers over nas.predictors.training (``trainset``, ``recipes``, ``fit``); every user
mistake is a NasError (one line, exit 2).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from nas.cli._app import MAX_LR, Number, out, progress, seed_opt, sub_app
from nas.exceptions import ConfigurationError
from nas.predictors.training.recipes import DEFAULT, trainable

if TYPE_CHECKING:  # the predictor's torch modules load only when a command runs
    from nas.predictors.benches.bench import Bench
    from nas.predictors.model import GraphRanker

predictor_app = sub_app("predictor", "Train and evaluate the zero-shot predictor.")

BenchOpt = Annotated[Path, typer.Option("--bench", help="Bench folder (from `nas bench`).")]
LabelOpt = Annotated[
    str | None, typer.Option("--label", help="Label column (default: the bench's first).")
]


def _load_bench(path: Path):
    from nas.predictors.benches.bench import Bench

    if not path.exists():
        raise ConfigurationError(f"bench {path} does not exist (build one with `nas bench`).")
    return Bench.load(path)


def _benches(paths: list[Path]) -> tuple[dict, dict[str, str]]:
    """Space name -> bench, and space name -> folder; a space given twice is an error."""
    benches, sources = {}, {}
    for path in paths:
        b = _load_bench(path)
        name = str(b.meta.get("space") or path.name)
        if name in benches:
            raise ConfigurationError(
                f"benches {sources[name]} and {path} are both of space {name!r}; give one "
                "bench per space (join them with `nas bench from-run` or build one bench)."
            )
        benches[name], sources[name] = b, str(path)
    return benches, sources


def _parse_weights(items: list[str]) -> dict[str, float]:
    """``SPACE=W`` items -> {space: weight} (the values are checked by the library)."""
    weights = {}
    for item in items:
        name, sep, value = item.partition("=")
        try:
            weights[name] = float(value)
        except ValueError:
            sep = ""
        if not sep or not name:
            raise ConfigurationError(f"--weight takes SPACE=W with W a number, not {item!r}.")
    return weights


def _metrics_table(table: dict[str, dict[str, float]]) -> Table:
    t = Table("scorer", "rows", "kendall", "spearman", "p@5%", "p@10%")
    for name, m in table.items():
        t.add_row(
            name, str(int(m["rows"])), f"{m['kendall']:.3f}", f"{m['spearman']:.3f}",
            f"{m['p@5%']:.2f}", f"{m['p@10%']:.2f}",
        )  # fmt: skip
    return t


BenchesOpt = Annotated[
    list[Path],
    typer.Option(
        "--bench",
        metavar="DIR",
        help="Bench folder (from `nas bench`). Repeat it for several spaces (one bench each, "
        "named by the bench's space or else its folder): labels become ranks within each "
        "space and every batch is drawn from one space.",
    ),
]
NTrainOpt = Annotated[
    int | None,
    typer.Option(
        "--n-train",
        parser=Number("--n-train", 2),
        help="Train on about N rows (whole groups; with several benches each space gives its "
        "share) and test on the other groups (default: train on every row).",
    ),
]
LabelsOpt = Annotated[
    str | None,
    typer.Option(
        "--label",
        help="Label column (default: each bench's first); with several benches every bench "
        "must have it.",
    ),
]
RecipeOpt = Annotated[
    str,
    typer.Option(
        "--recipe",
        help=f"Training recipe, by its LOSO name: {', '.join(trainable())}. '{DEFAULT}' is "
        "the v1 recipe (pairwise loss); prior-signals-ens (3 members) is the best by LOSO "
        "and the bundled transfer-v3's. A recipe may change --steps (prior-short, "
        "prior-listnet-wide[-ens], prior-signals[-ens]: a third).",
    ),
]
WeightOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--weight",
        metavar="SPACE=W",
        help="Repeatable, several benches: the space's share of the batches, W >= 0 "
        "(default 1 for table benches, 0.5 for benches from search runs; 0 leaves its rows "
        "out of training).",
    ),
]


def _model_output(path: Path) -> None:
    """Refuse, before training, an output that is a file or a folder of other things (a
    model folder is replaced: training again into it is the usual loop)."""
    if path.exists() and not path.is_dir():
        raise ConfigurationError(f"{path} is a file; -o needs a folder for the model.")
    if path.is_dir() and any(path.iterdir()) and not (path / "config.json").exists():
        raise ConfigurationError(
            f"{path} is a folder of other files, not a model; give a new or empty folder."
        )


StepsOpt = Annotated[
    int, typer.Option("--steps", help="Optimisation steps.", parser=Number("--steps", 1))
]

BatchSizeOpt = Annotated[
    int,
    typer.Option("--batch-size", help="Graphs per step.", parser=Number("--batch-size", 2)),
]

LrOpt = Annotated[
    float,
    typer.Option(
        "--lr",
        help="AdamW learning rate.",
        parser=Number("--lr", 0, MAX_LR, whole=False, above=True),
    ),
]

HiddenOpt = Annotated[
    int,
    typer.Option(
        "--hidden", help="Hidden size of the graph network.", parser=Number("--hidden", 1)
    ),
]

LayersOpt = Annotated[
    int,
    typer.Option(
        "--layers",
        help="Message-passing rounds (0: none, the node embeddings pooled as they are).",
        parser=Number("--layers"),
    ),
]


@predictor_app.command("train")
def predictor_train(
    bench: BenchesOpt,
    output: Annotated[Path, typer.Option("-o", "--output", help="Folder for the model.")],
    n_train: NTrainOpt = None,
    label: LabelsOpt = None,
    recipe: RecipeOpt = DEFAULT,
    weight: WeightOpt = None,
    steps: StepsOpt = 400,
    batch_size: BatchSizeOpt = 64,
    lr: LrOpt = 2e-3,
    hidden: HiddenOpt = 64,
    layers: LayersOpt = 4,
    seed: Annotated[int, seed_opt("Seed of the split and the training.")] = 0,
) -> None:
    """Train a predictor on one bench or several spaces' benches (splits by group, never
    by row)."""
    from dataclasses import replace

    from nas.predictors.model import ModelConfig
    from nas.predictors.rank import save_domain
    from nas.predictors.training.fit import RankerTrainConfig, evaluate_all, vocab_embeddings
    from nas.predictors.training.recipes import apply_recipe, changes
    from nas.predictors.training.trainset import fit, training_domain, training_set

    base = (
        ModelConfig(hidden=hidden, layers=layers),
        RankerTrainConfig(steps=steps, batch_size=batch_size, lr=lr, label=label, seed=seed),
    )
    _model_output(output)
    mc, tc = apply_recipe(recipe, *base)  # an unknown recipe fails before any work
    weights = _parse_weights(weight or [])
    benches, sources = _benches(bench)
    data = training_set(benches, sources, label, n_train, seed, weights)
    if said := changes(base, (mc, tc)):
        out.print(f"recipe {recipe}: {', '.join(said)}")
    tc = replace(tc, label=data.label)  # several benches: the corpus's within-space ranks
    emb = vocab_embeddings(data.bench)
    if mc.members > 1:
        out.print(f"training {mc.members} members of {tc.steps} steps")
        res = fit(data, emb, tc, mc)
    else:
        with progress(tc.steps, "steps") as update:
            res = fit(data, emb, tc, mc, on_step=lambda step, _loss: update(step))
    res.model.config.meta.update(data.meta(recipe, tc))
    res.model.save(output)
    used = data.used
    spaces = ", ".join(k for k, v in data.spaces.items() if v["rows"])
    domain = training_domain(
        data.bench, used, f"op types and parameter range of the {len(used)} training rows "
        f"({spaces})"
    )  # fmt: skip
    save_domain(output, domain)
    rows = sum(s["rows"] for s in data.spaces.values())
    of = f" of {len(data.spaces)} spaces" if len(data.spaces) > 1 else ""
    out.print(f"wrote {output}: trained on {rows} rows{of} in {res.seconds:.0f} s")
    for space, te in data.test.items():
        out.print(f"test{' ' + space if space else ''}: the {len(te)} rows of the other groups")
        out.print(_metrics_table(evaluate_all(res.model, data.bench, emb, te, data.label)))


def _eval_model(model: Path | None, bench: Bench) -> GraphRanker:
    """The ranker ``--model`` names, else the bundled one ``nas rank`` would pick for the
    bench's rows as one set (the transfer model when most lie outside nb201-v1's domain);
    says which."""
    from nas.predictors.model import DEFAULT_MODEL, TRANSFER_MODEL, GraphRanker, bundled_dir
    from nas.predictors.rank import choose_model

    if model is not None:
        out.print(f"model: {model}", markup=False)
        return GraphRanker.load(model)
    transfer = choose_model([bench.record(i) for i in range(len(bench))])
    if transfer is not None:
        out.print(
            f"model: {TRANSFER_MODEL}, as nas rank picks for these rows (most lie outside "
            f"{DEFAULT_MODEL}'s domain); --model {bundled_dir(DEFAULT_MODEL)} scores them with "
            f"{DEFAULT_MODEL}",
            markup=False,
        )
        return transfer()[0].model
    out.print(f"model: {DEFAULT_MODEL} (bundled)", markup=False)
    return GraphRanker.load(bundled_dir(DEFAULT_MODEL))


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

    from nas.predictors.training.fit import evaluate_all, unseen_rows, vocab_embeddings

    b = _load_bench(bench)
    b.label(label)
    ranker = _eval_model(model, b)
    seen = ranker.config.meta.get("train_groups", [])
    rows = np.arange(len(b)) if include_train else unseen_rows(b, seen)
    if len(rows) < 2:
        where = " (its held-out figures: docs/predictor.md)" if model is None else ""
        raise ConfigurationError(
            f"only {len(rows)} rows of {bench} lie outside the model's training groups"
            f"{where}; --include-train scores them anyway, --model another model."
        )
    emb = vocab_embeddings(b)
    lab = label or b.label_names[0]
    if lab == b.label_names[0] and b.meta.get("label"):  # what a search-run bench's column holds
        lab += f" ({b.meta['label']})"
    left = len(b) - len(rows)
    note = f" ({left} rows of the model's training groups left out)" if left else ""
    out.print(f"{bench}: {len(rows)} rows, label {lab}{note}")
    if not seen and not include_train:
        out.print("note: the model records no training groups; none were left out.")
    out.print(_metrics_table(evaluate_all(ranker, b, emb, rows, label)))
