"""The NB201 bench: records of NAS-Bench-201 cells with their measured accuracies.

Records are built straight from the cell (:mod:`nas.predictors.benches.nb201_graph`, about 5 ms a
cell, identical to exporting; checked on one cell with every op before each build) or,
with ``method="export"``, by exporting each network to ONNX and reading it back (about
0.25 s a cell). Labels are the 200-epoch test accuracies; groups are NB201's UniqueString
(isomorphism class); the 725 cells of the zero-cost table carry its CIFAR-10 proxies.
"""

from __future__ import annotations

import multiprocessing
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from nas.predictors.benches.bench import Bench, BenchError
from nas.predictors.record import GraphRecord, file_record, graph_record

from nas.exceptions import ConfigurationError

METHODS = ("direct", "export")
#: A cell with every edge op, for the self-check of the direct builder.
CHECK_CELL = (
    "|nor_conv_3x3~0|+|none~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_1x1~1|skip_connect~2|"
)
CHUNK = 100

Progress = Callable[[int], None]


def direct_records(archs: Sequence[str]) -> list[GraphRecord]:
    """Records of NB201 cell strings, built without export."""
    from nas.predictors.benches.nb201_graph import nb201_graph

    return [graph_record(nb201_graph(a)) for a in archs]


def exported_records(keys: Sequence[str], network: Callable[[str], Any]) -> list[GraphRecord]:
    """Records of a table's ``keys`` the slow, faithful way: each key's ``network`` built
    under seed 0 (the weights, and so the signals, do not depend on order), exported for
    3x32x32 inputs with the pinned exporter and read back like a user's file. The NB201,
    NB101 and NB301 benches differ only in ``network``."""
    import torch

    from nas.export import export_onnx

    torch.set_num_threads(1)
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for k, key in enumerate(keys):
            torch.manual_seed(0)
            path = Path(tmp) / f"{k}.onnx"
            export_onnx(network(key), (3, 32, 32), path)
            out.append(file_record(path, signals=True))
            path.unlink()
    return out


def table_labels(
    space: str, labels: Sequence[str] | None, allowed: Sequence[str], what: str
) -> list[str]:
    """The label names of a zero-cost table's bench: all of ``allowed`` (it has one), or a
    one-line error naming ``what`` they measure for a name it does not have."""
    bad = [x for x in labels or () if x not in allowed]
    if bad:
        raise ConfigurationError(
            f"unknown {space} label {bad[0]!r}; the {space} bench has {', '.join(allowed)} "
            f"({what})."
        )
    return list(allowed)


def _nb201_network(arch: str) -> Any:
    from nas.compile import compile_arch
    from nas.nb201 import from_nb201

    return compile_arch(from_nb201(arch), (3, 32, 32), 10)


def export_records(archs: Sequence[str]) -> list[GraphRecord]:
    """Records of NB201 cell strings via ONNX export (the slow reference path)."""
    return exported_records(archs, _nb201_network)


_WORKERS: dict[str, Callable[[Sequence[str]], list[GraphRecord]]] = {
    "direct": direct_records,
    "export": export_records,
}


def check_direct() -> None:
    """Raise BenchError if the direct builder and the exporter disagree on CHECK_CELL."""
    if direct_records([CHECK_CELL]) != export_records([CHECK_CELL]):
        raise BenchError(
            "the direct NB201 builder disagrees with this torch version's ONNX exporter; "
            "build with --method export."
        )


def _compact(records: list[GraphRecord]) -> list[GraphRecord]:
    """Share the (few distinct) node texts between records received from workers."""
    for r in records:
        r.texts = [sys.intern(t) for t in r.texts]
    return records


def run_chunks(
    fn: Callable[[Sequence[str]], list[GraphRecord]],
    items: Sequence[str],
    workers: int = 1,
    progress: Progress | None = None,
    chunk: int = CHUNK,
) -> list[GraphRecord]:
    """``fn`` over ``items`` in chunks, in ``workers`` processes; ``progress(done)``."""
    jobs = [list(items[i : i + chunk]) for i in range(0, len(items), chunk)]
    records: list[GraphRecord] = []
    if workers > 1 and len(jobs) > 1:
        ctx = multiprocessing.get_context("spawn")
        with ctx.Pool(min(workers, len(jobs))) as pool:
            for part in pool.imap(fn, jobs):
                records.extend(_compact(part))
                if progress:
                    progress(len(records))
    else:
        for job in jobs:
            records.extend(fn(job))
            if progress:
                progress(len(records))
    return records


