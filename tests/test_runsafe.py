"""A bad trial fails that trial, never the search; one owner per run; runs share storages."""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import zlib
from typing import Any

import numpy as np
import pytest
from nas.searches import create_strategy, evaluators
from nas.searches.lock import RunInUseError, RunLock, owning
from nas.searches.runinfo import mask_text
from nas.searches.runner import Outcome, run_search
from nas.searches.store import RunStore, StorageLostError, mask_url

from nas.data.base import Dataset, Split
from nas.space import load_space
from nas.train import TrainConfig, train

TABLE = functools.partial(evaluators.table_evaluator, "cifar10")
NB201 = ["--space", "nb201", "--dataset", "nb201:cifar10"]


@pytest.fixture(autouse=True)
def _env(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("NAS_DATA_DIR", raising=False)


class Hostile:
    """NB201 table lookups, except that some trials misbehave, and each says so in a log first.

    A trial misbehaves when its architecture hashes to 0 mod 4, and on every process's third
    call, so every run has at least one bad trial whatever order the workers finish in.
    """

    def __init__(self, mode: str, log: str) -> None:
        self.table, self.mode, self.log, self.calls = (
            evaluators.TableEvaluator("cifar10"),
            mode,
            log,
            0,
        )

    def __call__(self, arch: Any) -> Outcome:
        self.calls += 1
        if zlib.crc32(str(arch).encode()) % 4 == 0 or self.calls == 3:
            with open(self.log, "a") as f:
                f.write(f"{arch}\n")
            if self.mode == "typeerror":
                raise TypeError("unsupported operand type(s) for +: 'int' and 'str'\nline 2")
            if self.mode == "memoryerror":
                raise MemoryError("Unable to allocate 7.45 GiB for an array")
            os.kill(os.getpid(), signal.SIGKILL)  # "die": the worker process is killed
        return self.table(arch)


def hostile(mode: str, log: str) -> Hostile:
    return Hostile(mode, log)


def _re(seed: int = 0) -> Any:
    return create_strategy("re", load_space("nb201"), seed=seed, population=6, tournament=3)


@pytest.mark.parametrize(
    ("mode", "workers", "reason"),
    [
        ("typeerror", 1, "the evaluator raised TypeError: unsupported operand type(s)"),
        ("memoryerror", 1, "the evaluator raised MemoryError: Unable to allocate 7.45 GiB"),
        ("die", 2, "its worker process died: killed by signal 9 SIGKILL"),
    ],
)
def test_one_bad_trial_fails_that_trial_and_the_search_goes_on(
    tmp_path, mode, workers, reason
) -> None:
    store, log = RunStore(tmp_path / "run"), tmp_path / "misbehaved.txt"
    evaluator = functools.partial(hostile, mode, str(log))
    done = run_search(_re(), store, 16, evaluator, workers=workers)
    recs = store.records()
    assert len(done) == len(recs) == 16 and store.n_running() == 0
    bad = log.read_text().splitlines()
    failed = [r for r in recs if r.status == "failed"]
    assert bad and sorted(r.arch for r in failed) == sorted(bad)
    assert all(r.ok for r in recs if r.arch not in bad)
    for r in failed:
        assert r.reason.startswith(reason) and "\n" not in r.reason


class LosesStorage:
    """Table lookups; at the 5th trial the directory holding the journal storage vanishes."""

    def __init__(self, folder: str) -> None:
        self.table, self.folder, self.n = evaluators.TableEvaluator("cifar10"), folder, 0

    def __call__(self, arch: Any) -> Outcome:
        self.n += 1
        if self.n == 5:
            import shutil

            shutil.rmtree(self.folder)
        return self.table(arch)


def test_only_the_loss_of_the_storage_stops_a_search(tmp_path) -> None:
    folder = tmp_path / "journal"
    folder.mkdir()
    url = f"journal:{folder / 'run.log'}"
    store = RunStore(tmp_path / "run", storage=url)
    other = RunStore(tmp_path / "run", storage=url, create=False)
    with owning(store), pytest.raises(RunInUseError):  # journal storages hold locks too
        RunLock(other).acquire()
    with pytest.raises(StorageLostError, match=r"lost the run's storage journal:.*resume"):
        run_search(_re(), store, 10, lambda: LosesStorage(str(folder)))


def test_a_run_has_one_owner_and_a_dead_owner_is_taken_over(tmp_path) -> None:
    store = RunStore(tmp_path / "run")
    first = RunLock(store)
    first.acquire()
    other = RunStore(tmp_path / "run", create=False)
    with pytest.raises(RunInUseError, match=rf"in use by process {os.getpid()} on "):
        RunLock(other).acquire()
    first.release()
    RunLock(other).acquire()  # released: free again
    # An owner that died on this host is stale at once; one elsewhere after its heartbeat.
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    lock_id = other.storage.get_study_id_from_name("nas-lock:run")
    other.storage.set_study_system_attr(
        lock_id, "owner", {"host": os.uname().nodename, "pid": dead.pid}
    )
    third = RunStore(tmp_path / "run", create=False)
    RunLock(third).acquire()
    far = RunStore(tmp_path / "run", create=False)
    lock_id = far.storage.get_study_id_from_name("nas-lock:run")
    far.storage.set_study_system_attr(lock_id, "owner", {"host": "elsewhere", "pid": 1})
    with pytest.raises(RunInUseError, match="on elsewhere"):
        RunLock(far, stale_s=60).acquire()
    far.storage.set_study_system_attr(lock_id, "beat", time.time() - 61)
    RunLock(far, stale_s=60).acquire()


def test_credentials_are_masked() -> None:
    url = "postgresql+psycopg2://nas:s3cr%40t@db.example:5432/runs"
    assert mask_url(url) == "postgresql+psycopg2://nas:***@db.example:5432/runs"
    assert mask_url("sqlite:////tmp/a.db") == "sqlite:////tmp/a.db"
    text = f"nas search --storage {url} --trials 3"
    assert "s3cr" not in mask_text(text) and "nas:***@db.example" in mask_text(text)


def test_extending_a_finished_re_run_through_the_cli(nas_cli, tmp_path) -> None:
    """The issue's case: RE's population must not follow the new --trials on resume."""
    a = tmp_path / "a"
    code, _, err = nas_cli("search", *NB201, "--trials", "20", "--seed", "1", "--run-dir", str(a))
    assert code == 0, err
    before = [r.arch for r in RunStore(a, create=False).records()]
    code, _, err = nas_cli("search", "--resume", str(a), "--trials", "30")
    assert code == 0, err
    recs = RunStore(a, create=False).records()
    assert len(recs) == 30 and all(r.ok for r in recs)
    assert [r.arch for r in recs[:20]] == before and len({r.arch for r in recs}) == 30
    assert json.loads((a / "run.json").read_text())["strategy_options"]["population"] == 5
    code, _, err = nas_cli("search", "--resume", str(a), "--population", "7")
    assert code == 2 and "keeps its strategy options" in err


def test_two_resumes_of_one_run_and_two_runs_on_one_storage(nas_cli, tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    a, b = tmp_path / "a", tmp_path / "b"
    for run, seed in ((a, "0"), (b, "1")):
        code, _, err = nas_cli(
            "search",
            *NB201,
            "--trials",
            "6",
            "--seed",
            seed,
            "--storage",
            url,
            "--run-dir",
            str(run),
        )
        assert code == 0, err
    ra, rb = RunStore(a, create=False, storage=url), RunStore(b, create=False, storage=url)
    assert (ra.name, rb.name) == ("a", "b")
    assert len(ra.records()) == len(rb.records()) == 6
    assert [r.arch for r in ra.records()] != [r.arch for r in rb.records()]
    code, out, _ = nas_cli("runs", "list", "--storage", url)
    assert code == 0 and "│ a " in out and "│ b " in out and "lock" not in out
    # a new run never joins another run's study
    code, _, err = nas_cli(
        "search", *NB201, "--trials", "6", "--storage", url, "--run-dir", str(tmp_path / "x" / "a")
    )
    assert code == 2 and "already holds a run named 'a'" in err
    # two resumes at once: the second is refused with the owner's name, and nothing over-runs
    proc = subprocess.Popen(
        [sys.executable, "-m", "nas", "search", "--resume", str(a), "--trials", "4000"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while len(ra.records()) < 10 and time.monotonic() < deadline:
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            time.sleep(0.3)
        code, out, err = nas_cli("search", "--resume", str(a), "--trials", "20")
        assert code == 2, err
        assert f"is in use by process {proc.pid}" in err and "nas search --resume" in err
        assert len(err.strip().splitlines()) == 1
        assert "resuming" not in out  # refused before it says anything
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    # the killed owner's lock is stale at once (same host): resuming works, to the budget
    n = len(RunStore(a, create=False, storage=url).completed())
    code, _, err = nas_cli("search", "--resume", str(a), "--trials", str(n + 5))
    assert code == 0, err
    done = RunStore(a, create=False, storage=url).completed()
    assert len(done) == n + 5 and len({r.arch for r in done}) == n + 5


def test_a_kill_before_run_json_says_what_to_do(nas_cli, tmp_path) -> None:
    run = tmp_path / "r"
    RunStore(run)  # the study exists, run.json was never written
    code, _, err = nas_cli("search", "--resume", str(run))
    assert code == 2 and "start it again with --run-dir" in err
    code, _, err = nas_cli("search", *NB201, "--trials", "3", "--run-dir", str(run))
    assert code == 0, err
    assert len(RunStore(run, create=False).completed()) == 3


# ----------------------------------------------------------------------------- trainer
def _dataset(n: int = 4096) -> Dataset:
    rng = np.random.default_rng(0)

    def split(k: int) -> Split:
        y = rng.integers(0, 4, k)
        return Split(rng.normal(y[:, None, None, None], 1.0, (k, 3, 8, 8)).astype(np.float32), y)

    return Dataset("synthetic", (3, 8, 8), 4, split(n), split(256), split(256), "clusters")


CONV = "seq(route(im2col(k=3,s=1,p=1),compute(linear(out=16)),col2im),compute(norm))"


def test_the_time_budget_holds_inside_the_step_loop() -> None:
    cfg = TrainConfig.preset("quick", epochs=3, batch_size=8, time_budget_s=0.01)
    t = time.perf_counter()
    res = train(CONV, _dataset(), cfg)
    assert time.perf_counter() - t < 5
    assert res.status == "timeout" and "time budget of 0.01 CPU s" in res.reason
    assert res.steps_done < 50 and res.epochs_done < 1 and res.train_time_s < 0.5
    assert "accuracy" in res.valid and "accuracy" in res.test  # partial metrics


class FailingArray(np.ndarray):
    """Reads of this array fail as numpy does when it cannot allocate the batch."""

    def __getitem__(self, idx: Any) -> Any:
        if isinstance(idx, slice | np.ndarray) and not getattr(self, "_ok", False):
            raise MemoryError("Unable to allocate 3.00 GiB for an array with shape (4096,)")
        return super().__getitem__(idx)


def test_a_memory_error_in_the_feed_is_an_oom_record() -> None:
    ds = _dataset(512)
    ds.train.x = ds.train.x.view(FailingArray)
    cfg = TrainConfig.preset("quick", epochs=1, max_resident_bytes=0, normalise=False)
    res = train(CONV, ds, cfg)
    assert res.status == "oom" and res.reason.startswith("MemoryError: Unable to allocate")


def test_a_timeout_trial_has_its_own_status_and_partial_metrics() -> None:
    cfg = evaluators.config_dict(TrainConfig.preset("quick", epochs=3, time_budget_s=0.01))
    ev = evaluators.TrainEvaluator("einspace", "unseen:language", cfg, size="small")
    from nas.sampling import Sampler

    arch = Sampler(ev.space, seed=0).sample()
    out = ev(arch)
    assert out.status == "timeout" and out.values is None
    assert "time budget" in out.reason and out.metrics["valid"] and out.metrics["epochs_done"] < 3


def _open_at(url: str, start: float, results: Any) -> None:
    from nas.searches.store import open_storage

    while time.time() < start:
        pass
    try:
        open_storage(url)
        results.put("ok")
    except Exception as e:  # what a process racing to create the database would see
        results.put(f"{type(e).__name__}: {e}")


def test_processes_opening_a_new_database_at_once_all_get_it(tmp_path) -> None:
    """Optuna's schema creation is not atomic: a search, its workers and `nas runs` may open
    a new SQLite run at the same moment, and the loser must not see the storage as lost."""
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    for round_ in range(6):
        url = f"sqlite:///{tmp_path / f'r{round_}.db'}"
        results = ctx.Queue()
        start = time.time() + 0.5
        procs = [ctx.Process(target=_open_at, args=(url, start, results)) for _ in range(4)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(60)
        assert [results.get(timeout=5) for _ in procs] == ["ok"] * 4


def test_runs_list_shows_a_damaged_run_as_unreadable_and_lists_the_rest(nas_cli, tmp_path):
    root = tmp_path / "runs"
    code, _, err = nas_cli("search", *NB201, "--trials", "2", "--run-dir", str(root / "good"))
    assert code == 0, err
    long = "nb201-nb201_cifar10-tpe-20261206-104257-a-name-longer-than-a-terminal-column"
    shutil.copytree(root / "good", root / long)
    (root / "bad-json").mkdir()
    (root / "bad-json" / "run.json").write_text("{oops")
    (root / "bad-db").mkdir()
    (root / "bad-db" / "run.json").write_text((root / "good" / "run.json").read_text())
    (root / "bad-db" / "study.db").write_text("not sqlite")
    code, out, err = nas_cli("runs", "list", str(root))
    assert code == 1 and "│ good " in out and "nb201" in out
    assert f"│ {long} │" in out  # piped output is not cut to 80 columns
    assert re.search(r"│ bad-json +│ unreadable: not JSON", out), out
    assert re.search(r"│ bad-db +│ unreadable: cannot open storage", out), out
    spaces = " ".join(line.split("│")[2] for line in out.splitlines() if line.count("│") > 2)
    assert "not a SQLite database" in " ".join(spaces.split()), out  # a long cell wraps
    assert err == ""
    code, _, err = nas_cli("runs", "list", str(tmp_path / "nowhere"))
    assert code == 2 and err.startswith("error:") and "not a folder of runs" in err
    (tmp_path / "empty").mkdir()
    code, out, _ = nas_cli("runs", "list", str(tmp_path / "empty"))
    assert code == 0 and "no runs in" in out


def test_a_pool_never_has_more_workers_than_trials_left(tmp_path, monkeypatch) -> None:
    from nas.searches import runner

    sizes = []

    class Counted(runner.WorkerPool):
        def __init__(self, n: int, factory: Any) -> None:
            sizes.append(n)
            super().__init__(n, factory)

    monkeypatch.setattr(runner, "WorkerPool", Counted)
    store = RunStore(tmp_path / "run")
    assert len(run_search(_re(), store, 2, TABLE, workers=6)) == 2
    assert sizes == [2]


def test_runs_show_lists_the_best_with_whole_architectures(nas_cli, tmp_path, monkeypatch) -> None:
    run = tmp_path / "run"
    code, _, err = nas_cli("search", *NB201, "--trials", "3", "--run-dir", str(run))
    assert code == 0, err
    best = RunStore(run, create=False).best(2)
    code, out, _ = nas_cli("runs", "show", str(run), "--top", "2")
    lines = out.splitlines()
    assert code == 0 and lines[1] == "3 trials: ok 3"
    assert lines[-2:] == [f"1: {best[0].arch}", f"2: {best[1].arch}"]
    monkeypatch.setattr(RunStore, "best", lambda self, n=None: [])  # every trial failed
    code, out, _ = nas_cli("runs", "show", str(run))
    assert code == 0 and out.splitlines()[-1] == "no successful trial yet: nothing to rank"
