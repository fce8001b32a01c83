"""Property tests: mutated ONNX protos give a record or one OnnxFileError, never anything else.

The default run tries a bounded number of examples per property; ``pytest -m slow`` runs
many more (the same properties).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import onnx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import helper as h
from test_predictor_files import small_model

from nas.exceptions import OnnxFileError

FEW = settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
MANY = settings(max_examples=2000, deadline=None, suppress_health_check=list(HealthCheck))
OPS = ["", "NoSuchOp", "Relu", "Conv", "MatMul", "Add", "Reshape", "ConstantOfShape",
       "Loop", "If", "Scan", "Einsum", "Gather", "Expand", "Range", "Resize", "Split"]  # fmt: skip
ATTR_VALUES = st.one_of(
    st.integers(-(2**62), 2**62),
    st.floats(),
    st.binary(max_size=8),
    st.lists(st.integers(-10, 10), min_size=1, max_size=6),
)
BASE = small_model(4).SerializeToString()


def _outcome(data: bytes) -> str:
    """Write ``data`` as a file and read it: 'ok' or 'error'; anything else fails the test."""
    from nas.predictors.record import file_record

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "m.onnx"
        path.write_bytes(data)
        start = time.perf_counter()
        try:
            r = file_record(path, max_bytes=1 << 24, time_limit_s=20)
        except OnnxFileError as e:
            assert "\n" not in str(e) and str(path) in str(e)
            return "error"
        finally:
            assert time.perf_counter() - start < 30
        assert r.params >= 0 and r.flops >= 0 and len(r.texts) >= 2
        return "ok"


@st.composite
def byte_mutations(draw: st.DrawFn) -> bytes:
    data = bytearray(BASE)
    if draw(st.booleans()):
        data = data[: draw(st.integers(0, len(data)))]
    for bit in draw(st.lists(st.integers(0, max(0, len(data) * 8 - 1)), max_size=6)):
        if data:
            data[bit // 8] ^= 1 << (bit % 8)
    return bytes(data)


@st.composite
def proto_mutations(draw: st.DrawFn) -> bytes:
    m = onnx.ModelProto.FromString(BASE)
    g = m.graph
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["dims", "dtype", "raw", "op", "input", "attr", "opset",
                                     "shape", "drop"]))  # fmt: skip
        t = g.initializer[draw(st.integers(0, len(g.initializer) - 1))]
        n = g.node[draw(st.integers(0, len(g.node) - 1))] if len(g.node) else None
        if kind == "dims":
            del t.dims[:]
            t.dims.extend(draw(st.lists(st.integers(-3, 2**40), max_size=5)))
        elif kind == "dtype":
            t.data_type = draw(st.integers(-5, 64))
        elif kind == "raw":
            t.ClearField("float_data")
            t.raw_data = draw(st.binary(max_size=64))
        elif kind == "op" and n is not None:
            n.op_type = draw(st.sampled_from(OPS))
        elif kind == "input" and n is not None:
            names = ["", "x", "nowhere", *(o for k in g.node for o in k.output)]
            if n.input:
                n.input[draw(st.integers(0, len(n.input) - 1))] = draw(st.sampled_from(names))
        elif kind == "attr" and n is not None:
            value = draw(ATTR_VALUES)
            name = draw(st.sampled_from(["axis", "kernel_shape", "pads", "group", "perm", "to"]))
            n.attribute.append(h.make_attribute(name, value))
        elif kind == "opset":
            m.opset_import[0].version = draw(st.integers(-3, 40))
        elif kind == "shape":
            dims = g.input[0].type.tensor_type.shape.dim
            dims[draw(st.integers(0, len(dims) - 1))].dim_value = draw(st.integers(0, 2**31))
        elif kind == "drop" and len(g.node) > 1:
            del g.node[draw(st.integers(0, len(g.node) - 1))]
    return m.SerializeToString()


def test_the_unmutated_model_reads() -> None:
    assert _outcome(BASE) == "ok"


@FEW
@given(byte_mutations())
def test_flipped_or_truncated_bytes(data: bytes) -> None:
    _outcome(data)


@FEW
@given(proto_mutations())
def test_mutated_protos(data: bytes) -> None:
    _outcome(data)


@pytest.mark.slow
@MANY
@given(byte_mutations())
def test_flipped_or_truncated_bytes_many(data: bytes) -> None:
    _outcome(data)


@pytest.mark.slow
@MANY
@given(proto_mutations())
def test_mutated_protos_many(data: bytes) -> None:
    _outcome(data)
