"""``nas search``, ``nas runs`` and ``nas dashboard``: a thin shell over nas.searches.Search."""

from __future__ import annotations

import contextlib
import shlex
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.live import Live

from nas.cli._app import MAX_CPUS, WORKERS, Number, app, out, seconds
from nas.cli.search_display import Display
from nas.exceptions import ConfigurationError


def _opt(help: str, *names: str) -> Any:
    return typer.Option(*names, help=help)


def _num(help: str, check: Number) -> Any:
    """An option whose value ``check`` reads and range-checks (named by its flag)."""
    return typer.Option(check.name, help=help, parser=check)


def _p(name: str) -> str:
    """The CPU protocol's default of ``name`` (``nas.searches.evaluators.CPU_PROTOCOL``)."""
    from nas.searches.evaluators import CPU_PROTOCOL

    return f"{CPU_PROTOCOL[name]:g}"


# Option types of `nas search`; None means "the library's default" (shown in brackets).
Space = Annotated[
    str | None, _opt("einspace, nb201, zoo:FAMILY (nas zoo list), .toml or .pcfg [einspace].")
]
Dataset = Annotated[
    str | None,
    _opt(
        "Dataset [unseen = unseen:language]; nb201:cifar10|cifar100|imagenet16-120 looks "
        "accuracies up in the NB201 table instead of training; with zoo:FAMILY, one of its "
        "tasks [its first]."
    ),
]
Strategy = Annotated[str | None, _opt("rs, re, tpe, nsga2 or predictor [re].")]
Trials = Annotated[
    int | None,
    _num(
        f"Trials to finish, counting a resumed run's: the search's budget [{_p('trials')}; "
        "a space file's [protocol] (nb201: 20); zoo:FAMILY: 10].",
        Number("--trials", 1),
    ),
]
TimeBudget = Annotated[
    float | None,
    _num(
        "Wall seconds after which no new trial starts: an optional extra cap, so the "
        f"trials a run makes depend on machine load only when it is set [{_p('time_budget')}"
        ": none].",
        seconds("--time-budget", "no cap"),
    ),
]
Epochs = Annotated[
    int | None,
    _num(
        f"Training epochs per trial [{_p('epochs')}; a space file's [protocol] (nb201: 2); "
        "zoo:FAMILY: each config's own].",
        Number("--epochs", 1),
    ),
]
TrialTime = Annotated[
    float | None,
    _num(
        "CPU seconds one trial may train before it is stopped, a guard against runaway "
        f"networks that machine load does not move [{_p('trial_time')}; a space file's "
        "[protocol] (nb201: 90); zoo:FAMILY: 4x its training time; inf for none]. A seed "
        "estimated over it is named and left out before the search starts; the final "
        "retraining gets the same allowance per epoch.",
        seconds("--trial-time", "no cap"),
    ),
]
FinalEpochs = Annotated[
    int | None,
    _num(
        f"Epochs to retrain the best; 0 skips it [{_p('final_epochs')}; zoo:FAMILY: the "
        "config's own].",
        Number("--final-epochs"),
    ),
]
Preset = Annotated[str | None, _opt("Training protocol [quick].")]
Seed = Annotated[int | None, _num("Seed of the search and training [0].", Number("--seed"))]
RunDir = Annotated[Path | None, _opt("Run directory [runs/SPACE-DATASET-STRATEGY-TIME].")]
Storage = Annotated[str | None, _opt("Optuna storage URL [a SQLite file in the run dir].")]
Resume = Annotated[Path | None, _opt("Continue the run in this directory.")]
Workers = Annotated[int | None, _num("Parallel trial processes [1].", WORKERS)]
Objective = Annotated[str | None, _opt("accuracy, accuracy+params or accuracy+flops [accuracy].")]
DataDir = Annotated[str | None, _opt("Folder with the real Unseen NAS files [NAS_DATA_DIR].")]
Size = Annotated[str | None, _opt("Stand-in size: small, medium or full [small].")]
Population = Annotated[
    int | None,
    _num(
        "RE population [trials // 6, 5 to 100; at least the seeds + 2].", Number("--population", 1)
    ),
]
Tournament = Annotated[
    int | None,
    _num("RE tournament size [half the population, 2 to 10].", Number("--tournament", 1)),
]
SeedArch = Annotated[
    str | None,
    _opt(
        "RE seeds, comma-separated (resnet18,wrn16_4,vit,mlp_mixer; cnn_cpu, mlp_cpu, "
        "resnet_cpu, vit_cpu, mixer_cpu, seqconv_cpu) [einspace: the six CPU seeds]."
    ),
]
PredictorModel = Annotated[
    str | None, _opt("Predictor folder for --strategy predictor [the bundled one].")
]
StrategyOption = Annotated[
    list[str] | None,
    _opt(
        "A strategy option KEY=VALUE (repeatable); `nas search --list-options` shows "
        "each strategy's options and defaults.",
        "--strategy-option",
        "-O",
    ),
]
ListOptions = Annotated[
    bool, _opt("List every strategy's options with their defaults, and exit.", "--list-options")
]
Backend = Annotated[str | None, _opt("local or ray (Ray Tune; see docs/ray.md) [local].")]
Address = Annotated[str | None, _opt("Ray cluster to join: auto or HOST:PORT [a local Ray].")]
Cpus = Annotated[
    float | None,
    _num(
        "CPUs per trial (ray backend) [1].", Number("--cpus", 0, MAX_CPUS, whole=False, above=True)
    ),
]
Gpus = Annotated[
    float | None,
    _num("GPUs per trial (ray backend) [0: none].", Number("--gpus", 0, MAX_CPUS, whole=False)),
]
Scheduler = Annotated[str | None, _opt("none or asha (early stopping by epochs; ray) [none].")]

