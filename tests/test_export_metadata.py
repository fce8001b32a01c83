"""A search's best.onnx, ``nas export`` and ``nas zoo export`` say in the file's ONNX
metadata what the network is and how to feed it (issue 25)."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import zoo_toy  # noqa: F401  (registers the test family)

from nas._version import __version__

#: What every network file says, trained or not.
NETWORK_KEYS = {
    "nas_version", "architecture", "space", "input_name", "input_shape", "num_classes",
    "weights", "normalisation",
}  # fmt: skip


def _props(path: Path) -> dict[str, str]:
    return {p.key: p.value for p in onnx.load(str(path)).metadata_props}


def test_a_searchs_best_onnx_carries_its_metadata(tmp_path: Path) -> None:
    """A one-trial search of one epoch (the MLP seed on the Language stand-in, ~10 s)."""
    from nas.searches import Search, SearchConfig
    from nas.searches.store import open_run

    from nas.dsl import parse_arch

    cfg = SearchConfig(
        trials=1, epochs=1, final_epochs=1, strategy_options={"seed_archs": ["mlp_cpu"]}
    )
    run = tmp_path / "run"
    Search(cfg, run).run()
    meta = _props(run / "best.onnx")
    assert NETWORK_KEYS | {"dataset", "input_mean", "input_std", "input_scale"} <= set(meta)
    _, store = open_run(run)
    best = max((r for r in store.records() if r.ok), key=lambda r: r.values["accuracy"])
    assert parse_arch(meta["architecture"]) == parse_arch(best.arch)
    assert meta["space"] == "einspace" and meta["dataset"] == "unseen:language"
    assert "stand-in" in meta["dataset_source"]
    info = json.loads((run / "run.json").read_text())["input"]
    assert json.loads(meta["input_shape"]) == info["shape"] == [1, 24, 24]
    assert int(meta["num_classes"]) == info["num_classes"] == 10
    assert meta["nas_version"] == __version__ and meta["weights"] == "trained"
    mean, std = json.loads(meta["input_mean"]), json.loads(meta["input_std"])
    assert len(mean) == len(std) == 1 and 0 < mean[0] < 1 and std[0] > 0  # one channel
    assert float(meta["input_scale"]) == 1.0 and "input_mean[c]" in meta["normalisation"]


def test_nas_export_writes_the_same_metadata(nas_cli, tmp_path: Path) -> None:
    from nas.dsl import parse_arch

    arch = "seq(compute(linear(out=16)),compute(leakyrelu))"
    out = tmp_path / "m.onnx"
    code, _, err = nas_cli(
        "export", arch, "--space", "einspace", "--input-shape", "1x8x8", "--num-classes", "5",
        "-o", str(out), "--seed", "3",
    )  # fmt: skip
    assert code == 0, err
    meta = _props(out)
    assert set(meta) == NETWORK_KEYS
    assert parse_arch(meta["architecture"]) == parse_arch(arch) and meta["space"] == "einspace"
    assert json.loads(meta["input_shape"]) == [1, 8, 8] and meta["num_classes"] == "5"
    assert meta["weights"] == "untrained (freshly initialised, seed 3)"
    assert meta["normalisation"].startswith("none") and meta["nas_version"] == __version__
    from nas.export import read_metadata

    assert read_metadata(out) == meta  # the library's reader gives the same


def test_a_table_search_says_its_weights_are_untrained(tmp_path: Path) -> None:
    from nas.searches import Search, SearchConfig

    cfg = SearchConfig(space="nb201", dataset="nb201:cifar100", strategy="rs", trials=2)
    Search(cfg, tmp_path / "run").run()
    meta = _props(tmp_path / "run" / "best.onnx")
    assert meta["space"] == "nb201" and meta["dataset"] == "nb201:cifar100"
    assert "untrained" in meta["weights"] and meta["normalisation"].startswith("none")


def test_a_zoo_export_says_its_family_config_and_version(nas_cli, tmp_path: Path) -> None:
    out = tmp_path / "z.onnx"
    code, _, err = nas_cli("zoo", "export", "toyzoo", "-o", str(out), "--config", '{"width": 8}')
    assert code == 0, err
    meta = _props(out)
    assert meta["family"] == "toyzoo" and meta["nas_version"] == __version__
    assert json.loads(meta["config"])["width"] == 8 and meta["task"]
    assert json.loads(meta["input_names"]) and "untrained" in meta["weights"]


def test_a_zoo_searchs_best_onnx_says_its_space_task_and_architecture(tmp_path: Path) -> None:
    from nas.searches import Search, SearchConfig
    from nas.zoo import config_from_arch

    cfg = SearchConfig(space="zoo:toyzoo", strategy="rs", trials=1, epochs=1, final_epochs=1)
    Search(cfg, tmp_path / "run").run()
    meta = _props(tmp_path / "run" / "best.onnx")
    assert meta["space"] == "zoo:toyzoo" and meta["family"] == "toyzoo"
    assert meta["dataset"] == meta["task"] and meta["weights"] == "trained"
    _, config = config_from_arch(meta["architecture"])
    assert json.loads(meta["config"]) == config and meta["nas_version"] == __version__
