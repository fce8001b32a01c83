"""``nas search`` end to end: table mode, training mode, failures, kill and resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from nas.searches.store import RunStore


@pytest.fixture(autouse=True)
def _env(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("NAS_DATA_DIR", raising=False)


def _archs(run_dir: Path) -> list[str]:
    return [r.arch for r in RunStore(run_dir, create=False).records()]


@pytest.mark.parametrize("strategy", ["rs", "re", "tpe", "predictor"])
def test_table_mode_is_reproducible_and_reports(nas_cli, tmp_path, strategy) -> None:
    args = [
        "search",
        "--space",
        "nb201",
        "--dataset",
        "nb201:cifar10",
        "--strategy",
        strategy,
        "--trials",
        "15",
        "--seed",
        "3",
    ]
    code, _out, err = nas_cli(*args, "--run-dir", str(tmp_path / "a"))
    assert code == 0, err
    nas_cli(*args, "--run-dir", str(tmp_path / "b"))
    assert _archs(tmp_path / "a") == _archs(tmp_path / "b")  # same seed, same trials
    recs = RunStore(tmp_path / "a", create=False).records()
    assert len(recs) == 15 and all(r.ok and 0 < r.values["accuracy"] < 100 for r in recs)
    assert len({r.arch for r in recs}) == 15
    report = (tmp_path / "a" / "report.md").read_text()
    assert report.startswith("# Search report: nb201 on nb201:cifar10")
    assert f"Strategy: {strategy}" in report
    assert "## Top" in report and "## The best architecture" in report
    assert (tmp_path / "a" / "plots" / "best_so_far.png").stat().st_size > 0
    info = json.loads((tmp_path / "a" / "run.json").read_text())
    assert info["options"]["strategy"] == strategy and "nb201:cifar10" in info["command"]


def test_multi_objective_report_has_a_pareto_front(nas_cli, tmp_path) -> None:
    code, _, err = nas_cli(
        "search",
        "--space",
        "nb201",
        "--dataset",
        "nb201:cifar100",
        "--strategy",
        "nsga2",
        "--objective",
        "accuracy+params",
        "--trials",
        "12",
        "--run-dir",
        str(tmp_path / "m"),
    )
    assert code == 0, err
    assert "## Pareto front (accuracy, params)" in (tmp_path / "m" / "report.md").read_text()


def test_training_search_records_every_field(nas_cli, tmp_path) -> None:
    d = tmp_path / "t"
    code, out, err = nas_cli(
        "search",
        "--space",
        "einspace",
        "--dataset",
        "unseen:language",
        "--strategy",
        "rs",
        "--trials",
        "6",
        "--epochs",
        "1",
        "--final-epochs",
        "1",
        "--trial-time",
        "5",
        "--seed",
        "1",
        "--run-dir",
        str(d),
    )
    assert code == 0, err
    recs = RunStore(d, create=False).records()
    assert len(recs) == 6
    for r in recs:
        assert r.arch and r.status and r.wall_time is not None
        if r.ok:
            assert 0 <= r.values["accuracy"] <= 1 and r.params and r.flops is not None
            assert "valid" in r.metrics and "test" in r.metrics
        else:
            assert r.reason
    final = json.loads((d / "final.json").read_text())
    assert final["onnx_max_abs_diff"] < 1e-4 and (d / "best.onnx").is_file()
    assert final["onnx_parity"] == "ok"
    # the closing lines are for people: rounded numbers, not a dict's repr
    best = max((r for r in recs if r.ok), key=lambda r: r.values["accuracy"])
    lines = out.splitlines()
    assert f"best: trial {best.number}: accuracy {best.values['accuracy']:.4g}" in lines
    assert (
        lines[
            lines.index(f"best: trial {best.number}: accuracy {best.values['accuracy']:.4g}") + 1
        ]
        == f"  {best.arch}"
    )
    shown = next(line for line in lines if line.startswith("final: "))
    assert f"test: loss {final['test']['loss']:.4g}, accuracy" in shown and "{" not in shown
    # Baselines: measured once, first table of the report (after the verdict), on the console.
    names = [b["name"] for b in json.loads((d / "baselines.json").read_text())]
    assert names == ["chance", "linear probe", "converged linear", "small CNN"]
    report = (d / "report.md").read_text()
    assert report.split("\n## ")[1].startswith("Verdict\n\n- found: trial ")
    assert report.split("\n## ")[2].startswith("Found vs baselines")
    assert "| linear probe |" in report and "| found (trial " in report
    assert "vs baselines: chance 10.0%, linear probe" in out
    # the final retraining reads as a table of the splits' metrics, not a JSON dump
    section = report.split("## Final retraining of the best architecture\n\n")[1]
    rows = section.splitlines()
    assert rows[0].startswith("| split | ") and "accuracy" in rows[0]
    assert rows[3].startswith(f"| test | {final['test']['loss']:.4g} |")
    assert f"- params: {final['params']:,}" in section and "```json" not in report


def test_failed_architectures_are_recorded_and_the_search_goes_on(tmp_path) -> None:
    from nas.searches import create_strategy
    from nas.searches.runner import Outcome, run_search

    from nas.dsl import parse_arch
    from nas.space import load_space

    def flaky(arch) -> Outcome:
        if "none" in str(arch):
            return Outcome("diverged", reason="loss became nan at step 3")
        return Outcome("ok", {"accuracy": 50.0}, params=1)

    store = RunStore(tmp_path)
    strat = create_strategy("rs", load_space("nb201"), seed=0)
    done = run_search(strat, store, 20, lambda: flaky)
    assert len(done) == 20
    bad = [r for r in store.records() if r.status == "diverged"]
    assert bad and all(r.reason == "loss became nan at step 3" for r in bad)
    assert all(parse_arch(r.arch) for r in bad)


def test_killed_search_resumes_to_exactly_the_requested_trials(tmp_path) -> None:
    d = tmp_path / "k"
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    cmd = [
        sys.executable,
        "-m",
        "nas",
        "search",
        "--space",
        "einspace",
        "--dataset",
        "unseen:language",
        "--strategy",
        "rs",
        "--trials",
        "6",
        "--epochs",
        "3",
        "--final-epochs",
        "1",
        "--trial-time",
        "20",
        "--seed",
        "2",
        "--run-dir",
        str(d),
    ]
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    deadline = time.time() + 240
    try:
        while time.time() < deadline:  # kill while trial >= 2 runs
            time.sleep(0.5)
            if (d / "study.db").exists():
                try:
                    recs = RunStore(d, create=False).records()
                except Exception:
                    continue
                if len(recs) >= 2:
                    break
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    before = RunStore(d, create=False).completed()
    assert 2 <= len(before) < 6
    res = subprocess.run(
        [sys.executable, "-m", "nas", "search", "--resume", str(d)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 0, res.stderr
    store = RunStore(d, create=False)
    done = store.completed()
    assert len(done) == 6
    assert len({r.number for r in done}) == 6
    assert len({r.arch for r in done}) == 6  # nothing finished was repeated
    assert [r.arch for r in done[: len(before)]] == [r.arch for r in before]


def test_sigterm_stops_a_search_with_the_line_that_resumes_it(tmp_path) -> None:
    """A scheduler's or `timeout`'s SIGTERM used to end `nas search` silently, mid-trial;
    it now stops as Ctrl-C does (exit 130), says how to go on, and the run resumes."""
    d = tmp_path / "t"
    base = [sys.executable, "-m", "nas", "search"]
    cmd = [*base, "--space", "nb201", "--dataset", "nb201:cifar10", "--strategy", "rs"]
    cmd += ["--trials", "100000", "--time-budget", "inf", "--run-dir", str(d)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    try:
        while time.time() < deadline and proc.poll() is None:
            time.sleep(0.3)
            try:
                if len(RunStore(d, create=False).completed()) >= 5:
                    break
            except Exception:
                continue
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert f"to go on: nas search --resume {d}" in out and "Traceback" not in err
    n = len(RunStore(d, create=False).completed())
    assert n >= 5
    res = subprocess.run([*base, "--resume", str(d), "--trials", str(n + 3)],
                         capture_output=True, text=True, timeout=300)  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert len(RunStore(d, create=False).completed()) == n + 3


def test_bad_options_are_one_line_errors(nas_cli, tmp_path) -> None:
    code, _, err = nas_cli(
        "search",
        "--space",
        "einspace",
        "--dataset",
        "nb201:cifar10",
        "--run-dir",
        str(tmp_path / "x"),
    )
    assert code == 2 and "needs --space nb201" in err
    code, _, err = nas_cli("search", "--resume", str(tmp_path))
    assert code == 2 and "not a search run" in err
    code, _, err = nas_cli("search", "--strategy", "annealing", "--run-dir", str(tmp_path / "y"))
    assert code == 2 and "annealing" in err


def test_export_from_a_run_and_dashboard(nas_cli, tmp_path) -> None:
    import socket
    import urllib.request

    d = tmp_path / "r"
    code, _, err = nas_cli(
        "search",
        "--space",
        "nb201",
        "--dataset",
        "nb201:cifar10",
        "--strategy",
        "rs",
        "--trials",
        "5",
        "--run-dir",
        str(d),
    )
    assert code == 0, err
    code, out, err = nas_cli(
        "export",
        "--run",
        str(d),
        "--rank",
        "2",
        "-o",
        str(tmp_path / "r2.onnx"),
    )
    assert code == 0, err
    assert "rank 2" in out and (tmp_path / "r2.onnx").stat().st_size > 0
    code, out, _ = nas_cli("export", "--run", str(d), "-o", str(tmp_path / "r1.onnx"))
    assert code == 0 and "retrained best model" in out
    assert (tmp_path / "r1.onnx").read_bytes() == (d / "best.onnx").read_bytes()
    code, _, err = nas_cli(
        "export",
        "--run",
        str(d),
        "--rank",
        "9",
        "-o",
        str(tmp_path / "r9.onnx"),
    )
    assert code == 2 and "--rank must be between 1 and 5" in err

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "nas", "dashboard", str(d), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        body = b""
        for _ in range(60):
            time.sleep(0.5)
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{port}/api/studies", timeout=2
                ) as resp:
                    body = resp.read()
                break
            except OSError:
                continue
        assert b"nas" in body  # the run's study, served by optuna-dashboard
        # a second dashboard on the same port: one line, not the server's traceback
        code, _, err = nas_cli("dashboard", str(d), "--port", str(port))
        assert code == 2 and f"cannot listen on 127.0.0.1:{port}: " in err
        assert "choose another --port" in err and len(err.strip().splitlines()) == 1
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_predictor_strategy_model_option(nas_cli, tmp_path) -> None:
    base = ["search", "--space", "nb201", "--dataset", "nb201:cifar10", "--strategy"]
    code, _, err = nas_cli(
        *base, "predictor", "--predictor-model", str(tmp_path / "none"), "--run-dir",
        str(tmp_path / "x"),
    )  # fmt: skip
    assert code == 2 and err.startswith("error: no predictor in")
