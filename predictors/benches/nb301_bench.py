"""The NB301 bench: the 725 DARTS cells of the NAS-Bench-301 zero-cost table, via ONNX.

Each genotype's network (:mod:`nas.predictors.benches.darts`, C = 32, 8 cells: the table's
``params`` exactly) is exported with the project's pinned exporter and read back like any
user file. The label is the table's CIFAR-10 validation accuracy (%); every cell carries
its zero-cost proxy scores. An export takes about 0.5 s of CPU: the whole bench was 370 s
of CPU, 6.3 min wall with 2 workers on a shared 2-core machine (``--workers`` spreads it).
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
    """Records of NB301 genotype keys via ONNX export."""
    import torch
    from nas.predictors.benches.darts import DartsNetwork, parse_genotype

    from nas.export import export_onnx

    torch.set_num_threads(1)
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for k, key in enumerate(keys):
            torch.manual_seed(0)
            path = Path(tmp) / f"{k}.onnx"
            export_onnx(DartsNetwork(parse_genotype(key)).eval(), (3, 32, 32), path)
            out.append(file_record(path, signals=True))
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
