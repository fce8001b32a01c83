"""``nas bench build|from-run`` and ``nas predictor train|eval`` end to end (small sizes)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

FIXTURE = Path(__file__).parent / "data" / "predictor" / "nb201-150"


@pytest.fixture
def cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An isolated embedding cache (XDG cache home) for the commands."""
    home = tmp_path_factory.getbasetemp() / "bench-cli-xdg"
    monkeypatch.setenv("XDG_CACHE_HOME", str(home))
    return home


def test_bench_build_nb201_and_nb101(nas_cli, tmp_path) -> None:
    from nas.predictors.benches.bench import Bench

    code, out, err = nas_cli(
        "bench", "build", "--space", "nb201", "--n", "8", "--labels", "cifar10,imagenet16-120",
        "--workers", "1", "-o", str(tmp_path / "nb201"),
    )  # fmt: skip
    assert code == 0, err
    assert "8 records" in out
    b = Bench.load(tmp_path / "nb201")
    assert len(b) == 8 and b.label_names == ["cifar10", "imagenet16-120"]
    assert b.meta["groups"] == "UniqueString" and b.meta["method"] == "direct"

    code, out, err = nas_cli(
        "bench", "build", "--space", "nb101", "--n", "2", "--workers", "1",
        "-o", str(tmp_path / "nb101"),
    )  # fmt: skip
    assert code == 0, err
    b = Bench.load(tmp_path / "nb101")
    assert len(b) == 2 and b.label_names == ["cifar10"]
    assert "synflow" in b.proxy_names and not np.isnan(b.proxies).any()
    assert all(70 < v < 100 for v in b.label())


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["bench", "build", "--space", "nb999", "-o", "X"], "unknown bench space 'nb999'"),
        (["bench", "build", "--labels", "cifar11", "-o", "X"], "unknown NB201 label 'cifar11'"),
        (["bench", "build", "--space", "nb101", "--labels", "cifar100", "-o", "X"], "NB101"),
        (["bench", "build", "--n", "15626", "-o", "X"], "--n must lie in 1..15625"),
        (["bench", "build", "--labels", ",", "-o", "X"], "--labels is empty"),
        (["bench", "from-run", "NOPE", "-o", "X"], "not a directory"),
        (["predictor", "eval", "--bench", "NOPE"], "does not exist"),
        (["predictor", "train", "--bench", "NOPE", "-o", "X"], "does not exist"),
    ],
)
def test_user_mistakes_give_one_line(nas_cli, tmp_path, monkeypatch, args, message) -> None:
    monkeypatch.chdir(tmp_path)
    code, _out, err = nas_cli(*args)
    assert code == 2
    assert err.startswith("error: ") and message in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "X").exists()


def _search_then_bench(nas_cli, tmp_path: Path, *search: str) -> tuple[Path, str]:
    """A random search with ``search``'s options into tmp_path/run, then ``nas bench
    from-run`` of it into tmp_path/b: (the run folder, the bench command's output)."""
    run = tmp_path / "run"
    code, _, err = nas_cli("search", "--strategy", "rs", *search, "--run-dir", str(run))
    assert code == 0, err
    code, out, err = nas_cli("bench", "from-run", str(run), "-o", str(tmp_path / "b"))
    assert code == 0, err
    return run, out


def test_bench_from_run(nas_cli, tmp_path) -> None:
    from nas.predictors.benches.bench import Bench
    from nas.predictors.benches.nb201_bench import direct_records
    from nas.searches.store import RunStore

    from nas.dsl import parse_arch
    from nas.nb201 import to_nb201

    run, out = _search_then_bench(
        nas_cli, tmp_path, "--space", "nb201", "--dataset", "nb201:cifar10", "--trials", "4"
    )
    b = Bench.load(tmp_path / "b")
    # a table-mode run trains nothing: its label is the table's, with no epoch count
    assert b.meta["label"] == "the benchmark table's accuracy on nb201:cifar10"
    assert "epochs" not in out
    recs = RunStore(run, create=False).records()
    assert b.names == [r.arch for r in recs]
    assert list(b.label()) == [r.values["accuracy"] for r in recs]
    direct = direct_records([to_nb201(parse_arch(a)) for a in b.names])
    assert b.params.tolist() == [r.params for r in direct]

    code, _, err = nas_cli("bench", "from-run", str(tmp_path / "b"), "-o", str(tmp_path / "c"))
    assert code == 2 and "not a search run" in err


