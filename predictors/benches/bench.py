"""Benches: per-architecture records the predictor trains on, stored without pickle.

A row is a graph record (:class:`~nas.predictors.record.GraphRecord`, what ``nas rank``
reads of a file) stored as an index into a table of distinct node texts per node and the
(src, dst) edges, plus labels, parameters, FLOPs and a group (the isomorphism class, for
splits). A bench is two files in one folder:

* ``bench.npz``: int/float arrays (``text_idx``, ``node_ptr``, ``edges``, ``edge_ptr``,
  ``params``, ``flops``, ``labels``), read with ``allow_pickle=False``;
* ``bench.json``: the text vocabulary, names, groups and label names.

Optionally a bench carries zero-cost proxy scores (``proxies``, one column per name in
``proxy_names``, NaN where a row has none), so evaluation can put them in its table, and
data-free signals the project computed from each row's ONNX file (``signals`` /
``signal_names``, e.g. ``nwot`` from :mod:`nas.predictors.signals`, the same numbers
``nas rank`` shows): published proxies and our own signals are kept apart.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from nas.predictors.graph import DEFAULT_MAX_BYTES
from nas.predictors.record import GraphRecord, file_record

from nas.exceptions import ConfigurationError, NasError

FORMAT = "nas-bench-records"
VERSION = 1


class BenchError(NasError, ValueError):
    """A bench folder is missing, damaged or of another format."""


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
    proxy_names: list[str] = field(default_factory=list)
    proxies: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))  # (n, k) float64
    signal_names: list[str] = field(default_factory=list)
    signals: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))  # (n, s) float64

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
        proxies: np.ndarray | None = None,
        proxy_names: Sequence[str] = (),
    ) -> Bench:
        """Pack records; ``groups`` default to a hash of each canonical graph; signal columns
        are the union of the records' ``signals`` (NaN where a record lacks one)."""
        index: dict[str, int] = {}
        idx: list[int] = []
        node_ptr = [0]
        edges: list[np.ndarray] = []
        n_edges = 0
        edge_ptr = [0]
        for r in records:
            idx.extend(index.setdefault(t, len(index)) for t in r.texts)
            node_ptr.append(len(idx))
            edges.append(np.asarray(r.edges, np.int32).reshape(-1, 2))
            n_edges += len(edges[-1])
            edge_ptr.append(n_edges)
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
            edges=np.concatenate(edges) if edges else np.zeros((0, 2), np.int32),
            edge_ptr=np.asarray(edge_ptr, np.int64),
            params=np.asarray([r.params for r in records], np.int64),
            flops=np.asarray([r.flops for r in records], np.int64),
            labels=labels,
            label_names=list(label_names),
            meta=dict(meta or {}),
            proxy_names=list(proxy_names),
            proxies=_columns(proxies, len(records), len(proxy_names)),
            signal_names=(sig := sorted({k for r in records for k in r.signals})),
            signals=np.array(
                [[r.signals.get(k, np.nan) for k in sig] for r in records], np.float64
            ).reshape(len(records), len(sig)),
        )

    def signal(self, name: str) -> np.ndarray:
        """One signal column (all NaN when the bench lacks it)."""
        if name not in self.signal_names:
            return np.full(len(self), np.nan)
        return self.signals[:, self.signal_names.index(name)]

    def graph(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """(text indices, edges) of record ``i``."""
        a, b = self.node_ptr[i], self.node_ptr[i + 1]
        c, d = self.edge_ptr[i], self.edge_ptr[i + 1]
        return self.text_idx[a:b], self.edges[c:d]

    def record(self, i: int) -> GraphRecord:
        """Record ``i`` as the graph record a file would give (texts, edges, size, cost)."""
        ti, ed = self.graph(i)
        edges = [(int(u), int(v)) for u, v in ed.tolist()]
        texts = [self.vocab[t] for t in ti]
        return GraphRecord(texts, edges, int(self.params[i]), int(self.flops[i]))

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
            proxy_names=self.proxy_names,
            proxies=self.proxies[rows] if self.proxy_names else _columns(None, len(rows), 0),
            signal_names=self.signal_names,
            signals=_columns(
                self.signals[rows] if self.signal_names else None,
                len(rows),
                len(self.signal_names),
            ),
        )

    def save(self, folder: str | Path) -> Path:
        """Write ``bench.npz`` and ``bench.json`` into ``folder``.

        Both are written to temporary files first, so a kill mid-write leaves the folder's
        previous bench (or none), never a torn one.
        """
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(
            folder / "bench.npz.tmp.npz",
            text_idx=self.text_idx,
            node_ptr=self.node_ptr,
            edges=self.edges,
            edge_ptr=self.edge_ptr,
            params=self.params,
            flops=self.flops,
            labels=self.labels,
            **({"proxies": self.proxies} if self.proxy_names else {}),
            **({"signals": self.signals} if self.signal_names else {}),
        )
        info = {
            "format": FORMAT,
            "version": VERSION,
            "vocab": self.vocab,
            "names": self.names,
            "groups": self.groups,
            "label_names": self.label_names,
            "proxy_names": self.proxy_names,
            "signal_names": self.signal_names,
            "meta": self.meta,
        }
        (folder / "bench.json.tmp").write_text(json.dumps(info))
        os.replace(folder / "bench.npz.tmp.npz", folder / "bench.npz")
        os.replace(folder / "bench.json.tmp", folder / "bench.json")
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> Bench:
        """Read a bench written by :meth:`save`."""
        folder = Path(folder)
        if not (folder / "bench.json").is_file():
            what = "does not exist" if not folder.exists() else "is not a bench (no bench.json)"
            raise BenchError(
                f"{folder} {what}; benches come from `nas bench build` or `nas bench from-run`."
            )
        try:
            info = json.loads((folder / "bench.json").read_text())
            with np.load(folder / "bench.npz", allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
        except OSError as e:
            raise BenchError(f"{folder}: cannot read the bench: {e.strerror}.") from None
        except ValueError as e:
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
                proxy_names=info.get("proxy_names", []),
                proxies=_columns(
                    arrays.get("proxies"), len(info["names"]), len(info.get("proxy_names", []))
                ),
                signal_names=info.get("signal_names", []),
                signals=_columns(
                    arrays.get("signals"), len(info["names"]), len(info.get("signal_names", []))
                ),
            )
        except KeyError as e:
            raise BenchError(f"{folder}: the bench lacks {e.args[0]!r}.") from None


def _columns(values: Any, n: int, k: int) -> np.ndarray:
    """Proxy or signal columns as an (n, k) float array (NaN-filled when absent)."""
    if values is None:
        return np.full((n, k), np.nan)
    arr = np.asarray(values, np.float64)
    if arr.shape != (n, k):
        raise BenchError(f"scores have shape {arr.shape}, expected {(n, k)}.")
    return arr


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
