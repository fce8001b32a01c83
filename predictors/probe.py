"""Run an ONNX model once with onnxruntime on a random batch to read real tensor shapes.

Static shape inference leaves dims unknown where a shape is computed at run time (``Shape``
-> ``Gather`` -> ``Range`` index arithmetic, as in im2col or attention reshapes). The FLOPs of
a matrix product need those dims, so :func:`fill_shapes` runs the model once at batch 1 and
takes them from the tensors themselves. Symbolic dims of the graph inputs stay symbolic
unless the caller sizes them (``dims``); everywhere else they run at size 1.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import onnx

# Ops whose FLOPs read their input/output shapes (see nas.predictors.cost).
SHAPED_OPS = {"Conv", "ConvTranspose", "MatMul", "Gemm", "Einsum", "RNN", "GRU", "LSTM"}
MAX_PROBE_ELEMENTS = 64 * 2**20  # no probe when the inputs alone would exceed this


def _unknown(shape: Any, keep: set[str]) -> bool:
    return shape is None or any(not isinstance(d, int) and d not in keep for d in shape)


def random_feed(
    graph: onnx.GraphProto, dims: Mapping[str, int] | None, batch: int = 1, seed: int = 0
) -> dict[str, np.ndarray] | None:
    """Inputs for every graph input (float: normal, int: zeros, bool: True); None if huge."""
    rng = np.random.default_rng(seed)
    inits = {t.name for t in graph.initializer}
    feed: dict[str, np.ndarray] = {}
    total = 0
    for k, vi in enumerate(i for i in graph.input if i.name not in inits):
        t = vi.type.tensor_type
        shape = []
        for j, d in enumerate(t.shape.dim):
            if d.HasField("dim_value"):
                shape.append(int(d.dim_value))
            elif dims and d.dim_param in dims:
                shape.append(int(dims[d.dim_param]))
            else:
                shape.append(batch if j == 0 and k == 0 else 1)
        total += int(np.prod(shape)) if shape else 1
        if total > MAX_PROBE_ELEMENTS:
            return None
        dtype = onnx.helper.tensor_dtype_to_np_dtype(t.elem_type) if t.elem_type else np.float32
        if dtype.kind == "f":
            feed[vi.name] = rng.standard_normal(shape).astype(dtype)
        elif dtype.kind == "b":
            feed[vi.name] = np.ones(shape, dtype)
        else:
            feed[vi.name] = np.zeros(shape, dtype)
    return feed


def run_with_outputs(
    model: onnx.ModelProto, names: list[str], feed: dict[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """Values of the named tensors (intermediate ones included) on ``feed``."""
    import onnxruntime as ort

    m = onnx.ModelProto()
    m.CopyFrom(model)
    have = {o.name for o in m.graph.output}
    m.graph.output.extend(onnx.ValueInfoProto(name=n) for n in names if n not in have)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 4
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(m.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    outs = sess.run(names, feed)
    return dict(zip(names, outs, strict=True))


def fill_shapes(
    model: onnx.ModelProto, shapes: dict[str, Any], dims: Mapping[str, int] | None = None
) -> bool:
    """Fill unknown dims of the tensors around FLOP-counted ops from one run at batch 1.

    Changes ``shapes`` in place; returns False (shapes untouched) when nothing was
    missing or the model does not run.
    """
    keep = {
        d.dim_param
        for i in model.graph.input
        for d in i.type.tensor_type.shape.dim
        if d.HasField("dim_param") and not (dims and d.dim_param in dims)
    }
    inits = {t.name for t in model.graph.initializer}
    want = list(
        dict.fromkeys(
            x
            for n in model.graph.node
            if n.op_type in SHAPED_OPS and n.domain in ("", "ai.onnx")
            for x in [*n.input, *n.output]
            if x and x not in inits and _unknown(shapes.get(x), keep)
        )
    )
    if not want:
        return False
    feed = random_feed(model.graph, dims)
    if feed is None:
        return False
    try:
        got = run_with_outputs(model, want, feed)
    except Exception:  # a model onnxruntime cannot run keeps its static shapes
        return False
    for name, val in got.items():
        old = shapes.get(name)
        real = tuple(int(d) for d in np.shape(val))
        if old is None or len(old) != len(real):
            shapes[name] = real
        else:
            shapes[name] = tuple(
                d if isinstance(d, int) or d in keep else r for d, r in zip(old, real, strict=True)
            )
    return True
