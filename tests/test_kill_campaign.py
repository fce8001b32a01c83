"""Kill campaigns: random SIGKILLs of a table-mode NB201 search, some inside the result write.

Each campaign kills a search again and again (at a random point, or exactly between the
result write and its commit via ``NAS_CRASH_AT``), resumes it each time, and checks that
the run ends with exactly the budget, no architecture evaluated twice among the counted
trials, every resume accepted, no worker left behind, and (one worker) the very trials of
an uninterrupted run.
"""

from __future__ import annotations

import functools
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from nas.searches import create_strategy, evaluators
from nas.searches.runner import run_search
from nas.searches.store import RunStore

from nas.space import load_space

DRIVER = """
import functools, sys
from nas.searches import create_strategy, evaluators
from nas.searches.runner import run_search
from nas.searches.store import RunStore
from nas.space import load_space

if __name__ == "__main__":
    run, trials, workers = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    strategy = create_strategy("re", load_space("nb201"), seed=0, population=10, tournament=3)
    table = functools.partial(evaluators.table_evaluator, "cifar10")
    run_search(strategy, RunStore(run), trials, table, workers=workers)
"""


@pytest.fixture(autouse=True)
def _env(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")


def _counted(run: Path, storage: str | None = None) -> list[Any]:
    """The trials that count, in the order they were asked (0 while the run is created)."""
    try:
        done = RunStore(run, create=False, storage=storage).completed()
    except Exception:
        return []
    return sorted(done, key=lambda r: r.retry_of if r.retry_of is not None else r.number)


def children(pid: int) -> list[int]:
    """Every live descendant of ``pid`` (zombies left out)."""
    from nas.searches._reaper import descendants

    return list(descendants(pid))


def _alive(pids: list[int]) -> list[int]:
    from nas.searches._reaper import _stat

    return [p for p in pids if _stat(p) is not None]


def campaign(
    cmd: list[str],
    run: Path,
    trials: int,
    kills: int,
    seed: int,
    limit: float = 120.0,
    step: int = 12,
) -> dict[str, int]:
    """Kill ``cmd`` ``kills`` times and resume it until the run has ``trials`` trials.

    Each start is killed after 1 to ``step`` more trials (or inside its 1st to ``step``-th
    result write); the kill lands a few trials late on a fast machine, so a campaign of many
    kills takes a small ``step`` to land them all before the budget is spent.
    """
    rng = random.Random(seed)
    stats = {"kills": 0, "in_write": 0, "starts": 0, "orphans": 0}
    while True:
        env = dict(os.environ)
        mode = "finish"
        if stats["kills"] < kills:
            mode = "write" if rng.random() < 0.4 else "timer"
        if mode == "write":
            env["NAS_CRASH_AT"] = f"finish:{rng.randint(1, min(8, step))}"
        target = len(_counted(run)) + rng.randint(1, step)
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        stats["starts"] += 1
        seen: set[int] = set()
        deadline = time.monotonic() + limit
        while proc.poll() is None and time.monotonic() < deadline:
            seen.update(children(proc.pid))
            if mode == "timer" and len(_counted(run)) >= target:
                proc.send_signal(signal.SIGKILL)
                break
            time.sleep(0.05)
        rc = proc.wait(limit)
        err = proc.stderr.read().decode()[-3000:]
        assert rc in (0, -signal.SIGKILL), err  # never an error: every resume is accepted
        if rc == -signal.SIGKILL:
            stats["kills"] += 1
            stats["in_write"] += mode == "write"
            end = time.monotonic() + 10
            while _alive(sorted(seen)) and time.monotonic() < end:
                time.sleep(0.1)
            stats["orphans"] += len(_alive(sorted(seen)))
        elif len(_counted(run)) >= trials:
            return stats


def _uninterrupted(tmp_path: Path, trials: int) -> list[str]:
    strategy = create_strategy("re", load_space("nb201"), seed=0, population=10, tournament=3)
    store = RunStore(tmp_path / "clean")
    run_search(strategy, store, trials, functools.partial(evaluators.table_evaluator, "cifar10"))
    return [r.arch for r in store.records()]


def _check(run: Path, trials: int, stats: dict[str, int]) -> list[Any]:
    done = _counted(run)
    assert len(done) == trials, stats
    assert len({r.arch for r in done}) == trials, stats  # no duplicates
    assert RunStore(run, create=False).n_running() == 0
    assert stats["orphans"] == 0, stats
    return done


def test_kill_campaign_one_worker_ends_as_an_uninterrupted_run(tmp_path) -> None:
    script = tmp_path / "driver.py"
    script.write_text(textwrap.dedent(DRIVER))
    run, trials = tmp_path / "run", 40
    cmd = [sys.executable, str(script), str(run), str(trials), "1"]
    stats = campaign(cmd, run, trials, kills=3, seed=2)
    done = _check(run, trials, stats)
    # On a fast machine the 40 trials can finish before all three kills land; at least one
    # must (the slow 20-kill campaigns hold the kills inside the result write).
    assert stats["kills"] >= 1, stats
    assert [r.arch for r in done] == _uninterrupted(tmp_path, trials)


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_kill_campaign_cli_twenty_kills(tmp_path, workers) -> None:
    """The issue's campaign: a 300-trial RE run through ``nas search``, 20 kills."""
    run, trials = tmp_path / "run", 300
    base = [sys.executable, "-m", "nas", "search"]
    first = [*base, "--space", "nb201", "--dataset", "nb201:cifar10", "--strategy", "re"]
    first += ["--trials", str(trials), "--workers", str(workers), "--run-dir", str(run)]
    resume = [*base, "--resume", str(run)]
    rng = random.Random(workers)
    stats = {"kills": 0, "in_write": 0, "starts": 0, "orphans": 0}
    # the first start, killed early, then a resume campaign
    proc = subprocess.Popen(first, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    while len(_counted(run)) < rng.randint(5, 30):
        assert proc.poll() is None, proc.stderr.read().decode()[-3000:]
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    stats["kills"] += 1
    more = campaign(resume, run, trials, kills=19, seed=workers, limit=300, step=5)
    stats = {k: stats[k] + more[k] for k in stats}
    done = _check(run, trials, stats)
    assert stats["kills"] == 20 and stats["in_write"] >= 1, stats
    assert (run / "report.md").is_file()
    if workers == 1:
        clean = tmp_path / "clean"
        code = subprocess.run(
            [*first[:-1], str(clean)], stdout=subprocess.DEVNULL, check=False
        ).returncode
        assert code == 0
        assert [r.arch for r in done] == [r.arch for r in RunStore(clean, create=False).records()]
    print(f"campaign workers={workers}: {stats}, final {len(done)} trials, 0 duplicates")