# The legacy per-strategy flags and the strategy option each one sets.
_LEGACY = {
    "population": "population",
    "tournament": "tournament",
    "seed_arch": "seed_archs",
    "predictor_model": "model",
}


def strategy_options(pairs: list[str] | None, legacy: dict[str, Any], strategy: str) -> dict:
    """``--strategy-option KEY=VALUE`` pairs (and the legacy flags) as typed options."""
    from nas.searches import get_strategy

    declared = get_strategy(strategy).declared_options()
    opts: dict[str, Any] = {}
    for flag, value in legacy.items():
        if value is not None:
            key = _LEGACY[flag]
            opts[key] = declared[key].parse(value) if key == "seed_archs" else value
    for pair in pairs or []:
        key, eq, text = pair.partition("=")
        key = key.strip().replace("-", "_")
        if not eq or not key:
            raise ConfigurationError(f"--strategy-option takes KEY=VALUE, but got {pair!r}.")
        if key not in declared:
            raise ConfigurationError(
                f"strategy {strategy!r} has no option {key!r}; its options: "
                f"{', '.join(declared) or 'none'}."
            )
        opts[key] = declared[key].parse(text)
    return opts


def _list_options() -> None:
    from nas.searches import get_strategy, list_strategies

    for name in list_strategies():
        out.print(f"{name}:", markup=False)
        for opt in get_strategy(name).declared_options().values():
            default = "" if opt.default in (None, ()) else f" [{opt.default}]"
            out.print(f"  {opt.name} ({opt.kind}){default}  {opt.help}", markup=False)


def _live_run(search: Any) -> Any:
    """Run ``search`` under the live display on a terminal, or with one plain line per
    finished trial anywhere else (a pipe, a log file, a scheduler); its SearchResult."""
    c = search.config
    if not out.is_terminal:

        def begin(store: Any) -> None:
            _say_storage(search, store)

        return search.run(on_start=begin, progress=lambda line: out.print(line, markup=False))
    display = Display(c.trials, 0, None, search.fitness_label, time_budget=c.time_budget)

    def start(store: Any) -> None:
        display.done = display.start_done = len(store.completed())
        display.t0 = time.monotonic()  # the budget counts from here, as the runner's does
        display.best = next(iter(store.best(1)), None)
        display.baselines = search.baselines()  # measured by now (kept in the run)
        _say_storage(search, store)
        live.update(display.render())

    with Live(display.render(), console=out, refresh_per_second=4, transient=False) as live:
        return search.run(on_result=lambda rec: live.update(display.update(rec)), on_start=start)


def _say_storage(search: Any, store: Any) -> None:
    """Name a storage given on the command line (its password masked) and the study."""
    from nas.searches.store import mask_url

    if search.config.storage:
        out.print(f"storage: {mask_url(search.config.storage)}, study {store.name}", markup=False)


