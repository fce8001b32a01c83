"""Graph records: what the ranker reads of one ONNX file, read once.

A record is the canonical graph reduced to what the model reads: one text per node
(:func:`nas.predictors.encode.node_texts`), the (src, dst) edges, parameters and FLOPs
(:mod:`nas.predictors.cost`), notes on what could not be computed and, when asked, the
data-free signals that need an onnxruntime run (``nwot``, :mod:`nas.predictors.signals`).
``nas rank`` reads each file with :func:`read_record` (:mod:`nas.predictors.rank_read`), and
benches (:mod:`nas.predictors.benches.bench`) store the same records of many files.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from nas.predictors.cost import graph_cost
from nas.predictors.encode import node_texts
from nas.predictors.graph import DEFAULT_MAX_BYTES, CanonicalGraph, model_graph, read_model
from nas.predictors.onnxcheck import DEFAULT_MAX_NODES
from nas.predictors.onnxfile import as_file_error, time_limit
from nas.predictors.probe import DEFAULT_PROBE_BYTES
from nas.predictors.signals import nwot_probe


@dataclass
class GraphRecord:
    """One architecture: node texts, edges, size and cost."""

    texts: list[str]
    # (src, dst) pairs; an (n, 2) int32 array in what ``nas rank`` keeps (rank_read.compact)
    edges: list[tuple[int, int]] | np.ndarray
    params: int
    flops: int
    notes: list[str] = field(default_factory=list, compare=False)  # not stored in benches
    # data-free signals computed from the ONNX file (name -> value), see file_record
    signals: dict[str, float] = field(default_factory=dict, compare=False)


def graph_record(g: CanonicalGraph) -> GraphRecord:
    """The record of one canonical graph."""
    params, flops = graph_cost(g)
    edges = [(int(a), int(b)) for a, b in g.edges]
    return GraphRecord(node_texts(g), edges, params, flops, list(g.notes))


def read_record(
    path: str | Path,
    max_bytes: int = DEFAULT_MAX_BYTES,
    dims: Mapping[str, int] | None = None,
    probe_bytes: int = DEFAULT_PROBE_BYTES,
    signals: bool = False,
    max_nodes: int = DEFAULT_MAX_NODES,
    check: bool = False,
) -> GraphRecord:
    """The record of one ONNX file, read once; ``signals`` adds the data-free signals that
    need an onnxruntime run (``nwot``, NaN with a note in ``notes`` when skipped), as
    ``nas rank`` computes them; ``check`` refuses what the ONNX checker rejects (notes on
    objections that do not matter go to ``notes``). Errors are raised as they come (see
    :func:`file_record`)."""
    checked: list[str] = []
    model = read_model(path, max_bytes, max_nodes, checked if check else None)
    unbound = model
    if signals and dims:  # the proxy runs with the batch symbolic, whatever ``dims`` bind
        unbound = onnx.ModelProto()
        unbound.CopyFrom(model)
    record = graph_record(model_graph(model, path, dims, probe_bytes))
    record.notes[:0] = checked
    if signals:
        nwot, note = nwot_probe(unbound, max_bytes=probe_bytes)
        record.signals = {"nwot": nwot}
        if note:
            record.notes.append(note)
    return record


def file_record(
    path: str | Path,
    max_bytes: int = DEFAULT_MAX_BYTES,
    dims: Mapping[str, int] | None = None,
    time_limit_s: float | None = None,
    probe_bytes: int = DEFAULT_PROBE_BYTES,
    signals: bool = False,
) -> GraphRecord:
    """The record of one ONNX file (:func:`read_record`); any failure, a time over
    ``time_limit_s`` included, is one OnnxFileError naming the file."""
    with time_limit(time_limit_s, path):
        return as_file_error(
            path, lambda: read_record(path, max_bytes, dims, probe_bytes, signals)
        )
