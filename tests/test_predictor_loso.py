"""The multi-space corpus (within-space ranks, one space per batch) and the LOSO table."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

FIXTURE = Path(__file__).parent / "data" / "predictor" / "nb201-150"


@pytest.fixture(scope="module")
def two_spaces():
    """The 150-cell fixture cut in two 'spaces' whose labels live on different scales."""
    from nas.predictors.benches.bench import Bench

    bench = Bench.load(FIXTURE)
    a, b = bench.subset(range(0, 80)), bench.subset(range(80, 150))
    b.labels = b.labels * 0.01 + 50  # another task's accuracies: not comparable with a's
    b.proxy_names, b.proxies = [], np.zeros((len(b), 0))
    return {"a": a, "b": b}


def test_join_ranks_labels_within_each_space(two_spaces) -> None:
    from nas.predictors.training.corpus import SPACE_LABEL, join

    a, b = two_spaces["a"], two_spaces["b"]
    corpus = join(two_spaces)
    assert len(corpus) == len(a) + len(b)
    assert corpus.label_names == [SPACE_LABEL]
    space = np.array(corpus.meta["space"])
    for name, bench in two_spaces.items():
        y, raw = corpus.label()[space == name], bench.label()
        assert 0 <= y.min() < 0.05 and y.max() == 1
        order = np.argsort(raw, kind="stable")
        assert np.all(np.diff(y[order]) >= 0)  # the same order as the raw accuracies
        assert np.all((np.diff(y[order]) > 0) == (np.diff(raw[order]) > 0))
    # graphs survive the vocabulary merge text for text
    for k in (0, len(a) + 3):
        src, i = (a, k) if k < len(a) else (b, k - len(a))
        ti, ed = corpus.graph(k)
        si, sed = src.graph(i)
        assert [corpus.vocab[t] for t in ti] == [src.vocab[t] for t in si]
        assert np.array_equal(ed, sed)
    # proxies: the union of names, NaN for the space that has none
    assert corpus.proxy_names == sorted(a.proxy_names)
    assert np.isnan(corpus.proxies[space == "b"]).all()
    assert corpus.groups[0].startswith("a/") and corpus.names[-1].startswith("b/")


def test_loso_table_has_the_ranker_every_baseline_and_ablation(two_spaces, tmp_path) -> None:
    from nas.predictors.embed import Embedder
    from nas.predictors.model import ModelConfig
    from nas.predictors.research.loso import format_loso, loso
    from nas.predictors.training.fit import RankerTrainConfig, vocab_embeddings

    embedder = Embedder(cache_dir=tmp_path / "cache")
    result = loso(
        two_spaces,
        lambda b: vocab_embeddings(b, embedder),
        RankerTrainConfig(steps=20, batch_size=16),
        ModelConfig(),
        ("full", "no-signals", "op-only text", "no-graph", "params-prior"),
        embedder.embed,
        log=lambda _: None,
    )
    assert set(result) == {"a", "b"}
    for held, table in result.items():
        names = set(table)
        assert {"ranker", "ranker no-signals", "ranker op-only text", "ranker no-graph"} <= names
        assert "ranker params-prior" in names
        assert {"params", "flops", "depth", "nodes", "width"} <= names
        n = 80 if held == "a" else 70
        assert all(m["rows"] == n for k, m in table.items() if not k.startswith("nwot"))
        assert all(-1 <= table[k]["spearman"] <= 1 for k in ("ranker", "params"))
    text = format_loso(result)
    assert "held out: a" in text and "ranker - best baseline" in text
    assert "ranker params-prior - best baseline" in text


@pytest.fixture(scope="module")
def fixture_emb(tmp_path_factory):
    """The 150-cell fixture bench and its vocabulary embeddings."""
    from nas.predictors.benches.bench import Bench
    from nas.predictors.embed import Embedder
    from nas.predictors.training.fit import vocab_embeddings

    bench = Bench.load(FIXTURE)
    cache = tmp_path_factory.mktemp("emb")
    return bench, vocab_embeddings(bench, Embedder(cache_dir=cache))


def _scaled(bench, factor: float):
    """A copy of ``bench`` whose networks are all ``factor`` times larger (another space's
    size range, same order within it)."""
    out = bench.subset(range(len(bench)))
    out.params = (bench.params * factor).astype(bench.params.dtype)
    out.flops = (bench.flops * factor).astype(bench.flops.dtype)
    return out


def _train_small(bench, emb, **mc):
    from nas.predictors.model import ModelConfig
    from nas.predictors.training.fit import RankerTrainConfig, train

    cfg = RankerTrainConfig(steps=15, batch_size=16, seed=0)
    return train(bench, np.arange(100), emb, cfg, ModelConfig(hidden=16, layers=1, **mc)).model


def test_set_globals_ignore_a_space_s_size_scale(fixture_emb) -> None:
    """With set globals, a space of networks 1,000 times larger (NB101 against NB201) is
    scored as its sizes rank within it; the v1 globals see sizes outside training."""
    from nas.predictors.training.fit import predict

    bench, emb = fixture_emb
    big = _scaled(bench, 1000)
    rows = np.arange(100, 150)
    for norm, same in (("set", True), ("train", False)):
        model = _train_small(bench, emb, globals_norm=norm)
        a, b = predict(model, bench, emb, rows), predict(model, big, emb, rows)
        assert np.allclose(a, b, atol=1e-5) == same, norm


def test_set_ranks_cover_the_whole_scored_set(fixture_emb) -> None:
    """predict and Predictor.score_records rank sizes over every scored row, not per batch:
    scores do not depend on the batch size."""
    from nas.predictors.model import Predictor
    from nas.predictors.record import GraphRecord
    from nas.predictors.training.fit import predict

    bench, emb = fixture_emb
    model = _train_small(bench, emb, globals_norm="set", prior="params")
    rows = np.arange(150)
    records = []
    for i in rows:
        ti, ed = bench.graph(int(i))
        texts = [bench.vocab[t] for t in ti]
        records.append(GraphRecord(texts, [tuple(e) for e in ed.tolist()], int(bench.params[i]),
                                   int(bench.flops[i])))  # fmt: skip

    class Table:  # the bench's own embeddings, looked up by text
        def embed(self, texts):
            return emb[[bench.vocab.index(t) for t in texts]]

    pred = Predictor(model, Table())
    whole, tiny = pred.score_records(records, 256), pred.score_records(records, 3)
    assert np.allclose(whole, tiny, atol=1e-5)
    assert np.allclose(whole, predict(model, bench, emb, rows), atol=1e-5)


def test_params_prior_keeps_the_ranking_near_params(fixture_emb, tmp_path) -> None:
    """The residual variant: score = prior_weight * (params rank - 0.5) + a correction
    bounded by ``correction``; with no correction it ranks exactly as params."""
    from nas.predictors.model import GraphRanker, set_ranks
    from nas.predictors.training.fit import predict
    from scipy import stats

    bench, emb = fixture_emb
    rows = np.arange(100, 150)
    prior = 4.0 * (set_ranks(bench.params[rows], bench.flops[rows])[:, 0] - 0.5)
    model = _train_small(bench, emb, globals_norm="set", prior="params", correction=0.5)
    s = predict(model, bench, emb, rows)
    assert np.abs(s - prior).max() <= 0.5 + 1e-6
    assert np.abs(s - prior).max() > 1e-3  # the correction is used
    assert stats.spearmanr(s, bench.params[rows])[0] > 0.9
    same = GraphRanker.load(model.save(tmp_path / "m"))
    assert same.config.prior == "params" and same.config.globals_norm == "set"
    assert np.allclose(predict(same, bench, emb, rows), s, atol=1e-6)
    flat = _train_small(bench, emb, globals_norm="set", prior="params", correction=0.0)
    s0 = predict(flat, bench, emb, rows)
    assert stats.spearmanr(s0, bench.params[rows])[0] == pytest.approx(1.0)


def test_unknown_prior_or_norm_is_a_predictor_error() -> None:
    from nas.predictors.model import GraphRanker, ModelConfig, PredictorError

    with pytest.raises(PredictorError, match="prior"):
        GraphRanker(ModelConfig(prior="nwot"))
    with pytest.raises(PredictorError, match="globals_norm"):
        GraphRanker(ModelConfig(globals_norm="global"))


def test_listnet_loss_prefers_the_true_order_and_names_are_checked(fixture_emb) -> None:
    import torch
    from nas.predictors.training.fit import RankerTrainConfig, listnet_loss, train

    from nas.exceptions import ConfigurationError

    y = torch.tensor([2.0, 1.0, 0.0, -1.0])
    right, wrong = listnet_loss(y.clone(), y), listnet_loss(-y, y)
    assert right < wrong
    # the top matters more than the bottom: swapping the two best costs more than the two worst
    top = listnet_loss(torch.tensor([1.0, 2.0, 0.0, -1.0]), y)
    bottom = listnet_loss(torch.tensor([2.0, 1.0, -1.0, 0.0]), y)
    assert top > bottom > right
    bench, emb = fixture_emb
    res = train(
        bench, np.arange(100), emb, RankerTrainConfig(steps=30, batch_size=16, loss="listnet")
    )
    assert np.mean(res.losses[-10:]) < np.mean(res.losses[:10])
    with pytest.raises(ConfigurationError, match="unknown loss"):
        train(bench, np.arange(100), emb, RankerTrainConfig(steps=1, loss="hinge"))


def test_unknown_loso_variant_is_a_configuration_error(two_spaces) -> None:
    from nas.predictors.model import ModelConfig
    from nas.predictors.research.loso import loso
    from nas.predictors.training.fit import RankerTrainConfig

    from nas.exceptions import ConfigurationError

    with pytest.raises(ConfigurationError, match="unknown LOSO variant 'fulll'"):
        loso(two_spaces, lambda b: None, RankerTrainConfig(), ModelConfig(), ("fulll",))


def test_loso_variants_change_the_recipe_they_name() -> None:
    """Each recipe variant of the LOSO registry sets what its name says on top of the
    command line's recipe (and leaves the rest alone)."""
    from nas.predictors.model import ModelConfig
    from nas.predictors.research.loso import ABLATIONS
    from nas.predictors.textviews import op_only, shape_free
    from nas.predictors.training.fit import RankerTrainConfig
    from nas.predictors.training.recipes import TEXT_VIEWS

    base = ModelConfig(hidden=48), RankerTrainConfig(steps=300, lr=1e-3)
    got = {name: fn(*base) for name, fn in ABLATIONS.items()}
    for name, (mc, tc) in got.items():
        assert mc.hidden == 48 and tc.lr == 1e-3, name
        prior = name.startswith("prior") or name == "params-prior"
        assert (mc.prior == "params" and mc.globals_norm == "set") == prior, name
    assert got["prior-short"][1].steps == 100 and got["params-prior"][1].steps == 300
    assert got["prior-listnet"][1].loss == "listnet"
    assert got["prior-ensemble"][0].members == 3
    assert got["prior-no-graph"][0].layers == 0
    assert got["prior-half"][0].correction == 0.5
    wide_mc, wide_tc = got["prior-listnet-wide"]
    assert (wide_mc.correction, wide_tc.loss, wide_tc.steps) == (2.0, "listnet", 100)
    assert got["no-signals"][0].globals_mode == "none" and got["set-signals"][0].prior == "none"
    assert {
        "op-only text": op_only,
        "prior-op-only": op_only,
        "shape-free text": shape_free,
        "prior-shape-free": shape_free,
    } == TEXT_VIEWS
    assert got["prior-shape-free"] == got["prior-listnet-wide"]


