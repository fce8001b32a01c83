"""zoo:ptrnet: tasks, training vs baseline, exact pointer parity in ONNX, grammar, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from nas.zoo import config_from_arch, export_config, get_family, zoo_space

from nas.data.puzzles import convex_polygon_area, hull_problems, sort_problems
from nas.exceptions import ConfigurationError

SMALL = {"hidden": 32}


@pytest.fixture(scope="module")
def sort_data():
    return get_family("ptrnet").make_data("sort", seed=0)


@pytest.fixture(scope="module")
def hull_data():
    return get_family("ptrnet").make_data("hull", seed=0)


def test_task_generators():
    s = sort_problems(200, (3, 8), width=12, seed=1)
    assert s["x"].shape == (200, 12, 1) and (s["n"] >= 3).all() and (s["n"] <= 8).all()
    for k in range(20):
        order = s["target"][k][: s["n"][k]]
        assert (
            np.all(np.diff(s["x"][k, order, 0]) >= 0) and (s["target"][k][s["n"][k] :] == -1).all()
        )
    h = hull_problems(100, (5, 10), seed=2)
    for k in range(20):
        seq = h["target"][k]
        vertices = seq[: np.argmax(seq == 0)] - 1
        assert vertices[0] == vertices.min()  # counter-clockwise from the smallest index
        area = convex_polygon_area(h["x"][k][vertices].astype(np.float64))
        assert area == pytest.approx(h["area"][k], rel=1e-5)
        assert convex_polygon_area(h["x"][k][vertices[::-1]].astype(np.float64)) == 0.0


def test_sort_trains_past_identity_baseline(sort_data):
    fam = get_family("ptrnet")
    cfg = fam.config({"hidden": 64})
    torch.manual_seed(0)
    model = fam.build(cfg, sort_data)
    res = fam.fit(model, cfg, sort_data, epochs=1, time_budget_s=10)
    base = fam.baseline(sort_data)
    assert base["exact"] < 0.01 and base["token"] < 0.15
    assert res.test["token"] > base["token"] + 0.3, res.test
    by_len = res.extra["exact_by_length"]
    assert set(by_len) == {5, 10, 15, 20} and by_len[10] == pytest.approx(res.test["exact"])


def test_hull_metrics_and_aux_hint(hull_data):
    fam = get_family("ptrnet")
    cfg = fam.config({"hidden": 32, "aux_weight": 0.5, "attention": "glimpse"})
    torch.manual_seed(0)
    model = fam.build(cfg, hull_data)
    res = fam.fit(model, cfg, hull_data, epochs=1, time_budget_s=4)
    assert res.status in ("ok", "timeout")
    assert set(res.test) == {"area_coverage", "exact", "valid_polygon"}
    assert 0.0 <= res.test["area_coverage"] <= 1.0 + 1e-9
    base = fam.baseline(hull_data)
    assert 0.0 < base["area_coverage"] < 0.2 and base["exact"] == 0.0


@pytest.mark.parametrize("task, attention", [("sort", "additive"), ("hull", "dot")])
def test_onnx_pointers_equal_torch(task, attention, sort_data, hull_data, tmp_path):
    fam = get_family("ptrnet")
    data = sort_data if task == "sort" else hull_data
    cfg = {"hidden": 32, "layers": 2, "attention": attention}
    torch.manual_seed(0)
    model = fam.build(fam.config(cfg), data).eval()
    path, diff = export_config(fam, tmp_path / "p.onnx", cfg, model=model, data=data)
    assert diff < 1e-4
    import onnxruntime as ort

    x, mask = fam.example_inputs(fam.config(cfg), data, batch=5)  # lengths 5..20, padded
    assert x.shape[1] == 20 and not mask.all()
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = sess.run(["pointers"], {"x": x.numpy(), "mask": mask.numpy()})[0]
    with torch.no_grad():
        ref, _ = model(x, mask)
    assert np.array_equal(got, ref.numpy())
    lengths = mask.sum(dim=1)
    for row, n in zip(
        ref, lengths, strict=True
    ):  # a pointer sequence, then -1 to the fixed length
        live = row[row >= 0]
        assert len(set(live.tolist())) == len(live) and (live < n).all()
        if task == "sort":
            assert len(live) == n


def test_grammar_samples_build_and_run(sort_data):
    from nas.sampling import Sampler

    sampler = Sampler(zoo_space("zoo:ptrnet"), seed=0)
    fam = get_family("ptrnet")
    for _ in range(5):
        family, cfg = config_from_arch(sampler.sample())
        assert family.name == "ptrnet"
        model = fam.build(cfg, sort_data)
        ptr, scores = model(*fam.example_inputs(cfg, sort_data, batch=2))
        assert ptr.shape == (2, 20) and scores.shape == (2, 20, 20)


@pytest.mark.parametrize(
    "bad, match",
    [({"attention": "cosine"}, "attention must be one of"), ({"layers": 0}, "layers must be")],
)
def test_bad_config(bad, match):
    with pytest.raises(ConfigurationError, match=match):
        get_family("ptrnet").config(bad)


def test_cli_train(nas_cli):
    code, out, _ = nas_cli(
        "train", "zoo:ptrnet", "--epochs", "1", "--time-budget", "2", "--config",
        json.dumps(SMALL), "--json",
    )  # fmt: skip
    assert code == 0, out
    res = json.loads(out)
    assert res["task"] == "sort" and "exact" in res["test"] and "exact_by_length" in res["extra"]
