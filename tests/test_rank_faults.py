"""`nas rank` on files that are invalid, absurdly large or oddly named (issue 26): each is one
"not ranked: why" row or a flagged row, the others are ranked, memory follows one file."""

from __future__ import annotations

import gc
import json
import tracemalloc
from pathlib import Path
from typing import TYPE_CHECKING

import onnx
import pytest
from onnx import TensorProto as TP
from onnx import helper as h

if TYPE_CHECKING:
    from nas.predictors.model import Predictor


def _model(nodes: list[onnx.NodeProto], opsets: list | None = None) -> onnx.ModelProto:
    """``nodes`` from ``x`` [N, 4] to ``y`` [N, 4]."""
    graph = h.make_graph(
        nodes,
        "g",
        [h.make_tensor_value_info("x", TP.FLOAT, ["N", 4])],
        [h.make_tensor_value_info("y", TP.FLOAT, ["N", 4])],
    )
    return h.make_model(graph, opset_imports=opsets or [h.make_opsetid("", 17)])


def _chain(n: int) -> onnx.ModelProto:
    nodes = [h.make_node("Relu", [f"t{i}"], [f"t{i + 1}"]) for i in range(n)]
    nodes[0].input[0], nodes[-1].output[0] = "x", "y"
    return _model(nodes)


def _save(model: onnx.ModelProto, path: Path) -> Path:
    path.write_bytes(model.SerializeToString())
    return path


def _with_empty_nodes(path: Path, n: int) -> Path:
    """A valid one-node model followed by ``n`` empty nodes, written in their wire form (a
    second ``graph`` field merges into the first): two bytes a node."""
    body = b"\x0a\x00" * n
    size, length = len(body), bytearray()
    while True:
        length.append((size & 0x7F) | (0x80 if size > 0x7F else 0))
        size >>= 7
        if not size:
            break
    data = _model([h.make_node("Relu", ["x"], ["y"])]).SerializeToString()
    path.write_bytes(data + b"\x3a" + bytes(length) + body)
    return path


@pytest.fixture(scope="module")
def predictor() -> Predictor:
    from nas.predictors.model import Predictor

    return Predictor.load(None)


def test_a_model_the_checker_rejects_is_a_not_ranked_row(tmp_path: Path, predictor) -> None:
    from nas.predictors.rank import rank_files

    good = _save(_chain(3), tmp_path / "good.onnx")
    add = _save(_model([h.make_node("Add", ["x"], ["y"])]), tmp_path / "one_input_add.onnx")
    unknown = _save(_model([h.make_node("NoSuchOp", ["x"], ["y"])]), tmp_path / "unknown.onnx")
    attr = _save(_model([h.make_node("Relu", ["x"], ["y"], alpha=2.0)]), tmp_path / "attr.onnx")
    # two objections that do not matter to ranking: ranked, with the objection in the row
    custom = _model([h.make_node("Foo", ["x"], ["y"], domain="my.ops")])
    custom = _save(custom, tmp_path / "custom.onnx")
    unsorted = _chain(4)
    nodes = list(unsorted.graph.node)
    del unsorted.graph.node[:]
    unsorted.graph.node.extend(reversed(nodes))
    unsorted = _save(unsorted, tmp_path / "unsorted.onnx")
    rows, errors = rank_files([good, add, unknown, attr, custom, unsorted], predictor)
    bad = {Path(e["file"]).name: e["error"] for e in errors}
    assert set(bad) == {"one_input_add.onnx", "unknown.onnx", "attr.onnx"}
    assert all(e.startswith("the ONNX checker rejects it: ") for e in bad.values())
    assert "input size 1 not in range" in bad["one_input_add.onnx"]
    assert "No Op registered for NoSuchOp" in bad["unknown.onnx"]
    assert all("\n" not in e and len(e) < 220 for e in bad.values())
    notes = {Path(r["file"]).name: r["notes"] for r in rows}
    assert set(notes) == {"good.onnx", "custom.onnx", "unsorted.onnx"}
    assert not any("ONNX checker" in n for n in notes["good.onnx"])
    assert any("No opset import for domain 'my.ops'" in n for n in notes["custom.onnx"])
    assert any("topological order" in n for n in notes["unsorted.onnx"])


