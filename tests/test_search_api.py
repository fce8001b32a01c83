"""The search as a library: run, resume, extend and report a search from Python."""

from __future__ import annotations

import json

import pytest
from nas.searches import Search, SearchConfig, list_strategies
from nas.searches.evaluators import CPU_PROTOCOL
from nas.searches.store import mask_url

import nas
from nas import tolerance
from nas.exceptions import ConfigurationError, UnknownNameError

TABLE = {"space": "nb201", "dataset": "nb201:cifar10", "final_epochs": 0}
SMALL = {"predictor": {"pool": 16, "batch": 4}}


def _config(strategy: str = "re", trials: int = 10, **kw) -> SearchConfig:
    return SearchConfig(
        strategy=strategy, trials=trials, strategy_options=SMALL.get(strategy, {}), **TABLE, **kw
    )


def test_a_search_runs_from_python_and_writes_its_run(tmp_path) -> None:
    config = SearchConfig(space="nb201", dataset="nb201:cifar10", trials=12, final_epochs=1)
    result = Search(config, tmp_path / "run").run()
    assert len(result.records) == 12 and all(r.ok for r in result.records)
    assert result.best is not None
    assert result.best.values["accuracy"] == max(r.values["accuracy"] for r in result.records)
    assert result.report.is_file() and (tmp_path / "run" / "best.onnx").is_file()
    assert result.final["source"] == "NB201 table"
    written = json.loads((tmp_path / "run" / "final.json").read_text())
    assert (written["trial"], written["arch"]) == (result.best.number, result.best.arch)
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert info["strategy_options"] == {"population": 5, "tournament": 3}
    assert info["evaluator"] == "table"


def test_the_final_export_is_held_to_its_kinds_tolerance(tmp_path, monkeypatch) -> None:
    config = SearchConfig(space="nb201", dataset="nb201:cifar10", trials=3, final_epochs=1)
    said: list[str] = []
    assert Search(config, tmp_path / "ok", say=said.append).run().final["onnx_parity"] == "ok"
    assert not any("parity check failed" in line for line in said)
    monkeypatch.setattr(tolerance, "TOLERANCE", -1.0)  # nothing can pass: the check is real
    result = Search(config, tmp_path / "bad", say=said.append).run()
    assert (
        result.final["onnx_parity"].startswith("failed (")
        and "> -1)" in result.final["onnx_parity"]
    )
    written = json.loads((tmp_path / "bad" / "final.json").read_text())
    assert written["onnx_parity"] == result.final["onnx_parity"]
    assert (tmp_path / "bad" / "best.onnx").is_file()  # kept: the user decides what to do
    assert any(
        line.startswith("parity check failed: best.onnx differs from torch") for line in said
    )


def test_a_run_cut_by_its_time_budget_says_so_and_extends(tmp_path) -> None:
    """The user learns the time budget, not the trial budget, ended the run, and how to go on."""
    result = Search(_config("rs", trials=100_000, time_budget=0.5), tmp_path / "run").run()
    n = len(result.records)
    assert 0 < n < 100_000
    assert f"after {n} of 100000 trials" in result.stopped
    assert f"nas search --resume {tmp_path / 'run'}" in result.stopped
    assert "Stopped early" in result.report.read_text()
    more = Search.resume(tmp_path / "run", trials=n + 3, time_budget=600).run()
    assert len(more.records) == n + 3 and more.stopped == ""
    assert "Stopped early" not in more.report.read_text()


def test_a_resume_remembers_a_new_total_and_keeps_a_done_final(tmp_path) -> None:
    config = SearchConfig(space="nb201", dataset="nb201:cifar10", trials=3, final_epochs=1)
    first = Search(config, tmp_path / "run").run()
    grown = Search.resume(tmp_path / "run", trials=5).run()
    said: list[str] = []
    again = Search.resume(tmp_path / "run", say=said.append)
    assert again.config.trials == 5  # not the 3 it started with ("5/3" before)
    final_file = tmp_path / "run" / "final.json"
    stamp = final_file.stat().st_mtime_ns
    result = again.run()
    assert len(result.records) == 5 and result.best.number == grown.best.number
    assert final_file.stat().st_mtime_ns == stamp  # the same best is not retrained again
    assert result.final == grown.final and first.final is not None
    assert f"the best (trial {grown.best.number}) was retrained before" in " ".join(said)


