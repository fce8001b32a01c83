"""Exporter parity: dynamo and TorchScript exports of one network rank the same."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from nas.predictors.dynamo import after_normalise, before_normalise
from nas.predictors.graph import load_graph
from nas.predictors.normalise import RawGraph, RawNode
from torch import nn

pytest.importorskip("onnxscript")

_spec = importlib.util.spec_from_file_location(
    "bench_exporters", Path(__file__).resolve().parents[1] / "bench" / "exporters.py"
)
bench = importlib.util.module_from_spec(_spec)  # the bench's export and ranking, shared
_spec.loader.exec_module(bench)  # type: ignore[union-attr]


class _Tokens(nn.Module):
    """Patch tokens through two LayerNorms (equal initial scales) and a mean-pooled head."""

    def __init__(self) -> None:
        super().__init__()
        self.patch = nn.Conv2d(3, 8, 4, stride=4)
        self.n1, self.n2 = nn.LayerNorm(8), nn.LayerNorm(8)
        self.head = nn.Linear(8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self.patch(x).flatten(2).transpose(1, 2)
        return self.head(self.n2(self.n1(t)).mean(1))


def _models() -> dict[str, nn.Module]:
    torch.manual_seed(0)
    return {
        "cnn_bn": nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1, bias=False),
            nn.BatchNorm2d(8),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(8, 10),
        ),
        "gelu": nn.Sequential(
            nn.Conv2d(3, 8, 3, 2, 1),
            nn.GELU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(8, 16),
            nn.GELU(),
            nn.Linear(16, 10),
        ),
        "tokens": _Tokens(),
        "mlp": nn.Sequential(nn.Flatten(), nn.Linear(768, 32), nn.ReLU(), nn.Linear(32, 10)),
    }


def _ops(g: object) -> list[tuple[str, object, object]]:
    return [(n.op, n.attrs, [getattr(i, "shape", i) for i in n.inputs]) for n in g.nodes]  # type: ignore[attr-defined]


def test_two_exports_rank_the_same(tmp_path: Path) -> None:
    """Each pair's scores are equal, so their rank percentiles within the set are too."""
    pairs = [bench.export_pair(k, m, tmp_path, size=16) for k, m in _models().items()]
    for dyn, ts in pairs:
        assert _ops(load_graph(dyn)) == _ops(load_graph(ts))
    score = bench.rank(tmp_path)
    assert len(score) == 2 * len(pairs)
    pct = bench.percentiles(score)
    for dyn, ts in pairs:
        assert abs(pct[dyn.name] - pct[ts.name]) <= 0.05, (dyn.name, score)


def _graph(nodes: list[RawNode], consts: dict[str, np.ndarray]) -> RawGraph:
    return RawGraph(nodes, consts, ["x"], [nodes[-1].outputs[0]], {}, {})


def test_rules_rewrite_dynamo_spellings() -> None:
    """A removed Conv bias comes back; GELU's Mul association becomes TorchScript's."""
    w = np.ones((4, 3, 3, 3), np.float32)
    conv = RawNode("Conv", ["x", "w"], ["c"])
    inner = RawNode("Mul", ["half", "e"], ["m"])
    outer = RawNode("Mul", ["c", "m"], ["y"])
    e = RawNode("Erf", ["c"], ["e"])
    g = _graph([conv, e, inner, outer], {"w": w, "half": np.float32(0.5) * np.ones(())})
    before_normalise(g, {"c"})
    assert conv.inputs[:2] == ["x", "w"] and g.consts[conv.inputs[2]].shape == (4,)
    assert inner.inputs == ["c", "e"] and outer.inputs == ["m", "half"]


def test_made_scalars_and_shared_fills() -> None:
    """Exporter-made scalars are no weights; a shared fill weight is one per reader."""
    ones = np.ones(4, np.float32)
    a = RawNode("Mul", ["x", "s"], ["a"])
    b = RawNode("Mul", ["a", "s"], ["b"])
    g = _graph([a, b], {"s": ones, "val_3": np.float32(2) * np.ones(())})
    g.weights = {"s": "s", "val_3": "val_3"}
    before_normalise(g, set())
    assert g.weight_key("val_3") is None
    assert a.inputs[1] == "s" and b.inputs[1] != "s" and g.weight_key(b.inputs[1]) == b.inputs[1]


def test_unsqueezed_pool_becomes_one_pool() -> None:
    """Unsqueeze -> GlobalAveragePool -> Squeeze of that axis is one GlobalAveragePool."""
    nodes = [
        RawNode("Unsqueeze", ["x"], ["u"], {"axes": (-2,)}),
        RawNode("GlobalAveragePool", ["u"], ["p"]),
        RawNode("Squeeze", ["p"], ["s"], {"axes": (-2,)}),
        RawNode("Flatten", ["s"], ["f"], {"axis": 1}),
    ]
    g = _graph(nodes, {})
    g.shapes["x"] = (2, 8, 5)
    after_normalise(g, set())
    assert [n.op for n in g.nodes] == ["GlobalAveragePool", "Flatten"]
    assert g.nodes[0].inputs == ["x"] and g.nodes[1].inputs == ["p"]