def test_shape_free_text_keeps_ops_and_attributes_and_drops_sizes() -> None:
    from nas.predictors.textviews import shape_free

    a = "Conv auto_pad=NOTSET d=1 group=1 k=3 p=1 s=1 W[16,3,3,3] W[16] -> Nx16x32x32"
    b = "Conv auto_pad=NOTSET d=1 group=1 k=3 p=1 s=1 W[128,128,3,3] W[128] -> Nx128x8x8"
    assert shape_free(a) == shape_free(b) == "Conv auto_pad=NOTSET d=1 group=1 k=3 p=1 s=1 -> 4d"
    assert shape_free("Slice C[1](0) C[1](86) -> Nx86x16x16") == "Slice -> 4d"
    assert shape_free("Input") == "Input"  # no output shape: nothing to reduce
    assert shape_free(a.replace("k=3", "k=5")) != shape_free(a)  # kernels still tell apart


def test_set_ranks_are_percentile_ranks_with_tied_means() -> None:
    from nas.predictors.model import set_ranks
    from scipy import stats

    params = np.array([5, 1, 5, 3, 9, 1])
    flops = np.array([2.0, 7.0, 1.0, 4.0, 3.0, 8.0])
    r = set_ranks(params, flops)
    assert np.allclose(r[:, 0], (stats.rankdata(params) - 1) / 5)
    assert np.allclose(r[:, 1], (stats.rankdata(flops) - 1) / 5)
    assert r[1, 0] == r[5, 0] == 0.1 and r[4, 0] == 1.0
    assert np.array_equal(set_ranks([7], [3]), [[0.5, 0.5]])


