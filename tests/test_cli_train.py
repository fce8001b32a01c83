"""``nas datasets`` and ``nas train`` from the command line."""

from __future__ import annotations

import json

import pytest


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("NAS_DATA_DIR", raising=False)
    monkeypatch.setenv("COLUMNS", "200")


def test_datasets_list_says_what_this_machine_has(nas_cli) -> None:
    code, out, _ = nas_cli("datasets", "list")
    assert code == 0
    rows = {line.split()[1]: line for line in out.splitlines() if "unseen:" in line}
    assert "stand-in" in rows["unseen:addnist"] and "3x28x28" in rows["unseen:addnist"]
    assert "missing" in rows["unseen:gutenberg"]


def test_datasets_prepare_generates_and_reports(nas_cli, tmp_path) -> None:
    code, out, err = nas_cli("datasets", "prepare", "unseen:language")
    assert code == 0, err
    assert "stand-in" in out and "1x24x24, 10 classes" in out
    assert any((tmp_path / "cache").rglob("*.npz"))


def test_real_only_dataset_without_files_is_a_one_line_error(nas_cli) -> None:
    code, _, err = nas_cli("datasets", "prepare", "unseen:gutenberg")
    assert code == 2 and err.count("\n") == 1 and "--data-dir" in err


def test_train_prints_json_result(nas_cli) -> None:
    arch = "seq(route(im2col(k=4,s=4,p=0),compute(linear(out=32)),col2im),compute(leakyrelu))"
    code, out, err = nas_cli(
        "train",
        arch,
        "--dataset",
        "unseen:addnist",
        "--epochs",
        "1",
        "--json",
    )
    assert code == 0, err
    res = json.loads(out)
    assert res["status"] == "ok" and res["arch"] == arch
    assert 0.0 <= res["valid"]["accuracy"] <= 1.0 and res["params"] > 0


def test_train_unknown_seed_and_bad_preset(nas_cli) -> None:
    code, _, err = nas_cli("train", "seed:resnet99")
    assert code == 2 and "unknown seed 'resnet99'" in err and "resnet18" in err
    code, _, err = nas_cli("train", "seed:resnet18", "--preset", "fast")
    assert code == 2 and "unknown training preset 'fast'" in err
    # a typo in the epoch count is refused, not a training that never ends
    code, _, err = nas_cli("train", "seed:mlp_cpu", "--dataset", "unseen", "--epochs", "10**9")
    assert code == 2
    code, _, err = nas_cli("train", "seed:mlp_cpu", "--dataset", "unseen", "--epochs", "999999999")
    assert code == 2 and err.strip() == "error: epochs must be at most 100,000, got 999,999,999."


def test_train_dispatches_on_the_space_scheme_registry(nas_cli, monkeypatch) -> None:
    from nas.cli.train import TRAIN_TARGETS
    from nas.space import SPACE_SCHEMES, space_scheme

    assert space_scheme("zoo:moe") == "zoo"
    assert space_scheme("seed:resnet18") is None and space_scheme("einspace") is None
    assert space_scheme("nb201:cifar10") is None  # a dataset scheme, not a space's
    # A new space scheme with a trainer of its own: no edit of the train command.
    seen = []
    monkeypatch.setitem(SPACE_SCHEMES._items, "toyscheme", lambda name: None)
    monkeypatch.setitem(TRAIN_TARGETS._items, "toyscheme", seen.append)
    code, _, err = nas_cli("train", "toyscheme:x", "--epochs", "3")
    assert code == 0, err
    # Flags left out reach the target as None, so it can tell them from given ones.
    assert [(r.arch, r.epochs, r.preset) for r in seen] == [("toyscheme:x", 3, None)]
    code, _, err = nas_cli("train", "seed:resnet18", "--config", "{}")
    assert code == 2 and "--config and --output apply to zoo:FAMILY only." in err
