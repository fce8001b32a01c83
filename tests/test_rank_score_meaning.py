"""``nas rank`` says, above its table and in ``--json``, that a score compares the files of
one set only (issue 25: one CNN scored -1.336 alone and -2.743 among six other files)."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
from onnx import TensorProto as TP
from onnx import helper as h


def _chain(n: int, path: Path) -> Path:
    """``n`` Relu nodes from ``x`` [N, 4] to ``y`` [N, 4]."""
    nodes = [h.make_node("Relu", [f"t{i}"], [f"t{i + 1}"]) for i in range(n)]
    nodes[0].input[0], nodes[-1].output[0] = "x", "y"
    graph = h.make_graph(
        nodes,
        "g",
        [h.make_tensor_value_info("x", TP.FLOAT, ["N", 4])],
        [h.make_tensor_value_info("y", TP.FLOAT, ["N", 4])],
    )
    onnx.save(h.make_model(graph, opset_imports=[h.make_opsetid("", 17)]), str(path))
    return path


def test_the_table_header_says_scores_are_relative_to_the_set(nas_cli, tmp_path: Path) -> None:
    for n in (1, 2, 3):
        _chain(n, tmp_path / f"c{n}.onnx")
    code, out, err = nas_cli("rank", str(tmp_path), "--no-proxy", "--top", "2")
    assert code == 0, err
    lines = out.splitlines()
    header = next(i for i, line in enumerate(lines) if "rank" in line and "score" in line)
    caption = [line for line in lines[:header] if line.startswith("score: ")]
    assert caption == [
        "score: predicted quality within this set of 3 files (higher is better); "
        "not comparable across sets"
    ]  # all three scored, though --top shows two


def test_json_carries_the_same_meaning(nas_cli, tmp_path: Path) -> None:
    one = _chain(2, tmp_path / "one.onnx")
    code, out, err = nas_cli("rank", str(one), "--no-proxy", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert [Path(r["file"]).name for r in result["ranked"]] == ["one.onnx"]  # as before
    assert result["errors"] == []
    assert result["score"] == {
        "meaning": "score: predicted quality within this set of 1 file (higher is better); "
        "not comparable across sets",
        "higher_is_better": True,
        "relative_to_set": True,
        "files_scored": 1,
    }