def test_width_is_the_widest_node_output() -> None:
    from nas.predictors.training.corpus import node_width

    assert node_width("Conv k=3 W[16,3,3,3] -> Nx16x32x32") == 16
    assert node_width("Linear W[10,512] W[10] -> Nx10") == 10
    assert node_width("Mul -> 7x?x64") == 0  # an unknown second dim says nothing
    assert node_width("Input") == 0


def test_an_nb201_network_is_64_channels_wide() -> None:
    import numpy as np
    from nas.predictors.benches.nb201_bench import build_nb201_bench
    from nas.predictors.training.corpus import structure_signals

    bench = build_nb201_bench(indices=[0, 1], labels=["cifar10"])
    assert list(structure_signals(bench, np.arange(2))["width"]) == [64.0, 64.0]  # 16/32/64


def test_signal_blend_learns_the_signal_that_ranks_the_training_spaces(two_spaces) -> None:
    from nas.predictors.research.blend import BLEND_SIGNALS, blend_scores, fit_blend
    from nas.predictors.training.corpus import join, structure_signals
    from scipy import stats

    spaces = {}
    for name, b in two_spaces.items():  # a task where deeper is better, in both spaces
        b = b.subset(range(len(b)))
        b.labels = structure_signals(b, np.arange(len(b)))["depth"].reshape(-1, 1)
        spaces[name] = b
    corpus = join(spaces)
    space = list(corpus.meta["space"])
    tr = np.array([i for i, s in enumerate(space) if s == "a"])
    te = np.array([i for i, s in enumerate(space) if s == "b"])
    for single in (False, True):  # the mix, and the one signal picked
        w = fit_blend(corpus, tr, space, single=single)
        assert [BLEND_SIGNALS[j] for j in np.flatnonzero(w)] == ["depth"]
    pred = blend_scores(corpus, te, w)
    assert stats.spearmanr(pred, corpus.label()[te])[0] == pytest.approx(1.0)