@app.command()
def search(
    space: Space = None,
    dataset: Dataset = None,
    strategy: Strategy = None,
    trials: Trials = None,
    time_budget: TimeBudget = None,
    epochs: Epochs = None,
    trial_time: TrialTime = None,
    final_epochs: FinalEpochs = None,
    preset: Preset = None,
    seed: Seed = None,
    run_dir: RunDir = None,
    storage: Storage = None,
    resume: Resume = None,
    workers: Workers = None,
    objective: Objective = None,
    data_dir: DataDir = None,
    size: Size = None,
    population: Population = None,
    tournament: Tournament = None,
    seed_arch: SeedArch = None,
    predictor_model: PredictorModel = None,
    strategy_option: StrategyOption = None,
    list_options: ListOptions = False,
    backend: Backend = None,
    address: Address = None,
    cpus: Cpus = None,
    gpus: Gpus = None,
    scheduler: Scheduler = None,
) -> None:
    """Search a space on a dataset; record every trial; retrain, report and export the best."""
    given = {k: v for k, v in locals().items() if v is not None}
    from nas.searches import Search, SearchConfig

    if list_options:
        return _list_options()
    legacy = {k: given.pop(k) for k in list(_LEGACY) if k in given}
    pairs = given.pop("strategy_option", None)
    for k in ("resume", "run_dir", "list_options"):
        given.pop(k, None)
    if resume is not None:
        if legacy or pairs:
            raise ConfigurationError("a resumed run keeps its strategy options.")
        job = Search.resume(resume, say=out.print, **given)
    else:
        config = SearchConfig(**given)
        config.strategy_options = strategy_options(pairs, legacy, config.strategy)
        job = Search(config, run_dir, say=out.print, command=shlex.join(["nas", *sys.argv[1:]]))
    out.print(f"{'resuming' if job.resuming else 'search'}: {job.describe()}", markup=False)
    out.print(f"run directory: {job.run_dir}", markup=False)
    try:
        with _term_as_interrupt():
            result = _live_run(job)
    except KeyboardInterrupt:
        out.print()
        out.print(
            f"interrupted: the finished trials are saved; to go on: nas search --resume "
            f"{job.run_dir}",
            markup=False,
        )
        raise typer.Exit(130) from None
    _print_result(job, result)


@contextlib.contextmanager
def _term_as_interrupt() -> Iterator[None]:
    """SIGTERM (``kill``, ``timeout``, a cluster's scheduler) stops the search as Ctrl-C does,
    with the line that says how to resume, instead of ending the process unannounced."""

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    try:
        old = signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread (an embedding app): leave SIGTERM alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def _why_none(job: Any, records: list[Any]) -> str:
    """What to change when no trial succeeded: the time cap, when every trial hit it."""
    c = job.config
    if records and all(r.status == "timeout" for r in records):
        return (
            f"every trial hit --trial-time ({c.trial_time:g} s) before its "
            f"{c.epochs or 'own'} epochs: "
            "search again with a larger --trial-time or fewer --epochs (a resumed run keeps "
            "both)."
        )
    return "see the failures in the report."


def _print_result(job: Any, result: Any) -> None:
    """The closing lines: best and final record, baselines, why it stopped, the report."""
    out.print()
    if result.best is None:
        out.print(f"no trial succeeded; {_why_none(job, result.records)}", markup=False)
    elif result.final is not None:
        shown = {k: v for k, v in result.final.items() if k != "reason"}
        label = job.fitness_label or "accuracy"
        values = {label if k == "accuracy" else k: v for k, v in result.best.values.items()}
        out.print(f"best: trial {result.best.number}: {_readable(values)}", markup=False)
        out.print(f"  {result.best.arch}", markup=False, soft_wrap=True)  # whole, to copy
        out.print(f"final: {_readable(shown)}", markup=False)
    if result.baselines:
        out.print(result.baselines, markup=False)
    for line in result.verdict:
        out.print(line, markup=False, soft_wrap=True)
    if result.stopped:
        out.print(f"stopped early: {result.stopped}", markup=False)
    out.print(f"report: {result.report}", markup=False)


def _readable(record: dict[str, Any]) -> str:
    """A result dict as one line for people: 4 significant digits, thousands separators,
    nested dicts as ``name: key value, ...`` (the exact values are in final.json)."""
    from nas.searches.report import readable as num

    parts = []
    for k, v in record.items():
        if isinstance(v, dict):
            parts.append(f"{k}: " + ", ".join(f"{a} {num(b)}" for a, b in v.items()))
        else:
            parts.append(f"{k} {num(v)}")
    return "; ".join(parts)
