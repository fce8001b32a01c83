"""The NB101 bench: the 500 NAS-Bench-101 cells of the zero-cost table, exported to ONNX.

Each cell's network (:mod:`nas.predictors.benches.nb101`) is exported with the project's pinned
exporter and read back like any user file. The label is NB101's 108-epoch CIFAR-10
validation accuracy (%); every cell carries the table's zero-cost proxy scores.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nas.predictors.benches.bench import Bench
from nas.predictors.benches.nb201_bench import (
    Progress,
    build_table_bench,
    exported_records,
    table_labels,
)
from nas.predictors.record import GraphRecord

LABELS = ("cifar10",)


def _network(key: str) -> Any:
    from nas.predictors.benches.nb101 import NB101Network, parse_key

    return NB101Network(parse_key(key))


def export_records(keys: Sequence[str]) -> list[GraphRecord]:
    """Records of NB101 table keys via ONNX export."""
    return exported_records(keys, _network)


def nb101_labels(labels: Sequence[str] | None) -> list[str]:
    """Validated NB101 label names (the only one when None)."""
    return table_labels("NB101", labels, LABELS, "108-epoch validation accuracy")


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
