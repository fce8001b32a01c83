"""``nas rank --labels``: few-shot ranking on the user's own trained files (issue 28).

Real NB201 networks exported to ONNX, labelled with their NB201 test accuracy; the CLI runs
in-process with the bundled model. The fit itself is checked on sets whose labels follow a
signal the zero-shot order contradicts.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

CELLS = [
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|",
    "|avg_pool_3x3~0|+|none~0|none~1|+|none~0|none~1|avg_pool_3x3~2|",
    "|nor_conv_1x1~0|+|skip_connect~0|nor_conv_1x1~1|+|none~0|skip_connect~1|avg_pool_3x3~2|",
    "|nor_conv_3x3~0|+|none~0|nor_conv_1x1~1|+|skip_connect~0|none~1|nor_conv_3x3~2|",
    "|skip_connect~0|+|skip_connect~0|skip_connect~1|+|skip_connect~0|skip_connect~1|none~2|",
    "|nor_conv_1x1~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|nor_conv_1x1~0|none~1|nor_conv_3x3~2|",
]


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, float]]:
    """A folder of exported NB201 networks and their NB201 CIFAR-10 test accuracies."""
    from nas.benchmarks.nb201 import NB201Table
    from nas.compile import compile_arch
    from nas.export import export_onnx
    from nas.nb201 import from_nb201

    table = NB201Table.load()
    root = tmp_path_factory.mktemp("labels")
    (root / "xdg").mkdir()
    acc = {}
    for k, cell in enumerate(CELLS):
        folder = root / ("other" if k == len(CELLS) - 1 else "models")
        path = export_onnx(
            compile_arch(from_nb201(cell), (3, 32, 32), 10), (3, 32, 32), folder / f"n{k}.onnx"
        )
        acc[path.name] = table.accuracy(cell)
    return root, acc


@pytest.fixture
def rank(nas_cli, models, monkeypatch):
    """``nas rank ROOT/models ...`` with a shared embedding cache: (code, stdout, stderr)."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(models[0] / "xdg"))
    return lambda *args: nas_cli("rank", str(models[0] / "models"), "--no-proxy", *args)


def _csv(path: Path, lines: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(["file,accuracy", *lines]) + "\n")
    return path


def _one_line_error(code: int, out: str, err: str, words: str) -> None:
    assert code != 0 and "Traceback" not in out + err
    assert len(err.strip().splitlines()) == 1 and words in err, err


def test_relative_and_absolute_paths_mark_the_labelled_files(rank, models) -> None:
    root, acc = models
    labels = _csv(
        root / "csv" / "labels.csv",
        [
            f"../models/n0.onnx,{acc['n0.onnx']}",  # relative to the CSV's folder
            f"{root / 'models' / 'n1.onnx'},{acc['n1.onnx']}",  # absolute
            f"../models/n2.onnx,{acc['n2.onnx']}",
            f"../models/n3.onnx,{acc['n3.onnx']}",
        ],
    )
    code, out, err = rank("--labels", str(labels), "--json")
    assert code == 0, err
    res = json.loads(out)
    marked = {Path(r["file"]).name: r["accuracy"] for r in res["ranked"] if r["labelled"]}
    assert marked == {f"n{k}.onnx": pytest.approx(acc[f"n{k}.onnx"]) for k in range(4)}
    assert all(r["accuracy"] is None for r in res["ranked"] if not r["labelled"])
    assert len(res["ranked"]) == 5 and res["model"] == "nb201-v1"
    assert res["mode"]["name"] == "few-shot" and res["mode"]["k"] == 4
    assert res["header"].startswith("model: nb201-v1; mode: few-shot, k=4")
    code, out, err = rank("--labels", str(labels))
    assert code == 0, err
    lines = out.splitlines()
    assert any(line.startswith("model: nb201-v1; mode: few-shot, k=4") for line in lines)
    head = next(line for line in lines if "rank" in line and "score" in line)
    assert "label" in head  # the column of the user's accuracies


def test_a_labelled_file_beside_the_set_is_read_and_ranked_with_it(rank, models) -> None:
    root, acc = models
    beside = root / "other" / "n5.onnx"
    labels = _csv(
        root / "beside.csv",
        [f"models/n{k}.onnx,{acc[f'n{k}.onnx']}" for k in range(3)]
        + [f"other/n5.onnx,{acc['n5.onnx']}"],
    )
    code, out, err = rank("--labels", str(labels), "--json")
    assert code == 0, err
    rows = {Path(r["file"]).resolve(): r for r in json.loads(out)["ranked"]}
    assert len(rows) == 6 and rows[beside.resolve()]["labelled"]
    assert json.loads(out)["score"]["files_scored"] == 6


def test_a_labelled_file_that_does_not_exist_is_a_one_line_error(rank, models) -> None:
    labels = _csv(models[0] / "missing.csv", ["models/n0.onnx,90", "models/gone.onnx,91"])
    _one_line_error(*rank("--labels", str(labels)), "line 3: no such file 'models/gone.onnx'")


@pytest.mark.parametrize("value", ["ninety", "nan", ""])
def test_a_label_that_is_not_a_number_is_a_one_line_error(rank, models, value) -> None:
    labels = _csv(models[0] / "bad.csv", ["models/n0.onnx,90", f"models/n1.onnx,{value}"])
    words = f"line 3: accuracy must be a finite number, not {value!r}"
    _one_line_error(*rank("--labels", str(labels)), words)


