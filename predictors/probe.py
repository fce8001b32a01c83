"""Run an ONNX model with onnxruntime on a random batch, memory and time bounded.

Static shape inference leaves dims unknown where a shape is computed at run time (``Shape``
-> ``Gather`` -> ``Range`` index arithmetic, as in im2col or attention reshapes). The FLOPs of
a matrix product need those dims, so :func:`fill_shapes` runs the model once at batch 1 and
takes them from the tensors themselves. Symbolic dims of the graph inputs stay symbolic
unless the caller sizes them (``dims``); everywhere else they run at size 1. The NASWOT
proxy (:mod:`nas.predictors.signals`) reads activations through the same runner.

A user's file must not take the process down, so every run (:func:`run_with_outputs`) is
bounded:

* **memory**: the inputs plus the peak of activations alive at once (shape inference with
  the fed dims, tensors freed after their last reader, requested outputs kept) is estimated
  first, and a run over ``max_bytes`` (default 256 MiB) is not made. The run itself
  allocates from an onnxruntime arena capped at ``max_bytes``, so a tensor whose size
  inference could not tell (a run-time ``Expand``) fails that run, not the process;
* **time**: a run stops when the file's time limit is up (:func:`onnxfile.time_left`).

A run not made or stopped raises :class:`ProbeSkipped`, whose message becomes a note in the
file's ``nas rank`` row.
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import onnx
from nas.predictors.onnxfile import time_left

# Ops whose FLOPs read their input/output shapes (see nas.predictors.cost).
SHAPED_OPS = {"Conv", "ConvTranspose", "MatMul", "Gemm", "Einsum", "RNN", "GRU", "LSTM"}
MAX_PROBE_ELEMENTS = 64 * 2**20  # no probe when the inputs alone would exceed this
DEFAULT_PROBE_BYTES = 256 * 2**20  # memory cap of one run (inputs and activations)


def _unknown(shape: Any, keep: set[str]) -> bool:
    return shape is None or any(not isinstance(d, int) and d not in keep for d in shape)


def random_feed(
    graph: onnx.GraphProto,
    dims: Mapping[str, int] | None,
    batch: int = 1,
    seed: int = 0,
    max_bytes: int = DEFAULT_PROBE_BYTES,
) -> dict[str, np.ndarray] | None:
    """Inputs for every graph input (float: normal, int: zeros, bool: True); None when they
    would hold more than ``MAX_PROBE_ELEMENTS`` values or ``max_bytes``."""
    rng = np.random.default_rng(seed)
    nbytes = 0
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
        n = math.prod(max(0, d) for d in shape)
        dtype = onnx.helper.tensor_dtype_to_np_dtype(t.elem_type) if t.elem_type else np.float32
        total += n
        nbytes += n * np.dtype(dtype).itemsize
        if total > MAX_PROBE_ELEMENTS or nbytes > max_bytes:
            return None
        if dtype.kind == "f":
            feed[vi.name] = rng.standard_normal(shape).astype(dtype)
        elif dtype.kind == "b":
            feed[vi.name] = np.ones(shape, dtype)
        else:
            feed[vi.name] = np.zeros(shape, dtype)
    return feed


class ProbeSkipped(Exception):
    """A run that was not made or was stopped; the message is the note for the file's row."""


def _itemsize(elem_type: int) -> int:
    try:
        return max(1, onnx.helper.tensor_dtype_to_np_dtype(elem_type).itemsize)
    except Exception:  # strings, unknown or packed types
        return 4


def peak_bytes(graph: onnx.GraphProto, size_of: Callable[[str], int], keep: set[str]) -> int:
    """Activation bytes alive at once when the nodes run in their stored order (sorted by
    the caller): each output lives until its last reader has run; ``keep`` (requested
    outputs) and the graph outputs live to the end. Tensors ``size_of`` does not know
    count 0."""
    ins = [list(dict.fromkeys(n.input)) for n in graph.node]
    last: dict[str, int] = {}
    for step, row in enumerate(ins):
        for i in row:
            last[i] = step
    kept = keep | {o.name for o in graph.output}
    now = peak = 0
    for step, node in enumerate(graph.node):
        now += sum(size_of(o) for o in node.output if o)
        peak = max(peak, now)
        for i in ins[step]:
            if i and last[i] == step and i not in kept:
                now = max(0, now - size_of(i))
    return peak


def shape_sizes(
    shapes: Mapping[str, Any], dtypes: Mapping[str, int], dims: Mapping[str, int] | None
) -> Callable[[str], int]:
    """Bytes of a tensor from known shapes as :func:`random_feed` sizes a run: a symbolic
    dim named in ``dims`` has that size, any other unknown dim counts 1."""

    def size(name: str) -> int:
        shape = shapes.get(name)
        if shape is None:
            return 0
        n = 1
        for d in shape:
            n *= d if isinstance(d, int) and d >= 0 else (dims or {}).get(d, 1)
        return n * _itemsize(dtypes.get(name, 1))

    return size


