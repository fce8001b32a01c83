"""``nas search`` and ``nas runs``: run a search end to end, and look at finished runs."""

from __future__ import annotations

import functools
import json
import platform
import shlex
import sys
import time
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.live import Live
from rich.table import Table

from nas.cli import app, out
from nas.exceptions import ConfigurationError

runs_app = typer.Typer(help="Look at search runs.", no_args_is_help=True)
app.add_typer(runs_app, name="runs")

# Small defaults that finish in minutes on a laptop CPU; printed at the start of a search.
DEFAULTS: dict[str, Any] = {
    "space": "einspace",
    "dataset": "unseen",
    "strategy": "re",
    "trials": 12,
    "time_budget": None,
    "trial_time": 30.0,
    "epochs": 2,
    "final_epochs": 5,
    "preset": "quick",
    "seed": 0,
    "storage": None,
    "workers": 1,
    "objective": "accuracy",
    "data_dir": None,
    "size": "small",
    "population": None,
    "tournament": None,
    "seed_arch": None,
    "predictor_model": None,
    "backend": "local",
    "address": None,
    "cpus": 1.0,
    "gpus": 0.0,
    "scheduler": "none",
}
# Options a resumed run may change (the rest come from its run.json).
RESUMABLE = ("trials", "time_budget", "workers", "backend", "address", "cpus", "gpus", "scheduler")
RESUMABLE += ("storage",)  # [runsafe] only to add the password that run.json does not keep


