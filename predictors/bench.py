"""Benches: per-architecture records the predictor trains on, stored without pickle.

A record is the canonical graph reduced to what the model reads (an index into a table of
distinct node texts per node, and the (src, dst) edges) plus labels, parameters, FLOPs and
a group (the isomorphism class, for splits). A bench is two files in one folder:

* ``bench.npz``: int/float arrays (``text_idx``, ``node_ptr``, ``edges``, ``edge_ptr``,
  ``params``, ``flops``, ``labels``), read with ``allow_pickle=False``;
* ``bench.json``: the text vocabulary, names, groups and label names.
"""

from __future__ import annotations

import csv
import hashlib
import json
import multiprocessing
import os
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from nas.predictors.encode import node_texts
from nas.predictors.graph import DEFAULT_MAX_BYTES, CanonicalGraph, Const, Ref, load_graph

from nas.exceptions import ConfigurationError, NasError

FORMAT = "nas-bench-records"
VERSION = 1
NB201_CSV = "nb201_200epoch_test.csv"


class BenchError(NasError, ValueError):
    """A bench folder is missing, damaged or of another format."""


@dataclass
class GraphRecord:
    """One architecture: node texts, edges, size and cost."""

    texts: list[str]
    edges: list[tuple[int, int]]
    params: int
    flops: int


def _numel(shape: Sequence[Any] | None) -> int:
    """Elements of a shape, a symbolic (batch) dimension counting as 1."""
    if shape is None:
        return 0
    n = 1
    for d in shape:
        n *= d if isinstance(d, int) and d > 0 else 1
    return n


def graph_cost(g: CanonicalGraph) -> tuple[int, int]:
    """(parameters, FLOPs) of a canonical graph.

    Parameters are the elements of float constants that are not scalars; FLOPs count the
    multiply-accumulates of Conv, ConvTranspose, Linear, Gemm and MatMul per sample.
    """
    params = 0
    flops = 0
    for node in g.nodes:
        consts = [x for x in node.inputs if isinstance(x, Const)]
        params += sum(
            _numel(c.shape) for c in consts if c.dtype.startswith(("float", "bfloat")) and c.shape
        )
        out = _numel(node.shapes[0]) if node.shapes else 0
        if node.op in ("Conv", "ConvTranspose") and len(node.inputs) > 1:
            w = node.inputs[1]
            if isinstance(w, Const) and len(w.shape) >= 2:
                if node.op == "Conv":  # each output: Cin/group * kernel MACs
                    flops += out * _numel(w.shape[1:])
                elif isinstance(src := node.inputs[0], Ref):  # each input: Cout/g * kernel
                    flops += _numel(g.nodes[src.node].shapes[src.port]) * _numel(w.shape[1:])
        elif node.op in ("Linear", "Gemm", "MatMul") and len(node.inputs) > 1:
            w = node.inputs[1]
            if isinstance(w, Const) and len(w.shape) >= 2:
                k = w.shape[1] if node.op == "Linear" else w.shape[-2]
                flops += out * k
            elif isinstance(w, Ref):  # activation x activation: K from the first input
                src = node.inputs[0]
                if isinstance(src, Ref):
                    shp = g.nodes[src.node].shapes[src.port]
                    if shp and isinstance(shp[-1], int):
                        flops += out * shp[-1]
    return params, flops


def graph_record(g: CanonicalGraph) -> GraphRecord:
    """The record of one canonical graph."""
    params, flops = graph_cost(g)
    return GraphRecord(node_texts(g), [(int(a), int(b)) for a, b in g.edges], params, flops)


def file_record(path: str | Path, max_bytes: int = DEFAULT_MAX_BYTES) -> GraphRecord:
    """The record of one ONNX file (raises OnnxFileError for a broken file)."""
    return graph_record(load_graph(path, max_bytes=max_bytes))


