"""The NB301 bench: the 725 DARTS cells of the NAS-Bench-301 zero-cost table, via ONNX.

Each genotype's network (:mod:`nas.predictors.benches.darts`, C = 32, 8 cells: the table's
``params`` exactly) is exported with the project's pinned exporter and read back like any
user file. The label is the table's CIFAR-10 validation accuracy (%); every cell carries
its zero-cost proxy scores. An export takes about 0.5 s of CPU: the whole bench was 370 s
of CPU, 6.3 min wall with 2 workers on a shared 2-core machine (``--workers`` spreads it).
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
    from nas.predictors.benches.darts import DartsNetwork, parse_genotype

    return DartsNetwork(parse_genotype(key)).eval()


def export_records(keys: Sequence[str]) -> list[GraphRecord]:
    """Records of NB301 table keys via ONNX export."""
    return exported_records(keys, _network)


def nb301_labels(labels: Sequence[str] | None) -> list[str]:
    """Validated NB301 label names (the only one when None)."""
    return table_labels("NB301", labels, LABELS, "validation accuracy")


def build_nb301_bench(
    n: int | None = None,
    seed: int = 0,
    out: str | Path | None = None,
    workers: int = 1,
    labels: Sequence[str] | None = None,
    progress: Progress | None = None,
) -> Bench:
    """Records of ``n`` of the 725 NB301 cells drawn at random (all when None)."""
    from nas.predictors.benches.benchdata import nb301_zero_cost

    nb301_labels(labels)
    meta = {
        "space": "nb301",
        "label": "CIFAR-10 validation accuracy (%)",
        "groups": "genotype",
        "method": "export",
        "proxies": "NASLib zero-cost proxies on CIFAR-10",
    }
    return build_table_bench(
        nb301_zero_cost(), export_records, meta, LABELS, n, seed, out, workers, progress, chunk=5
    )
