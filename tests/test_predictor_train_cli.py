"""``nas predictor train`` on several spaces' benches, with a recipe of the LOSO registry."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

FIXTURE = Path(__file__).parent / "data" / "predictor" / "nb201-150"
B = 59  # rows of space b
FAST = ("--steps", "12", "--batch-size", "16", "--hidden", "16", "--layers", "1")


@pytest.fixture
def cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An embedding cache (XDG cache home) shared with tests/test_bench_cli.py."""
    home = tmp_path_factory.getbasetemp() / "bench-cli-xdg"
    monkeypatch.setenv("XDG_CACHE_HOME", str(home))
    return home


@pytest.fixture(scope="module")
def spaces(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The 150-cell fixture cut into benches of two 'spaces' with no group in common: ``a``
    (80 rows, built from search runs, so its default weight is 0.5) and ``b`` (59 rows, a
    table bench), and ``c``, a third space whose only label is ``accuracy``."""
    from nas.predictors.benches.bench import Bench

    root = tmp_path_factory.mktemp("spaces")
    bench = Bench.load(FIXTURE)
    in_a = set(bench.groups[:80])
    rest = [i for i in range(80, 150) if bench.groups[i] not in in_a]
    a, b, c = bench.subset(range(80)), bench.subset(rest), bench.subset(range(30))
    assert len(b) == B
    a.meta = {"space": "a", "source": "search runs x"}
    b.meta = {"space": "b"}
    b.labels = b.labels * 0.01 + 50  # another task's accuracies: not comparable with a's
    c.meta, c.labels, c.label_names = {}, c.labels[:, :1], ["accuracy"]  # space = folder
    return {k: v.save(root / k) for k, v in {"a": a, "b": b, "c": c}.items()}


def _rows(out: str, after: str) -> dict[str, list[str]]:
    """The metrics table printed after the line starting with ``after``: scorer -> cells."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(after))
    table = {}
    for line in lines[start + 1 :]:
        cells = [c.strip() for c in line.strip("│┃ ").split("│")]
        if line.startswith("└"):
            break
        if len(cells) == 6:
            table[cells[0]] = cells[1:]
    return table


def test_several_benches_train_one_model_that_records_each_space(
    nas_cli, tmp_path, cache, spaces
) -> None:
    from nas.predictors.benches.bench import Bench
    from nas.predictors.training.fit import group_key

    model = tmp_path / "model"
    code, out, err = nas_cli(
        "predictor", "train", "--bench", str(spaces["a"]), "--bench", str(spaces["b"]),
        "--n-train", "100", "--weight", "b=2", "--label", "cifar100", "-o", str(model), *FAST,
    )  # fmt: skip
    assert code == 0, err
    assert "recipe" not in out  # the default recipe changes nothing
    meta = json.loads((model / "config.json").read_text())["meta"]
    assert set(meta["spaces"]) == {"a", "b"}
    assert meta["spaces"]["a"]["weight"] == 0.5 and meta["spaces"]["b"]["weight"] == 2.0
    assert {s["label"] for s in meta["spaces"].values()} == {"cifar100"}
    assert meta["spaces"]["b"]["bench"] == str(spaces["b"])
    assert meta["split"] == "by group within each space, seed 0"
    assert meta["recipe"] == "full" and meta["training"]["steps"] == 12
    assert meta["training"]["loss"] == "pairwise"
    n_a, n_b = meta["spaces"]["a"]["rows"], meta["spaces"]["b"]["rows"]
    # each space gives its share of about 100 rows, whole groups
    assert round(100 * 80 / (80 + B)) <= n_a < 80 and round(100 * B / (80 + B)) <= n_b < B
    assert f"trained on {n_a + n_b} rows of 2 spaces" in out
    for name, n in (("a", 80 - n_a), ("b", B - n_b)):
        assert f"test {name}: the {n} rows of the other groups" in out
        assert int(_rows(out, f"test {name}:")["predictor"][0]) == n
    # the model's training groups are the benches' own group names: eval leaves them out
    a = Bench.load(spaces["a"])
    seen = set(meta["train_groups"])
    assert sum(group_key(g) in seen for g in a.groups) == n_a
    code, out, err = nas_cli(
        "predictor", "eval", "--model", str(model), "--bench", str(spaces["a"])
    )
    assert code == 0, err
    assert f"{80 - n_a} rows, label cifar10 ({n_a} rows of the model's training groups" in out


def test_recipe_prior_listnet_wide_is_a_prior_model_eval_accepts(
    nas_cli, tmp_path, cache, spaces
) -> None:
    """The recipe's settings and its third of the steps reach the model and its meta; eval
    on one space's own bench gives the table training printed for that space."""
    model = tmp_path / "model"
    args = ("--steps", "30", "--batch-size", "16", "--hidden", "16", "--layers", "1")
    code, out, err = nas_cli(
        "predictor", "train", "--bench", str(spaces["a"]), "--bench", str(spaces["b"]),
        "--n-train", "90", "--recipe", "prior-listnet-wide", "-o", str(model), *args,
    )  # fmt: skip
    assert code == 0, err
    assert "recipe prior-listnet-wide:" in out and "steps 30 -> 10" in out
    assert "loss pairwise -> listnet" in out and "10/10" in out
    config = json.loads((model / "config.json").read_text())
    assert (config["prior"], config["globals_norm"], config["correction"]) == ("params", "set", 2)
    assert config["meta"]["recipe"] == "prior-listnet-wide"
    assert config["meta"]["training"]["steps"] == 10
    assert config["meta"]["training"]["loss"] == "listnet"
    trained = _rows(out, "test b:")
    code, out, err = nas_cli(
        "predictor", "eval", "--model", str(model), "--bench", str(spaces["b"])
    )
    assert code == 0, err
    evaluated = _rows(out, str(spaces["b"]))
    assert evaluated["predictor"] == trained["predictor"]  # rows, kendall, spearman, p@k
    assert evaluated["params"] == trained["params"]


def test_one_bench_records_its_space_and_recipe(nas_cli, tmp_path, cache, spaces) -> None:
    model = tmp_path / "model"
    code, out, err = nas_cli(
        "predictor", "train", "--bench", str(spaces["c"]), "-o", str(model), *FAST
    )
    assert code == 0, err
    assert f"wrote {model}: trained on 30 rows in" in " ".join(out.split())
    meta = json.loads((model / "config.json").read_text())["meta"]
    assert meta["trained_on"] == "bench c: 30 rows, label accuracy"
    assert meta["split"] == "every row" and meta["recipe"] == "full"
    assert meta["spaces"] == {"c": {"bench": str(spaces["c"]), "rows": 30, "weight": 1.0,
                                    "label": "accuracy"}}  # fmt: skip


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--recipe", "fulll"], "unknown recipe 'fulll'; choose from full, no-signals"),
        (["--recipe", "op-only text"], "recipe 'op-only text' is a LOSO-only ablation"),
        (["--recipe", "prior-short", "--steps", "2"], "leaves 0 of 2 steps"),
        (["--bench", "A"], "are both of space 'a'"),
        (["--bench", "B", "--weight", "b=-1"], "weight of 'b' must be a finite number >= 0"),
        (["--bench", "B", "--weight", "b=lots"], "--weight takes SPACE=W"),
        (["--bench", "B", "--weight", "nb201=1"], "--weight names space 'nb201', which no"),
        (["--weight", "a=1"], "--weight needs several benches"),
        (["--bench", "B", "--weight", "a=0", "--weight", "b=0"], "every space has weight 0"),
        (["--bench", "C", "--label", "cifar10"], "c: the bench has no label 'cifar10'"),
        (["--bench", "B", "--n-train", "139"], "--n-train must lie in 2..138"),
        # absurd sizes are refused before any memory is asked for, not a numpy traceback
        (["--steps", "99999999"], "steps must lie in 1..1,000,000, got 99,999,999"),
        (["--hidden", "1000000000"], "hidden must lie in 1..4096, got 1,000,000,000"),
        (["--layers", "1000000"], "layers must lie in 0..64, got 1,000,000"),
        (["--lr", "nan"], "--lr must be positive, but got nan"),  # as the flags are read
        (["--lr", "-1"], "--lr must be positive, but got -1"),
    ],
)
def test_user_mistakes_give_one_line(nas_cli, tmp_path, spaces, extra, message) -> None:
    names = {"A": str(spaces["a"]), "B": str(spaces["b"]), "C": str(spaces["c"])}
    args = [names.get(x, x) for x in extra]
    code, out, err = nas_cli(
        "predictor", "train", "--bench", str(spaces["a"]), *args, "-o", str(tmp_path / "X")
    )
    assert code == 2
    assert err.startswith("error: ") and message in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in out + err
    assert not (tmp_path / "X").exists()


