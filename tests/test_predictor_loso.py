"""The multi-space corpus (within-space ranks, one space per batch) and the LOSO table."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

FIXTURE = Path(__file__).parent / "data" / "predictor" / "nb201-150"


@pytest.fixture(scope="module")
def two_spaces():
    """The 150-cell fixture cut in two 'spaces' whose labels live on different scales."""
    from nas.predictors.bench import Bench

    bench = Bench.load(FIXTURE)
    a, b = bench.subset(range(0, 80)), bench.subset(range(80, 150))
    b.labels = b.labels * 0.01 + 50  # another task's accuracies: not comparable with a's
    b.proxy_names, b.proxies = [], np.zeros((len(b), 0))
    return {"a": a, "b": b}


def test_join_ranks_labels_within_each_space(two_spaces) -> None:
    from nas.predictors.corpus import SPACE_LABEL, join

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
    from nas.predictors.fit import TrainConfig, vocab_embeddings
    from nas.predictors.loso import format_loso, loso
    from nas.predictors.model import ModelConfig

    embedder = Embedder(cache_dir=tmp_path / "cache")
    result = loso(
        two_spaces,
        lambda b: vocab_embeddings(b, embedder),
        TrainConfig(steps=20, batch_size=16),
        ModelConfig(),
        ("full", "no-signals", "op-only text", "no-graph"),
        embedder.embed,
        log=lambda _: None,
    )
    assert set(result) == {"a", "b"}
    for held, table in result.items():
        names = set(table)
        assert {"ranker", "ranker no-signals", "ranker op-only text", "ranker no-graph"} <= names
        assert {"params", "flops", "depth", "nodes"} <= names
        n = 80 if held == "a" else 70
        assert all(m["rows"] == n for k, m in table.items() if not k.startswith("nwot"))
        assert all(-1 <= table[k]["spearman"] <= 1 for k in ("ranker", "params"))
    text = format_loso(result)
    assert "held out: a" in text and "ranker - best baseline" in text
