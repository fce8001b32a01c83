"""Data-free signals of an architecture, from its ONNX file or graph record alone.

Each is a baseline the ranker must beat and an explanation ``nas rank`` shows next to its
score:

* ``params`` and ``flops`` (see :mod:`nas.predictors.cost`);
* ``depth`` (nodes on the longest input-output path of the canonical graph), ``nodes``
  and ``width`` (the most output channels of any node);
* ``nwot``: the NASWOT score (Mellor et al., 2021) from the file run by onnxruntime on a
  random normal batch: each input gets a binary code (which units of every ReLU-like
  activation are positive) and the score is log|det K| with K[i, j] the number of units on
  which inputs i and j agree. Untrained networks whose codes tell inputs apart tend to
  train better. Networks without ReLU-like ops use their matrix-product outputs' signs. K
  has integer entries, so a non-singular K has log|det K| >= 0; a singular K (inputs the
  network cannot tell apart) scores 0, below every other network.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from nas.predictors.onnxfile import DEFAULT_MAX_BYTES
from nas.predictors.probe import DEFAULT_PROBE_BYTES

from nas.registry import Registry

ACTIVATIONS = {"Relu", "LeakyRelu", "PRelu", "Gelu", "Elu", "Selu", "Celu", "HardSwish"}
FALLBACK = {"Conv", "MatMul", "Gemm", "ConvTranspose"}
# 8 random inputs: on 150 random NB201 files the scores of batch 8 and 32 rank the files
# alike (Spearman 0.996) at a third of the cost (0.032 against 0.096 s of CPU a file)
NWOT_BATCH = 8
MAX_TENSORS = 64  # activation tensors read (evenly spaced) per network
MAX_UNITS = 4 * 2**20  # per-sample units over all read tensors; more: NaN and a note


def depth(n_nodes: int, edges: Sequence[tuple[int, int]] | np.ndarray) -> int:
    """Nodes on the longest path of a DAG whose edges run from lower to higher index
    (``edges``: pairs, or an (n, 2) array as ``nas rank`` keeps them)."""
    d = [1] * n_nodes
    pairs = edges.tolist() if isinstance(edges, np.ndarray) else edges
    for s, t in sorted(pairs, key=lambda e: e[1]):
        d[t] = max(d[t], d[s] + 1)
    return max(d, default=0)


def node_width(text: str) -> int:
    """The channel count of a node's output (its second dim), 0 when the text has none."""
    dims = text.rpartition(" -> ")[2].split("x")
    return int(dims[1]) if len(dims) > 1 and dims[1].isdigit() else 0


# signals a ranker's head may see (ModelConfig.signals): name -> its value for a graph
# record (node texts, edges, and the signals computed from the file such as nwot); listed in
# registration order
HEAD_SIGNALS: Registry[Callable[[Any], float]] = Registry("head signal", ordered=True)
HEAD_SIGNALS.add("depth", lambda r: float(depth(len(r.texts), r.edges)))
HEAD_SIGNALS.add("nodes", lambda r: float(len(r.texts)))
HEAD_SIGNALS.add("width", lambda r: float(max(map(node_width, r.texts), default=0)))
HEAD_SIGNALS.add("nwot", lambda r: float(r.signals.get("nwot", float("nan"))))


def record_signals(records: Sequence[Any], names: Sequence[str]) -> np.ndarray:
    """(len(records), len(names)) values of the named :data:`HEAD_SIGNALS` (NaN: not
    computed for that record, e.g. ``nas rank --no-proxy``)."""
    out = np.full((len(records), len(names)), np.nan)
    for j, name in enumerate(names):
        signal = HEAD_SIGNALS.get(name)
        out[:, j] = [signal(r) for r in records]
    return out


def _pick(names: list[str]) -> list[str]:
    if len(names) <= MAX_TENSORS:
        return names
    idx = np.linspace(0, len(names) - 1, MAX_TENSORS).round().astype(int)
    return [names[i] for i in dict.fromkeys(idx)]


