"""Benches from search runs: every successful trial becomes a record labelled with its
accuracy, so each finished search adds training data for the predictor.

NB201 architectures are built straight from the cell (:mod:`nas.predictors.benches.nb201_graph`);
any other grammar architecture is compiled for the run's input, exported with the pinned
exporter and read back like a user's ONNX file. A zoo run's config (``fam(hp(...),...)``)
is exported, untrained, by its family's own exporter for the run's task and read back the
same way; its label is the trial's ``accuracy`` (the task metric, negated when lower is
better). Trials that cannot be exported are skipped with their reason.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from nas.predictors.benches.bench import Bench
from nas.predictors.record import GraphRecord, file_record, graph_record

from nas.exceptions import ConfigurationError, NasError

LABEL = "accuracy"


def _input(opts: dict[str, Any]) -> tuple[tuple[int, ...], int]:
    """(input shape, classes) the run's trials were evaluated on."""
    from nas.data import resolve_dataset

    info = resolve_dataset(opts["dataset"])
    return tuple(info.input_shape), info.num_classes


def arch_record(node: Any, space: Any, folder: str, signals: bool = False) -> GraphRecord:
    """The record of one architecture of ``space`` (direct for square-input NB201, else by
    export into ``folder``); the search's ``predictor`` strategy scores candidates with it.
    ``signals`` adds the file's data-free signals (exported records only)."""
    import torch

    from nas.compile import compile_arch
    from nas.export import export_onnx

    shape = tuple(space.input_shape)
    if node.op == "nb201" and len(shape) == 3 and shape[0] == 3 and shape[1] == shape[2]:
        from nas.predictors.benches.nb201_graph import nb201_raw_graph
        from nas.predictors.graph import canonicalise

        from nas.nb201 import cell_ops

        p = dict(node.params)
        raw = nb201_raw_graph(cell_ops(node), p["c"], p["n"], space.num_classes, shape[1])
        return graph_record(canonicalise(raw))
    torch.manual_seed(0)
    model = compile_arch(node, shape, space.num_classes, space.mode)
    path = export_onnx(model, shape, Path(folder) / "trial.onnx")
    try:
        return file_record(path, signals=signals)
    finally:
        path.unlink()


#: Turns one architecture string and a scratch folder into a record.
Recorder = Callable[[str, str], GraphRecord]


def grammar_recorder(opts: dict[str, Any]) -> Recorder:
    """The recorder of a grammar space's run (its run.json options ``opts``): compile the
    architecture for the run's input and export it, with its data-free signals."""
    from nas.dsl import parse_arch
    from nas.space import load_space

    shape, classes = _input(opts)
    space = load_space(opts["space"]).with_input(shape, classes)
    return lambda arch, folder: arch_record(parse_arch(arch), space, folder, signals=True)


# run.json fields that decide what a trial's accuracy means: runs that differ in any of
# them cannot share a bench (their labels are not comparable)
PROTOCOL = ("space", "dataset", "epochs", "preset", "size")


def protocol(info: dict[str, Any]) -> dict[str, Any]:
    """The labelling protocol of a run (its run.json as ``info``): space, dataset, epochs,
    preset, data size and evaluator."""
    opts = info["options"]
    return {**{k: opts.get(k) for k in PROTOCOL}, "evaluator": info.get("evaluator")}


def check_protocols(runs: Sequence[tuple[str | Path, dict[str, Any]]]) -> dict[str, Any]:
    """The runs' shared protocol; a ConfigurationError naming the first field and run that
    differ from the first run's."""
    first, base = runs[0][0], protocol(runs[0][1])
    for run, info in runs[1:]:
        p = protocol(info)
        for k, v in base.items():
            if p[k] != v:
                raise ConfigurationError(
                    f"{run} has {k} {p[k]!r} but {first} has {v!r}; one bench takes runs "
                    "of one protocol (space, dataset, epochs, preset, size, evaluator)."
                )
    return base


def labels_by_arch(trials: Iterable[Any]) -> dict[str, list[float]]:
    """The accuracies of the successful ``trials`` per architecture, in first-seen order."""
    seen: dict[str, list[float]] = {}
    for t in trials:
        if t.ok and LABEL in t.values:
            seen.setdefault(t.arch, []).append(float(t.values[LABEL]))
    return seen


