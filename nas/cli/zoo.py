"""``nas zoo ...`` and ``nas train zoo:FAMILY``: thin wrappers over nas.zoo."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from nas.cli._app import app, out, seed_opt
from nas.tolerance import ZOO_TOLERANCE

zoo_app = typer.Typer(
    help="Published model families: list, export, configure.", no_args_is_help=True
)
app.add_typer(zoo_app, name="zoo")

# The loop's own entries of an epoch, left out of the progress line (metrics are shown).
LOOP = ("epoch", "steps", "lr", "elapsed_s")

ConfigOpt = Annotated[
    str | None, typer.Option(help="Hyperparameters as a JSON object, or @file.json [defaults].")
]


@zoo_app.command("list")
def zoo_list(
    families: Annotated[
        list[str] | None, typer.Argument(help="Families to show [all].", show_default=False)
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    params: Annotated[
        bool,
        typer.Option(help="Build each default config to count its exported parameters."),
    ] = True,
) -> None:
    """Every family with its variants, tasks, metric, default parameter count and export."""
    from nas.zoo import count_params, get_family, list_families

    rows = []
    for name in families or list_families():
        fam = get_family(name)
        row = fam.describe()
        if params:
            cfg = fam.config()
            data = fam.make_data(fam.task().name, size="small", seed=0)
            deployed = fam.export_module(fam.build(cfg, data).eval(), cfg)
            row["default_params"] = count_params(deployed)  # what `nas zoo export` writes
        row["export"] = {
            "format": "onnx",
            "opset": 17,
            "command": f"nas zoo export {name} -o {name}.onnx",
            "dynamic_axes": fam.dynamic_axes(),
        }
        rows.append(row)
    if as_json:
        out.print(json.dumps(rows, indent=2), markup=False)
        return
    table = Table("family", "variants", "tasks", "metric", "params", "export")
    table.columns[0].no_wrap = table.columns[4].no_wrap = True
    table.columns[4].justify = "right"
    for r in rows:
        table.add_row(
            f"zoo:{r['name']}",
            ", ".join(r["variants"]) or "-",
            ", ".join(t["name"] for t in r["tasks"]),
            r["metric"],
            f"{r['default_params']:,}" if "default_params" in r else "-",
            "ONNX",
        )
    out.print(table)
    for r in rows:
        out.print(f"[bold]zoo:{r['name']}[/]: {r['summary']} ({r['paper']})")


@zoo_app.command("export")
def zoo_export(
    family: Annotated[str, typer.Argument(help="Family name (zoo:moe or moe).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="ONNX file to write.")],
    config: ConfigOpt = None,
    task: Annotated[str | None, typer.Option(help="Task fixing the input sizes [first].")] = None,
    seed: Annotated[int, seed_opt("Seed of the (untrained) weights.")] = 0,
    extra: Annotated[
        str | None,
        typer.Option(
            "--widths", help="Family-specific selection (e.g. slimmable widths: 0.5,1,0.25)."
        ),
    ] = None,
) -> None:
    """Export a configuration (default or given) to ONNX, with the onnxruntime parity check."""
    from nas.zoo import get_family, parse_config

    fam = get_family(family)
    overrides = parse_config(config)
    if extra is not None:
        overrides = {**overrides, **fam.configure(widths=extra)}
    _export_checked(fam, fam.config(overrides), task, seed, output)


def export_zoo_arch(
    arch: str, task: str | None, output: Path, seed: int = 0, tolerance: float | None = None
) -> None:
    """Export a zoo architecture string (a search trial's) for ``task``, parity-checked
    against ``tolerance`` (absolute; default :data:`ZOO_TOLERANCE`)."""
    from nas.zoo import config_from_arch

    fam, cfg = config_from_arch(arch)
    meta = {"space": f"zoo:{fam.name}", "architecture": arch}
    _export_checked(fam, cfg, task, seed, output, tolerance, meta)


def _export_checked(
    fam: Any,
    cfg: dict[str, Any],
    task: str | None,
    seed: int,
    output: Path,
    tolerance: float | None = None,
    meta: dict[str, Any] | None = None,
) -> None:
    """Build ``cfg`` with seeded weights, export it (``meta`` added to the file's metadata),
    print the parity; exit 1 past the tolerance (absolute, :data:`ZOO_TOLERANCE` unless
    given)."""
    import torch

    from nas.zoo import count_params, export_config

    data = fam.make_data(fam.task(task).name, size="small", seed=seed)
    torch.manual_seed(seed)
    model = fam.build(cfg, data)
    params = count_params(fam.export_module(model.eval(), cfg))
    meta = {"weights": f"untrained (freshly initialised, seed {seed})", **(meta or {})}
    path, diff = export_config(fam, output, cfg, task, model, data, seed, metadata=meta)
    out.print(
        f"wrote {path} (zoo:{fam.name}, {params:,} params); onnxruntime max |diff| {diff:.2e}"
    )
    tol = ZOO_TOLERANCE if tolerance is None else tolerance
    if not diff <= tol:
        out.print(f"parity check failed: max |torch - onnxruntime| {diff:.3g} > {tol:g}")
        raise typer.Exit(1)


@zoo_app.command("configure")
def zoo_configure(
    family: Annotated[str, typer.Argument(help="Family name (slimmable).")],
    prefs: Annotated[str | None, typer.Option(help="Task preferences, e.g. 0.7,0.3.")] = None,
    budget_macs: Annotated[
        str | None,
        typer.Option(
            "--budget-macs",
            "--budget-flops",
            help="Compute budget in MACs (multiply-accumulates) per sample, e.g. 50M; "
            "--budget-flops is its old name and means MACs too.",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Choose a configuration for task preferences and a compute budget, without retraining."""
    from nas.zoo import get_family

    fam = get_family(family)
    kw = {k: v for k, v in (("prefs", prefs), ("budget_macs", budget_macs)) if v is not None}
    result = fam.configure(**kw)
    if as_json:
        out.print(json.dumps(result, indent=2, default=str), markup=False)
        return
    table = Table("", "value", show_header=False)
    for k, v in result.items():
        table.add_row(k, _shown(v))
    out.print(table)


def _shown(v: Any) -> str:
    """A configure result's value for people: counts with thousands separators (a whole
    float such as a parsed 50M budget too), other values as JSON (exact in --json)."""
    if isinstance(v, float) and v.is_integer() and abs(v) >= 1000:
        v = int(v)
    if isinstance(v, int) and not isinstance(v, bool):
        return f"{v:,}"
    return v if isinstance(v, str) else json.dumps(v, default=str)


def train_zoo(
    name: str,
    task: str | None,
    config: dict[str, Any],
    epochs: int | None,
    time_budget: float | None,
    seed: int,
    size: str,
    output: Path | None,
    as_json: bool,
) -> None:
    """``nas train zoo:FAMILY``: train one config on its task, print metrics and baseline."""
    from nas.zoo import count_params, export_config, get_family, train_config

    fam = get_family(name)
    if epochs is not None and "epochs" in fam.hyperparams:  # the config shown is the one trained
        config = {**config, "epochs": epochs}
    cfg = fam.config(config)
    info = fam.task(task)
    with Progress(
        TextColumn("epoch {task.completed:.0f}"),
        BarColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        console=out,
        disable=as_json,
    ) as bar:
        bar_task = bar.add_task("train", total=epochs, info="")

        def on_epoch(epoch: int, entry: dict[str, float]) -> None:  # epoch: 1-based
            shown = ", ".join(
                f"{k} {v:.4g}" for k, v in entry.items() if isinstance(v, float) and k not in LOOP
            )
            bar.update(bar_task, completed=epoch, info=shown)

        model, data, res = train_config(
            fam, cfg, info.name, epochs, time_budget, seed, size, on_epoch
        )
    result: dict[str, Any] = {
        "family": fam.name,
        "task": info.name,
        "config": cfg,
        "params": count_params(model),
        **res.to_dict(),
        "baseline": fam.baseline(data),
    }
    if output is not None:
        path, diff = export_config(fam, output, cfg, info.name, model=model, data=data)
        result["onnx"], result["onnx_max_abs_diff"] = str(path), diff
    if as_json:
        out.print(json.dumps(result, indent=2, default=str), markup=False)
    else:
        out.print(_zoo_table(result, res, output is not None))
    if res.status not in ("ok", "timeout", "stopped"):
        raise typer.Exit(1)


def _zoo_table(result: dict[str, Any], res: Any, exported: bool) -> Table:
    """One trained zoo config as a two-column table: metrics, baseline, size, time."""
    table = Table("", "value", show_header=False)
    table.add_row("status", res.status + (f" ({res.reason})" if res.reason else ""))
    for split in ("valid", "test", "baseline"):
        for k, v in result[split].items():
            table.add_row(f"{split} {k}", f"{v:.4f}" if isinstance(v, float) else str(v))
    table.add_row("params", f"{result['params']:,}")
    table.add_row("epochs", str(res.epochs))
    table.add_row("train time", f"{res.seconds:.1f} s")
    for k, v in (res.extra or {}).items():
        table.add_row(k, json.dumps(v, default=str))
    if exported:
        table.add_row("onnx", f"{result['onnx']} (max |diff| {result['onnx_max_abs_diff']:.1e})")
    return table
