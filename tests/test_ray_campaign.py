"""A kill campaign on Ray: driver kills and a worker kill; budget exact, nothing leaked.

The driver starts its own local Ray (2 CPUs), so a killed driver leaves Ray's agents
behind unless the watchdog reaps them; the test checks that they are gone.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from nas.searches.store import RunStore

DRIVER = """
import sys, time
from nas.searches import create_strategy, evaluators
from nas.searches.ray_runner import run_search_ray
from nas.searches.store import RunStore
from nas.space import load_space


class Slow:
    def __init__(self):
        self.table = evaluators.TableEvaluator("cifar10")

    def __call__(self, arch):
        time.sleep(0.5)
        return self.table(arch)


def slow():
    return Slow()


if __name__ == "__main__":
    run, trials = sys.argv[1], int(sys.argv[2])
    strategy = create_strategy("re", load_space("nb201"), seed=0, population=6, tournament=3)
    run_search_ray(strategy, RunStore(run), trials, slow, workers=2, local_cpus=2)
"""


def _procs(root: int) -> dict[int, str]:
    """Live descendants of ``root``: pid -> command line."""
    from nas.searches._reaper import descendants

    out = {}
    for pid in descendants(root):
        with contextlib.suppress(OSError):
            out[pid] = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    return out


def _alive(pids: list[int]) -> list[int]:
    from nas.searches._reaper import _stat

    return [p for p in pids if _stat(p) is not None]


def _counted(run: Path) -> int:
    try:
        return len(RunStore(run, create=False).completed())
    except Exception:
        return 0


@pytest.mark.slow
def test_ray_kill_campaign_with_a_worker_kill(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    script = tmp_path / "driver.py"
    script.write_text(textwrap.dedent(DRIVER))
    run, trials = tmp_path / "run", 24
    cmd = [sys.executable, str(script), str(run), str(trials)]
    stats = {"driver_kills": 0, "worker_kills": 0, "leaked": 0}
    for target in (8, 16, None):
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        agents: dict[int, str] = {}
        deadline = time.monotonic() + 300
        while proc.poll() is None and time.monotonic() < deadline:
            procs = _procs(proc.pid)
            agents.update({p: c for p, c in procs.items() if "Agent" in c})
            done = _counted(run)
            if stats["worker_kills"] == 0 and done >= 3:
                busy = [p for p, c in procs.items() if "ImplicitFunc" in c]
                if busy:
                    subprocess.run(["kill", "-9", str(busy[0])], check=False)
                    stats["worker_kills"] += 1
            if target is not None and done >= target and agents:
                proc.send_signal(signal.SIGKILL)
                break
            time.sleep(0.2)
        rc = proc.wait(300)
        err = proc.stderr.read().decode()[-3000:]
        if target is None:
            assert rc == 0, err
            break
        assert rc == -signal.SIGKILL, err
        stats["driver_kills"] += 1
        end = time.monotonic() + 20
        while _alive(list(agents)) and time.monotonic() < end:
            time.sleep(0.5)
        stats["leaked"] += len(_alive(list(agents)))
    store = RunStore(run, create=False)
    done = store.completed()
    assert stats == {"driver_kills": 2, "worker_kills": 1, "leaked": 0}, stats
    assert len(done) == trials and len({r.arch for r in done}) == trials
    assert all(r.ok for r in done), [(r.status, r.reason) for r in done if not r.ok]
    assert store.n_running() == 0
    print(f"ray campaign: {stats}, final {len(done)} trials, 0 duplicates")
