"""What a search found, said in words: lineage from the seeds, margins in standard errors,
trials the cap stopped; and the per-trial progress lines off a terminal."""

from __future__ import annotations

import math

from nas.searches.runner import arch_digest
from nas.searches.store import TrialRecord
from nas.searches.verdict import lineage, standard_error, verdict

SEEDS = {"mlp_cpu": "seq(mlp)", "cnn_cpu": "seq(cnn)"}


def rec(n: int, arch: str, acc: float | None, op: str, parent: str | None = None, **kw):
    origin = {"op": op} | ({"parent": arch_digest(parent)} if parent else {})
    status = kw.pop("status", "ok" if acc is not None else "failed")
    values = {"accuracy": acc} if acc is not None else {}
    metrics = {"test": {"accuracy": kw.pop("test", acc)}} if acc is not None else {}
    return TrialRecord(n, arch, status, "", values, metrics, origin=origin, **kw)


def rows(best_seed: float, linear: float):
    from nas.searches.baselines import Baseline

    return [
        Baseline("chance", 0.1, 0.1),
        Baseline("converged linear", linear, linear),
        Baseline("best seed (mlp_cpu)", best_seed, best_seed),
    ]


def test_an_unchanged_seed_is_called_that_with_its_margins_in_standard_errors() -> None:
    records = [rec(0, "seq(cnn)", 0.45, "seed"), rec(1, "seq(mlp)", 0.71, "seed", test=0.709)]
    v = verdict(records, SEEDS, rows(0.709, 0.701), 2000)
    assert v.unchanged_seed and v.origin == "seed mlp_cpu, unchanged"
    se = standard_error(0.709, 2000)
    assert math.isclose(v.se, se) and 0.0101 < se < 0.0102
    lines = v.lines()
    assert lines[0] == "found: trial 1 = seed mlp_cpu, unchanged"
    assert lines[1] == (
        "found 70.9% test (standard error 1.0 pts) against best seed (mlp_cpu) 70.9%, "
        "+0.0 pts, within one standard error; converged linear 70.1%, +0.8 pts, within one "
        "standard error"
    )
    assert v.beats("best seed") is False and v.beats("converged linear") is False


def test_the_lineage_is_followed_back_to_its_seed() -> None:
    a, b, c = "seq(mlp)", "seq(mlp2)", "seq(mlp3)"
    records = [
        rec(0, a, 0.70, "seed"),
        rec(1, "x", 0.30, "draw"),
        rec(2, b, 0.72, "param", parent=a),
        rec(3, c, 0.76, "swap", parent=b, test=0.75),
    ]
    assert [r.number for r in lineage(records, records[3])] == [0, 2, 3]
    v = verdict(records, SEEDS, rows(0.70, 0.70), 2000)
    assert v.origin == "mlp_cpu + 2 mutations (param, swap)" and not v.unchanged_seed
    assert "+5.0 pts, 5.2 standard errors above" in v.lines()[1]
    assert v.beats("best seed", 2) and v.beats("converged linear", 2)


def test_trials_stopped_by_the_cap_are_counted_with_the_seeds_named() -> None:
    records = [
        rec(0, "seq(cnn)", None, "seed", status="timeout"),
        rec(1, "seq(mlp)", 0.71, "seed"),
        rec(2, "seq(big)", None, "insert", parent="seq(mlp)", status="timeout"),
    ]
    v = verdict(records, SEEDS, rows(0.71, 0.70), None)
    assert math.isnan(v.se) and "within" not in v.lines()[1]
    assert v.lines()[-1] == "trials stopped by the --trial-time cap: 2, seeds among them: cnn_cpu"


def test_a_search_prints_a_line_per_trial_off_a_terminal_and_its_verdict(
    nas_cli, tmp_path
) -> None:
    """Redirected output (a pipe, a log) printed nothing between the baselines and the
    retraining: now one plain line per finished trial, then the verdict."""
    run = tmp_path / "run"
    code, out, err = nas_cli(
        "search", "--trials", "3", "--epochs", "1", "--final-epochs", "0",
        "--seed-arch", "mlp_cpu,vit_cpu", "--run-dir", str(run),
    )  # fmt: skip
    assert code == 0, err
    lines = out.splitlines()
    trials = [line for line in lines if line.startswith("[")]
    assert [t.split("  ")[0] for t in trials] == [
        "[1/3] trial 0",
        "[2/3] trial 1",
        "[3/3] trial 2",
    ]
    assert "  seed  " in trials[0] and " of trial " in trials[2]
    first = trials[0].split("  ")
    assert len(first[1]) == 12 and first[2].strip() == "ok" and first[4].startswith("best ")
    found = next(line for line in lines if line.startswith("found: trial "))
    assert lines.index(found) > lines.index(trials[-1])
    assert any(line.startswith("found ") and "standard error" in line for line in lines)
    report = (run / "report.md").read_text()
    assert "## Verdict" in report and "- found: trial " in report
    assert "**seed mlp_cpu**" in report and "Input 1x24x24 (im), 10 classes" in report


def test_the_python_api_takes_a_progress_callback_and_a_verbose_switch(
    tmp_path, capsys, monkeypatch
) -> None:
    from nas.searches import Search, SearchConfig

    import nas

    cfg = SearchConfig(
        trials=2, epochs=1, final_epochs=0, strategy_options={"seed_archs": ["mlp_cpu"]}
    )
    got: list[str] = []
    result = Search(cfg, tmp_path / "a").run(progress=got.append)
    assert [g.split("  ")[0] for g in got] == ["[1/2] trial 0", "[2/2] trial 1"]
    assert result.verdict and result.verdict[0].startswith("found: trial ")
    capsys.readouterr()
    monkeypatch.chdir(tmp_path)  # the default run directory, runs/...
    nas.search(cfg, verbose=True)
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith("search: space=einspace")
    assert sum(p.startswith("[") for p in printed) == 2
    assert any(p.startswith("found: trial ") for p in printed)
    assert any(p.startswith("measuring baselines") for p in printed)