def test_a_file_over_the_node_limit_is_a_not_ranked_row(tmp_path: Path, nas_cli) -> None:
    _save(_chain(3), tmp_path / "small.onnx")
    _with_empty_nodes(tmp_path / "padded.onnx", 500)
    code, out, err = nas_cli("rank", str(tmp_path), "--json", "--no-proxy", "--max-nodes", "100")
    assert code == 1, err
    result = json.loads(out)
    assert [Path(r["file"]).name for r in result["ranked"]] == ["small.onnx"]
    (error,) = result["errors"]
    assert Path(error["file"]).name == "padded.onnx"
    assert error["error"] == "more than the limit of 100 nodes; not read."


def test_the_default_node_limit_refuses_a_huge_file_unparsed(
    tmp_path: Path, predictor, monkeypatch: pytest.MonkeyPatch
) -> None:
    """150,000 empty nodes (300 KB): refused from a scan of the bytes, never parsed (the
    protobuf parser alone took 1.2 GB for 8 million)."""
    from nas.predictors.rank import rank_files

    huge = _with_empty_nodes(tmp_path / "huge.onnx", 150_000)
    parse = onnx.load_model_from_string

    def no_huge_parse(data: bytes) -> onnx.ModelProto:
        assert len(data) < 100_000, "the huge file was parsed"
        return parse(data)

    monkeypatch.setattr(onnx, "load_model_from_string", no_huge_parse)
    good = _save(_chain(3), tmp_path / "good.onnx")
    rows, errors = rank_files([huge, good], predictor, proxy=False, time_limit_s=30)
    assert [Path(r["file"]).name for r in rows] == ["good.onnx"]
    assert errors == [
        {"file": str(huge), "error": "more than the limit of 100,000 nodes; not read."}
    ]


def test_names_with_escape_characters_print_escaped(tmp_path: Path, nas_cli) -> None:
    names = ["evil\x1b[31m.onnx", "new\nline.onnx", "plain.onnx"]
    for name in names:
        _save(_chain(2), tmp_path / name)
    (tmp_path / "bad\x07.onnx").write_bytes(b"not onnx")
    code, out, _ = nas_cli("rank", str(tmp_path), "--no-proxy")
    assert code == 1
    assert "\x1b" not in out and "\x07" not in out and "new\nline" not in out
    for shown in ("evil\\x1b[31m.onnx", "new\\nline.onnx", "plain.onnx"):
        assert shown in out
    assert "not ranked bad\\x07.onnx: " in out
    code, out, _ = nas_cli("rank", str(tmp_path), "--no-proxy", "--json")
    result = json.loads(out)  # valid JSON, with the real names
    assert {Path(r["file"]).name for r in result["ranked"]} == set(names)
    assert [Path(e["file"]).name for e in result["errors"]] == ["bad\x07.onnx"]


def test_ranking_keeps_little_of_each_file(tmp_path: Path, predictor) -> None:
    """Ranking ten copies of an 800-node file peaks (Python heap) close to ranking one: each
    file's model and graphs are released, and what is kept takes a few bytes a node (it was
    about 200 a node, twice the peak of one file over ten files)."""
    from nas.predictors.graph import CanonicalGraph
    from nas.predictors.rank import rank_files

    path = _save(_chain(800), tmp_path / "chain.onnx")
    rank_files([path], predictor, proxy=False)  # first use: the embedder, schema tables

    def peak(files: list[Path]) -> int:
        tracemalloc.start()
        try:
            rows, errors = rank_files(files, predictor, proxy=False)
            assert len(rows) == len(files) and not errors
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    one, ten = peak([path]), peak([path] * 10)
    assert ten < 1.4 * one, (one, ten)
    gc.collect()
    assert not [o for o in gc.get_objects() if type(o) is CanonicalGraph]
