"""``nas show|check|export --run RUN [--rank N]``: the run is the context (space, input,
classes)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

LANGUAGE = (1, 24, 24)  # standin:language: 1x24x24 images, 10 classes (einspace: 3x28x28, 20)
RRN = "rrn(hp(k=steps,v=8),hp(k=hidden,v=64),hp(k=mlp_depth,v=2))"


def _language_archs(n: int) -> list[str]:
    """``n`` einspace architectures valid on the Language input (seeded draws)."""
    from nas.sampling import Sampler
    from nas.space import load_space

    sampler = Sampler(load_space("einspace").with_input(LANGUAGE, 10), seed=0)
    return [str(sampler.sample()) for _ in range(n)]


def _fake_run(
    run: Path,
    archs: list[str],
    *,
    space: str = "einspace",
    dataset: str = "standin:language",
    recorded: dict[str, Any] | None = None,
    ok: bool = True,
) -> Path:
    """A finished search run without the search: run.json and a store of ``archs``, the
    first the best (accuracy falls with the index); ``recorded``: run.json's input (None:
    an older run, which does not record it); ``ok=False``: every trial failed."""
    from nas.searches.store import RunStore

    store = RunStore(run)
    for i, arch in enumerate(archs):
        trial = store.start(arch)
        if ok:
            store.finish(trial, "ok", {"accuracy": 90.0 - i})
        else:
            store.finish(trial, "failed", reason="it broke")
    options = {"space": space, "dataset": dataset, "objective": "accuracy", "storage": None}
    info: dict[str, Any] = {"study": run.name, "options": options, "evaluator": "train"}
    if recorded is not None:
        info["input"] = recorded
    (run / "run.json").write_text(json.dumps(info))
    return run


def _totals(out: str) -> tuple[int, int, int]:
    """(backbone, head, total) parameters of ``nas show``'s last line."""
    m = re.search(r"backbone ([\d,]+) params \+ head ([\d,]+) = ([\d,]+)", out)
    assert m, out
    backbone, head, total = (int(g.replace(",", "")) for g in m.groups())
    return backbone, head, total


def _expected(arch: str, shape: tuple[int, ...], classes: int) -> tuple[int, int]:
    """(backbone, head) parameters of ``arch`` in einspace on ``shape`` with ``classes``."""
    from nas.dsl import parse_arch
    from nas.ops.spec import head_params
    from nas.space import load_space

    a = load_space("einspace").with_input(shape, classes).check(parse_arch(arch))
    return a.params, head_params(a.out[0], classes)


def _one_line_error(code: int, out: str, err: str, message: str) -> None:
    assert code == 2, (out, err)
    assert err.startswith("error: ") and message in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err + out


@pytest.fixture(scope="module")
def archs() -> list[str]:
    return _language_archs(2)


@pytest.mark.parametrize("recorded", [True, False], ids=["input-recorded", "older-run"])
def test_show_and_check_use_the_runs_input_and_classes(nas_cli, tmp_path, archs, recorded):
    """A recorded input, or an older run's dataset, gives 1x24x24 and 10 classes, not
    einspace's 3x28x28 and 20."""
    inp = {"shape": list(LANGUAGE), "mode": "im", "num_classes": 10} if recorded else None
    run = _fake_run(tmp_path / "run", archs, recorded=inp)

    code, out, err = nas_cli("show", "--run", str(run))
    assert code == 0, err
    first = out.splitlines()[0]
    assert first.startswith(f"run {run}: space einspace, input 1x24x24 im, 10 classes")
    assert first.endswith(f"rank 1 (trial 0): {archs[0]}")
    assert out.splitlines()[1] == "input 1x24x24:im"
    backbone, head, total = _totals(out)
    assert (backbone, head) == _expected(archs[0], LANGUAGE, 10) and total == backbone + head

    code, out, err = nas_cli("show", "--run", str(run), "--rank", "2")
    assert code == 0, err
    assert f"rank 2 (trial 1): {archs[1]}" in out
    assert _totals(out)[:2] == _expected(archs[1], LANGUAGE, 10)

    # ARCH given with --run: that architecture, on the run's input (--rank plays no part)
    code, out, err = nas_cli("show", archs[1], "--run", str(run), "--rank", "1")
    assert code == 0, err
    assert "rank" not in out.splitlines()[0] and "input 1x24x24:im" in out
    assert _totals(out)[:2] == _expected(archs[1], LANGUAGE, 10)

    code, out, err = nas_cli("check", "--run", str(run))
    assert code == 0, err
    backbone = _expected(archs[0], LANGUAGE, 10)[0]
    assert out.splitlines()[0].endswith(f"rank 1 (trial 0): {archs[0]}")
    assert out.splitlines()[1].startswith("ok: output ") and f"{backbone:,} backbone" in out


def test_the_recorded_input_wins_over_the_dataset(nas_cli, tmp_path, archs) -> None:
    inp = {"shape": list(LANGUAGE), "mode": "im", "num_classes": 7}
    run = _fake_run(tmp_path / "run", archs, dataset="unseen:addnist", recorded=inp)
    code, out, err = nas_cli("show", "--run", str(run))
    assert code == 0, err
    assert "input 1x24x24 im, 7 classes" in out
    assert _totals(out)[:2] == _expected(archs[0], LANGUAGE, 7)