def test_nas_search_is_the_short_form(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = nas.search(space="nb201", dataset="nb201:cifar100", trials=5, final_epochs=0)
    assert len(result.records) == 5
    assert result.run_dir.parent.name == "runs" and result.final is None
    assert result.run_dir.name.startswith("nb201-nb201_cifar100-")
    assert ":" not in result.run_dir.name


@pytest.mark.parametrize("strategy", list_strategies())
def test_extending_a_finished_run_continues_it_exactly(tmp_path, strategy: str) -> None:
    Search(_config(strategy, 8), tmp_path / "a").run()
    extended = Search.resume(tmp_path / "a", trials=14).run()
    straight = Search(_config(strategy, 14), tmp_path / "b").run()
    assert len(extended.records) == 14
    got = [r.arch for r in sorted(extended.records, key=lambda r: r.number)]
    want = [r.arch for r in sorted(straight.records, key=lambda r: r.number)]
    if strategy != "re":  # RE's population follows the budget it started with (8, not 14)
        assert got == want
    assert len(set(got)) == 14


def test_a_resume_keeps_what_defines_the_run(tmp_path) -> None:
    Search(_config("rs", 3), tmp_path / "r").run()
    with pytest.raises(ConfigurationError, match="keeps its seed, strategy"):
        Search.resume(tmp_path / "r", strategy="re", seed=3)
    with pytest.raises(ConfigurationError, match="not a search run"):
        Search.resume(tmp_path / "nothing")
    with pytest.raises(ConfigurationError, match="already holds a run"):
        Search(_config("rs", 3), tmp_path / "r")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"trials": 0}, "at least 1"),
        ({"objective": "speed"}, "--objective must be one of"),
        ({"backend": "slurm"}, "--backend must be one of"),
        ({"scheduler": "asha", "backend": "ray"}, "evaluator has none"),
        ({"strategy": "bo"}, "unknown strategy 'bo'"),
        ({"space": "einspace"}, "needs --space nb201"),
        ({"trial_time": -1.0}, "--trial-time must be positive"),
        ({"trial_time": float("nan")}, "--trial-time must be positive, but got nan"),
        ({"time_budget": float("nan")}, "--time-budget must be positive, but got nan"),
        ({"epochs": 0}, "--epochs must be at least 1"),
        # a typo must not start a hundred thousand processes
        ({"workers": 100_000}, "--workers 100,000 is more than this machine can run"),
        ({"storage": "sqlite:////nonexistent/x.db"}, "cannot open storage sqlite:////nonex"),
        ({"storage": "foo://bar"}, "cannot open storage foo://bar"),
    ],
)
def test_bad_configurations_are_one_line_errors(tmp_path, change, message) -> None:
    from nas.searches.store import StorageLostError

    config = SearchConfig(**{**TABLE, **change})
    with pytest.raises((ConfigurationError, UnknownNameError, StorageLostError), match=message):
        Search(config, tmp_path / "bad")
    assert not (tmp_path / "bad" / "run.json").exists()


def test_storage_passwords_never_reach_the_run_files() -> None:
    url = "postgresql://nas:s3cret@db.example:5432/runs"
    assert mask_url(url) == "postgresql://nas:***@db.example:5432/runs"
    assert mask_url("sqlite:///runs/a.db") == "sqlite:///runs/a.db"
    assert mask_url(None) is None
    public = SearchConfig(storage=url).public()
    assert "s3cret" not in json.dumps(public)


