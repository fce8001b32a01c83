"""The Ray Tune backend: same run record as the local runner, ASHA, retries, kill and resume."""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
import ray
from nas.searches import create_strategy, evaluators
from nas.searches.ray_runner import run_search_ray
from nas.searches.runner import Outcome, run_search
from nas.searches.store import RunStore

from nas.exceptions import ConfigurationError
from nas.space import load_space
from nas.train import TrainConfig

EPOCHS = 4


@pytest.fixture(scope="module", autouse=True)
def _ray():
    from ray import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import us
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(autouse=True)
def _env(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("NAS_DATA_DIR", raising=False)


class EpochTable:
    """NB201 table accuracy x epoch / EPOCHS, reported per epoch: a clear signal for ASHA."""

    def __init__(self, sleep: float = 0.0, die_once: str | None = None) -> None:
        self.table = evaluators.TableEvaluator("cifar10")
        self.sleep, self.die_once = sleep, die_once

    def __call__(self, arch: Any, on_epoch: Any = None) -> Outcome:
        if self.die_once and not os.path.exists(self.die_once):
            Path(self.die_once).touch()
            os._exit(1)  # the worker dies; Tune retries the trial
        out = self.table(arch)
        acc = out.values["accuracy"]
        for epoch in range(1, EPOCHS + 1):
            time.sleep(self.sleep)
            if on_epoch is not None:
                on_epoch(epoch, {"valid_accuracy": acc * epoch / EPOCHS})
        out.metrics["epochs_done"] = EPOCHS
        return out


def epoch_table(sleep: float = 0.0, die_once: str | None = None) -> EpochTable:
    return EpochTable(sleep, die_once)


def _strategy(name: str = "re", space: str = "nb201") -> Any:
    kw = {"population": 4, "tournament": 2} if name == "re" else {}
    return create_strategy(name, load_space(space), seed=0, **kw)


def _shape(rec: Any) -> tuple:
    return (
        rec.number,
        rec.arch,
        rec.status,
        sorted(rec.values),
        sorted(rec.metrics),
        rec.params,
        rec.flops,
        rec.wall_time is not None,
    )


def test_same_record_as_the_local_runner(tmp_path) -> None:
    cfg = evaluators.config_dict(TrainConfig.preset("quick", epochs=1, seed=0, time_budget_s=5))
    factory = evaluators.EvaluatorSpec(
        "train",
        {"space": "einspace", "dataset": "unseen:language", "config": cfg, "size": "small"},
    )
    local = RunStore(tmp_path / "local")
    run_search(_strategy("rs", "einspace"), local, 4, factory)
    remote = RunStore(tmp_path / "ray")
    seen: list[Any] = []
    done = run_search_ray(
        _strategy("rs", "einspace"), remote, 4, factory, workers=2, on_result=seen.append
    )
    assert len(done) == len(seen) == 4
    a, b = local.records(), remote.records()
    assert [_shape(r) for r in a] == [_shape(r) for r in b]
    for x, y in zip(a, b, strict=True):
        assert x.values == pytest.approx(y.values, rel=1e-4)
    assert sorted(p.name for p in (tmp_path / "ray").iterdir()) == ["study.db"]


def test_asha_stops_poor_trials_early(tmp_path) -> None:
    store = RunStore(tmp_path / "run")
    done = run_search_ray(
        _strategy("rs"),
        store,
        8,
        epoch_table,
        workers=2,
        scheduler="asha",
        max_epochs=EPOCHS,
    )
    recs = store.records()
    assert len(done) == len(recs) == 8
    assert {r.status for r in recs} <= {"ok", "stopped"}
    stopped = [r for r in recs if r.status == "stopped"]
    assert stopped, [r.status for r in recs]
    for r in stopped:
        assert 1 <= r.metrics["epochs_done"] < EPOCHS
        assert "ASHA" in r.reason and not r.values
    best = store.best(1)[0]
    assert best.metrics["epochs_done"] == EPOCHS


def test_a_dead_worker_is_retried(tmp_path) -> None:
    store = RunStore(tmp_path / "run")
    marker = str(tmp_path / "died")
    factory = functools.partial(epoch_table, 0.0, marker)
    run_search_ray(_strategy(), store, 2, factory, workers=1, max_failures=1)
    assert os.path.exists(marker)
    assert [r.status for r in store.records()] == ["ok", "ok"]
    os.remove(marker)
    store = RunStore(tmp_path / "run0")
    run_search_ray(_strategy(), store, 2, factory, workers=1, max_failures=0)
    recs = store.records()
    assert [r.status for r in recs] == ["failed", "ok"] and "worker died" in recs[0].reason
    assert "failed 1 time(s) (run 1x, 0 retries)" in recs[0].reason  # the real count


def test_bad_options_are_user_errors(tmp_path) -> None:
    store = RunStore(tmp_path / "run")
    table = evaluators.EvaluatorSpec("table", {"dataset": "cifar10"})
    with pytest.raises(ConfigurationError, match="scheduler"):
        run_search_ray(_strategy(), store, 2, table, scheduler="hyperband")
    with pytest.raises(ConfigurationError, match="epochs"):
        run_search_ray(_strategy(), store, 2, table, scheduler="asha")


DRIVER = """
import sys, time
from nas.searches import create_strategy
from nas.searches.ray_runner import run_search_ray
from nas.searches.store import RunStore
from nas.space import load_space
sys.path.insert(0, {tests!r})
import ray
from ray import cloudpickle
import test_ray
cloudpickle.register_pickle_by_value(test_ray)
ray.init(address={address!r}, log_to_driver=False)
strategy = create_strategy("re", load_space("nb201"), seed=0, population=4, tournament=2)
import functools
run_search_ray(strategy, RunStore({run!r}), 10, functools.partial(test_ray.epoch_table, 0.3),
               workers=2)
"""


def _finished(run: Path) -> int:
    """Finished trials of a run another process is writing (0 while it creates the db)."""
    try:
        return len(RunStore(run, create=False).completed())
    except Exception:
        return 0


def test_killed_driver_resumes(tmp_path) -> None:
    run = tmp_path / "run"
    script = tmp_path / "driver.py"
    address = ray.get_runtime_context().gcs_address
    tests = str(Path(__file__).parent)
    script.write_text(textwrap.dedent(DRIVER.format(tests=tests, address=address, run=str(run))))
    proc = subprocess.Popen(
        [sys.executable, str(script)],
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if (run / "study.db").exists() and _finished(run) >= 3:
                break
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            time.sleep(0.3)
        else:
            pytest.fail("the driver finished no trial")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    before = len(RunStore(run, create=False).completed())
    assert 3 <= before < 10
    # The dead driver's trials are gone: the cluster gets its CPUs back.
    deadline = time.monotonic() + 30
    while ray.available_resources().get("CPU", 0) < 2 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert ray.available_resources().get("CPU", 0) == 2
    store = RunStore(run, create=False)
    done = run_search_ray(_strategy(), store, 10, functools.partial(epoch_table, 0.3), workers=2)
    assert len(done) == len(store.completed()) == 10
    assert all(r.status == "ok" for r in store.completed())
    # replay gave the strategy the same history: the old trials keep their architectures
    assert len({r.arch for r in store.completed()}) == 10


def test_cli_backend_ray(nas_cli, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    args = ["search", "--space", "nb201", "--dataset", "nb201:cifar10", "--trials", "4"]
    code, out, err = nas_cli(*args, "--backend", "ray", "--run-dir", str(tmp_path / "a"))
    assert code == 0, err
    assert "backend=ray" in out and (tmp_path / "a" / "report.md").is_file()
    code, _, err = nas_cli(*args, "--run-dir", str(tmp_path / "b"))
    assert code == 0, err
    a = [_shape(r) for r in RunStore(tmp_path / "a", create=False).records()]
    assert a == [_shape(r) for r in RunStore(tmp_path / "b", create=False).records()]
    c = str(tmp_path / "c")
    code, _, err = nas_cli(*args, "--backend", "ray", "--scheduler", "asha", "--run-dir", c)
    assert code != 0 and "epochs" in err and not (tmp_path / "c").exists()
    code, _, err = nas_cli(*args, "--scheduler", "asha", "--run-dir", c)
    assert code != 0 and "--backend ray" in err


RAY_TERM = """
import os, signal, ray
from nas.searches.ray_local import restore_sigterm

def interrupt(signum, frame):
    raise KeyboardInterrupt

signal.signal(signal.SIGTERM, interrupt)
old = signal.getsignal(signal.SIGTERM)
ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
if {restore}:
    restore_sigterm(old)
try:
    os.kill(os.getpid(), signal.SIGTERM)
    print("not interrupted")
except KeyboardInterrupt:
    print("interrupted")
finally:
    ray.shutdown()
"""


def test_ray_init_leaves_the_drivers_sigterm_handler_in_place(tmp_path) -> None:
    """ray.init installs a native SIGTERM handler that dumps a stack and exits (code 15), so
    `nas search --backend ray` could not stop cleanly on SIGTERM; the runner puts the
    driver's handler back."""
    script = tmp_path / "term.py"
    script.write_text(RAY_TERM.format(restore=True))
    res = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         timeout=120)  # fmt: skip
    assert res.returncode == 0 and res.stdout.strip() == "interrupted", res.stderr[-1000:]
    assert "SIGTERM received" not in res.stderr


def test_scratch_of_a_killed_driver_is_swept_and_a_live_ones_kept(tmp_path) -> None:
    """Tune's scratch folder lives in the driver's ``finally``; a SIGKILLed driver left it in
    /tmp (29 of them after a day of kill tests). The next Ray search removes those of drivers
    that are gone, by the pid in the name."""
    from nas.searches.ray_local import SCRATCH, sweep_scratch

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    dead = tmp_path / f"{SCRATCH}{gone.pid}-abc"
    (dead / "tune").mkdir(parents=True)
    live = tmp_path / f"{SCRATCH}{os.getpid()}-def"
    live.mkdir()
    other = tmp_path / f"{SCRATCH}oldstyle"  # no pid in the name: not ours to judge
    other.mkdir()
    assert sweep_scratch(str(tmp_path)) == [dead.name]
    assert not dead.exists() and live.exists() and other.exists()
