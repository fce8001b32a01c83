"""Runs on a real PostgreSQL server, started by the test itself (initdb + pg_ctl).

Skipped, with the reason, only where no server can be started (no binaries, no driver).
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest
from nas.searches.lock import RunLock
from nas.searches.store import RunStore

PASSWORD = "s3cret-pw"
NB201 = ["--space", "nb201", "--dataset", "nb201:cifar10"]


def _binary(name: str) -> str | None:
    found = shutil.which(name) or sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found if isinstance(found, str) else (found[-1] if found else None)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def pg_url():
    """A fresh PostgreSQL server on a free port; its URL (user nas, database nas)."""
    initdb, pg_ctl = _binary("initdb"), _binary("pg_ctl")
    if not (initdb and pg_ctl):
        pytest.skip("no PostgreSQL server binaries (initdb, pg_ctl) on this machine")
    try:
        import psycopg2
    except ImportError:
        pytest.skip("psycopg2 is not installed (pip install -e '.[test]')")
    base = Path(tempfile.mkdtemp(prefix="nas-pg-"))
    prefix: list[str] = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root: use the postgres user
        if not shutil.which("runuser"):
            pytest.skip("running as root without runuser: cannot start PostgreSQL")
        prefix = ["runuser", "-u", "postgres", "--"]
        shutil.chown(base, "postgres")
    (base / "pw").write_text(PASSWORD + "\n")
    if prefix:
        shutil.chown(base / "pw", "postgres")
    port = _free_port()
    data = base / "data"
    started = False
    try:
        subprocess.run(
            [*prefix, initdb, "-D", str(data), "-U", "nas", f"--pwfile={base / 'pw'}",
             "-A", "scram-sha-256", "--no-sync"],
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip
        opts = f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off"
        subprocess.run(
            [*prefix, pg_ctl, "-D", str(data), "-o", opts, "-l", str(base / "log"), "-w",
             "start"],
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip
        started = True
        conn = psycopg2.connect(
            host="127.0.0.1", port=port, user="nas", password=PASSWORD, dbname="postgres"
        )
        conn.autocommit = True
        conn.cursor().execute("CREATE DATABASE nas")
        conn.close()
    except (subprocess.SubprocessError, OSError, psycopg2.Error) as e:
        log = (base / "log").read_text()[-500:] if (base / "log").exists() else ""
        if started:
            subprocess.run([*prefix, pg_ctl, "-D", str(data), "-m", "immediate", "stop"])
        shutil.rmtree(base, ignore_errors=True)
        pytest.skip(f"could not start a PostgreSQL server: {e} {log}")
    try:
        yield f"postgresql://nas:{PASSWORD}@127.0.0.1:{port}/nas"  # as users write it
    finally:
        subprocess.run(
            [*prefix, pg_ctl, "-D", str(data), "-m", "immediate", "stop"],
            capture_output=True, timeout=60,
        )  # fmt: skip
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(autouse=True)
def _env(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")


WRITER = """
import sys
from nas.searches.store import RunStore
url, who, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
store = RunStore(sys.argv[4], storage=url, study="shared")
for k in range(n):
    t = store.start(f"{who}-{k}")
    store.finish(t, "ok", {"accuracy": float(k)}, metrics={"who": who})
"""


def test_two_processes_share_one_study(pg_url, tmp_path) -> None:
    script = tmp_path / "writer.py"
    script.write_text(textwrap.dedent(WRITER))
    RunStore(tmp_path / "shared", storage=pg_url, study="shared")
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), pg_url, who, "25", str(tmp_path / who)],
            stderr=subprocess.PIPE,
        )
        for who in ("a", "b")
    ]
    for p in procs:
        assert p.wait(180) == 0, p.stderr.read().decode()[-2000:]
    recs = RunStore(tmp_path / "x", storage=pg_url, study="shared", create=False).records()
    assert sorted(r.number for r in recs) == list(range(50))
    assert all(r.ok and r.values["accuracy"] == float(r.arch.split("-")[1]) for r in recs)
    assert all(r.metrics["who"] == r.arch[0] for r in recs)
    assert sorted(r.arch for r in recs) == sorted(f"{w}-{k}" for w in "ab" for k in range(25))


def test_searches_on_postgres(nas_cli, pg_url, tmp_path, monkeypatch) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    code, out, err = nas_cli(
        "search", *NB201, "--trials", "6", "--workers", "2", "--storage", pg_url,
        "--run-dir", str(a),
    )  # fmt: skip
    assert code == 0, err
    assert PASSWORD not in out
    for name in ("run.json", "report.md"):
        text = (a / name).read_text()
        assert PASSWORD not in text and "nas:***@127.0.0.1" in text
    code, _, err = nas_cli("search", *NB201, "--trials", "4", "--storage", pg_url,
                           "--run-dir", str(b), "--seed", "5")  # fmt: skip
    assert code == 0, err
    code, out, _ = nas_cli("runs", "list", "--storage", pg_url)
    assert code == 0 and "│ a " in out and "│ b " in out and PASSWORD not in out
    # a resume while another process owns the run is refused, naming the owner
    store = RunStore(a, storage=pg_url, create=False)
    lock = RunLock(store)
    lock.acquire()
    try:
        code, _, err = nas_cli("search", "--resume", str(a), "--storage", pg_url)
        assert code == 2 and f"in use by process {os.getpid()}" in err
    finally:
        lock.release()
    # run.json has no password: a resume takes it from --storage or from PGPASSWORD
    code, _, err = nas_cli("search", "--resume", str(a), "--trials", "9")
    assert code != 0 and PASSWORD not in err
    monkeypatch.setenv("PGPASSWORD", PASSWORD)
    code, _, err = nas_cli("search", "--resume", str(a), "--trials", "9")
    assert code == 0, err
    done = RunStore(a, storage=pg_url, create=False).completed()
    assert len(done) == 9 and len({r.arch for r in done}) == 9
    assert json.loads((a / "run.json").read_text())["study"] == "a"
    assert len(RunStore(b, storage=pg_url, create=False).completed()) == 4