def nb201_labels(labels: Sequence[str] | None) -> list[str]:
    """Validated NB201 label names (all three datasets when None)."""
    from nas.benchmarks.nb201 import DATASETS

    if not labels:
        return list(DATASETS)
    bad = [x for x in labels if x not in DATASETS]
    if bad:
        raise ConfigurationError(
            f"unknown NB201 label {bad[0]!r}; choose from {', '.join(DATASETS)}."
        )
    return list(dict.fromkeys(labels))


def _zero_cost_proxies(archs: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    """CIFAR-10 zero-cost proxy scores of the cells (NaN off the 725-cell table)."""
    from nas.predictors.benches.benchdata import nb201_zero_cost, proxy_names

    from nas.nb201 import from_index_tuple, to_nb201

    table = nb201_zero_cost()["cifar10"]
    by_arch = {to_nb201(from_index_tuple(k)): e for k, e in table.items()}
    names = proxy_names(table.values())
    out = np.full((len(archs), len(names)), np.nan)
    for i, a in enumerate(archs):
        e = by_arch.get(a)
        if e is not None:
            out[i] = [e.get(n, np.nan) for n in names]
    return out, names


def build_nb201_bench(
    n: int | None = None,
    seed: int = 0,
    out: str | Path | None = None,
    workers: int = 1,
    indices: Sequence[int] | None = None,
    labels: Sequence[str] | None = None,
    method: str = "direct",
    progress: Progress | None = None,
) -> Bench:
    """Records of ``n`` NB201 cells drawn at random (all 15,625 when ``n`` is None), or of
    the cells at ``indices``; ``labels`` picks datasets (default: all three)."""
    from nas.predictors.benches.benchdata import nb201_unique_strings

    from nas.benchmarks.nb201 import NB201Table

    if method not in _WORKERS:
        raise ConfigurationError(f"unknown method {method!r}; choose {' or '.join(METHODS)}.")
    names = nb201_labels(labels)
    table = NB201Table.load()
    total = len(table)
    if indices is None:
        if n is not None and not 0 < n <= total:
            raise ConfigurationError(f"--n must lie in 1..{total}, got {n}.")
        rng = np.random.default_rng(seed)
        indices = sorted(rng.choice(total, size=n, replace=False)) if n else range(total)
    rows = [int(i) for i in indices]
    archs = [table.archs[i] for i in rows]
    t0 = time.perf_counter()
    if method == "direct":
        check_direct()
    records = run_chunks(_WORKERS[method], archs, workers, progress)
    uniq = nb201_unique_strings()
    labels_arr = np.array([[table.acc[d][i] for d in names] for i in rows])
    proxies, proxy_names = _zero_cost_proxies(archs)
    meta = {
        "space": "nb201",
        "label": "200-epoch test accuracy (%)",
        "seed": seed,
        "indices": rows,
        "groups": "UniqueString",
        "method": method,
        "proxies": "NASLib zero-cost proxies on CIFAR-10 (725 cells)",
        "build_seconds": round(time.perf_counter() - t0, 1),
    }
    bench = Bench.from_records(
        records, archs, labels_arr, names, [uniq[i] for i in rows], meta, proxies, proxy_names
    )
    if out is not None:
        bench.save(out)
    return bench


def build_table_bench(
    table: dict,
    export: Callable[[Sequence], list[GraphRecord]],
    meta: dict,
    labels: Sequence[str],
    n: int | None = None,
    seed: int = 0,
    out: str | Path | None = None,
    workers: int = 1,
    progress: Progress | None = None,
    chunk: int = 25,
) -> Bench:
    """A bench of ``n`` cells of a zero-cost ``table`` drawn at random (all when None),
    exported by ``export`` and labelled with the table's validation accuracy; the NB101 and
    NB301 benches differ only in their table, exporter and ``meta``."""
    from nas.predictors.benches.benchdata import proxy_names

    keys = list(table)
    if n is not None:
        if not 0 < n <= len(keys):
            raise ConfigurationError(
                f"--n must lie in 1..{len(keys)} for {meta['space']}, got {n}."
            )
        pick = np.random.default_rng(seed).choice(len(keys), size=n, replace=False)
        keys = [keys[i] for i in sorted(pick)]
    t0 = time.perf_counter()
    records = run_chunks(export, keys, workers, progress, chunk=chunk)
    names = proxy_names(table[k] for k in keys)
    proxies = np.array([[table[k].get(p, np.nan) for p in names] for k in keys], float)
    labels_arr = np.array([[table[k]["val_accuracy"]] for k in keys])
    meta = {**meta, "seed": seed, "build_seconds": round(time.perf_counter() - t0, 1)}
    bench = Bench.from_records(records, keys, labels_arr, list(labels), keys, meta, proxies, names)
    if out is not None:
        bench.save(out)
    return bench