def estimate_bytes(m: onnx.ModelProto, feed: dict[str, np.ndarray], keep: set[str]) -> int:
    """Inputs plus the peak of activations (see :func:`peak_bytes`) of ``m`` on ``feed``,
    from shape inference with the inputs' dims set to the fed ones (``m`` is not changed)."""
    b = onnx.ModelProto()
    b.CopyFrom(m)
    for vi in b.graph.input:
        if vi.name in feed:
            dims = vi.type.tensor_type.shape.dim
            del dims[:]
            for d in feed[vi.name].shape:
                dims.add().dim_value = int(d)
    del b.graph.value_info[:]
    with contextlib.suppress(Exception):  # no shapes: only the arena cap bounds the run
        b = onnx.shape_inference.infer_shapes(b, data_prop=True)
    sizes: dict[str, int] = {}
    for vi in [*b.graph.value_info, *b.graph.output]:
        t = vi.type.tensor_type
        if t.HasField("shape") and all(d.HasField("dim_value") for d in t.shape.dim):
            n = 1
            for d in t.shape.dim:
                n *= max(0, d.dim_value)
            sizes[vi.name] = n * _itemsize(t.elem_type)
    inputs = sum(int(v.nbytes) for v in feed.values())
    return inputs + peak_bytes(b.graph, lambda name: sizes.get(name, 0), keep)


_arena_cap: int | None = None  # the cap of the onnxruntime arena registered for probes


def _capped_options(max_bytes: int) -> Any:
    """Session options for a probe: one thread, sequential, no graph optimisations, and
    every allocation from a process-wide onnxruntime arena of at most ``max_bytes``."""
    import onnxruntime as ort

    global _arena_cap
    if _arena_cap != max_bytes:  # registering again replaces the arena
        info = ort.OrtMemoryInfo(
            "Cpu", ort.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0, ort.OrtMemType.DEFAULT
        )
        ort.create_and_register_allocator(info, ort.OrtArenaCfg(max_bytes, 1, -1, -1))
        ort.set_default_logger_severity(4)
        _arena_cap = max_bytes
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.log_severity_level = 4
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    opts.add_session_config_entry("session.use_env_allocators", "1")
    opts.add_session_config_entry("session.disable_prepacking", "1")  # one run: no gain
    return opts


def run_with_outputs(
    model: onnx.ModelProto,
    names: list[str],
    feed: dict[str, np.ndarray],
    max_bytes: int = DEFAULT_PROBE_BYTES,
    sizes: Callable[[str], int] | None = None,
) -> dict[str, np.ndarray]:
    """Values of the named tensors (intermediate ones included) on ``feed``, with memory
    and time bounded (see the module docstring). ``sizes`` gives tensor bytes at the fed
    dims when the caller knows them (saves a shape inference).

    Raises:
        ProbeSkipped: the estimate is over ``max_bytes``, the run hit the arena cap, or the
            file's time limit stopped it. Anything else onnxruntime raises is passed on.
    """
    import onnxruntime as ort

    m = onnx.ModelProto()
    m.CopyFrom(model)
    have = {o.name for o in m.graph.output}
    m.graph.output.extend(onnx.ValueInfoProto(name=n) for n in names if n not in have)
    if sizes is None:
        need = estimate_bytes(m, feed, set(names))
    else:
        need = sum(int(v.nbytes) for v in feed.values()) + peak_bytes(m.graph, sizes, set(names))
    mib = max_bytes / 2**20
    if need > max_bytes:
        raise ProbeSkipped(
            f"activations need about {need / 2**20:,.0f} MiB, over the probe cap of {mib:g} MiB"
        )
    left = time_left()
    if left is not None and left <= 0:
        raise ProbeSkipped("no time left under the file's time limit")
    opts = _capped_options(max_bytes)
    # no fallback: its "EP Error" retry prints to stdout and only tries the same provider
    sess = ort.InferenceSession(
        m.SerializeToString(), opts, providers=["CPUExecutionProvider"], enable_fallback=0
    )
    run = ort.RunOptions()
    run.log_severity_level = 4
    run.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")
    left = time_left()
    timer = threading.Timer(left, lambda: setattr(run, "terminate", True)) if left else None
    if timer is not None:
        timer.daemon = True
        timer.start()
    try:
        outs = sess.run(names, feed, run)
    except Exception as e:
        msg = str(e)
        if "bfc_arena" in msg or "Available memory" in msg:
            raise ProbeSkipped(f"the run went over the probe cap of {mib:g} MiB") from None
        if run.terminate:
            raise ProbeSkipped("stopped at the file's time limit") from None
        raise
    finally:
        if timer is not None:
            timer.cancel()
    return dict(zip(names, outs, strict=True))


def fill_shapes(
    model: onnx.ModelProto,
    shapes: dict[str, Any],
    dims: Mapping[str, int] | None = None,
    max_bytes: int = DEFAULT_PROBE_BYTES,
    notes: list[str] | None = None,
    dtypes: Mapping[str, int] | None = None,
) -> bool:
    """Fill unknown dims of the tensors around FLOP-counted ops from one run at batch 1.

    Changes ``shapes`` in place; returns False (shapes untouched) when nothing was
    missing or the model does not run. Why a needed run was not made goes to ``notes``.
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
    why, got = "", {}
    try:
        feed = random_feed(model.graph, dims, max_bytes=max_bytes)
        if feed is None:
            why = f"the inputs alone are over the probe cap of {max_bytes / 2**20:g} MiB"
        else:
            sizes = shape_sizes(shapes, dtypes or {}, dims)
            got = run_with_outputs(model, want, feed, max_bytes, sizes)
    except ProbeSkipped as e:
        why = str(e)
    except Exception:  # a model onnxruntime cannot run keeps its static shapes
        why = "onnxruntime cannot run the model"
    if why:
        if notes is not None:
            notes.append(f"FLOPs from static shapes only: {why}")
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