def merge_trials(trials: Iterable[Any]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(architectures in first-seen order, mean accuracy, number of trials) of the
    successful ``trials``: an architecture trained several times keeps its mean label."""
    seen = labels_by_arch(trials)
    archs = list(seen)
    return (
        archs,
        np.array([np.mean(seen[a]) for a in archs]),
        np.array([len(seen[a]) for a in archs], int),
    )


def repeat_sd(trials: Iterable[Any]) -> float | None:
    """Pooled standard deviation of the accuracy of architectures trained more than once
    (the label noise of the protocol), or None when none was."""
    reps = [np.asarray(v) for v in labels_by_arch(trials).values() if len(v) > 1]
    if not reps:
        return None
    ss = sum(float(((v - v.mean()) ** 2).sum()) for v in reps)
    return float(np.sqrt(ss / sum(len(v) - 1 for v in reps)))


def build_runs_bench(
    runs: Sequence[tuple[str | Path, dict[str, Any], Sequence[Any]]],
    out: str | Path | None = None,
    progress: Callable[[int], None] | None = None,
    recorder: Recorder | None = None,
    label: str | None = None,
) -> tuple[Bench, list[str]]:
    """A bench of the successful trials of several search runs of one protocol (each
    ``(run folder, run.json, trial records)``), identical architectures merged with their
    mean accuracy, and the reasons of skipped ones.

    ``recorder`` and ``label`` describe spaces the predictor does not know (a zoo family's
    exporter and metric, supplied by ``nas bench from-run``); grammar spaces need neither.
    """
    if not runs:
        raise ConfigurationError("give at least one search run.")
    proto = check_protocols([(r, i) for r, i, _ in runs])
    trials = [t for _, _, ts in runs for t in ts]
    archs, labels, counts = merge_trials(trials)
    if not archs:
        who = f"{runs[0][0]} has" if len(runs) == 1 else f"none of the {len(runs)} runs has"
        raise ConfigurationError(f"{who} no successful trial with an accuracy yet.")
    opts = runs[0][1]["options"]
    if recorder is None and str(opts["space"]).startswith("zoo:"):
        raise ConfigurationError(
            "a zoo run's bench needs its family's exporter (nas bench from-run)."
        )
    record = recorder or grammar_recorder(opts)
    if runs[0][1].get("evaluator") == "table":  # table mode looks accuracies up: no epochs
        label = label or f"the benchmark table's accuracy on {opts['dataset']}"
    label = label or f"trial accuracy on {opts['dataset']} after {opts.get('epochs')} epochs"
    records, keep, skipped = [], [], []
    number = {}
    for t in trials:
        number.setdefault(t.arch, t.number)
    with tempfile.TemporaryDirectory() as tmp:
        for k, arch in enumerate(archs):
            try:
                records.append(record(arch, tmp))
            except NasError as e:
                skipped.append(f"trial {number[arch]}: {e}".splitlines()[0])
            else:
                keep.append(k)
            if progress:
                progress(k + 1)
    if not records:
        who = runs[0][0] if len(runs) == 1 else f"the {len(runs)} runs"
        raise ConfigurationError(f"no trial of {who} could be exported.")
    sources = [str(Path(r).resolve()) for r, _, _ in runs]
    meta = {
        "space": opts["space"],
        "dataset": opts["dataset"],
        "source": f"search run {sources[0]}" if len(runs) == 1 else "search runs",
        "runs": sources,
        "protocol": proto,
        "label": label + (", mean over repeats" if counts.max() > 1 else ""),
        "trials": int(counts.sum()),
        "repeats": [int(counts[k]) for k in keep],
        "repeat_sd": repeat_sd(trials),
        "groups": "graph-hash",
    }
    names = [archs[k] for k in keep]
    bench = Bench.from_records(records, names, labels[keep][:, None], [LABEL], None, meta)
    if out is not None:
        bench.save(out)
    return bench, skipped


def build_run_bench(
    run: str | Path,
    info: dict[str, Any],
    trials: Sequence[Any],
    out: str | Path | None = None,
    progress: Callable[[int], None] | None = None,
) -> tuple[Bench, list[str]]:
    """A bench of the successful ``trials`` of the search run in ``run`` (its run.json as
    ``info``; records with ``arch`` and ``values``) and the reasons of skipped ones."""
    return build_runs_bench([(run, info, trials)], out, progress)
