"""Head signals (a ranker that also sees depth, width, node count and NASWOT as set ranks)
and the bootstrap interval of a LOSO margin."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

FIXTURE = Path(__file__).parent / "data" / "predictor" / "nb201-150"


@pytest.fixture(scope="module")
def bench_emb(tmp_path_factory):
    """The 150-cell fixture with a made-up nwot signal column, and its embeddings."""
    from nas.predictors.benches.bench import Bench
    from nas.predictors.embed import Embedder
    from nas.predictors.training.fit import vocab_embeddings

    bench = Bench.load(FIXTURE)
    rng = np.random.default_rng(0)
    bench.signal_names = ["nwot"]
    bench.signals = (bench.label() + rng.normal(0, 3, len(bench))).reshape(-1, 1)
    bench.signals[:5, 0] = np.nan  # skipped on a few files
    emb = vocab_embeddings(bench, Embedder(cache_dir=tmp_path_factory.mktemp("emb")))
    return bench, emb


def test_set_ranks_of_extra_columns_leave_missing_values_in_the_middle() -> None:
    from nas.predictors.model import set_ranks

    extra = np.array([[3.0, np.nan], [1.0, np.nan], [np.nan, 2.0], [2.0, np.nan]])
    r = set_ranks([1, 2, 3, 4], [4, 3, 2, 1], extra)
    assert r.shape == (4, 4)
    assert np.allclose(r[:, 2], [1.0, 0.0, 0.5, 0.5])  # three values ranked, NaN at 0.5
    assert np.allclose(r[:, 3], 0.5)  # one value: nothing to rank
    assert np.allclose(r[:, :2], set_ranks([1, 2, 3, 4], [4, 3, 2, 1]))
    assert set_ranks([], [], np.zeros((0, 2))).shape == (0, 4)  # an empty set keeps its columns


def test_row_ranks_rank_each_signal_within_its_space(bench_emb) -> None:
    from nas.predictors.training.corpus import structure_signals
    from nas.predictors.training.fit import row_ranks
    from scipy import stats

    bench, _ = bench_emb
    rows = np.arange(40, 100)
    strata = ["a" if i < 70 else "b" for i in range(len(bench))]
    r = row_ranks(bench, rows, strata, ["depth", "nwot"])
    assert r.shape == (60, 4)
    depth = structure_signals(bench, rows)["depth"]
    first = rows < 70
    assert np.allclose(r[first, 2], (stats.rankdata(depth[first]) - 1) / (first.sum() - 1))
    nwot = bench.signal("nwot")[rows[~first]]
    assert np.allclose(r[~first, 3], (stats.rankdata(nwot) - 1) / ((~first).sum() - 1))


def test_a_model_with_head_signals_trains_saves_and_scores_records(bench_emb, tmp_path) -> None:
    """The head's nwot input is the record's signal: NaN everywhere scores as if every
    file sat at the middle, and the saved model reads the same."""
    from nas.predictors.model import GraphRanker, ModelConfig, Predictor
    from nas.predictors.record import GraphRecord
    from nas.predictors.training.fit import RankerTrainConfig, predict, train

    bench, emb = bench_emb
    mc = ModelConfig(
        hidden=16, layers=1, globals_norm="set", prior="params", signals=["width", "nwot"]
    )
    model = train(bench, np.arange(100), emb, RankerTrainConfig(steps=30, batch_size=16), mc).model
    rows = np.arange(100, 150)
    loaded = GraphRanker.load(model.save(tmp_path / "m"))
    assert loaded.config.signals == ["width", "nwot"]
    assert np.allclose(predict(loaded, bench, emb, rows), predict(model, bench, emb, rows))

    records = []
    for i in rows:
        ti, ed = bench.graph(int(i))
        r = GraphRecord([bench.vocab[t] for t in ti], [tuple(e) for e in ed.tolist()],
                        int(bench.params[i]), int(bench.flops[i]))  # fmt: skip
        r.signals = {"nwot": float(bench.signal("nwot")[i])}
        records.append(r)
    vocab = {t: k for k, t in enumerate(bench.vocab)}

    class TableEmbedder:
        def embed(self, texts):
            return emb[[vocab[t] for t in texts]]

    pred = Predictor(loaded, TableEmbedder())
    assert np.allclose(pred.score_records(records), predict(model, bench, emb, rows), atol=1e-5)
    for r in records:
        r.signals = {}
    blind = pred.score_records(records)
    assert not np.allclose(blind, predict(model, bench, emb, rows), atol=1e-3)
    bench_blind = bench.subset(range(len(bench)))
    bench_blind.signals = np.full_like(bench.signals, np.nan)
    assert np.allclose(blind, predict(model, bench_blind, emb, rows), atol=1e-5)


def test_head_signals_are_checked() -> None:
    from nas.predictors.model import GraphRanker, ModelConfig, PredictorError

    with pytest.raises(PredictorError, match="unknown signal 'synflow'"):
        GraphRanker(ModelConfig(globals_norm="set", signals=["synflow"]))
    with pytest.raises(PredictorError, match="need globals_norm 'set'"):
        GraphRanker(ModelConfig(signals=["depth"]))


def test_margin_interval_is_narrow_on_many_rows_and_wide_on_few() -> None:
    from nas.predictors.training.rankmetrics import margin_interval

    rng = np.random.default_rng(0)
    for n, clear in ((400, True), (12, False)):
        y = rng.normal(size=n)
        good = y + rng.normal(0, 0.3, n)  # Spearman about 0.95
        base = {
            "params": y + rng.normal(0, 1.0, n),  # about 0.7
            "flops": rng.normal(size=n),
            "nwot (onnx)": np.where(np.arange(n) == 0, np.nan, y),  # perfect, but not all rows
        }
        best, gap, lo, hi = margin_interval(good, base, y)
        assert best == "params"
        assert lo <= gap <= hi
        assert (lo > 0) == clear, (n, lo, hi)
    assert np.isnan(margin_interval(good, {"x": np.full(12, np.nan)}, y)[1])


def test_loso_prints_each_margin_with_its_interval_and_the_mean_of_seeds(bench_emb) -> None:
    from nas.predictors.model import ModelConfig
    from nas.predictors.research.loso import format_loso, format_loso_seeds, loso
    from nas.predictors.training.fit import RankerTrainConfig

    bench, emb_all = bench_emb
    spaces = {"a": bench.subset(range(0, 80)), "b": bench.subset(range(80, 150))}
    vocab = {t: k for k, t in enumerate(bench.vocab)}
    results = [
        loso(
            spaces,
            lambda b: emb_all[[vocab[t] for t in b.vocab]],
            RankerTrainConfig(steps=10, batch_size=16, seed=seed),
            ModelConfig(hidden=16, layers=1),
            ("prior-signals",),
            log=lambda _: None,
        )
        for seed in (0, 1)
    ]
    text = format_loso(results[0])
    for held in ("a", "b"):
        best, gap, lo, hi = results[0][held]["ranker prior-signals"]["margin"]
        assert best in results[0][held] and lo <= gap <= hi
        assert f"{gap:+.3f}, 90% bootstrap interval [{lo:+.3f}, {hi:+.3f}]" in text
    summary = format_loso_seeds(results)
    assert summary.startswith("LOSO over 2 seeds")
    rho = [r["b"]["ranker prior-signals"]["spearman"] for r in results]
    row = next(
        line
        for line in summary.split("held out: b")[1].splitlines()
        if line.startswith("ranker prior-signals ")
    )
    assert f"{np.mean(rho):9.3f}" in row and f"{min(rho):.3f}..{max(rho):.3f}" in row
    gaps = [r["b"]["ranker prior-signals"]["margin"][1] for r in results]
    verdict = "meets" if np.mean(gaps) >= 0.05 else "misses"
    assert f"{np.mean(gaps):+.3f} (90% interval" in summary.split("held out: b")[1]
    assert f"{verdict} the +0.05 target" in summary
