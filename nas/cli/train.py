"""``nas datasets ...`` and ``nas train``: thin wrappers over nas.data and nas.train."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from nas.cli._app import MAX_LR, ArchArg, Number, app, out, seconds, seed_opt
from nas.exceptions import ConfigurationError
from nas.registry import Registry

datasets_app = typer.Typer(help="List and prepare datasets.", no_args_is_help=True)
app.add_typer(datasets_app, name="datasets")

DataDirOpt = Annotated[
    Path | None,
    typer.Option("--data-dir", help="Folder with the real Unseen NAS files (or NAS_DATA_DIR)."),
]
SizeOpt = Annotated[str, typer.Option(help="Stand-in size: small, medium or full.")]


@datasets_app.command("list")
def datasets_list(data_dir: DataDirOpt = None) -> None:
    """Every dataset: shape, classes, full split sizes, and what this machine has."""
    from nas.data import get_dataset_info, list_datasets

    table = Table("name", "shape", "classes", "train/valid/test (full)", "here")
    for name in list_datasets():
        info = get_dataset_info(name)
        table.add_row(
            name,
            "x".join(map(str, info.input_shape)),
            str(info.num_classes),
            "/".join(f"{n:,}" for n in info.full_sizes),
            info.available(data_dir),
        )
    out.print(table)


@datasets_app.command("prepare")
def datasets_prepare(
    name: Annotated[str, typer.Argument(help="Dataset name, e.g. unseen:addnist.")],
    size: SizeOpt = "small",
    seed: Annotated[int, seed_opt("Seed of the generated stand-in.")] = 0,
    data_dir: DataDirOpt = None,
) -> None:
    """Generate (and cache) a stand-in, or validate the real files."""
    from nas.data import load_dataset

    ds = load_dataset(name, data_dir=data_dir, size=size, seed=seed)
    out.print(f"{ds.name}: {ds.source}")
    out.print(
        f"input {'x'.join(map(str, ds.input_shape))}, {ds.num_classes} classes, "
        f"train/valid/test {len(ds.train):,}/{len(ds.valid):,}/{len(ds.test):,}"
    )


@app.command("train")
def train_cmd(
    arch: ArchArg,
    dataset: Annotated[
        str | None,
        typer.Option(
            help="Dataset name [unseen = unseen:language], or a zoo family's task [its first]."
        ),
    ] = None,
    space: Annotated[
        str | None, typer.Option(help="Space whose budgets apply [einspace].")
    ] = None,
    preset: Annotated[
        str | None, typer.Option(help="Training protocol: quick, einspace, ... [quick].")
    ] = None,
    epochs: Annotated[
        int | None,
        typer.Option(
            "--epochs", help="Epochs (overrides the preset).", parser=Number("--epochs", 1)
        ),
    ] = None,
    time_budget: Annotated[
        float | None,
        typer.Option(
            "--time-budget", help="Seconds of training.", parser=seconds("--time-budget")
        ),
    ] = None,
    batch_size: Annotated[
        int | None,
        typer.Option("--batch-size", help="Batch size.", parser=Number("--batch-size", 1)),
    ] = None,
    lr: Annotated[
        float | None,
        typer.Option(
            "--lr",
            help="Learning rate.",
            parser=Number("--lr", 0, MAX_LR, whole=False, above=True),
        ),
    ] = None,
    seed: Annotated[int, seed_opt("Seed of weights and data order.")] = 0,
    size: SizeOpt = "small",
    data_dir: DataDirOpt = None,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    config: Annotated[
        str | None, typer.Option(help="zoo:FAMILY only: hyperparameters as JSON or @file.")
    ] = None,
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="zoo:FAMILY only: export to ONNX.")
    ] = None,
) -> None:
    """Train one architecture (string, @file, seed:NAME) or zoo:FAMILY, and print the result."""
    from nas.space import space_scheme

    req = TrainRequest(
        arch, dataset, space, preset, epochs, time_budget, batch_size, lr, seed, size,
        data_dir, device, as_json, config, output,
    )  # fmt: skip
    TRAIN_TARGETS.get(space_scheme(arch) or "arch")(req)


@dataclass(frozen=True)
class TrainRequest:
    """The flags of one ``nas train`` call, handed to the trainer of what it names.

    None is a flag left out, so a trainer can refuse flags it has no use for.
    """

    arch: str
    dataset: str | None
    space: str | None
    preset: str | None
    epochs: int | None
    time_budget: float | None
    batch_size: int | None
    lr: float | None
    seed: int
    size: str
    data_dir: Path | None
    device: str
    as_json: bool
    config: str | None
    output: Path | None


def _train_arch(req: TrainRequest) -> None:
    """``nas train ARCH``: an architecture of a space, trained by :func:`nas.train.train`."""
    from nas.data import load_dataset
    from nas.formats import resolve_arch
    from nas.space import load_space
    from nas.train import TrainConfig, train

    if req.config is not None or req.output is not None:
        raise ConfigurationError("--config and --output apply to zoo:FAMILY only.")
    space = req.space or "einspace"
    node = resolve_arch(req.arch, space)
    ds = load_dataset(req.dataset or "unseen", data_dir=req.data_dir, size=req.size)
    load_space(space).with_input(ds.input_shape, ds.num_classes).check(node)
    over = {
        "epochs": req.epochs,
        "time_budget_s": req.time_budget,
        "batch_size": req.batch_size,
        "lr": req.lr,
    }
    over = {k: v for k, v in over.items() if v is not None}
    cfg = TrainConfig.preset(req.preset or "quick", seed=req.seed, device=req.device, **over)
    if not req.as_json:
        out.print(f"data: {ds.source}", markup=False)
    with _epoch_bar(cfg.epochs, req.as_json) as on_epoch:
        res = train(node, ds, cfg, on_epoch=on_epoch)
    if req.as_json:
        out.print(res.to_json(), markup=False)
        return
    out.print(_result_table(res))
    if not res.ok:
        raise typer.Exit(1)


def _train_zoo(req: TrainRequest) -> None:
    """``nas train zoo:FAMILY``: one config of a zoo family (nas/cli/zoo.py).

    ``--lr`` and ``--batch-size`` set the config's hyperparameters of those names, so they are
    checked like the config; the flags that only mean something for a space's architectures
    are refused rather than silently ignored.
    """
    from nas.cli.zoo import train_zoo
    from nas.zoo import parse_config

    arch_only = {"--space": req.space, "--preset": req.preset, "--data-dir": req.data_dir}
    given = [flag for flag, value in arch_only.items() if value is not None]
    given += ["--device"] if req.device != "auto" else []
    if given:
        raise ConfigurationError(
            f"{', '.join(given)}: for a space's architectures only; zoo:FAMILY trains on the "
            "CPU with its own protocol (--epochs, --lr, --batch-size or --config set it)."
        )
    config = parse_config(req.config)
    config.update(
        {k: v for k, v in (("lr", req.lr), ("batch_size", req.batch_size)) if v is not None}
    )
    train_zoo(
        req.arch, req.dataset, config, req.epochs, req.time_budget, req.seed, req.size,
        req.output, req.as_json,
    )  # fmt: skip


#: What ``nas train`` trains, by the registered space scheme its argument names
#: (:func:`nas.space.space_scheme`); ``arch`` for anything that is not a ``SCHEME:NAME`` space.
TRAIN_TARGETS: Registry[Callable[[TrainRequest], None]] = Registry("train target")
TRAIN_TARGETS.add("arch", _train_arch)
TRAIN_TARGETS.add("zoo", _train_zoo)


@contextmanager
def _epoch_bar(epochs: int, hidden: bool) -> Iterator[Callable[[int, dict], None]]:
    """A progress bar over epochs; yields the trainer's ``on_epoch`` callback."""
    with Progress(
        TextColumn("epoch {task.completed:.0f}/{task.total:.0f}"),
        BarColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        console=out,
        disable=hidden,
        transient=False,
    ) as bar:
        task = bar.add_task("train", total=epochs, info="")

        def on_epoch(epoch: int, entry: dict[str, float]) -> None:
            acc = entry.get("valid_accuracy")
            info = f"loss {entry.get('train_loss', float('nan')):.3f}"
            if acc is not None:
                info += f"  valid acc {acc:.3f}"
            bar.update(task, completed=epoch, info=info)

        yield on_epoch


def _result_table(res: Any) -> Table:
    """One trained architecture's result as a two-column table."""
    table = Table("", "value", show_header=False)
    table.add_row("status", res.status + (f" ({res.reason})" if res.reason else ""))
    for split, metrics in (("valid", res.valid), ("test", res.test)):
        for k, v in metrics.items():
            table.add_row(f"{split} {k}", f"{v:.4f}")
    table.add_row("params", f"{res.params:,}")
    table.add_row("MACs / sample", f"{res.flops:,}" if res.flops is not None else "-")
    table.add_row("epochs", f"{res.epochs_done:g}/{res.epochs_requested}")
    table.add_row("train time", f"{res.train_time_s:.1f} s ({res.images_per_s:,.0f} img/s)")
    return table