@dataclass
class Bench:
    """Records of many architectures, stored as flat arrays with offsets."""

    vocab: list[str]
    names: list[str]
    groups: list[str]
    text_idx: np.ndarray  # (sum nodes,) int32
    node_ptr: np.ndarray  # (n + 1,) int64
    edges: np.ndarray  # (sum edges, 2) int32, node indices local to each graph
    edge_ptr: np.ndarray  # (n + 1,) int64
    params: np.ndarray  # (n,) int64
    flops: np.ndarray  # (n,) int64
    labels: np.ndarray  # (n, len(label_names)) float64
    label_names: list[str]
    meta: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.names)

    @classmethod
    def from_records(
        cls,
        records: Sequence[GraphRecord],
        names: Sequence[str],
        labels: np.ndarray,
        label_names: Sequence[str],
        groups: Sequence[str] | None = None,
        meta: dict[str, Any] | None = None,
    ) -> Bench:
        """Pack records; ``groups`` default to a hash of each canonical graph."""
        index: dict[str, int] = {}
        idx: list[int] = []
        node_ptr = [0]
        edges: list[tuple[int, int]] = []
        edge_ptr = [0]
        for r in records:
            idx.extend(index.setdefault(t, len(index)) for t in r.texts)
            node_ptr.append(len(idx))
            edges.extend(r.edges)
            edge_ptr.append(len(edges))
        labels = np.asarray(labels, np.float64).reshape(len(records), len(label_names))
        if groups is None:
            groups = [graph_hash(r) for r in records]
        if not (len(names) == len(groups) == len(records)):
            raise ConfigurationError("records, names and groups differ in length.")
        return cls(
            vocab=list(index),
            names=list(names),
            groups=list(groups),
            text_idx=np.asarray(idx, np.int32),
            node_ptr=np.asarray(node_ptr, np.int64),
            edges=np.asarray(edges, np.int32).reshape(-1, 2),
            edge_ptr=np.asarray(edge_ptr, np.int64),
            params=np.asarray([r.params for r in records], np.int64),
            flops=np.asarray([r.flops for r in records], np.int64),
            labels=labels,
            label_names=list(label_names),
            meta=dict(meta or {}),
        )

    def graph(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """(text indices, edges) of record ``i``."""
        a, b = self.node_ptr[i], self.node_ptr[i + 1]
        c, d = self.edge_ptr[i], self.edge_ptr[i + 1]
        return self.text_idx[a:b], self.edges[c:d]

    def label(self, name: str | None = None) -> np.ndarray:
        """One label column (the first when ``name`` is None)."""
        if name is None:
            return self.labels[:, 0]
        if name not in self.label_names:
            raise ConfigurationError(
                f"the bench has no label {name!r}; it has {', '.join(self.label_names)}."
            )
        return self.labels[:, self.label_names.index(name)]

    def subset(self, rows: Sequence[int] | np.ndarray) -> Bench:
        """A bench of the given rows (the vocabulary is kept whole)."""
        rows = [int(i) for i in rows]
        parts = [self.graph(i) for i in rows]
        node_ptr = np.cumsum([0] + [len(p[0]) for p in parts]).astype(np.int64)
        edge_ptr = np.cumsum([0] + [len(p[1]) for p in parts]).astype(np.int64)
        return Bench(
            vocab=self.vocab,
            names=[self.names[i] for i in rows],
            groups=[self.groups[i] for i in rows],
            text_idx=np.concatenate([p[0] for p in parts] or [np.zeros(0, np.int32)]),
            node_ptr=node_ptr,
            edges=np.concatenate([p[1] for p in parts] or [np.zeros((0, 2), np.int32)]),
            edge_ptr=edge_ptr,
            params=self.params[rows],
            flops=self.flops[rows],
            labels=self.labels[rows],
            label_names=self.label_names,
            meta=dict(self.meta),
        )

    def save(self, folder: str | Path) -> Path:
        """Write ``bench.npz`` and ``bench.json`` into ``folder``."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(
            folder / "bench.npz",
            text_idx=self.text_idx,
            node_ptr=self.node_ptr,
            edges=self.edges,
            edge_ptr=self.edge_ptr,
            params=self.params,
            flops=self.flops,
            labels=self.labels,
        )
        info = {
            "format": FORMAT,
            "version": VERSION,
            "vocab": self.vocab,
            "names": self.names,
            "groups": self.groups,
            "label_names": self.label_names,
            "meta": self.meta,
        }
        (folder / "bench.json").write_text(json.dumps(info))
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> Bench:
        """Read a bench written by :meth:`save`."""
        folder = Path(folder)
        try:
            info = json.loads((folder / "bench.json").read_text())
            with np.load(folder / "bench.npz", allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
        except (OSError, ValueError) as e:
            raise BenchError(f"{folder}: not a readable bench: {e}".splitlines()[0]) from None
        if info.get("format") != FORMAT or info.get("version") != VERSION:
            raise BenchError(f"{folder}: not a bench of format {FORMAT} v{VERSION}.")
        try:
            return cls(
                vocab=info["vocab"],
                names=info["names"],
                groups=info["groups"],
                label_names=info["label_names"],
                meta=info.get("meta", {}),
                **{k: arrays[k] for k in ("text_idx", "node_ptr", "edges", "edge_ptr")},
                params=arrays["params"],
                flops=arrays["flops"],
                labels=arrays["labels"],
            )
        except KeyError as e:
            raise BenchError(f"{folder}: the bench lacks {e.args[0]!r}.") from None


def graph_hash(r: GraphRecord) -> str:
    """A key equal for records with the same canonical node texts and edges."""
    h = hashlib.sha1()
    for t in r.texts:
        h.update(t.encode() + b"\n")
    h.update(repr(r.edges).encode())
    return h.hexdigest()[:16]


def bench_from_files(
    paths: Sequence[str | Path],
    labels: np.ndarray,
    label_names: Sequence[str] = ("label",),
    groups: Sequence[str] | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> Bench:
    """A bench from ONNX files and their labels (rows aligned with ``paths``)."""
    records = [file_record(p, max_bytes) for p in paths]
    return Bench.from_records(
        records, [str(p) for p in paths], labels, label_names, groups, {"source": "onnx files"}
    )


def benchmark_data_dir() -> Path | None:
    """Folder of the benchmark tables: ``$NAS_BENCHMARK_DATA`` or ``../shared/data/benchmarks``
    next to the repository, when present."""
    env = os.environ.get("NAS_BENCHMARK_DATA")
    cands = [Path(env)] if env else []
    cands.append(Path(__file__).resolve().parents[2] / "shared" / "data" / "benchmarks")
    return next((c for c in cands if (c / NB201_CSV).is_file()), None)


def nb201_unique_strings(folder: Path | None = None) -> list[str] | None:
    """NB201's isomorphism class (UniqueString) per NB201 index, or None if not found."""
    folder = folder or benchmark_data_dir()
    if folder is None:
        return None
    with open(folder / NB201_CSV, newline="") as f:
        return [row["UniqueString"] for row in csv.DictReader(f)]


def _nb201_worker(args: tuple[list[str], str]) -> list[GraphRecord]:
    """Export and encode NB201 cells (runs in a worker process)."""
    import torch

    from nas.compile import compile_arch
    from nas.export import export_onnx
    from nas.nb201 import from_nb201

    torch.set_num_threads(1)
    archs, tmp = args
    out = []
    for k, arch in enumerate(archs):
        path = Path(tmp) / f"{os.getpid()}-{k}.onnx"
        model = compile_arch(from_nb201(arch), (3, 32, 32), 10)
        export_onnx(model, (3, 32, 32), path)
        out.append(file_record(path))
        path.unlink()
    return out


def _chunks(items: list[str], size: int) -> Iterable[list[str]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def build_nb201_bench(
    n: int | None,
    seed: int = 0,
    out: str | Path | None = None,
    workers: int = 1,
    indices: Sequence[int] | None = None,
    progress: bool = False,
) -> Bench:
    """Records of ``n`` NB201 cells drawn at random (all 15,625 when ``n`` is None).

    Labels are the 200-epoch test accuracies on CIFAR-10, CIFAR-100 and ImageNet16-120;
    groups are NB201's UniqueString when the table is found, else a canonical-graph hash.
    """
    from nas.benchmarks.nb201 import DATASETS, NB201Table

    table = NB201Table.load()
    if indices is None:
        total = len(table)
        if n is not None and not 0 < n <= total:
            raise ConfigurationError(f"n must lie in 1..{total}, got {n}.")
        rng = np.random.default_rng(seed)
        indices = sorted(rng.choice(total, size=n, replace=False)) if n else range(total)
    rows = [int(i) for i in indices]
    archs = [table.archs[i] for i in rows]
    t0 = time.perf_counter()
    records: list[GraphRecord] = []
    with tempfile.TemporaryDirectory() as tmp:
        jobs = [(c, tmp) for c in _chunks(archs, 25)]
        if workers > 1:
            ctx = multiprocessing.get_context("spawn")
            with ctx.Pool(workers) as pool:
                for part in pool.imap(_nb201_worker, jobs):
                    records.extend(part)
                    if progress:
                        print(f"{len(records)}/{len(rows)} {time.perf_counter() - t0:.0f}s")
        else:
            for job in jobs:
                records.extend(_nb201_worker(job))
                if progress:
                    print(f"{len(records)}/{len(rows)} {time.perf_counter() - t0:.0f}s")
    uniq = nb201_unique_strings()
    groups = [uniq[i] for i in rows] if uniq else None
    labels = np.array([[table.acc[d][i] for d in DATASETS] for i in rows])
    meta = {
        "space": "nb201",
        "seed": seed,
        "indices": rows,
        "groups": "UniqueString" if uniq else "graph-hash",
        "build_seconds": round(time.perf_counter() - t0, 1),
    }
    bench = Bench.from_records(records, archs, labels, list(DATASETS), groups, meta)
    if out is not None:
        bench.save(out)
    return bench