def test_loso_signal_blend_row_needs_no_training(two_spaces, tmp_path) -> None:
    from nas.predictors.embed import Embedder
    from nas.predictors.model import ModelConfig
    from nas.predictors.research.loso import format_loso, loso
    from nas.predictors.training.fit import RankerTrainConfig, vocab_embeddings

    embedder = Embedder(cache_dir=tmp_path / "cache")
    logs: list[str] = []
    result = loso(
        two_spaces,
        lambda b: vocab_embeddings(b, embedder),
        RankerTrainConfig(steps=20, batch_size=16),
        ModelConfig(),
        ("signal-blend", "signal-pick"),
        log=logs.append,
    )
    for held, table in result.items():
        for v in ("signal-blend", "signal-pick"):
            row = table[f"ranker {v}"]
            assert row["rows"] == (80 if held == "a" else 70) and -1 <= row["spearman"] <= 1
            assert row["margin"][0] in table and {"params", "depth", "width"} <= set(table)
        # the picked signal's scores rank exactly as one of the baselines does
        pick = table["ranker signal-pick"]["spearman"]
        assert any(
            pick == pytest.approx(table[k]["spearman"])
            for k in ("params", "flops", "depth", "nodes")
        )
    assert all("fitted" in line for line in logs)
    assert "ranker signal-blend - best baseline" in format_loso(result)