def test_explicit_flags_must_agree_with_the_run(nas_cli, tmp_path, archs) -> None:
    run = _fake_run(tmp_path / "run", archs)
    same = ("--space", "einspace", "--input-shape", "1x24x24", "--num-classes", "10")
    code, out, err = nas_cli("show", "--run", str(run), *same)
    assert code == 0, err
    assert _totals(out)[:2] == _expected(archs[0], LANGUAGE, 10)
    for cmd in (("show",), ("check",), ("export", "-o", str(tmp_path / "m.onnx"))):
        code, out, err = nas_cli(*cmd, "--run", str(run), "--num-classes", "20")
        _one_line_error(code, out, err, "--num-classes 20 (the run's: 10) disagrees with --run")
    code, out, err = nas_cli("check", "--run", str(run), "--input-shape", "3x28x28")
    _one_line_error(code, out, err, "--input-shape 3x28x28 (the run's: 1x24x24) disagrees")
    code, out, err = nas_cli("check", archs[0], "--run", str(run), "--space", "nb201")
    _one_line_error(code, out, err, "--space nb201 (the run's: einspace) disagrees")
    assert not (tmp_path / "m.onnx").exists()
    for cmd in ("show", "check", "export"):  # the choice is in the help text
        code, out, _ = nas_cli(cmd, "--help")
        assert code == 0 and "that disagree with the run are refused" in " ".join(out.split())


def test_user_mistakes_are_one_line_errors(nas_cli, tmp_path, archs) -> None:
    run = _fake_run(tmp_path / "run", archs)
    failed = _fake_run(tmp_path / "failed", archs[:1], ok=False)
    (tmp_path / "plain").mkdir()
    cases = [
        (("--run", str(tmp_path / "missing")), "no such folder"),
        (("--run", str(tmp_path / "plain")), "is not a search run (no run.json)"),
        (("--run", str(run), "--rank", "0"), "--rank must be at least 1, but got 0"),
        (("--run", str(run), "--rank", "3"), "--rank must be between 1 and 2"),
        ((), "give an architecture or --run RUN_DIR"),
        ((archs[0], "--rank", "2"), "--rank needs --run RUN_DIR"),
    ]
    for cmd in ("show", "check"):
        for args, message in cases:
            _one_line_error(*nas_cli(cmd, *args), message)
        _one_line_error(*nas_cli(cmd, "--run", str(failed)), f"no successful trial to {cmd}")
        code, _, err = nas_cli(cmd, archs[0], "--run", str(failed))  # the context is there
        assert code == 0, err
    onnx = tmp_path / "m.onnx"
    for args, message in cases:
        _one_line_error(*nas_cli("export", *args, "-o", str(onnx)), message)
    _one_line_error(*nas_cli("export", "--run", str(failed), "-o", str(onnx)), "to export")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "run.json").write_text(json.dumps({"options": {"space": "einspace"}, "input": 3}))
    _one_line_error(*nas_cli("show", "--run", str(broken)), "has a malformed input: 3")
    assert not onnx.exists()


def test_export_compiles_for_the_runs_input(nas_cli, tmp_path, archs) -> None:
    import onnxruntime as ort

    run = _fake_run(tmp_path / "run", archs)
    for args, arch in (((), archs[0]), ((archs[1],), archs[1])):
        onnx = tmp_path / "m.onnx"
        code, out, err = nas_cli("export", *args, "--run", str(run), "-o", str(onnx))
        assert code == 0, err
        assert out.startswith(f"run {run}: space einspace, input 1x24x24 im, 10 classes")
        assert (f"rank 1 of {run}: {arch}" in out) == (not args)  # no best.onnx: compiled
        sess = ort.InferenceSession(str(onnx), providers=["CPUExecutionProvider"])
        assert sess.get_inputs()[0].shape[1:] == list(LANGUAGE)
        assert sess.get_outputs()[0].shape[-1] == 10


def test_a_table_run(nas_cli, tmp_path) -> None:
    """A real table-mode NB201 run: show, check and export agree on its rank-2 trial."""
    from nas.searches.store import RunStore

    run = tmp_path / "nb"
    code, _, err = nas_cli(
        "search", "--space", "nb201", "--dataset", "nb201:cifar10", "--trials", "3",
        "--run-dir", str(run),
    )  # fmt: skip
    assert code == 0, err
    second = RunStore(run, create=False).best(2)[1].arch
    for cmd in ("show", "check"):
        code, out, err = nas_cli(cmd, "--run", str(run), "--rank", "2")
        assert code == 0, err
        assert out.splitlines()[0].startswith(f"run {run}: space nb201, input 3x32x32 im, 10 ")
        assert out.splitlines()[0].endswith(f": {second}")
    code, out, err = nas_cli("export", "--run", str(run), "--rank", "2", "-o", str(tmp_path / "x"))
    assert code == 0, err
    assert f"rank 2 of {run}: {second}" in out
    # an older table run (no recorded input) reads the table's input
    info = json.loads((run / "run.json").read_text())
    del info["input"]
    (run / "run.json").write_text(json.dumps(info))
    code, out, err = nas_cli("check", "--run", str(run))
    assert code == 0 and "input 3x32x32 im, 10 classes" in out, err


@pytest.mark.parametrize("recorded", [True, False], ids=["input-recorded", "older-run"])
def test_a_zoo_run_keeps_its_spaces_input(nas_cli, tmp_path, recorded) -> None:
    inp = {"shape": [1], "mode": "col", "num_classes": 2} if recorded else None
    run = _fake_run(tmp_path / "zoo", [RRN], space="zoo:rrn", dataset="sudoku", recorded=inp)
    code, out, err = nas_cli("check", "--run", str(run), "--strict")
    assert code == 0, err
    assert "space zoo:rrn, input 1 col, 2 classes" in out and "derivable" in out
