"""The graph ranker: training on a small NB201 bench, save/load, ``nas rank``, bundled weights."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

FIXTURE = Path(__file__).parent / "data" / "predictor" / "nb201-150"


@pytest.fixture(scope="module")
def cache_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An XDG cache home shared by this module's tests (one embedding-model load)."""
    return tmp_path_factory.mktemp("xdg")


@pytest.fixture(scope="module")
def small(cache_home: Path):
    """The 150-cell fixture bench, its vocabulary embeddings and a group split."""
    from nas.predictors.benches.bench import Bench
    from nas.predictors.embed import Embedder
    from nas.predictors.training.fit import split_by_group, vocab_embeddings

    bench = Bench.load(FIXTURE)
    emb = vocab_embeddings(bench, Embedder(cache_dir=cache_home / "nas" / "embeddings"))
    train_rows, test_rows = split_by_group(bench, 100, seed=0)
    return bench, emb, train_rows, test_rows


@pytest.fixture(scope="module")
def trained(small):
    from nas.predictors.model import ModelConfig
    from nas.predictors.training.fit import RankerTrainConfig, train

    bench, emb, train_rows, _ = small
    cfg = RankerTrainConfig(steps=120, batch_size=32, seed=0)
    return train(bench, train_rows, emb, cfg, ModelConfig(hidden=32, layers=3))


def test_split_is_by_isomorphism_class(small) -> None:
    bench, _, train_rows, test_rows = small
    assert bench.meta["groups"] == "UniqueString"
    train_groups = {bench.groups[i] for i in train_rows}
    assert not train_groups & {bench.groups[i] for i in test_rows}
    assert len(train_rows) + len(test_rows) == len(bench)


def test_training_reduces_loss_and_beats_chance(small, trained) -> None:
    from nas.predictors.training.fit import evaluate

    bench, emb, _, test_rows = small
    losses = trained.losses
    assert np.mean(losses[-20:]) < 0.8 * np.mean(losses[:10])
    table = evaluate(trained.model, bench, emb, test_rows)
    assert table["predictor"]["spearman"] > 0.5  # 0.77 with this seed
    assert set(table) == {"predictor", "params", "flops", "depth", "nodes", "width"}


def test_save_load_round_trip(small, trained, tmp_path: Path) -> None:
    from nas.predictors.model import GraphRanker, PredictorError
    from nas.predictors.training.fit import predict

    bench, emb, _, test_rows = small
    folder = trained.model.save(tmp_path / "m")
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors"]
    again = GraphRanker.load(folder)
    a = predict(trained.model, bench, emb, test_rows)
    b = predict(again, bench, emb, test_rows)
    assert np.array_equal(a, b)
    (folder / "config.json").write_text("{}")
    with pytest.raises(PredictorError, match="not a"):
        GraphRanker.load(folder)


def test_bench_round_trip(small, tmp_path: Path) -> None:
    from nas.predictors.benches.bench import Bench, BenchError

    bench = small[0]
    sub = bench.subset([3, 1, 4])
    again = Bench.load(sub.save(tmp_path / "b"))
    assert again.names == [bench.names[i] for i in (3, 1, 4)]
    for k in range(3):
        for x, y in zip(again.graph(k), bench.graph([3, 1, 4][k]), strict=True):
            assert np.array_equal(x, y)
    with pytest.raises(BenchError):
        Bench.load(tmp_path / "missing")


def _external_outside(path: Path) -> None:
    """A small model whose weight claims to live in ../outside.bin."""
    w = helper.make_tensor("w", TensorProto.FLOAT, [2, 2], [1.0, 2.0, 3.0, 4.0])
    w.ClearField("float_data")
    w.data_location = TensorProto.EXTERNAL
    w.external_data.add(key="location", value="../outside.bin")
    node = helper.make_node("MatMul", ["x", "w"], ["y"])
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])],
        [w],
    )
    path.write_bytes(helper.make_model(graph).SerializeToString())