def test_split_within_spaces_holds_out_whole_groups_of_every_space(spaces) -> None:
    from nas.predictors.benches.bench import Bench
    from nas.predictors.training.trainset import training_set

    benches = {k: Bench.load(spaces[k]) for k in ("a", "b")}
    data = training_set(benches, {k: str(spaces[k]) for k in benches}, n_train=60, seed=3)
    space = np.asarray(data.strata)
    assert set(data.test) == {"a", "b"}
    for k, te in data.test.items():
        tr = data.train[space[data.train] == k]
        assert np.all(space[te] == k) and len(tr) == data.spaces[k]["rows"]
        groups = data.bench.groups
        assert not {groups[i] for i in tr} & {groups[i] for i in te}
        assert len(tr) + len(te) == len(benches[k])
    assert data.weights == {"a": 0.5, "b": 1.0}


def test_apply_recipe_copies_and_says_what_it_changed() -> None:
    from nas.predictors.model import ModelConfig
    from nas.predictors.research import loso
    from nas.predictors.training.fit import RankerTrainConfig
    from nas.predictors.training.recipes import (
        RECIPES,
        TEXT_VIEWS,
        apply_recipe,
        changes,
        trainable,
    )

    base = ModelConfig(hidden=32), RankerTrainConfig(steps=90)
    mc, tc = apply_recipe("prior-short", *base)
    assert (mc.prior, tc.steps) == ("params", 30) and base[1].steps == 90
    assert changes(base, (mc, tc)) == [
        "globals_norm train -> set", "prior none -> params", "steps 90 -> 30",
    ]  # fmt: skip
    assert changes(base, apply_recipe("full", *base)) == []
    assert loso.ABLATIONS is RECIPES  # one registry for LOSO and the CLI
    assert set(RECIPES.names()) - set(trainable()) == set(TEXT_VIEWS)


