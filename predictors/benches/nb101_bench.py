"""The NB101 bench: the 500 NAS-Bench-101 cells of the zero-cost table, exported to ONNX.

Each cell's network (:mod:`nas.predictors.benches.nb101`) is exported with the project's pinned
exporter and read back like any user file. The label is NB101's 108-epoch CIFAR-10
validation accuracy (%); every cell carries the table's zero-cost proxy scores.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path

from nas.predictors.benches.bench import Bench
from nas.predictors.benches.nb201_bench import Progress, build_table_bench
from nas.predictors.record import GraphRecord, file_record

from nas.exceptions import ConfigurationError

LABELS = ("cifar10",)


def export_records(keys: Sequence[str]) -> list[GraphRecord]:
    """Records of NB101 table keys via ONNX export."""
    import torch
    from nas.predictors.benches.nb101 import NB101Network, parse_key

    from nas.export import export_onnx

    torch.set_num_threads(1)
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for k, key in enumerate(keys):
            torch.manual_seed(0)
            path = Path(tmp) / f"{k}.onnx"
            export_onnx(NB101Network(parse_key(key)), (3, 32, 32), path)
            out.append(file_record(path, signals=True))
            path.unlink()
    return out


def nb101_labels(labels: Sequence[str] | None) -> list[str]:
    """Validated NB101 label names (the only one when None)."""
    bad = [x for x in labels or () if x not in LABELS]
    if bad:
        raise ConfigurationError(
            f"unknown NB101 label {bad[0]!r}; the NB101 bench has {', '.join(LABELS)} "
            "(108-epoch validation accuracy)."
        )
    return list(LABELS)


def build_nb101_bench(
    n: int | None = None,
    seed: int = 0,
    out: str | Path | None = None,
    workers: int = 1,
    labels: Sequence[str] | None = None,
    progress: Progress | None = None,
) -> Bench:
    """Records of ``n`` of the 500 NB101 cells drawn at random (all when None)."""
    from nas.predictors.benches.benchdata import nb101_zero_cost

    nb101_labels(labels)
    meta = {
        "space": "nb101",
        "label": "108-epoch validation accuracy (%)",
        "groups": "cell key",
        "method": "export",
        "proxies": "NASLib zero-cost proxies on CIFAR-10",
    }
    return build_table_bench(
        nb101_zero_cost(), export_records, meta, LABELS, n, seed, out, workers, progress, chunk=25
    )