def test_a_bench_is_never_replaced_unasked(nas_cli, tmp_path) -> None:
    """-o naming a bench needs --overwrite; a folder of other files is refused; no temp left."""
    from nas.predictors.benches.bench import Bench

    _search_then_bench(
        nas_cli, tmp_path, "--space", "nb201", "--dataset", "nb201:cifar10", "--trials", "3"
    )
    bench = tmp_path / "b"
    before = {f.name: f.read_bytes() for f in bench.iterdir()}
    assert sorted(before) == ["bench.json", "bench.npz"]
    for cmd in (
        ("bench", "from-run", str(tmp_path / "run"), "-o", str(bench)),
        ("bench", "build", "--space", "nb201", "--n", "5", "-o", str(bench)),
    ):
        code, _, err = nas_cli(*cmd)
        assert code == 2 and "already holds a bench" in err and "--overwrite" in err
        assert {f.name: f.read_bytes() for f in bench.iterdir()} == before
    other = tmp_path / "notes"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    code, _, err = nas_cli("bench", "build", "--n", "5", "-o", str(other), "--overwrite")
    assert code == 2 and "folder of other files" in err
    assert [f.name for f in other.iterdir()] == ["keep.txt"]
    code, _, err = nas_cli("bench", "build", "--n", "5", "-o", str(bench), "--overwrite")
    assert code == 0, err
    assert sorted(f.name for f in bench.iterdir()) == ["bench.json", "bench.npz"]
    assert len(Bench.load(bench)) == 5


def test_run_bench_exports_other_spaces(tmp_path) -> None:
    import torch
    from nas.predictors.benches.run_bench import arch_record
    from nas.predictors.record import file_record

    from nas.compile import compile_arch
    from nas.dsl import parse_arch
    from nas.export import export_onnx
    from nas.space import load_space

    space = load_space("einspace").with_input((3, 16, 16), 5)
    node = parse_arch(
        "seq(route(im2col(k=3,s=1,p=1),compute(linear(out=8)),col2im),compute(norm))"
    )
    rec = arch_record(node, space, str(tmp_path))
    torch.manual_seed(0)
    model = compile_arch(node, (3, 16, 16), 5, space.mode)
    assert rec == file_record(export_onnx(model, (3, 16, 16), tmp_path / "ref.onnx"))


def test_bench_from_a_zoo_run(nas_cli, tmp_path) -> None:
    """A zoo search's bench: one record per distinct config, the family's own export of it,
    labelled with the mean accuracy of its trials; another family's run is refused."""
    import json

    import zoo_toy  # noqa: F401  (registers zoo:toyzoo)
    from nas.predictors.benches.bench import Bench
    from nas.predictors.record import file_record
    from nas.searches.store import RunStore
    from nas.zoo import config_from_arch, export_config

    run, out = _search_then_bench(
        nas_cli, tmp_path, "--space", "zoo:toyzoo", "--trials", "6", "--epochs", "2",
        "--final-epochs", "0",
    )  # fmt: skip
    b = Bench.load(tmp_path / "b")
    labels: dict[str, list[float]] = {}
    for t in RunStore(run, create=False).records():
        if t.ok:
            labels.setdefault(t.arch, []).append(t.values["accuracy"])
    assert len(labels) >= 2 and b.names == list(labels)
    assert np.allclose(b.label(), [np.mean(v) for v in labels.values()])
    assert f"wrote {tmp_path / 'b'}: {len(labels)} records" in " ".join(out.split())
    assert b.meta["space"] == "zoo:toyzoo" and "r2 on zoo task wave" in b.meta["label"]
    family, config = config_from_arch(b.names[0])
    path, _ = export_config(family, tmp_path / "ref.onnx", config, seed=0)
    ref = file_record(path)
    assert (b.params[0], b.flops[0]) == (ref.params, ref.flops)
    assert b.params[0] == sum(
        p.numel() for p in family.build(config, family.make_data("wave")).parameters()
    )

    other = tmp_path / "other"
    shutil.copytree(run, other)
    info = json.loads((other / "run.json").read_text())
    info["options"]["space"] = "zoo:moe"
    (other / "run.json").write_text(json.dumps(info))
    code, _, err = nas_cli("bench", "from-run", str(run), str(other), "-o", str(tmp_path / "c"))
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "has space 'zoo:moe' but" in err and "one protocol" in err
    assert not (tmp_path / "c").exists()


