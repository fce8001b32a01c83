"""Benches from search runs: every successful trial becomes a record labelled with its
accuracy, so each finished search adds training data for the predictor.

NB201 architectures are built straight from the cell (:mod:`nas.predictors.nb201_graph`);
any other architecture is compiled for the run's input, exported with the pinned exporter
and read back like a user's ONNX file. Trials that cannot be exported are skipped with
their reason.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from nas.predictors.bench import Bench, GraphRecord, file_record, graph_record

from nas.exceptions import ConfigurationError, NasError

LABEL = "accuracy"


def _input(opts: dict[str, Any]) -> tuple[tuple[int, ...], int]:
    """(input shape, classes) the run's trials were evaluated on."""
    from nas.data import resolve_dataset

    info = resolve_dataset(opts["dataset"])
    return tuple(info.input_shape), info.num_classes


def arch_record(node: Any, space: Any, folder: str) -> GraphRecord:
    """The record of one architecture of ``space`` (direct for square-input NB201, else by
    export into ``folder``); the search's ``predictor`` strategy scores candidates with it."""
    import torch

    from nas.compile import compile_arch
    from nas.export import export_onnx

    shape = tuple(space.input_shape)
    if node.op == "nb201" and len(shape) == 3 and shape[0] == 3 and shape[1] == shape[2]:
        from nas.predictors.graph import canonicalise
        from nas.predictors.nb201_graph import nb201_raw_graph

        from nas.nb201 import cell_ops

        p = dict(node.params)
        raw = nb201_raw_graph(cell_ops(node), p["c"], p["n"], space.num_classes, shape[1])
        return graph_record(canonicalise(raw))
    torch.manual_seed(0)
    model = compile_arch(node, shape, space.num_classes, space.mode)
    path = export_onnx(model, shape, Path(folder) / "trial.onnx")
    try:
        return file_record(path)
    finally:
        path.unlink()


def build_run_bench(
    run: str | Path,
    info: dict[str, Any],
    trials: Sequence[Any],
    out: str | Path | None = None,
    progress: Callable[[int], None] | None = None,
) -> tuple[Bench, list[str]]:
    """A bench of the successful ``trials`` of the search run in ``run`` (its run.json as
    ``info``; records with ``arch`` and ``values``) and the reasons of skipped ones."""
    from nas.dsl import parse_arch
    from nas.space import load_space

    trials = [t for t in trials if t.ok and LABEL in t.values]
    if not trials:
        raise ConfigurationError(f"{run} has no successful trial with an accuracy yet.")
    opts = info["options"]
    if str(opts["space"]).startswith("zoo:"):
        raise ConfigurationError("bench from-run handles grammar spaces, not zoo families.")
    shape, classes = _input(opts)
    space = load_space(opts["space"]).with_input(shape, classes)
    records, names, labels, skipped = [], [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for k, t in enumerate(trials):
            try:
                records.append(arch_record(parse_arch(t.arch), space, tmp))
            except NasError as e:
                skipped.append(f"trial {t.number}: {e}".splitlines()[0])
            else:
                names.append(t.arch)
                labels.append(t.values[LABEL])
            if progress:
                progress(k + 1)
    if not records:
        raise ConfigurationError(f"no trial of {run} could be exported.")
    meta = {
        "space": opts["space"],
        "dataset": opts["dataset"],
        "source": f"search run {Path(run).resolve()}",
        "label": f"trial accuracy on {opts['dataset']}",
        "groups": "graph-hash",
    }
    bench = Bench.from_records(records, names, np.array(labels)[:, None], [LABEL], None, meta)
    if out is not None:
        bench.save(out)
    return bench, skipped
