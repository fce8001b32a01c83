"""Hostile ONNX files: each is one error row, only regular files are read, big graphs are fast."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto
from onnx import helper as h
from onnx import numpy_helper as nh

from nas.exceptions import OnnxFileError


def small_model(width: int = 4, act: str = "Relu") -> onnx.ModelProto:
    """Conv -> act -> Conv + skip -> GlobalAveragePool: a tiny valid network."""
    rng = np.random.default_rng(width)
    w = [
        nh.from_array(rng.standard_normal((width, 3, 3, 3)).astype(np.float32), "w1"),
        nh.from_array(rng.standard_normal((width, width, 3, 3)).astype(np.float32), "w2"),
    ]
    nodes = [
        h.make_node("Conv", ["x", "w1"], ["c1"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        h.make_node(act, ["c1"], ["r1"]),
        h.make_node("Conv", ["r1", "w2"], ["c2"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        h.make_node("Add", ["c2", "r1"], ["a"]),
        h.make_node("GlobalAveragePool", ["a"], ["y"]),
    ]
    graph = h.make_graph(
        nodes,
        "g",
        [h.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3, 8, 8])],
        [h.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", width, 1, 1])],
        w,
    )
    return h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])


def chain_model(n: int, reverse: bool = True) -> onnx.ModelProto:
    """``n`` nodes in one chain (Relu, MatMul, Identity, Sigmoid, Add), stored reversed."""
    ops = ["Relu", "MatMul", "Identity", "Sigmoid", "Add"]
    nodes, x = [], "x"
    for k in range(n):
        op = ops[k % len(ops)]
        ins = [x, "w"] if op == "MatMul" else [x, x] if op == "Add" else [x]
        nodes.append(h.make_node(op, ins, [f"t{k}"]))
        x = f"t{k}"
    graph = h.make_graph(
        nodes[::-1] if reverse else nodes,
        "chain",
        [h.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 8])],
        [h.make_tensor_value_info(x, TensorProto.FLOAT, ["batch", 8])],
        [nh.from_array(np.eye(8, dtype=np.float32), "w")],
    )
    return h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])


def _bad_tensor(model: onnx.ModelProto, how: str) -> onnx.ModelProto:
    m = onnx.ModelProto()
    m.CopyFrom(model)
    t = m.graph.initializer[0]
    if how == "dims":
        del t.dims[:]
        t.dims.extend([7, 7, 7, 7])  # the data holds 4*3*3*3 floats
    elif how == "huge":
        del t.dims[:]
        t.dims.extend([2**40, 2**20])
    elif how == "dtype":
        t.data_type = 999
    elif how == "utf8":
        s = h.make_tensor("s", TensorProto.STRING, [1], [b"\xff\xfe\xfd"])
        m.graph.node.insert(0, h.make_node("Constant", [], ["sconst"], value=s))
        m.graph.node[1].input.append("sconst")
    return m


def hostile_folder(tmp: Path) -> tuple[Path, set[str], set[str]]:
    """A folder of good and bad ``*.onnx`` entries: (folder, good names, bad names)."""
    folder = tmp / "models"
    folder.mkdir()
    outside = tmp / "elsewhere"
    outside.mkdir()
    onnx.save(small_model(4), str(folder / "good4.onnx"))
    onnx.save(small_model(8, "Sigmoid"), str(folder / "good8.onnx"))
    onnx.save(small_model(6), str(outside / "secret.onnx"))
    os.symlink(folder / "good4.onnx", folder / "link_inside.onnx")
    os.symlink(outside / "secret.onnx", folder / "link_outside.onnx")
    os.symlink("/dev/zero", folder / "zero.onnx")
    os.mkfifo(folder / "fifo.onnx")
    (folder / "dir.onnx").mkdir()
    data = small_model(4).SerializeToString()
    (folder / "truncated.onnx").write_bytes(data[: len(data) // 2])
    (folder / "empty.onnx").write_bytes(b"")
    for how in ("dims", "huge", "dtype", "utf8"):
        onnx.save(_bad_tensor(small_model(4), how), str(folder / f"tensor_{how}.onnx"))
    good = {"good4.onnx", "good8.onnx", "link_inside.onnx"}
    bad = {p.name for p in folder.iterdir()} - good
    return folder, good, bad


def test_rank_gives_every_bad_file_one_error_row(tmp_path: Path, nas_cli) -> None:
    folder, good, bad = hostile_folder(tmp_path)
    start = time.perf_counter()
    code, out, err = nas_cli("rank", str(folder), "--json")
    assert time.perf_counter() - start < 60
    assert code == 1, err
    result = json.loads(out)
    assert {Path(r["file"]).name for r in result["ranked"]} == good
    errors = {Path(e["file"]).name: e["error"] for e in result["errors"]}
    assert set(errors) == bad
    assert len(result["errors"]) == len(bad)
    assert all("\n" not in e for e in errors.values())
    assert "not a regular file" in errors["fifo.onnx"]
    assert "not a regular file" in errors["dir.onnx"]
    assert "outside the file's folder" in errors["zero.onnx"]
    assert "outside the file's folder" in errors["link_outside.onnx"]


def test_read_is_bounded_by_bytes_actually_read(tmp_path: Path) -> None:
    from nas.predictors.onnxfile import read_bounded

    data = small_model().SerializeToString()
    path = tmp_path / "m.onnx"
    path.write_bytes(data)
    assert read_bounded(path, len(data)) == data
    with pytest.raises(OnnxFileError, match="limit"):
        read_bounded(path, len(data) - 1)
    # /proc files report st_size 0 and have content: the bytes read are what is bounded.
    proc = Path("/proc/self/status")
    if proc.is_file() and proc.stat().st_size == 0:
        with pytest.raises(OnnxFileError, match="limit"):
            read_bounded(proc, 16)


def test_a_20000_node_graph_encodes_in_under_10_s(tmp_path: Path) -> None:
    from nas.predictors.bench import file_record

    path = tmp_path / "chain.onnx"
    onnx.save(chain_model(20_000), str(path))
    start = time.perf_counter()
    record = file_record(path)
    took = time.perf_counter() - start
    assert took < 10, took
    assert len(record.texts) == 2 + 16_000  # Input, Output; the 4,000 Identity nodes go
    assert record.edges == [(k, k + 1) for k in range(16_001)]  # one chain, in order
    with pytest.raises(OnnxFileError, match=r"time limit of 0\.05 s"):
        file_record(path, time_limit_s=0.05)


def test_stored_order_does_not_matter_for_long_chains(tmp_path: Path) -> None:
    from nas.predictors.bench import file_record

    a, b = tmp_path / "a.onnx", tmp_path / "b.onnx"
    onnx.save(chain_model(500, reverse=True), str(a))
    onnx.save(chain_model(500, reverse=False), str(b))
    ra, rb = file_record(a), file_record(b)
    assert (ra.texts, ra.edges, ra.params, ra.flops) == (rb.texts, rb.edges, rb.params, rb.flops)