def _strategy_options(opts: dict[str, Any]) -> dict[str, Any]:
    from nas.searches.store import OBJECTIVES

    kw: dict[str, Any] = {}
    if opts["strategy"] == "re":
        pop = opts["population"] or max(4, min(100, opts["trials"] // 4))
        kw["population"] = pop
        kw["tournament"] = opts["tournament"] or max(2, min(10, pop // 2))
        if opts["seed_arch"]:
            kw["seed_archs"] = [s.strip() for s in opts["seed_arch"].split(",") if s.strip()]
    if opts["strategy"] == "predictor" and opts.get("predictor_model"):
        kw["model"] = str(opts["predictor_model"])
    if len(OBJECTIVES[opts["objective"]]) > 1:
        kw["objectives"] = OBJECTIVES[opts["objective"]]
    return kw


def _factory(opts: dict[str, Any]) -> Any:
    from nas.searches import evaluators

    if opts["space"].startswith("zoo:"):
        return functools.partial(
            evaluators.zoo_evaluator,
            opts["space"],
            opts["dataset"],
            epochs=opts["epochs"],
            time_budget_s=opts["trial_time"],
            seed=opts["seed"],
            size=opts["size"],
        )
    if opts["dataset"].startswith("nb201:"):
        if opts["space"] != "nb201":
            raise ConfigurationError("table mode (--dataset nb201:...) needs --space nb201.")
        return functools.partial(evaluators.table_evaluator, opts["dataset"][6:])
    from nas.train import TrainConfig

    cfg = TrainConfig.preset(
        opts["preset"], epochs=opts["epochs"], seed=opts["seed"], time_budget_s=opts["trial_time"]
    )
    return functools.partial(
        evaluators.train_evaluator,
        opts["space"],
        opts["dataset"],
        evaluators.config_dict(cfg),
        data_dir=opts["data_dir"],
        size=opts["size"],
    )


class _Display:
    """The live panel: progress, best so far, failures by reason, ETA."""

    def __init__(self, total: int, done: int, best: Any = None, fitness: str = "") -> None:
        self.total, self.start_done, self.t0 = total, done, time.monotonic()
        self.fitness = fitness  # what the "accuracy" objective is, when it is not accuracy
        self.done, self.best, self.fail = done, best, Counter()

    def update(self, rec: Any) -> Table:
        """Count a finished trial; keep the best by the first objective (maximised)."""
        self.done += 1
        if not rec.ok:
            self.fail[rec.status] += 1
        elif self.best is None or rec.values["accuracy"] > self.best.values["accuracy"]:
            self.best = rec
        return self.render()

    def render(self) -> Table:
        t = Table(show_header=False, box=None)
        rate = (time.monotonic() - self.t0) / max(1, self.done - self.start_done)
        eta = rate * (self.total - self.done) if self.done > self.start_done else None
        t.add_row(
            "trials",
            f"{self.done}/{self.total}"
            + (f"   ETA {eta / 60:.1f} min" if eta is not None else ""),
        )
        if self.best is not None:
            v = ", ".join(
                f"{self.fitness if k == 'accuracy' and self.fitness else k} {x:.4g}"
                for k, x in self.best.values.items()
            )
            arch = self.best.arch if len(self.best.arch) < 90 else self.best.arch[:87] + "..."
            t.add_row("best", f"trial {self.best.number}: {v}; {self.best.params or 0:,} params")
            t.add_row("", arch)
        if self.fail:
            t.add_row("failures", ", ".join(f"{k} {n}" for k, n in self.fail.items()))
        return t


def _final(opts: dict[str, Any], best: Any, run_dir: Path) -> dict[str, Any]:
    """Retrain the best architecture for --final-epochs (train mode) and export it."""
    import torch

    from nas.dsl import parse_arch
    from nas.export import export_onnx, parity

    node = parse_arch(best.arch)
    if opts["space"].startswith("zoo:"):
        return _final_zoo(opts, node, run_dir)
    if opts["dataset"].startswith("nb201:"):
        from nas.compile import compile_arch

        model = compile_arch(node, (3, 32, 32), 10)
        final = {
            "test_accuracy": best.values["accuracy"],
            "source": "NB201 table",
            "exported_weights": "untrained (table mode trains nothing)",
        }
        shape: tuple[int, ...] = (3, 32, 32)
    else:
        from nas.data import load_dataset
        from nas.tasks import compile_for_task, task_for
        from nas.train import TrainConfig, train

        ds = load_dataset(opts["dataset"], data_dir=opts["data_dir"], size=opts["size"])
        task = task_for(ds)
        allowance = opts["trial_time"] * opts["final_epochs"] / opts["epochs"]
        cfg = TrainConfig.preset(
            opts["preset"], epochs=opts["final_epochs"], seed=opts["seed"], time_budget_s=allowance
        )
        torch.manual_seed(opts["seed"])
        model = compile_for_task(node, ds.input_shape, task)
        out.print(f"retraining the best architecture for {cfg.epochs} epochs ...")
        res = train(model, ds, cfg, task=task)
        final = {
            "status": res.status,
            "reason": res.reason,
            "valid": res.valid,
            "test": res.test,
            "epochs": res.epochs_done,
            "params": res.params,
        }
        shape = ds.input_shape
    path = export_onnx(model, shape, run_dir / "best.onnx")
    final["onnx"] = str(path.name)
    final["onnx_max_abs_diff"] = parity(model, path, shape)
    return final


def _fitness_label(opts: dict[str, Any]) -> str:
    """How the display names the 'accuracy' objective of a zoo search (e.g. -rel_l2)."""
    if not opts["space"].startswith("zoo:"):
        return ""
    from nas.zoo import get_family

    info = get_family(opts["space"]).task(opts["dataset"])
    return info.metric if info.higher_is_better else f"-{info.metric}"


def _final_zoo(opts: dict[str, Any], node: Any, run_dir: Path) -> dict[str, Any]:
    """Retrain the best zoo config for --final-epochs, score it on test and export it."""
    from nas.zoo import config_from_arch, export_config, train_config

    family, cfg = config_from_arch(node)
    out.print(
        f"retraining the best zoo:{family.name} config for {opts['final_epochs']} epochs ..."
    )
    allowance = opts["trial_time"] * opts["final_epochs"] / opts["epochs"]
    model, data, res = train_config(
        family, cfg, opts["dataset"], opts["final_epochs"], allowance, opts["seed"], opts["size"]
    )
    final = {**res.to_dict(), "config": cfg}
    path, diff = export_config(family, run_dir / "best.onnx", cfg, model=model, data=data)
    final["onnx"] = path.name
    final["onnx_max_abs_diff"] = diff
    return final


@app.command()
def search(
    ctx: typer.Context,
    space: Annotated[
        str | None,
        typer.Option(
            help="einspace, nb201, zoo:FAMILY (nas zoo list), .toml or .pcfg [einspace]."
        ),
    ] = None,
    dataset: Annotated[
        str | None,
        typer.Option(
            help="Dataset [unseen = unseen:addnist]; nb201:cifar10|cifar100|imagenet16-120 "
            "looks accuracies up in the NB201 table instead of training; with zoo:FAMILY, "
            "one of its tasks [its first]."
        ),
    ] = None,
    strategy: Annotated[
        str | None, typer.Option(help="rs, re, tpe, nsga2 or predictor [re].")
    ] = None,
    trials: Annotated[int | None, typer.Option(help="Trials to finish [12].")] = None,
    time_budget: Annotated[float | None, typer.Option(help="Seconds; no new trial after.")] = None,
    epochs: Annotated[int | None, typer.Option(help="Training epochs per trial [2].")] = None,
    trial_time: Annotated[
        float | None,
        typer.Option(
            help="Seconds of training per trial before it stops early [30]; the final "
            "retraining gets the same allowance per epoch."
        ),
    ] = None,
    final_epochs: Annotated[
        int | None, typer.Option(help="Epochs to retrain the best [5].")
    ] = None,
    preset: Annotated[str | None, typer.Option(help="Training protocol [quick].")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of the search and training [0].")] = None,
    run_dir: Annotated[Path | None, typer.Option(help="Run directory [runs/<name>].")] = None,
    storage: Annotated[
        str | None, typer.Option(help="Optuna storage URL [sqlite file in the run dir].")
    ] = None,
    resume: Annotated[
        Path | None, typer.Option(help="Continue the run in this directory.")
    ] = None,
    workers: Annotated[int | None, typer.Option(help="Parallel trial processes [1].")] = None,
    objective: Annotated[str | None, typer.Option(help="accuracy or accuracy+params.")] = None,
    data_dir: Annotated[str | None, typer.Option(help="Real Unseen NAS files.")] = None,
    size: Annotated[str | None, typer.Option(help="Stand-in size [small].")] = None,
    population: Annotated[int | None, typer.Option(help="RE population.")] = None,
    tournament: Annotated[int | None, typer.Option(help="RE tournament size.")] = None,
    seed_arch: Annotated[
        str | None,
        typer.Option(help="RE seeds, comma-separated (resnet18,wrn16_4,vit,mlp_mixer)."),
    ] = None,
    predictor_model: Annotated[
        str | None,
        typer.Option(help="Predictor folder for --strategy predictor [the bundled one]."),
    ] = None,
    backend: Annotated[
        str | None, typer.Option(help="local or ray (Ray Tune trials; see docs/ray.md) [local].")
    ] = None,
    address: Annotated[
        str | None,
        typer.Option(help="Ray cluster to join: auto or HOST:PORT [start a local Ray]."),
    ] = None,
    cpus: Annotated[float | None, typer.Option(help="CPUs per trial (ray backend) [1].")] = None,
    gpus: Annotated[float | None, typer.Option(help="GPUs per trial (ray backend) [0].")] = None,
    scheduler: Annotated[
        str | None,
        typer.Option(help="none or asha (early stopping by epochs; ray backend) [none]."),
    ] = None,
) -> None:
    """Search a space on a dataset; record every trial; retrain, report and export the best."""
    from nas import __version__
    from nas.searches import create_strategy
    from nas.searches.report import write_report
    from nas.searches.runner import run_search
    from nas.searches.store import OBJECTIVES, read_run_info
    from nas.space import load_space

    given = {k: v for k, v in locals().items() if k in DEFAULTS and v is not None}
    if resume is not None:
        info = read_run_info(resume)
        opts = {
            **DEFAULTS,
            **info["options"],
            **{k: given[k] for k in RESUMABLE if k in given},
        }
        run = resume
    else:
        opts = {**DEFAULTS, **given}
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        run = (
            run_dir
            or Path("runs")
            / f"{opts['space']}-{opts['dataset'].replace(':', '_')}-{opts['strategy']}-{stamp}"
        )
        if (run / "run.json").exists():
            raise ConfigurationError(f"{run} already holds a run; use --resume {run}.")
    if opts["objective"] not in OBJECTIVES:
        raise ConfigurationError(
            f"--objective must be one of {', '.join(OBJECTIVES)}, but got {opts['objective']!r}."
        )
    if opts["trials"] < 1 or opts["workers"] < 1:
        raise ConfigurationError("--trials and --workers must be at least 1.")
    if opts["backend"] not in ("local", "ray"):
        raise ConfigurationError(f"--backend must be local or ray, but got {opts['backend']!r}.")
    if opts["backend"] == "local" and (opts["address"] or opts["scheduler"] != "none"):
        raise ConfigurationError("--address and --scheduler need --backend ray.")
    if opts["scheduler"] not in ("none", "asha"):
        raise ConfigurationError(
            f"--scheduler must be none or asha, but got {opts['scheduler']!r}."
        )
    if opts["scheduler"] == "asha" and opts["dataset"].startswith("nb201:"):
        raise ConfigurationError("--scheduler asha needs training epochs; table mode has none.")
    if opts["space"].startswith("zoo:") and "dataset" not in given and resume is None:
        from nas.zoo import get_family

        opts["dataset"] = get_family(opts["space"]).task().name
    sp = load_space(opts["space"])
    # [runsafe] a resume keeps the recorded strategy options; the run is owned (locked) by
    # this process until the command ends; run.json is written atomically, masked.
    from nas.searches import runinfo

    strat_kw = runinfo.resume_strategy_options(info, given) if resume else _strategy_options(opts)
    strat = create_strategy(opts["strategy"], sp, seed=opts["seed"], **strat_kw)
    factory = _factory(opts)
    if resume is not None:
        opts["storage"] = runinfo.resume_storage(
            info["options"].get("storage"), given.get("storage")
        )
    study = info.get("study") if resume is not None else run.name
    store = ctx.with_resource(
        runinfo.search_store(run, opts["objective"], opts["storage"], study, resume is None)
    )
    if resume is None:
        info = {
            "study": study,
            "command": shlex.join(["nas", *sys.argv[1:]]),
            "options": opts,
            "strategy_options": {k: v for k, v in _strategy_options(opts).items()},
            "versions": {"nas": __version__, "python": platform.python_version()},
            "created": datetime.now().isoformat(timespec="seconds"),
        }
        try:
            import torch

            info["versions"]["torch"] = torch.__version__
        except ImportError:  # pragma: no cover
            pass
        info = runinfo.write_run_info(run, info)
    chosen = ", ".join(
        f"{k}={opts[k]}"
        for k in (
            "space",
            "dataset",
            "strategy",
            "trials",
            "epochs",
            "preset",
            "size",
            "seed",
            "workers",
            "objective",
            "backend",
        )
    )
    out.print(f"{'resuming' if resume else 'search'}: {chosen}; {_strategy_options(opts)}")
    out.print(f"run directory: {run}")
    if opts["storage"]:
        out.print(f"storage: {runinfo.mask_text(opts['storage'])}, study {store.name}")
    already = len(store.completed())
    display = _Display(
        opts["trials"], already, next(iter(store.best(1)), None), _fitness_label(opts)
    )
    with Live(display.render(), console=out, refresh_per_second=4, transient=False) as live:

        def on_result(rec: Any) -> None:
            live.update(display.update(rec))

        if opts["backend"] == "ray":
            from nas.searches.ray_runner import run_search_ray

            run_search_ray(
                strat,
                store,
                opts["trials"],
                factory,
                opts["time_budget"],
                opts["workers"],
                on_result,
                cpus=opts["cpus"],
                gpus=opts["gpus"],
                address=opts["address"],
                scheduler=opts["scheduler"],
            )
        else:
            run_search(
                strat,
                store,
                opts["trials"],
                factory,
                opts["time_budget"],
                opts["workers"],
                on_result,
            )
    out.print()
    best = store.best(1)
    final = None
    if best:
        final = _final(opts, best[0], run)
        (run / "final.json").write_text(json.dumps(final, indent=2) + "\n")
        out.print(
            f"best: trial {best[0].number} {best[0].values}; final: "
            f"{json.dumps({k: final[k] for k in final if k != 'reason'})}"
        )
    else:
        out.print("no trial succeeded; see the failures in the report.")
    report = write_report(run, store, sp, info, final)
    out.print(f"report: {report}")


@runs_app.command("list")
def runs_list(
    root: Annotated[Path, typer.Argument(help="Folder of runs.")] = Path("runs"),
    storage: Annotated[
        str | None, typer.Option(help="List the runs in this Optuna storage URL instead.")
    ] = None,
) -> None:
    """Every run under ROOT (or in --storage): trials, best value, strategy."""
    from nas.searches.store import open_run

    if storage is not None:  # [runsafe]
        from nas.searches.runinfo import list_runs, mask_text

        table = Table("run", "trials", "states", "best", "owner", title=mask_text(storage))
        for row in list_runs(storage):
            states = ", ".join(f"{k} {v}" for k, v in sorted(row["states"].items()))
            best = "-" if row["best"] is None else f"{row['best']:.4g}"
            table.add_row(row["run"], str(row["trials"]), states, best, row["owner"] or "-")
        out.print(table)
        return

    table = Table("run", "space", "dataset", "strategy", "trials", "best")
    for info_path in sorted(root.glob("*/run.json")):
        info, store = open_run(info_path.parent)
        o = info["options"]
        best = store.best(1)
        table.add_row(
            info_path.parent.name,
            o["space"],
            o["dataset"],
            o["strategy"],
            str(len(store.completed())),
            f"{best[0].values['accuracy']:.4g}" if best else "-",
        )
    out.print(table)


@runs_app.command("show")
def runs_show(
    run: Annotated[Path, typer.Argument(help="Run directory.")],
    top: Annotated[int, typer.Option(help="How many of the best.")] = 5,
) -> None:
    """Summary and top-k of one run."""
    from nas.searches.store import open_run

    info, store = open_run(run)
    recs = store.records()
    out.print(
        f"{info['command']}\n{len(recs)} trials: "
        + ", ".join(f"{k} {v}" for k, v in sorted(Counter(r.status for r in recs).items()))
    )
    table = Table("rank", "trial", *store.objectives, "params", "arch")
    for i, r in enumerate(store.best(top), 1):
        table.add_row(
            str(i),
            str(r.number),
            *(f"{r.values[o]:.4g}" for o in store.objectives),
            f"{r.params or 0:,}",
            r.arch if len(r.arch) < 80 else r.arch[:77] + "...",
        )
    out.print(table)
