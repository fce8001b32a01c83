"""Per-space training weights of the multi-space corpus (issue 15: noisier search-run benches)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = Path(__file__).parent / "data" / "predictor" / "nb201-150"


@pytest.fixture(scope="module")
def three_spaces():
    """The 150-cell fixture cut in three 'spaces' of 50 cells."""
    from nas.predictors.benches.bench import Bench

    bench = Bench.load(FIXTURE)
    return {k: bench.subset(range(50 * i, 50 * i + 50)) for i, k in enumerate("abc")}


@pytest.fixture(scope="module")
def embedder(tmp_path_factory):
    from nas.predictors.embed import Embedder

    return Embedder(cache_dir=tmp_path_factory.mktemp("emb"))


def _loso(benches, embedder, weights=None):
    from nas.predictors.model import ModelConfig
    from nas.predictors.research.loso import loso
    from nas.predictors.training.fit import RankerTrainConfig, vocab_embeddings

    return loso(
        benches,
        lambda b: vocab_embeddings(b, embedder),
        RankerTrainConfig(steps=12, batch_size=16, seed=3),
        ModelConfig(hidden=16, layers=1),
        ("full",),
        log=lambda _: None,
        weights=weights,
    )


def test_schedule_gives_each_pool_its_share_of_the_steps() -> None:
    from nas.predictors.training.fit import stratum_schedule

    assert stratum_schedule([1, 1, 1], 7).tolist() == [0, 1, 2, 0, 1, 2, 0]
    assert stratum_schedule([0.5, 0.5], 4).tolist() == [0, 1, 0, 1]
    counts = np.bincount(stratum_schedule([1, 1, 0.25], 900), minlength=3)
    assert counts.tolist() == [400, 400, 100]
    assert np.bincount(stratum_schedule([1, 0], 50), minlength=2).tolist() == [50, 0]


def test_weight_zero_is_the_same_model_as_leaving_the_space_out(three_spaces, embedder) -> None:
    """Seeded, the LOSO rows of a and b with c at weight 0 equal those of the corpus
    without c; at weight 1 and 0.25 they differ (the weight is used)."""
    without = _loso({k: three_spaces[k] for k in "ab"}, embedder)
    zero = _loso(three_spaces, embedder, {"c": 0.0})
    one = _loso(three_spaces, embedder, {"c": 1.0})
    quarter = _loso(three_spaces, embedder, {"c": 0.25})
    for held in "ab":
        r0, rw = zero[held]["ranker"], without[held]["ranker"]
        assert r0["spearman"] == pytest.approx(rw["spearman"], abs=1e-9)
        assert r0["kendall"] == pytest.approx(rw["kendall"], abs=1e-9)
        assert one[held]["ranker"]["spearman"] != pytest.approx(r0["spearman"], abs=1e-6)
        assert quarter[held]["ranker"]["spearman"] != pytest.approx(
            one[held]["ranker"]["spearman"], abs=1e-6
        )
    # the held-out space's own weight does not matter: c is never trained on when held out
    assert zero["c"]["ranker"]["spearman"] == pytest.approx(one["c"]["ranker"]["spearman"])


def test_weights_change_the_trained_model(three_spaces, embedder) -> None:
    """At the train() level: weight 0 drops c's rows; weight 0.25 gives another model."""
    from nas.predictors.training.corpus import join
    from nas.predictors.training.fit import RankerTrainConfig, predict, train, vocab_embeddings

    corpus = join(three_spaces)
    space = list(corpus.meta["space"])
    emb = vocab_embeddings(corpus, embedder)
    cfg = RankerTrainConfig(steps=9, batch_size=16, seed=1)
    ab = np.array([i for i, s in enumerate(space) if s != "c"])
    every = np.arange(len(corpus))
    out = {
        "ab": train(corpus, ab, emb, cfg, strata=space),
        "c0": train(corpus, every, emb, cfg, strata=space, weights={"c": 0}),
        "c1": train(corpus, every, emb, cfg, strata=space, weights={"c": 1}),
        "none": train(corpus, every, emb, cfg, strata=space),
        "c.25": train(corpus, every, emb, cfg, strata=space, weights={"c": 0.25}),
    }
    p = {k: predict(r.model, corpus, emb, every) for k, r in out.items()}
    assert np.array_equal(p["ab"], p["c0"]) and out["ab"].losses == out["c0"].losses
    assert np.array_equal(p["none"], p["c1"])  # weight 1 everywhere: the old plain turns
    assert not np.allclose(p["c1"], p["c0"]) and not np.allclose(p["c.25"], p["c1"])