def test_nas_rank_folder_with_broken_files(nas_cli, cache_home, tmp_path, monkeypatch) -> None:
    from nas.compile import compile_arch
    from nas.export import export_onnx
    from nas.nb201 import from_nb201

    monkeypatch.setenv("XDG_CACHE_HOME", str(cache_home))
    cells = [
        "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|",
        "|avg_pool_3x3~0|+|none~0|none~1|+|none~0|none~1|avg_pool_3x3~2|",
        "|nor_conv_1x1~0|+|skip_connect~0|nor_conv_1x1~1|+|none~0|skip_connect~1|avg_pool_3x3~2|",
    ]
    d = tmp_path / "models"
    for k, cell in enumerate(cells):
        export_onnx(compile_arch(from_nb201(cell), (3, 32, 32), 10), (3, 32, 32), d / f"n{k}.onnx")
    good = (d / "n0.onnx").read_bytes()
    (d / "truncated.onnx").write_bytes(good[: len(good) // 2])
    (d / "garbage.onnx").write_bytes(b"this is not onnx")
    _external_outside(d / "external.onnx")
    (d / "notes.txt").write_text("ignored: not *.onnx")

    code, out, _ = nas_cli("rank", str(d), "--json")  # the proxy is on by default
    assert code == 1
    res = json.loads(out)
    assert sorted(Path(r["file"]).name for r in res["ranked"]) == ["n0.onnx", "n1.onnx", "n2.onnx"]
    assert [r["rank"] for r in res["ranked"]] == [1, 2, 3]
    scores = [r["score"] for r in res["ranked"]]
    assert scores == sorted(scores, reverse=True)
    assert all(r["params"] > 0 and r["flops"] > 0 for r in res["ranked"])
    # NB201 files are in the bundled model's domain; each has a NASWOT score and a depth
    assert not any(r["ood"] for r in res["ranked"])
    assert all(isinstance(r["nwot"], float) and r["depth"] > 10 for r in res["ranked"])
    errors = {Path(e["file"]).name: e["error"] for e in res["errors"]}
    assert set(errors) == {"truncated.onnx", "garbage.onnx", "external.onnx"}
    assert "outside" in errors["external.onnx"]
    # the all-conv cell should beat the nearly empty one
    names = [Path(r["file"]).name for r in res["ranked"]]
    assert names.index("n0.onnx") < names.index("n1.onnx")

    code, out, _ = nas_cli("rank", str(d / "n0.onnx"), str(d / "n1.onnx"), "--top", "1", "--json")
    assert code == 0
    assert [Path(r["file"]).name for r in json.loads(out)["ranked"]] == ["n0.onnx"]
    code, out, _ = nas_cli("rank", str(d / "n0.onnx"))
    assert code == 0
    assert "rank" in out and "FLOPs" in out and "nwot" in out
    # the table names files relative to their folder, whole, however narrow the terminal;
    # sizes in K/M; each file that failed gets its own line after the table
    code, out, _ = nas_cli("rank", str(d))
    lines = out.splitlines()
    assert code == 1 and lines[0] == f"files in {d}:"
    first = next(r for r in res["ranked"] if r["rank"] == 1)
    row = next(line for line in lines if line.startswith("│ 1 "))
    cells = [c.strip() for c in row.strip("│").split("│")]
    assert cells[1] == Path(first["file"]).name and cells[3].endswith(("K", "M"))
    for name, error in errors.items():
        assert f"not ranked {name}: {error[:40]}" in " ".join(out.split())
    code, out, _ = nas_cli("rank", str(d / "n0.onnx"), "--json", "--no-proxy")
    assert code == 0 and json.loads(out)["ranked"][0]["nwot"] is None
    assert json.loads(out)["ranked"][0]["notes"] == []

    code, out, _ = nas_cli("rank", str(d / "n0.onnx"), "--max-size", "0.01", "--json")
    assert code == 1
    assert "limit" in json.loads(out)["errors"][0]["error"]


def test_bundled_weights_load_offline(monkeypatch) -> None:
    from nas.predictors.model import GraphRanker, bundled_dir

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    folder = bundled_dir()
    assert (folder / "model.safetensors").stat().st_size < 5 * 2**20
    model = GraphRanker.load(folder)
    assert model.config.meta["trained_on"].startswith("nb201")
    assert onnx.__version__  # the ONNX reader is available alongside


@pytest.mark.parametrize("mode", ["linear", "none"])
def test_globals_modes_train_and_round_trip(small, mode, tmp_path: Path) -> None:
    from nas.predictors.model import GraphRanker, ModelConfig
    from nas.predictors.training.fit import RankerTrainConfig, predict, train

    bench, emb, train_rows, test_rows = small
    cfg = RankerTrainConfig(steps=30, batch_size=32, seed=0)
    res = train(bench, train_rows, emb, cfg, ModelConfig(hidden=16, layers=2, globals_mode=mode))
    again = GraphRanker.load(res.model.save(tmp_path / mode))
    assert again.config.globals_mode == mode
    a = predict(res.model, bench, emb, test_rows)
    assert np.array_equal(a, predict(again, bench, emb, test_rows))
    if mode == "none":  # structure only: the size features do not move the score
        b = bench.params.copy()
        bench.params[:] = 1
        try:
            assert np.allclose(a, predict(res.model, bench, emb, test_rows))
        finally:
            bench.params[:] = b


def test_ensemble_averages_members_and_round_trips(small, tmp_path: Path) -> None:
    from nas.predictors.model import GraphRanker, ModelConfig
    from nas.predictors.training.fit import RankerTrainConfig, predict, train_ensemble

    bench, emb, train_rows, test_rows = small
    cfg = RankerTrainConfig(steps=20, batch_size=32, seed=0)
    res = train_ensemble(bench, train_rows, emb, 2, cfg, ModelConfig(hidden=16, layers=2))
    model = res.model
    assert model.config.members == 2 and len(model.parts) == 2
    parts = np.stack([predict(p, bench, emb, test_rows) for p in model.parts], 1)
    want = (parts * model.part_scale.numpy()).mean(1)
    got = predict(model, bench, emb, test_rows)
    assert np.allclose(got, want, atol=1e-5)
    again = GraphRanker.load(model.save(tmp_path / "ens"))
    assert np.array_equal(got, predict(again, bench, emb, test_rows))


def test_old_config_without_new_fields_loads(small, trained, tmp_path: Path) -> None:
    """A v1 config.json (no globals_mode/dropout/members keys) loads as the v1 model."""
    from nas.predictors.model import GraphRanker
    from nas.predictors.training.fit import predict

    bench, emb, _, test_rows = small
    folder = trained.model.save(tmp_path / "old")
    info = json.loads((folder / "config.json").read_text())
    for key in ("globals_mode", "dropout", "members"):
        info.pop(key)
    (folder / "config.json").write_text(json.dumps(info))
    again = GraphRanker.load(folder)
    assert again.config.globals_mode == "mlp" and again.config.members == 1
    a = predict(trained.model, bench, emb, test_rows)
    assert np.array_equal(a, predict(again, bench, emb, test_rows))


def test_precision_at_top_treats_ties_fairly() -> None:
    """A constant scorer earns what a random pick earns, never a perfect score from row
    order; rows tied with the true k-th best all count as top."""
    from nas.predictors.training.rankmetrics import precision_at_top

    y = np.array([1.0] * 3 + [0.5] * 17)  # 20 rows, 10%: k = 2, three tie at the top
    assert precision_at_top(np.zeros(20), y, 0.10) == pytest.approx(3 / 20)
    assert precision_at_top(y, y, 0.10) == 1.0  # any two of the three best are right
    assert precision_at_top(-y, y, 0.10) == 0.0
    scores = np.arange(20.0)[::-1]  # rows 0, 1 predicted best: both truly top
    assert precision_at_top(scores, y, 0.10) == 1.0
    # predictions tied at the cut: rows 0 and 3 tie for the last of the two places
    pred = np.array([5.0, 9.0, 0, 5.0] + [0] * 16)
    assert precision_at_top(pred, y, 0.10) == pytest.approx((1 + 0.5) / 2)


@pytest.mark.parametrize(
    ("n", "shown"),
    [(0, "0"), (9_999, "9,999"), (14_834, "14.8K"), (199_439_872, "199M"), (10**15, "1,000T")],
)
def test_rank_table_sizes_are_short(n: int, shown: str) -> None:
    from nas.cli.predict import _si

    assert _si(n) == shown