def test_strategy_options_on_the_command_line(nas_cli, tmp_path) -> None:
    run = tmp_path / "o"
    args = ["search", "--space", "nb201", "--dataset", "nb201:cifar10", "--trials", "6"]
    code, out, err = nas_cli(
        *args,
        "--final-epochs",
        "0",
        "--run-dir",
        str(run),
        "-O",
        "population=5",
        "--strategy-option",
        "tournament=3",
    )
    assert code == 0, err
    assert "stopped early" not in out  # the trial budget ended it
    info = json.loads((run / "run.json").read_text())
    assert info["strategy_options"] == {"population": 5, "tournament": 3}
    code, _, err = nas_cli(*args, "-O", "pop=5", "--run-dir", str(tmp_path / "x"))
    assert code == 2 and "strategy 're' has no option 'pop'; its options: population" in err
    code, _, err = nas_cli(*args, "-O", "population", "--run-dir", str(tmp_path / "y"))
    assert code == 2 and "takes KEY=VALUE" in err
    code, out, _ = nas_cli("search", "--list-options")
    assert code == 0 and "re:" in out and "population (int) [100]" in out
    options = [line for line in out.splitlines() if line.startswith("  ")]
    assert all(line.rstrip().count("  ") >= 2 for line in options), options  # and what it does
    # a value of the wrong type or range is one line, not a TypeError inside the strategy
    wrong = {
        ("re", "population=abc"): "option population takes a whole number, but got 'abc'",
        ("re", "population=4.5"): "option population takes a whole number, but got '4.5'",
        ("tpe", "n_startup_trials=-5"): "option n_startup_trials must be at least 0",
        ("tpe", "multivariate=yes"): "option multivariate takes true or false",
        ("predictor", "mutate_frac=1.5"): "option mutate_frac must be between 0 and 1",
    }
    for (strategy, pair), message in wrong.items():
        bad = tmp_path / f"bad-{strategy}"
        code, _, err = nas_cli(*args, "--strategy", strategy, "-O", pair, "--run-dir", str(bad))
        assert code == 2 and message in err and not bad.exists(), err


def test_strategy_options_given_in_python_are_checked_too(tmp_path) -> None:
    for opts, message in (
        ({"population": "abc"}, "takes a whole number"),
        ({"tournament": True}, "whole number"),
    ):
        with pytest.raises(ConfigurationError, match=message):
            Search(SearchConfig(trials=4, strategy_options=opts, **TABLE), tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_search_help_shows_every_default(nas_cli) -> None:
    code, out, _ = nas_cli("search", "--help")
    assert code == 0
    p = CPU_PROTOCOL
    shown = ["[einspace]", "[re]", "[quick]", "[local]", f"[{p['trials']};", f"[{p['epochs']};"]
    shown += [f"[{p['trial_time']:g};", f"[{p['final_epochs']};", "[inf: none]"]
    for text in shown:
        assert text in " ".join(out.split()), text


def test_the_search_line_says_what_a_table_search_does(tmp_path) -> None:
    """Table mode looks accuracies up: its line used to promise epochs and a retraining."""
    table = Search(SearchConfig(space="nb201", dataset="nb201:cifar10", trials=2), tmp_path / "t")
    line = table.describe()
    assert "epochs" not in line and "table mode trains nothing" in line
    trained = Search(SearchConfig(trials=2, final_epochs=3), tmp_path / "e").describe()
    assert "epochs=6" in trained and "retrained for 3 epochs" in trained


def test_a_dataset_it_cannot_load_leaves_no_run_folder(nas_cli, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    code, _, err = nas_cli(
        "search", "--dataset", "unseen:addnist", "--data-dir", str(tmp_path / "data"),
        "--trials", "1",
    )  # fmt: skip
    assert code == 2 and err.startswith("error: no AddNIST folder under")
    assert not (tmp_path / "runs").exists()


def test_a_plain_postgresql_url_gets_the_installed_driver(monkeypatch) -> None:
    import importlib.util

    from nas.searches.store import _with_driver

    have = {"psycopg2"}
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: name if name in have else None)
    assert _with_driver("postgresql://u:p@h:5/db") == "postgresql+psycopg2://u:p@h:5/db"
    assert _with_driver("postgresql+psycopg2://h/db") == "postgresql+psycopg2://h/db"
    assert _with_driver("sqlite:///x.db") == "sqlite:///x.db"
    have.add("psycopg")  # psycopg 3 present: SQLAlchemy's own default works
    assert _with_driver("postgresql://h/db") == "postgresql://h/db"