def test_bad_weights_are_configuration_errors(three_spaces) -> None:
    from nas.predictors.training.corpus import join
    from nas.predictors.training.fit import train

    from nas.exceptions import ConfigurationError, NasError

    assert issubclass(ConfigurationError, NasError)
    corpus = join(three_spaces)
    space = list(corpus.meta["space"])
    emb = np.zeros((len(corpus.vocab), 384), np.float32)
    rows = np.arange(len(corpus))
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ConfigurationError, match="finite number >= 0"):
            train(corpus, rows, emb, strata=space, weights={"a": bad})
    with pytest.raises(ConfigurationError, match="need strata"):
        train(corpus, rows, emb, weights={"a": 1})
    with pytest.raises(ConfigurationError, match="at least 2 rows"):
        train(corpus, rows, emb, strata=space, weights=dict.fromkeys("abc", 0.0))


def test_search_run_benches_get_the_run_default(three_spaces, embedder, monkeypatch) -> None:
    """A bench whose meta says it comes from search runs gets RUN_BENCH_WEIGHT, a table
    bench 1; loso() uses that default when no weight is given."""
    from nas.predictors.training import corpus

    run = three_spaces["c"].subset(range(50))
    run.meta = {**run.meta, "source": "search runs"}
    assert corpus.from_runs(run) and not corpus.from_runs(three_spaces["a"])
    assert corpus.default_weight(three_spaces["a"]) == 1.0
    assert corpus.default_weight(run) == corpus.RUN_BENCH_WEIGHT
    assert 0 < corpus.RUN_BENCH_WEIGHT < 1  # noisier labels: a smaller share (README)
    monkeypatch.setattr(corpus, "RUN_BENCH_WEIGHT", 0.0)
    dflt = _loso({**{k: three_spaces[k] for k in "ab"}, "c": run}, embedder)
    without = _loso({k: three_spaces[k] for k in "ab"}, embedder)
    for held in "ab":
        assert dflt[held]["ranker"]["spearman"] == pytest.approx(
            without[held]["ranker"]["spearman"], abs=1e-9
        )


def _bench_script():
    spec = importlib.util.spec_from_file_location(
        "bench_predictor", ROOT / "bench" / "predictor.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_loso_items_take_an_optional_weight() -> None:
    from nas.exceptions import ConfigurationError

    parse = _bench_script().parse_loso_item
    assert parse("nb201=/b/nb201") == ("nb201", "/b/nb201", None)
    assert parse("einspace=/b/ein:0.25") == ("einspace", "/b/ein", 0.25)
    assert parse("x=rel/dir:0") == ("x", "rel/dir", 0.0)
    for bad in ("x=/d:-1", "x=/d:nan"):
        with pytest.raises(ConfigurationError, match="weight of 'x'"):
            parse(bad)
    with pytest.raises(ConfigurationError, match="no bench folder '/d:abc'"):
        parse("x=/d:abc")
    for bad in ("nb201", "=/b", "x="):
        with pytest.raises(ConfigurationError, match="SPACE=BENCH_DIR"):
            parse(bad)


def test_loso_item_folder_with_a_colon_is_taken_whole(tmp_path: Path) -> None:
    folder = tmp_path / "run:2"
    folder.mkdir()
    parse = _bench_script().parse_loso_item
    assert parse(f"x={folder}") == ("x", str(folder), None)
    assert parse(f"x={folder}:0.5") == ("x", str(folder), 0.5)
