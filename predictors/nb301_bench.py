"""The NB301 bench: the 725 DARTS cells of the NAS-Bench-301 zero-cost table, via ONNX.

Each genotype's network (:mod:`nas.predictors.darts`, C = 32, 8 cells: the table's
``params`` exactly) is exported with the project's pinned exporter and read back like any
user file. The label is the table's CIFAR-10 validation accuracy (%); every cell carries
its zero-cost proxy scores. An export takes about 1-2 s of CPU: the whole bench is some
15-25 CPU minutes (``--workers`` spreads it).
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from nas.predictors.bench import Bench, GraphRecord, file_record
from nas.predictors.nb201_bench import Progress, run_chunks

from nas.exceptions import ConfigurationError

LABELS = ("cifar10",)


def export_records(keys: Sequence[str]) -> list[GraphRecord]:
    """Records of NB301 genotype keys via ONNX export."""
    import torch
    from nas.predictors.darts import DartsNetwork, parse_genotype

    from nas.export import export_onnx

    torch.set_num_threads(1)
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for k, key in enumerate(keys):
            torch.manual_seed(0)
            path = Path(tmp) / f"{k}.onnx"
            export_onnx(DartsNetwork(parse_genotype(key)).eval(), (3, 32, 32), path)
            out.append(file_record(path))
            path.unlink()
    return out


def nb301_labels(labels: Sequence[str] | None) -> list[str]:
    """Validated NB301 label names (the only one when None)."""
    bad = [x for x in labels or () if x not in LABELS]
    if bad:
        raise ConfigurationError(
            f"unknown NB301 label {bad[0]!r}; the NB301 bench has {', '.join(LABELS)} "
            "(validation accuracy)."
        )
    return list(LABELS)


def build_nb301_bench(
    n: int | None = None,
    seed: int = 0,
    out: str | Path | None = None,
    workers: int = 1,
    labels: Sequence[str] | None = None,
    progress: Progress | None = None,
) -> Bench:
    """Records of ``n`` of the 725 NB301 cells drawn at random (all when None)."""
    from nas.predictors.benchdata import nb301_zero_cost, proxy_names

    table = nb301_zero_cost()
    nb301_labels(labels)
    keys = list(table)
    if n is not None:
        if not 0 < n <= len(keys):
            raise ConfigurationError(f"--n must lie in 1..{len(keys)} for nb301, got {n}.")
        pick = np.random.default_rng(seed).choice(len(keys), size=n, replace=False)
        keys = [keys[i] for i in sorted(pick)]
    t0 = time.perf_counter()
    records = run_chunks(export_records, keys, workers, progress, chunk=5)
    names = proxy_names(table[k] for k in keys)
    proxies = np.array([[table[k].get(p, np.nan) for p in names] for k in keys], float)
    labels_arr = np.array([[table[k]["val_accuracy"]] for k in keys])
    meta = {
        "space": "nb301",
        "label": "CIFAR-10 validation accuracy (%)",
        "seed": seed,
        "groups": "genotype",
        "method": "export",
        "proxies": "NASLib zero-cost proxies on CIFAR-10",
        "build_seconds": round(time.perf_counter() - t0, 1),
    }
    bench = Bench.from_records(records, keys, labels_arr, list(LABELS), keys, meta, proxies, names)
    if out is not None:
        bench.save(out)
    return bench