def test_predictor_train_and_eval(nas_cli, tmp_path, cache) -> None:
    import json

    bench = tmp_path / "bench"
    shutil.copytree(FIXTURE, bench)
    model = tmp_path / "model"
    code, out, err = nas_cli(
        "predictor", "train", "--bench", str(bench), "-o", str(model), "--n-train", "100",
        "--steps", "20", "--batch-size", "32", "--hidden", "16", "--layers", "2",
    )  # fmt: skip
    assert code == 0, err
    assert "kendall" in out and "spearman" in out and "p@5%" in out and "flops" in out
    meta = json.loads((model / "config.json").read_text())["meta"]
    assert meta["split"].startswith("by group") and len(meta["train_groups"]) >= 90

    code, out, err = nas_cli("predictor", "eval", "--model", str(model), "--bench", str(bench))
    assert code == 0, err
    assert "rows of the model's training groups left out" in out
    assert "predictor" in out and "params" in out

    code, _, err = nas_cli("predictor", "eval", "--bench", str(bench), "--label", "nope")
    assert code == 2 and "has no label 'nope'" in err


def test_bench_from_several_runs(nas_cli, tmp_path) -> None:
    import json

    from nas.predictors.benches.bench import Bench
    from nas.searches.store import RunStore

    for seed in ("0", "1"):
        code, _, err = nas_cli(
            "search", "--space", "nb201", "--dataset", "nb201:cifar10", "--strategy", "rs",
            "--trials", "3", "--seed", seed, "--run-dir", str(tmp_path / f"run{seed}"),
        )  # fmt: skip
        assert code == 0, err
    shutil.copytree(tmp_path / "run0", tmp_path / "again")  # every architecture twice
    runs = [str(tmp_path / r) for r in ("run0", "run1", "again")]
    code, out, err = nas_cli("bench", "from-run", *runs, "-o", str(tmp_path / "b"))
    assert code == 0, err
    b = Bench.load(tmp_path / "b")
    labels: dict[str, list[float]] = {}
    for r in ("run0", "run1", "again"):
        for t in RunStore(tmp_path / r, create=False).records():
            labels.setdefault(t.arch, []).append(t.values["accuracy"])
    assert b.names == list(labels)
    assert np.allclose(b.label(), [np.mean(v) for v in labels.values()])
    assert b.meta["trials"] == 9 and len(b.meta["runs"]) == 3
    assert b.meta["protocol"]["dataset"] == "nb201:cifar10"
    assert f"{len(b)} records from 3 runs (9 trials)" in out

    info = json.loads((tmp_path / "again" / "run.json").read_text())
    info["options"]["epochs"] = 99
    (tmp_path / "again" / "run.json").write_text(json.dumps(info))
    code, _, err = nas_cli("bench", "from-run", *runs, "-o", str(tmp_path / "c"))
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "has epochs 99 but" in err and "one protocol" in err
    assert not (tmp_path / "c").exists()


def test_merge_trials_keeps_mean_label_and_measures_repeat_noise() -> None:
    from nas.predictors.benches.run_bench import merge_trials, repeat_sd
    from nas.searches.store import TrialRecord

    def rec(n: int, arch: str, acc: float | None, status: str = "ok") -> TrialRecord:
        return TrialRecord(n, arch, status, values={} if acc is None else {"accuracy": acc})

    trials = [
        rec(0, "a", 0.5), rec(1, "b", 0.2), rec(2, "a", 0.7), rec(3, "c", None),
        rec(4, "d", 0.9, "timeout"), rec(5, "b", 0.2),
    ]  # fmt: skip
    archs, labels, counts = merge_trials(trials)
    assert archs == ["a", "b"]
    assert np.allclose(labels, [0.6, 0.2]) and counts.tolist() == [2, 2]
    # pooled over a (0.5, 0.7: squares 0.02) and b (no spread), 2 degrees of freedom
    assert repeat_sd(trials) == pytest.approx(0.1)
    assert repeat_sd(trials[:2]) is None


def test_predictor_eval_scores_with_the_model_nas_rank_would_pick(
    nas_cli, tmp_path, cache
) -> None:
    from nas.predictors.benches.bench import Bench
    from nas.predictors.model import DEFAULT_MODEL, TRANSFER_MODEL

    code, out, err = nas_cli("predictor", "eval", "--bench", str(FIXTURE))
    assert code == 0, err
    assert out.splitlines()[0] == f"model: {DEFAULT_MODEL} (bundled)"
    # the same graphs written with ops nb201-v1 never saw: a set nas rank routes away
    b = Bench.load(FIXTURE)
    b.vocab = ["Einsum" + t[len(t.split(" ", 1)[0]) :] for t in b.vocab]
    b.save(tmp_path / "other")
    code, out, err = nas_cli("predictor", "eval", "--bench", str(tmp_path / "other"))
    first = out.splitlines()[0] if out else ""
    assert first.startswith(f"model: {TRANSFER_MODEL}, as nas rank picks for these rows")
    assert code == 0, err  # the transfer model's own NB201 training groups are left out
    assert "rows of the model's training groups left out" in out.splitlines()[1]