def nwot_probe(
    model: onnx.ModelProto,
    batch: int = NWOT_BATCH,
    seed: int = 0,
    max_bytes: int = DEFAULT_PROBE_BYTES,
) -> tuple[float, str]:
    """(NASWOT score, note): the score is NaN when it cannot be computed, and the note says
    why when the reason is worth a line in ``nas rank`` (a run skipped or failed)."""
    from nas.predictors.probe import ProbeSkipped, random_feed, run_with_outputs

    g = model.graph
    first = next((i for i in g.input if i.name not in {t.name for t in g.initializer}), None)
    if first is None:
        return float("nan"), ""
    dims = first.type.tensor_type.shape.dim
    if not dims or not dims[0].HasField("dim_param"):  # a fixed batch: no batch to compare
        return float("nan"), ""
    names = [o for n in g.node if n.op_type in ACTIVATIONS for o in n.output[:1]]
    if not names:
        names = [o for n in g.node if n.op_type in FALLBACK for o in n.output[:1]]
    names = _pick(names)
    if not names:
        return float("nan"), ""
    try:
        feed = random_feed(g, None, batch=batch, seed=seed, max_bytes=max_bytes)
        if feed is None:
            cap = f"{max_bytes / 2**20:g} MiB"
            return float("nan"), f"nwot skipped: the inputs alone are over the probe cap of {cap}"
        outs = run_with_outputs(model, names, feed, max_bytes)
    except ProbeSkipped as e:
        return float("nan"), f"nwot skipped: {e}"
    except Exception:  # a model onnxruntime cannot run has no activation signal
        return float("nan"), "nwot skipped: onnxruntime cannot run the model"
    codes = [a for a in map(np.asarray, outs.values()) if _is_code(a, batch)]
    if sum(a.size // batch for a in codes) > MAX_UNITS:
        return float("nan"), f"nwot skipped: over {MAX_UNITS:,} activation units per input"
    return _nwot_score(codes, batch), ""


def _is_code(a: np.ndarray, batch: int) -> bool:
    """Whether ``a`` is an activation with one row per input of the batch."""
    return a.ndim > 0 and a.shape[0] == batch and np.issubdtype(a.dtype, np.floating)


def _nwot_score(codes: list[np.ndarray], batch: int) -> float:
    """log|det K| of the activation codes (each :func:`_is_code`, within the unit cap),
    K[i, j] = units on which inputs i and j agree (= U - r_i - r_j + 2 (C C^T)_ij for codes
    C with row sums r, in column chunks)."""
    gram = np.zeros((batch, batch))
    ones = np.zeros(batch)
    units = 0
    for v in codes:
        a = v.reshape(batch, -1)
        units += a.shape[1]
        for s in range(0, a.shape[1], 1 << 16):
            c = (a[:, s : s + (1 << 16)] > 0).astype(np.float32)
            gram += c @ c.T
            ones += c.sum(1)
    if units == 0:
        return float("nan")
    k = units - ones[:, None] - ones[None, :] + 2 * gram
    sign, logdet = np.linalg.slogdet(k)
    # K has integer entries: non-singular means |det K| >= 1. A negative log is rounding
    # on a singular K (inputs the network cannot tell apart): the floor 0.
    return float(logdet) if sign > 0 and logdet > 0 else 0.0


def nwot_model(model: onnx.ModelProto, batch: int = NWOT_BATCH, seed: int = 0) -> float:
    """The NASWOT score of a parsed model (NaN when it cannot be computed)."""
    return nwot_probe(model, batch, seed)[0]


def nwot_file(path: str | Path, max_bytes: int = DEFAULT_MAX_BYTES) -> float:
    """The NASWOT score of an ONNX file (NaN when the file does not run)."""
    from nas.predictors.graph import read_model

    return nwot_model(read_model(path, max_bytes))
