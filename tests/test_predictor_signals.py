"""Data-free signals: NASWOT from onnxruntime activations, depth, the OOD flag."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto
from onnx import helper as h
from onnx import numpy_helper as nh


def _mlp(width: int, seed: int = 0) -> onnx.ModelProto:
    """x[batch,6] -> MatMul W1 -> Relu -> MatMul W2 -> Relu -> y."""
    rng = np.random.default_rng(seed)
    w1 = rng.standard_normal((6, width)).astype(np.float32)
    w2 = rng.standard_normal((width, 3)).astype(np.float32)
    nodes = [
        h.make_node("MatMul", ["x", "w1"], ["m1"]),
        h.make_node("Relu", ["m1"], ["r1"]),
        h.make_node("MatMul", ["r1", "w2"], ["m2"]),
        h.make_node("Relu", ["m2"], ["y"]),
    ]
    graph = h.make_graph(
        nodes,
        "mlp",
        [h.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 6])],
        [h.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3])],
        [nh.from_array(w1, "w1"), nh.from_array(w2, "w2")],
    )
    return h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])


def test_nwot_equals_the_formula_on_the_same_batch() -> None:
    from nas.predictors.probe import random_feed
    from nas.predictors.signals import NWOT_BATCH, nwot_model

    model = _mlp(64)
    x = random_feed(model.graph, None, batch=NWOT_BATCH, seed=0)["x"]
    w1, w2 = (nh.to_array(t) for t in model.graph.initializer)
    r1 = np.maximum(x @ w1, 0)
    codes = np.concatenate([r1 > 0, np.maximum(r1 @ w2, 0) > 0], 1).astype(float)
    k = codes @ codes.T + (1 - codes) @ (1 - codes).T
    expected = np.linalg.slogdet(k)[1]
    assert abs(nwot_model(model) - expected) < 1e-6
    # wider hidden layers tell more inputs apart; too few units: K is singular, the floor 0
    assert nwot_model(_mlp(256)) > nwot_model(_mlp(64)) > 0
    assert nwot_model(_mlp(8)) == 0.0


def test_nwot_is_nan_without_a_batch_axis() -> None:
    from nas.predictors.signals import nwot_model

    model = _mlp(8)
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 1
    assert np.isnan(nwot_model(model))


def test_depth_is_the_longest_path() -> None:
    from nas.predictors.signals import depth

    assert depth(4, [(0, 1), (1, 2), (2, 3)]) == 4
    assert depth(4, [(0, 1), (0, 2), (2, 3), (1, 3)]) == 3
    assert depth(0, []) == 0


def test_ood_flag_names_unseen_ops_and_params(tmp_path: Path) -> None:
    from nas.predictors.rank import load_domain, ood_reason
    from nas.predictors.record import file_record

    domain = load_domain(None)
    path = tmp_path / "mlp.onnx"
    onnx.save(_mlp(8), str(path))
    reason = ood_reason(file_record(path), domain)
    assert "unseen ops (Linear" not in reason  # MatMul by a constant is normalised to Linear
    assert "params, trained on 73,098-1,527,978" in reason  # 72 params: far below NB201
    assert json.dumps(domain)  # the bundled domain is plain JSON


def _nb201_file(folder: Path, cell: str, name: str) -> Path:
    from nas.compile import compile_arch
    from nas.export import export_onnx
    from nas.nb201 import from_nb201

    return export_onnx(compile_arch(from_nb201(cell), (3, 32, 32), 10), (3, 32, 32), folder / name)


def test_a_set_mostly_outside_the_domain_is_scored_by_the_transfer_model(tmp_path: Path) -> None:
    """One model scores a whole set: the default one when most files lie in its domain,
    the transfer model when most do not; each row names the model."""
    from nas.predictors.model import GraphRanker, ModelConfig, Predictor
    from nas.predictors.rank import load_domain, rank_files, use_transfer

    default = Predictor.load(None)
    domain = load_domain(None)
    transfer = Predictor(GraphRanker(ModelConfig()), default.embedder, "transfer-test")
    t_domain = {"ops": ["Input", "Linear", "Relu", "Output"], "params": [10, 1000]}
    loads = []

    def load() -> tuple[Predictor, dict]:
        loads.append(1)
        return transfer, t_domain

    nb = _nb201_file(tmp_path, "|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|", "a.onnx")
    mlps = []
    for k, width in enumerate((8, 16, 32)):
        mlps.append(tmp_path / f"mlp{k}.onnx")
        onnx.save(_mlp(width, k), str(mlps[-1]))
    rows, _ = rank_files([nb, mlps[0]], default, domain, transfer=load)  # half outside: stay
    assert {r["model"] for r in rows} == {"nb201-v1"} and loads == []
    rows, errors = rank_files([nb, *mlps], default, domain, transfer=load)  # 3 of 4 outside
    assert errors == [] and {r["model"] for r in rows} == {"transfer-test"} and loads == [1]
    # OOD flags are against the model that scored: the MLPs lie in the transfer domain
    flagged = {Path(r["file"]).name for r in rows if r["ood"]}
    assert flagged == {"a.onnx"}
    assert not use_transfer([], domain) and not use_transfer([1], None)  # nothing to judge


def test_nas_predictor_train_writes_the_training_domain(tmp_path: Path) -> None:
    from nas.predictors.benches.bench import Bench
    from nas.predictors.benches.nb201_bench import build_nb201_bench
    from nas.predictors.rank import load_domain
    from nas.predictors.training.trainset import training_domain

    bench = build_nb201_bench(indices=[0, 1, 2, 3, 4, 5], labels=["cifar10"])
    dom = training_domain(bench, [0, 2])
    assert dom["params"] == [int(min(bench.params[[0, 2]])), int(max(bench.params[[0, 2]]))]
    ops = {bench.vocab[t].split(" ", 1)[0] for i in (0, 2) for t in bench.graph(i)[0]}
    assert dom["ops"] == sorted(ops) and "Conv" in ops
    folder = tmp_path / "b"
    bench.save(folder)
    from typer.testing import CliRunner

    from nas.cli.main import app

    res = CliRunner().invoke(
        app, ["predictor", "train", "--bench", str(folder), "-o", str(tmp_path / "m"),
              "--steps", "2"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    saved = load_domain(tmp_path / "m")
    assert saved["ops"] == training_domain(Bench.load(folder))["ops"]
    assert saved["params"] == [int(bench.params.min()), int(bench.params.max())]
    assert "6 training rows" in saved["source"]


def test_nas_rank_picks_the_bundled_model_by_the_files_domain(nas_cli, tmp_path: Path) -> None:
    """NB201 files are ranked by nb201-v1; a folder of MLPs (unseen sizes and ops for it) by
    the bundled transfer model, which the table and the JSON name."""
    from nas.predictors.model import TRANSFER_MODEL, bundled_dir

    assert (bundled_dir(TRANSFER_MODEL) / "domain.json").exists()
    nb = tmp_path / "nb"
    nb.mkdir()
    _nb201_file(nb, "|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|", "a.onnx")
    _nb201_file(nb, "|nor_conv_1x1~0|+|skip_connect~0|none~1|+|none~0|none~1|none~2|", "b.onnx")
    code, out, _ = nas_cli("rank", str(nb), "--json", "--no-proxy")
    assert code == 0 and {r["model"] for r in json.loads(out)["ranked"]} == {"nb201-v1"}
    mlp = tmp_path / "mlp"
    mlp.mkdir()
    for k, width in enumerate((8, 16, 32)):
        onnx.save(_mlp(width, k), str(mlp / f"m{k}.onnx"))
    code, out, _ = nas_cli("rank", str(mlp), "--json")
    rows = json.loads(out)["ranked"]
    assert code == 0 and {r["model"] for r in rows} == {TRANSFER_MODEL} and len(rows) == 3
    code, out, _ = nas_cli("rank", str(mlp))
    assert code == 0 and f"scored by {TRANSFER_MODEL}: most files lie outside" in out
    # --model names one model: no switching
    code, out, _ = nas_cli("rank", str(mlp), "--json", "--model", str(bundled_dir()))
    assert {r["model"] for r in json.loads(out)["ranked"]} == {"nb201-v1"}


def test_nwot_over_the_unit_cap_is_a_note_not_a_silent_gap(monkeypatch) -> None:
    """A network with more activation units than the cap gets no score and a row note
    saying why (it used to be a bare '-')."""
    import nas.predictors.signals as sig

    model = _mlp(64)
    assert sig.nwot_probe(model)[1] == ""
    monkeypatch.setattr(sig, "MAX_UNITS", 32)  # 64 + 3 units per input are over it
    score, note = sig.nwot_probe(model)
    assert np.isnan(score) and note == "nwot skipped: over 32 activation units per input"