def test_a_csv_without_the_columns_or_rows_is_a_one_line_error(rank, models) -> None:
    wrong = models[0] / "wrong.csv"
    wrong.write_text("path,acc\nmodels/n0.onnx,90\n")
    _one_line_error(*rank("--labels", str(wrong)), "missing: file, accuracy")
    empty = _csv(models[0] / "empty.csv", [])
    _one_line_error(*rank("--labels", str(empty)), "lists no file")
    _one_line_error(*rank("--labels", str(models[0] / "nope.csv")), "cannot read the labels")


def test_one_label_keeps_the_zero_shot_order_and_says_so(rank, models) -> None:
    root, acc = models
    code, out, err = rank("--json")
    assert code == 0, err
    zero = json.loads(out)
    assert zero["mode"] == {"name": "zero-shot"}
    assert zero["header"] == "model: nb201-v1; mode: zero-shot"
    assert not any(r["labelled"] for r in zero["ranked"])
    labels = _csv(root / "one.csv", [f"models/n2.onnx,{acc['n2.onnx']}"])
    code, out, err = rank("--labels", str(labels), "--json")
    assert code == 0, err
    one = json.loads(out)
    assert one["mode"]["k"] == 1 and not one["mode"]["fitted"]
    assert "k=1 < 10: zero-shot order kept" in one["mode"]["note"]
    assert [r["file"] for r in one["ranked"]] == [r["file"] for r in zero["ranked"]]
    code, out, err = rank("--labels", str(labels))
    assert "mode: few-shot, k=1 (k=1 < 10: zero-shot order kept)" in out


def test_the_zero_shot_header_names_model_mode_and_set(rank) -> None:
    code, out, err = rank()
    assert code == 0, err
    lines = out.splitlines()
    at = lines.index("model: nb201-v1; mode: zero-shot")
    assert lines[at + 1].startswith("score: predicted quality within this set of 5 files")
    assert "label" not in next(line for line in lines if "rank" in line and "score" in line)


# ------------------------------------------------------------------- the fit, in Python
def _set(n: int, seed: int = 0):
    """Graph records of ``n`` chains of different sizes (params, depth vary)."""
    from nas.predictors.record import GraphRecord

    rng = np.random.default_rng(seed)
    recs = []
    for _ in range(n):
        d = int(rng.integers(2, 30))
        texts = ["Input -> Nx4"] + ["Relu -> Nx4"] * d
        edges = [(i, i + 1) for i in range(d)]
        size = int(rng.integers(1, 10**6))
        recs.append(GraphRecord(texts, edges, size, int(rng.integers(1, 10**8))))
    return recs


def test_the_fit_follows_labels_the_zero_shot_order_contradicts() -> None:
    from nas.predictors.fewshot import fit_few_shot, set_features, spearman

    recs = _set(200)
    params = np.array([r.params for r in recs], float)
    zero = -params  # the zero-shot order says small is good
    lab = np.arange(16)
    fit = fit_few_shot(set_features(recs, zero), zero, lab, params[lab])  # big is good
    assert fit.fitted and fit.k == 16 and fit.pairs > 0.9 > fit.pairs_zero
    rest = np.arange(16, 200)
    assert spearman(fit.scores[rest], params[rest]) > 0.9
    agree = fit_few_shot(set_features(recs, params), params, lab, params[lab])
    assert not agree.fitted and np.array_equal(agree.scores, params)  # nothing to gain


def test_rank_files_in_python_takes_labels(models, monkeypatch) -> None:
    from nas.predictors.labels import read_labels
    from nas.predictors.model import Predictor
    from nas.predictors.rank import rank_set

    root, acc = models
    monkeypatch.setenv("XDG_CACHE_HOME", str(root / "xdg"))
    csv = _csv(root / "py.csv", [f"models/n{k}.onnx,{acc[f'n{k}.onnx']}" for k in range(4)])
    files = sorted((root / "models").glob("*.onnx"))
    res = rank_set(files, Predictor.load(), labels=read_labels(csv))
    assert res.model == "nb201-v1" and res.mode["k"] == 4
    assert sum(r["labelled"] for r in res.rows) == 4 and not res.errors


# ------------------------------------------------------------- the predictor strategy
def test_the_predictor_strategy_refits_on_its_finished_trials(tmp_path: Path) -> None:
    """Fitness that rewards small networks (the opposite of what nb201-v1 learned): once
    trials have finished, the pool's order follows it."""
    from nas.predictors.benches.run_bench import arch_record
    from nas.predictors.fewshot import spearman
    from nas.searches import create_strategy
    from nas.searches._predictor import predictor_scorer

    from nas.sampling import Sampler
    from nas.space import load_space

    nb = load_space("nb201")
    draw = Sampler(nb, seed=5)
    cells = list({str(a): a for a in (draw.sample() for _ in range(60))}.values())[:40]
    small = {str(a): -float(arch_record(a, nb, str(tmp_path)).params) for a in cells}
    score = predictor_scorer(nb)
    pool, done = cells[:24], [(a, small[str(a)]) for a in cells[24:]]
    zero = score(pool)
    assert score.mode == {"name": "zero-shot"}
    fitted = score(pool, done)
    target = np.array([small[str(a)] for a in pool])
    assert score.mode["k"] == 16 and score.mode["fitted"]
    assert spearman(fitted, target) > 0.8 > spearman(zero, target)
    s = create_strategy("predictor", nb, seed=0, pool=16, batch=4)
    for _ in range(4):
        a = s.ask()
        s.tell(a, {"accuracy": -float(arch_record(a, nb, str(tmp_path)).params)})
    s.ask()  # the second round: scored with the four finished trials
    assert s.scorer.mode["name"] == "few-shot" and s.scorer.mode["k"] == 4
