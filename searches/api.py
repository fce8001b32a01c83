"""The search application as a library: configure, run, resume and report a search.

    >>> from nas.searches import Search, SearchConfig
    >>> result = Search(SearchConfig(space="nb201", dataset="nb201:cifar10", trials=20)).run()
    >>> result.best.values["accuracy"], result.run_dir

``nas search`` is a thin shell over this module: every default, check and file written
lives here. A run directory holds ``run.json`` (the resolved configuration), the Optuna
storage, ``report.md`` and, after the final retrain, ``final.json`` and ``best.onnx``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from nas.searches.backends import RUNNERS
from nas.searches.config import SearchConfig
from nas.searches.runner import limit
from nas.searches.store import RunStore, TrialRecord, read_run_info

from nas.exceptions import ConfigurationError

__all__ = ["RUNNERS", "Search", "SearchConfig", "SearchResult", "search"]

Say = Callable[[str], None]
#: Seeds a seeded strategy starts from unless told otherwise: mixed seeding (the einspace
#: paper's strongest setting) with seeds sized for a CPU.
CPU_SEEDED = {
    "einspace": ("cnn_cpu", "mlp_cpu", "resnet_cpu", "vit_cpu", "mixer_cpu", "seqconv_cpu")
}


@dataclass
class SearchResult:
    """What a finished search produced."""

    run_dir: Path
    records: list[TrialRecord]
    best: TrialRecord | None
    final: dict[str, Any] | None
    report: Path
    baselines: str = ""  # one line: the found test accuracy against each baseline's
    stopped: str = ""  # why the run ended before its trial budget ("" when it reached it)
    verdict: list[str] = dataclasses.field(default_factory=list)  # what was found, in words


class Search:
    """One search run: its configuration, strategy, evaluator and storage.

    Args:
        config: what to search; validated here.
        run_dir: where the run lives (default ``runs/<space>-<dataset>-<strategy>-<time>``).
        say: where progress messages go (the CLI prints them; default: nowhere).
        command: the command line that started it, recorded in run.json.

    Raises:
        ConfigurationError, UnknownNameError: a bad option, space, dataset or strategy.
    """

    def __init__(
        self,
        config: SearchConfig,
        run_dir: str | Path | None = None,
        say: Say | None = None,
        command: str | None = None,
        _resume_info: dict[str, Any] | None = None,
    ) -> None:
        from nas.searches._registry import get_strategy
        from nas.searches.evaluators import claimant

        from nas.space import load_space

        self.say = say or (lambda _msg: None)
        self.resuming = _resume_info is not None
        config = dataclasses.replace(config, strategy_options=dict(config.strategy_options))
        config.validate()
        if config.dataset is None:
            config.dataset = claimant(config.space, None).default_dataset(config.space)
        for key, value in claimant(config.space, config.dataset).protocol(config.space).items():
            if getattr(config, key) is None:  # the evaluator's protocol for this space
                setattr(config, key, value)
        cls = get_strategy(config.strategy)
        if config.objective is None:
            config.objective = "+".join(cls.default_objectives)
            config.validate()
        if not self.resuming:
            opts = config.strategy_options
            cls.check_options(opts)
            default_seeds = (
                config.space in CPU_SEEDED
                and "seed_archs" in cls.declared_options()
                and "seed_archs" not in opts
            )
            if default_seeds:
                opts["seed_archs"] = list(CPU_SEEDED[config.space])
            opts = cls.resolve_options(opts, config.trials, config.preset)
            if default_seeds and opts.get("population"):  # as many as the population holds
                opts["seed_archs"] = opts["seed_archs"][: opts["population"]]
            config.strategy_options = opts
        self.config = config
        self.evaluator = self._evaluator_spec()
        if not self.resuming:  # a dataset it cannot load is refused before a run folder exists
            self.evaluator.prepare()
        if config.storage is not None:  # so is a storage it cannot open
            from nas.searches.store import open_storage

            open_storage(config.storage)
        if config.scheduler == "asha" and not self.evaluator.max_epochs:
            raise ConfigurationError(
                f"--scheduler asha needs training epochs; the {self.evaluator.kind} "
                "evaluator has none (table mode)."
            )
        self.space = load_space(config.space)
        if self.evaluator.kind == "train":  # draw for the dataset's input, not the space's
            self.space = self.space.with_input(*_input_of(self.evaluator.kind, config))
        self.strategy = self._make_strategy()
        self._local: Any = None  # an evaluator in this process (baselines, seed estimates)
        self.run_dir = Path(run_dir) if run_dir is not None else self._default_dir()
        if not self.resuming and (self.run_dir / "run.json").exists():
            raise ConfigurationError(
                f"{self.run_dir} already holds a run; use --resume {self.run_dir}."
            )
        self.info = _resume_info or self._new_info(command)
        self.store: RunStore | None = None  # open (and owned) while ``run`` runs

    @classmethod
    def resume(cls, run_dir: str | Path, say: Say | None = None, **changes: Any) -> Search:
        """Continue the run in ``run_dir``; ``changes`` may set the RESUMABLE fields only
        (e.g. ``trials=240`` extends a finished run's budget)."""
        run_dir = Path(run_dir)
        info = read_run_info(run_dir)
        config = SearchConfig.from_run_info(info)
        fixed = sorted(
            k for k, v in changes.items() if v is not None and k not in config.RESUMABLE
        )
        if fixed:
            raise ConfigurationError(
                f"a resumed run keeps its {', '.join(fixed)}; only "
                f"{', '.join(config.RESUMABLE)} may change on --resume."
            )
        from nas.searches.runinfo import resume_storage

        changes["storage"] = resume_storage(config.storage, changes.get("storage"))
        config = dataclasses.replace(config, **{k: v for k, v in changes.items() if v is not None})
        _check_free(run_dir, config, info.get("study"))
        return cls(config, run_dir, say, _resume_info=info)

    def _make_strategy(self) -> Any:
        """The strategy of the configuration, screening what a trained search skips."""
        from nas.searches._registry import create_strategy, get_strategy, strategy_options_of
        from nas.searches.evaluators import claimant

        c = self.config
        kw = {**c.strategy_options, "objectives": c.objectives}
        recorder = claimant(c.space, c.dataset).recorder(c.space, c.dataset)
        if recorder is not None and "recorder" in strategy_options_of(get_strategy(c.strategy)):
            kw["recorder"] = recorder  # e.g. the predictor strategy scoring zoo configs
        strategy = create_strategy(c.strategy, self.space, seed=c.seed, **kw)
        self._screen_degenerate(strategy)
        return strategy

    def _evaluator_spec(self) -> Any:
        """The evaluator's spec; a trained search's seeds train uncapped (see fit_seeds)."""
        from nas.searches.evaluators import EvaluatorSpec, evaluator_for

        spec = evaluator_for(self.config)
        seeds = self.config.strategy_options.get("seed_archs") or []
        if spec.kind != "train" or not seeds:
            return spec
        from nas.searches.seeds import seed_nodes

        from nas.space import load_space

        named = load_space(self.config.space).seeds
        uncapped = sorted(str(n) for n in seed_nodes(list(seeds), named).values())
        return EvaluatorSpec(spec.kind, {**spec.options, "uncapped": uncapped})

    def _fit_seeds(self) -> None:
        """A new trained run estimates each seed's trial before it starts, names the seeds
        over --trial-time and leaves them out (their mutants could not train either)."""
        from nas.searches.seeds import fit_seeds, seed_nodes

        c = self.config
        cap, seeds = limit(c.trial_time), c.strategy_options.get("seed_archs")
        if self.resuming or cap is None or not seeds or self.evaluator.kind != "train":
            return
        fit = fit_seeds(seed_nodes(list(seeds), self.space.seeds), self.local_evaluator(), cap)
        for line in fit.lines(cap, c.epochs):
            self.say(line)
        self.info["seed_estimates"] = fit.estimates
        if not fit.left_out:
            return
        self.info["seeds_left_out"] = fit.left_out
        c.strategy_options["seed_archs"] = fit.kept
        self.info["options"] = c.public()
        self.info["strategy_options"] = c.strategy_options
        self.evaluator = self._evaluator_spec()
        self._local = None  # built again from the new spec: the kept seeds train uncapped
        self.strategy = self._make_strategy()

    def local_evaluator(self) -> Any:
        """An evaluator in this process (built once): seed estimates, baselines and, with
        one worker, the trials use it, so the data is held once."""
        if self._local is None:
            self._local = self.evaluator()
        return self._local

    def _screen_degenerate(self, strategy: Any) -> None:
        """Trained searches skip (redraw, no trial) degenerate networks (nothing learnable
        before the head, an output blind to the input, one pooled feature) and networks
        equal to an earlier one modulo no-op wrappers."""
        from nas.degenerate import canonical_key, degenerate_reason

        strategy.identity = canonical_key
        if self.evaluator.kind != "train":
            return
        x, classes = self.space.input, self.space.num_classes
        strategy.screen = lambda arch: degenerate_reason(arch, x, classes)

    def _default_dir(self) -> Path:
        c = self.config
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        name = f"{c.space}-{c.dataset}-{c.strategy}-{stamp}"  # ':' breaks scp and SPACE=DIR:W
        return Path("runs") / name.replace(":", "_").replace(os.sep, "_")

    def _new_info(self, command: str | None) -> dict[str, Any]:
        from nas._version import __version__

        versions = {"nas": __version__, "python": platform.python_version()}
        try:
            import torch

            versions["torch"] = torch.__version__
        except ImportError:  # pragma: no cover
            pass
        return {
            "study": self.run_dir.name,  # each run its own study, even in a shared storage
            "command": command or f"nas.searches.Search({self.config.space!r}, ...)",
            "options": self.config.public(),
            "strategy_options": self.config.strategy_options,
            "evaluator": self.evaluator.kind,
            # what every architecture of the run is applied to (nas show/check/export --run)
            "input": {
                "shape": list(self.space.input_shape),
                "mode": self.space.mode,
                "num_classes": self.space.num_classes,
            },
            "versions": versions,
            "created": datetime.now().isoformat(timespec="seconds"),
        }

    @property
    def fitness_label(self) -> str:
        """What the ``accuracy`` objective is when it is not an accuracy (e.g. -rel_l2)."""
        from nas.searches.evaluators import EVALUATORS

        return EVALUATORS.get(self.evaluator.kind).fitness_label(
            self.config.space, self.config.dataset
        )

    def describe(self) -> str:
        """One line: the options that matter, and the strategy's resolved options."""
        c = self.config
        from nas.searches.evaluators import EVALUATORS

        trains = EVALUATORS.get(self.evaluator.kind).trains  # table mode looks results up
        keys = ("space", "dataset", "strategy", "trials", "epochs", "preset", "size", "seed")
        keys += ("workers", "objective", "backend")
        keys = keys if trains else tuple(k for k in keys if k not in ("epochs", "preset", "size"))
        shown = {k: getattr(c, k) for k in keys}
        if trains and c.epochs is None:
            shown["epochs"] = "own"
        text = ", ".join(f"{k}={v}" for k, v in shown.items())
        epochs = "its own" if c.final_epochs is None else c.final_epochs
        if not trains:
            final = "table mode trains nothing: the best is exported untrained"
        elif c.final_epochs != 0:
            final = f"then the best is retrained for {epochs} epochs and exported"
        else:
            final = "no final retrain"
        return f"{text}; {c.strategy_options}; {final}"

    def run(
        self,
        on_result: Callable[[TrialRecord], None] | None = None,
        on_start: Callable[[RunStore], None] | None = None,
        progress: Callable[[str], None] | None = None,
    ) -> SearchResult:
        """Run the trials up to the budget (counting a resumed run's earlier ones), then
        retrain and export the best, and write report.md.

        The run is owned by this process while it runs: a second search or resume of it
        stops at once (``RunInUseError``). ``on_start(store)`` is called once the run's
        store is open, ``on_result(record)`` after every trial, and ``progress(line)`` with
        one plain line per finished trial (:class:`~nas.searches.progress.Progress`).
        """
        from nas.searches import baselines as bl
        from nas.searches.progress import Progress
        from nas.searches.report import write_report
        from nas.searches.runinfo import search_store, write_run_info

        c = self.config
        study = self.info.get("study")
        with search_store(self.run_dir, c.objective, c.storage, study, not self.resuming) as st:
            self.store = st
            if not self.resuming:
                self._fit_seeds()
                self._record_splits()
                self.info = write_run_info(self.run_dir, self.info)
            elif self.info.get("options", {}).get("trials") != c.trials:
                self.info["options"]["trials"] = c.trials  # a later resume keeps the new total
                self.info = write_run_info(self.run_dir, self.info)
            self.baselines()
            if on_start is not None:
                on_start(st)
            tracker = Progress(c.trials, st.records(), self.fitness_label)

            def finished(rec: TrialRecord) -> None:
                if progress is not None:
                    progress(tracker.line(rec))
                if on_result is not None:
                    on_result(rec)

            RUNNERS.get(c.backend)(self, finished)
            _write_json_atomic(self.run_dir / "skipped.json", dict(self.strategy.redrawn))
            stopped = self.stop_reason(len(st.completed()))
            best = next(iter(st.best(1)), None)
            final = self._final_for(best) if best is not None and c.final_epochs != 0 else None
            records = st.records()
            rows = bl.collect(self.run_dir, records, self.seed_strings())
            verdict = self.verdict(records, rows)
            report = write_report(
                self.run_dir, st, self.space, self.info, final, stopped=stopped, verdict=verdict
            )
        summary = bl.summary(bl.found_row(records), rows) if rows else ""
        lines = verdict.lines() if verdict is not None else []
        return SearchResult(self.run_dir, records, best, final, report, summary, stopped, lines)

    def stop_reason(self, finished: int) -> str:
        """Why the run stopped short of its trial budget, with the command that extends it."""
        c = self.config
        if finished >= c.trials or limit(c.time_budget) is None:
            return ""
        return (
            f"the time budget of {c.time_budget:g} s ended the search after {finished} of "
            f"{c.trials} trials; to go on: nas search --resume {self.run_dir} "
            f"--time-budget SECONDS"
        )

    def verdict(self, records: list[TrialRecord], rows: list[Any]) -> Any:
        """What the search found against its seeds and the converged linear classifier
        (:mod:`nas.searches.verdict`), given the run's baseline ``rows``; None without."""
        from nas.searches.verdict import verdict

        if not rows:
            return None
        test = (self.info.get("splits") or {}).get("test")
        return verdict(records, self.seed_strings(), rows, test)

    def _record_splits(self) -> None:
        """A trained run records its split sizes (the verdict's standard errors use them)."""
        if self.evaluator.kind != "train":
            return
        ds = self.local_evaluator().dataset
        self.info["splits"] = {s: len(getattr(ds, s)) for s in ("train", "valid", "test")}

    def baselines(self) -> list[Any]:
        """Chance, linear probe (under the trial protocol and converged) and small CNN
        (trained searches only); measured once per run and kept in baselines.json."""
        from nas.searches import baselines

        rows = baselines.load(self.run_dir)
        if rows is not None or self.evaluator.kind != "train":
            return rows or []
        self.say("measuring baselines (chance, linear probe, converged linear, small CNN) ...")
        ev = self.local_evaluator()
        rows = baselines.measure(ev.dataset, ev.config)
        baselines.save(self.run_dir, rows)
        return rows

    def seed_strings(self) -> dict[str, str]:
        """Name -> canonical string of the space's seeds (to find seed trials)."""
        return {name: str(node) for name, node in self.space.seeds.items()}

    def _final_for(self, best: TrialRecord) -> dict[str, Any]:
        """The final retraining of ``best``: the one a resumed run already did when its best
        trial is unchanged (final.json names it and best.onnx is there), else a new one."""
        if not self.resuming:  # a new run has no earlier retraining to keep
            return self.finalise(best)
        try:
            old = json.loads((self.run_dir / "final.json").read_text())
        except (OSError, ValueError):
            old = {}
        same = old.get("trial") == best.number and old.get("arch") == best.arch
        if same and (self.run_dir / "best.onnx").is_file():
            self.say(f"the best (trial {best.number}) was retrained before: final.json kept")
            return {k: v for k, v in old.items() if k not in ("trial", "arch")}
        return self.finalise(best)

    def finalise(self, best: TrialRecord) -> dict[str, Any]:
        """Retrain ``best`` for ``final_epochs`` and export it; writes final.json."""
        from nas.dsl import parse_arch

        c = self.config
        allowance = limit(c.trial_time)
        if allowance is not None and c.final_epochs and c.epochs:  # the same seconds per epoch
            allowance *= c.final_epochs / c.epochs
        evaluate = self.evaluator()
        final = evaluate.final(
            parse_arch(best.arch), c.final_epochs, allowance, self.run_dir, self.say
        )
        # final.json names what it retrained: the trial and its architecture
        _write_json_atomic(
            self.run_dir / "final.json", {"trial": best.number, "arch": best.arch, **final}
        )
        return final


def _check_free(run_dir: Path, config: SearchConfig, study: str | None) -> None:
    """A run another live process owns is refused before anything is said or measured."""
    from nas.searches.lock import RunLock

    store = RunStore(run_dir, config.objectives, config.storage, create=False, study=study)
    RunLock(store).check_free()


def _input_of(kind: str, config: SearchConfig) -> tuple[tuple[int, ...], int]:
    """(input shape, classes) the evaluator ``kind`` applies architectures to."""
    from nas.searches.evaluators import EVALUATORS

    return EVALUATORS.get(kind).input_of(config)


def _write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """Write JSON so that a kill leaves either the old file or the new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n")
    os.replace(tmp, path)


def search(
    config: SearchConfig | None = None,
    *,
    progress: Callable[[str], None] | None = None,
    verbose: bool = False,
    **options: Any,
) -> SearchResult:
    """Run a search and return its result: ``nas.search(space="nb201", trials=50)``.

    ``progress(line)`` gets one plain line per finished trial; ``verbose=True`` prints
    those lines and the search's other messages (seeds, baselines, retraining).
    """
    config = dataclasses.replace(config or SearchConfig(), **options)
    say = print if verbose else None
    if verbose and progress is None:
        progress = print
    job = Search(config, say=say)
    if verbose:
        print(f"search: {job.describe()}\nrun directory: {job.run_dir}")
    result = job.run(progress=progress)
    if verbose:
        for line in [*result.verdict, result.baselines, f"report: {result.report}"]:
            if line:
                print(line)
    return result
