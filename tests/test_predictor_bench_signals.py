"""Benches carry the data-free signals computed from each row's ONNX file (issue 15):
stored, subset, joined across spaces and scored as baseline rows."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

CELLS = [
    "|nor_conv_3x3~0|+|none~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_1x1~1|skip_connect~2|",
    "|nor_conv_1x1~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|none~0|none~1|nor_conv_3x3~2|",
    "|avg_pool_3x3~0|+|skip_connect~0|none~1|+|none~0|none~1|skip_connect~2|",
]


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[int]]:
    """An NB201 bench of three cells built by export (with signals)."""
    from nas.predictors.benches.nb201_bench import build_nb201_bench

    from nas.benchmarks.nb201 import NB201Table

    table = NB201Table.load()
    rows = [table.archs.index(c) for c in CELLS]
    out = tmp_path_factory.mktemp("b") / "nb201"
    build_nb201_bench(indices=rows, labels=["cifar10"], method="export", out=out)
    return out, rows


def test_an_exported_bench_stores_the_nwot_nas_rank_computes(
    exported: tuple[Path, list[int]], tmp_path: Path
) -> None:
    import torch
    from nas.predictors.benches.bench import Bench
    from nas.predictors.signals import nwot_file

    from nas.compile import compile_arch
    from nas.export import export_onnx
    from nas.nb201 import from_nb201

    bench = Bench.load(exported[0])
    assert bench.signal_names == ["nwot"]
    torch.manual_seed(0)
    path = export_onnx(
        compile_arch(from_nb201(CELLS[1]), (3, 32, 32), 10), (3, 32, 32), tmp_path / "c.onnx"
    )
    assert bench.signal("nwot")[1] == nwot_file(path)  # the same seed: the same file
    assert np.all(bench.signal("nwot") > 0)
    sub = bench.subset([2, 0])
    assert sub.signal_names == ["nwot"]
    assert list(sub.signal("nwot")) == [bench.signal("nwot")[2], bench.signal("nwot")[0]]
    assert np.isnan(bench.signal("synflow")).all()  # a signal the bench lacks: NaN


def test_direct_builds_have_no_signals_and_old_benches_load(
    exported: tuple[Path, list[int]], tmp_path: Path
) -> None:
    from nas.predictors.benches.bench import Bench
    from nas.predictors.benches.nb201_bench import build_nb201_bench

    direct = build_nb201_bench(indices=exported[1], labels=["cifar10"], out=tmp_path / "d")
    assert direct.signal_names == [] and direct.signals.shape == (3, 0)
    # a bench written before signals existed (no signal keys at all) still loads
    old = tmp_path / "old"
    Bench.load(exported[0]).save(old)
    info = json.loads((old / "bench.json").read_text())
    del info["signal_names"]
    (old / "bench.json").write_text(json.dumps(info))
    with np.load(old / "bench.npz") as z:
        arrays = {k: z[k] for k in z.files if k != "signals"}
    np.savez_compressed(old / "bench.npz", **arrays)
    again = Bench.load(old)
    assert again.signal_names == [] and again.signals.shape == (3, 0)


def test_join_keeps_signals_and_evaluation_scores_them(
    exported: tuple[Path, list[int]], tmp_path: Path
) -> None:
    from nas.predictors.benches.bench import Bench
    from nas.predictors.benches.nb201_bench import build_nb201_bench
    from nas.predictors.model import GraphRanker, ModelConfig
    from nas.predictors.training.corpus import join
    from nas.predictors.training.fit import evaluate_all, signal_row

    with_sig = Bench.load(exported[0])
    without = build_nb201_bench(indices=[5, 6, 7, 8], labels=["cifar10"])
    corpus = join({"a": with_sig, "b": without})
    assert corpus.signal_names == ["nwot"]
    assert np.array_equal(corpus.signal("nwot")[:3], with_sig.signal("nwot"))
    assert np.isnan(corpus.signal("nwot")[3:]).all()
    model = GraphRanker(ModelConfig(in_dim=8))
    emb = np.random.default_rng(0).standard_normal((len(corpus.vocab), 8)).astype(np.float32)
    table = evaluate_all(model, corpus, emb, np.arange(len(corpus)))
    row = table[signal_row("nwot")]
    assert row["rows"] == 3  # scored only where the signal exists
    y = corpus.label()[:3]
    from scipy.stats import spearmanr

    assert row["spearman"] == pytest.approx(spearmanr(with_sig.signal("nwot"), y)[0])
    assert "nwot" not in table  # the published proxy's row keeps its own name
