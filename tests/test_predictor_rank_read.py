"""nas rank reads many files in worker processes: the same rows as one process, errors
and time limits per file, and a dead worker costs nothing but time."""

from __future__ import annotations

import math
import multiprocessing
import os
from pathlib import Path

import onnx
import pytest
from onnx import TensorProto
from onnx import helper as h
from onnx import numpy_helper as nh


def _mlp(path: Path, width: int) -> Path:
    import numpy as np

    w = np.random.default_rng(width).standard_normal((4, width)).astype(np.float32)
    graph = h.make_graph(
        [h.make_node("MatMul", ["x", "w"], ["m"]), h.make_node("Relu", ["m"], ["y"])],
        "mlp",
        [h.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [h.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", width])],
        [nh.from_array(w, "w")],
    )
    onnx.save(h.make_model(graph, opset_imports=[h.make_opsetid("", 17)]), str(path))
    return path


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """70 small files (over PARALLEL_MIN) with two broken ones among them."""
    d = tmp_path_factory.mktemp("many")
    for k in range(68):
        _mlp(d / f"m{k:02d}.onnx", 8 + k)
    (d / "garbage.onnx").write_bytes(b"not onnx")
    (d / "empty.onnx").write_bytes(b"")
    return sorted(d.glob("*.onnx"))


@pytest.fixture(autouse=True)
def small_files_count(monkeypatch: pytest.MonkeyPatch) -> None:
    """These files are tiny; let them take the worker path anyway."""
    import nas.predictors.rank_read as rr

    monkeypatch.setattr(rr, "PARALLEL_MIN_BYTES", 0)


def test_workers_give_the_rows_and_errors_of_one_process(folder: list[Path]) -> None:
    from nas.predictors.model import Predictor
    from nas.predictors.rank import rank_files
    from nas.predictors.rank_read import PARALLEL_MIN

    assert len(folder) >= PARALLEL_MIN
    pred = Predictor.load(None)
    one = rank_files(folder, pred, proxy=True, time_limit_s=60)
    two = rank_files(folder, pred, proxy=True, time_limit_s=60, workers=2)
    assert one == two
    rows, errors = two
    assert len(rows) == 68 and {Path(e["file"]).name for e in errors} == {
        "garbage.onnx",
        "empty.onnx",
    }
    assert all(r["nwot"] is not None for r in rows)


def test_a_time_limit_holds_inside_workers(folder: list[Path]) -> None:
    from nas.predictors.rank_read import read_files

    kw = {"max_bytes": 2**30, "dims": None, "proxy": True, "probe_bytes": 2**28}
    read = read_files(folder, 2, time_limit_s=1e-4, **kw)
    assert len(read) == len(folder)
    assert all(r is None for r, _, _ in read)
    assert sum("time limit" in err for _, _, err in read) >= 60  # the broken ones fail first


def dies_in_a_worker(f: Path, **_: object) -> tuple[None, float, str]:
    """A reader whose worker process dies on one file (like a crash inside onnxruntime)."""
    if f.name == "m33.onnx" and multiprocessing.parent_process() is not None:
        os._exit(3)
    return (
        None,
        math.nan,
        f"read {f.name} in {'a worker' if multiprocessing.parent_process() else 'main'}",
    )


def test_a_dead_worker_leaves_the_rest_to_this_process(folder: list[Path]) -> None:
    from nas.predictors.rank_read import read_files

    read = read_files(folder, 2, reader=dies_in_a_worker)
    assert [err.split(" in ")[0] for _, _, err in read] == [f"read {f.name}" for f in folder]
    where = {f.name: err.split(" in ")[1] for f, (_, _, err) in zip(folder, read, strict=True)}
    assert where["m33.onnx"] == "main"  # read again here after its worker died


def test_few_bytes_stay_in_this_process(folder: list[Path], monkeypatch) -> None:
    """Under PARALLEL_MIN_BYTES in all, no worker is spawned (the dying reader would
    otherwise have run in one and been read again here)."""
    import nas.predictors.rank_read as rr

    monkeypatch.setattr(rr, "PARALLEL_MIN_BYTES", 32 * 2**20)
    read = rr.read_files(folder, 2, reader=dies_in_a_worker)
    assert all(err.endswith(" in main") for _, _, err in read)


def test_workers_that_cannot_start_leave_the_reading_here(folder: list[Path], monkeypatch) -> None:
    import concurrent.futures

    from nas.predictors.rank_read import read_files

    def no_processes(*_: object, **__: object) -> None:
        raise OSError("Resource temporarily unavailable")

    monkeypatch.setattr(concurrent.futures, "ProcessPoolExecutor", no_processes)
    read = read_files(folder, 2, reader=dies_in_a_worker)
    assert len(read) == len(folder) and all(err.endswith(" in main") for _, _, err in read)
