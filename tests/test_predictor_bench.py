"""Benches: the direct NB201 builder equals export, the NB101 network, shipped tables."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

# Cells with none edges (all, some, a node of only none), skip connections (node 1 = the
# input, Add(x, x), sums that the exporter's CSE merges), pools and both convs.
CELLS = [
    "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|",
    "|skip_connect~0|+|skip_connect~0|skip_connect~1|+|skip_connect~0|skip_connect~1|skip_connect~2|",
    "|skip_connect~0|+|avg_pool_3x3~0|avg_pool_3x3~1|+|avg_pool_3x3~0|avg_pool_3x3~1|none~2|",
    "|nor_conv_3x3~0|+|none~0|none~1|+|skip_connect~0|nor_conv_1x1~1|skip_connect~2|",
    "|nor_conv_1x1~0|+|nor_conv_3x3~0|none~1|+|none~0|none~1|nor_conv_3x3~2|",
    "|avg_pool_3x3~0|+|nor_conv_3x3~0|skip_connect~1|+|nor_conv_3x3~0|nor_conv_3x3~1|avg_pool_3x3~2|",
    "|skip_connect~0|+|none~0|nor_conv_1x1~1|+|skip_connect~0|none~1|skip_connect~2|",
]


def test_direct_nb201_records_equal_export() -> None:
    from nas.predictors.benches.nb201_bench import direct_records, export_records

    direct = direct_records(CELLS)
    exported = export_records(CELLS)
    for cell, a, b in zip(CELLS, direct, exported, strict=True):
        assert a.texts == b.texts, cell
        assert a.edges == b.edges, cell
        assert (a.params, a.flops) == (b.params, b.flops), cell


def test_build_nb201_bench_groups_labels_proxies(tmp_path: Path) -> None:
    from nas.predictors.benches.bench import Bench
    from nas.predictors.benches.benchdata import nb201_unique_strings, nb201_zero_cost
    from nas.predictors.benches.nb201_bench import build_nb201_bench

    from nas.benchmarks.nb201 import NB201Table
    from nas.nb201 import from_index_tuple, to_nb201

    table = NB201Table.load()
    zc_arch = to_nb201(from_index_tuple(next(iter(nb201_zero_cost()["cifar10"]))))
    rows = [0, 1, table.archs.index(zc_arch)]
    bench = build_nb201_bench(indices=rows, labels=["cifar100"], out=tmp_path / "b")
    again = Bench.load(tmp_path / "b")
    assert again.label_names == ["cifar100"]
    assert list(again.label()) == [table.acc["cifar100"][i] for i in rows]
    assert again.groups == [nb201_unique_strings()[i] for i in rows]
    assert "nwot" in again.proxy_names
    have = ~np.isnan(again.proxies).all(axis=1)
    assert list(have) == [table.archs[i] == zc_arch for i in rows]
    assert np.array_equal(again.subset([2]).proxies, bench.proxies[[2]], equal_nan=True)


def test_shipped_tables() -> None:
    import ast

    from nas.predictors.benches.benchdata import (
        nb101_zero_cost,
        nb201_unique_strings,
        nb201_zero_cost,
        nb301_zero_cost,
    )

    uniq = nb201_unique_strings()
    assert len(uniq) == 15625 and len(set(uniq)) == 6466
    zc = nb201_zero_cost()
    assert [len(zc[d]) for d in ("cifar10", "cifar100", "ImageNet16-120")] == [725, 725, 724]
    assert len(nb101_zero_cost()) == 500
    nb301 = nb301_zero_cost()
    assert len(nb301) == 725
    acc = [e["val_accuracy"] for e in nb301.values()]
    assert 91.2 < min(acc) < max(acc) < 94.5
    genotypes = [ast.literal_eval(k) for k in nb301]
    assert all(len(g) == 2 and len(g[0]) == len(g[1]) == 8 for g in genotypes)


def test_nb101_vertex_channels_and_pruning() -> None:
    from nas.predictors.benches.nb101 import make_spec, vertex_channels

    conv3, pool = "conv3x3-bn-relu", "maxpool3x3"
    # 0 -> 1 -> 2 -> out, 0 -> 3 -> out, 1 -> out; vertex 4 reaches nothing (pruned)
    m = np.zeros((6, 6), int)
    for a, b in ((0, 1), (1, 2), (2, 5), (0, 3), (3, 5), (1, 5), (0, 4)):
        m[a, b] = 1
    spec = make_spec(m, ["input", conv3, pool, conv3, conv3, "output"])
    assert spec.size == 5 and spec.ops[3] == conv3
    assert vertex_channels(spec, 128, 128) == [128, 43, 43, 42, 128]


def test_nb101_bad_keys() -> None:
    from nas.predictors.benches.nb101 import parse_key

    from nas.exceptions import ConfigurationError

    with pytest.raises(ConfigurationError, match="56 integers"):
        parse_key("(0, 1, 2)")
    ops = ", 0, 2, 2, 2, 2, 2, 1)"
    with pytest.raises(ConfigurationError, match="no path"):
        parse_key("(" + ", ".join(["0"] * 49) + ops)


def _param_matches(n: int | None) -> tuple[int, int]:
    from nas.predictors.benches.benchdata import nb101_zero_cost
    from nas.predictors.benches.nb101 import count_params, parse_key

    items = list(nb101_zero_cost().items())[:n]
    ok = sum(count_params(parse_key(k)) == round(e["params"] * 1e6) for k, e in items)
    return ok, len(items)


def test_nb101_params_match_first_50() -> None:
    ok, total = _param_matches(50)
    assert ok == total == 50


@pytest.mark.slow
def test_nb101_params_match_all_500() -> None:
    ok, total = _param_matches(None)
    assert ok == total == 500


def test_nb101_network_exports_and_runs(tmp_path: Path) -> None:
    import torch
    from nas.predictors.benches.benchdata import nb101_zero_cost
    from nas.predictors.benches.nb101 import NB101Network, parse_key
    from nas.predictors.record import file_record

    from nas.export import export_onnx, parity

    key = next(iter(nb101_zero_cost()))
    torch.manual_seed(0)
    net = NB101Network(parse_key(key)).eval()
    assert net(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    path = export_onnx(net, (3, 32, 32), tmp_path / "nb101.onnx")
    assert parity(net, path, (3, 32, 32)) < 1e-4
    rec = file_record(path)
    ops = {t.split(" ")[0] for t in rec.texts}
    assert {"Conv", "MaxPool", "Concat", "Linear"} <= ops


def test_loading_what_is_not_a_bench_says_what_it_is(tmp_path) -> None:
    from nas.predictors.benches.bench import Bench, BenchError

    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "a.onnx").write_bytes(b"")
    with pytest.raises(BenchError, match=r"models is not a bench \(no bench.json\); benches"):
        Bench.load(tmp_path / "models")
    with pytest.raises(BenchError, match="nowhere does not exist; benches come from"):
        Bench.load(tmp_path / "nowhere")
    (tmp_path / "torn").mkdir()
    (tmp_path / "torn" / "bench.json").write_text("{x")
    with pytest.raises(BenchError, match="torn: not a readable bench: Expecting property"):
        Bench.load(tmp_path / "torn")


def test_a_bench_row_gives_back_the_record_it_was_packed_from() -> None:
    from nas.predictors.benches.bench import Bench
    from nas.predictors.record import GraphRecord

    records = [
        GraphRecord(["Conv a -> 1x8", "Relu -> 1x8"], [(0, 1)], 80, 640),
        GraphRecord(["MatMul b -> 1x4", "Add -> 1x4", "Relu -> 1x4"], [(0, 1), (1, 2)], 20, 16),
    ]
    bench = Bench.from_records(records, ["a", "b"], np.array([[1.0], [2.0]]), ["acc"])
    assert [bench.record(i) for i in range(2)] == records