def test_an_output_that_is_not_a_model_folder_is_refused_before_training(
    nas_cli, tmp_path, spaces
) -> None:
    """-o naming a file, or a folder of other files, fails at once and leaves them as they
    were; a model folder is replaced (training again into it is the usual loop)."""
    afile = tmp_path / "notes.txt"
    afile.write_text("keep me")
    other = tmp_path / "results"
    other.mkdir()
    (other / "table.csv").write_text("a,b")
    for target, message in ((afile, "is a file"), (other, "a folder of other files")):
        code, out, err = nas_cli("predictor", "train", "--bench", str(spaces["c"]), "-o",
                                 str(target), *FAST)  # fmt: skip
        assert code == 2 and message in err and "steps" not in out
        assert len(err.strip().splitlines()) == 1
    assert afile.read_text() == "keep me" and os.listdir(other) == ["table.csv"]
    model = tmp_path / "m"
    for _ in range(2):
        code, _, err = nas_cli("predictor", "train", "--bench", str(spaces["c"]), "-o",
                               str(model), *FAST)  # fmt: skip
        assert code == 0, err
    assert sorted(os.listdir(model)) == ["config.json", "domain.json", "model.safetensors"]


def test_domain_json_covers_the_rows_trained_on(nas_cli, tmp_path, spaces) -> None:
    """A weight-0 space is not trained on, so it is not in the model's domain either."""
    from nas.predictors.benches.bench import Bench

    model = tmp_path / "m"
    args = ["--bench", str(spaces["a"]), "--bench", str(spaces["b"]), "--weight", "a=0"]
    code, _, err = nas_cli("predictor", "train", *args, "-o", str(model), *FAST)
    assert code == 0, err
    domain = json.loads((model / "domain.json").read_text())
    b = Bench.load(spaces["b"])
    assert domain["params"] == [int(b.params.min()), int(b.params.max())]
    assert domain["source"].endswith(f"the {len(b)} training rows (b)")


def test_a_prior_signals_model_ranks_files_and_says_when_its_proxy_is_off(
    nas_cli, tmp_path, cache, spaces
) -> None:
    """A model trained with ``--recipe prior-signals`` reads depth, nodes, width and NASWOT:
    `nas rank` feeds it the files' proxies, and with --no-proxy says the proxy was missing."""
    import onnx
    from test_predictor_files import small_model

    model = tmp_path / "model"
    code, out, err = nas_cli(
        "predictor", "train", "--bench", str(spaces["a"]), "--bench", str(spaces["b"]),
        "--recipe", "prior-signals", "-o", str(model), *FAST,
    )  # fmt: skip
    assert code == 0, err
    assert "signals [] -> ['depth', 'nodes', 'width', 'nwot']" in out
    folder = tmp_path / "files"
    folder.mkdir()
    for w in (2, 4, 8):
        onnx.save(small_model(w), str(folder / f"w{w}.onnx"))
    code, out, err = nas_cli("rank", str(folder), "--model", str(model), "--json")
    assert code == 0, err
    rows = json.loads(out)["ranked"]
    assert len(rows) == 3 and all(r["nwot"] is not None for r in rows)
    code, out, err = nas_cli("rank", str(folder), "--model", str(model))
    assert code == 0 and "reads the NASWOT proxy" not in out
    code, out, err = nas_cli("rank", str(folder), "--model", str(model), "--no-proxy")
    assert code == 0, err
    assert "note: model reads the NASWOT proxy, which --no-proxy skips" in " ".join(out.split())
    from nas.predictors.model import TRANSFER_MODEL

    code, out, err = nas_cli("rank", str(folder), "--no-proxy")  # routed to the transfer model
    assert code == 0 and f"note: {TRANSFER_MODEL} reads the NASWOT proxy" in " ".join(out.split())


def test_a_model_flag_that_names_no_model_is_one_line(nas_cli, tmp_path) -> None:
    """--model naming a bench, a file or nothing says what a model folder is."""
    onnx = tmp_path / "a.onnx"
    code, _, err = nas_cli("zoo", "export", "rrn", "-o", str(onnx))
    assert code == 0, err
    (tmp_path / "bench").mkdir()
    (tmp_path / "bench" / "bench.json").write_text("{}")
    for model, what in (("bench", "no config.json"), ("nowhere", "no such folder")):
        code, _, err = nas_cli("rank", str(onnx), "--model", str(tmp_path / model))
        assert code == 2 and f"is not a predictor model ({what})" in err
        assert "nas predictor train" in err and len(err.strip().splitlines()) == 1
