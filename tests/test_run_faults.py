"""Faults of a long run's files (issue 26): a disk that fills up mid-search, a damaged
run.json among good runs, and reading commands that must leave a run folder as it was."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from nas.searches import Search, SearchConfig
from nas.searches.store import RunStore, open_run

NB201 = ("--space", "nb201", "--dataset", "nb201:cifar10")
TRIALS, MORE = 24, 30  # a run's budget, and what a resume extends it to


def _config(trials: int) -> SearchConfig:
    """What ``nas search`` NB201 ``--trials N --final-epochs 0`` runs (table mode: fast)."""
    return SearchConfig(space="nb201", dataset="nb201:cifar10", trials=trials, final_epochs=0)


@pytest.fixture(scope="module")
def clean(tmp_path_factory) -> list[str]:
    """The architectures of an uninterrupted run of the budget, in order."""
    return [
        r.arch for r in Search(_config(TRIALS), tmp_path_factory.mktemp("c") / "r").run().records
    ]


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """A finished 6-trial run (tests copy it before damaging it)."""
    run = tmp_path_factory.mktemp("finished") / "run"
    Search(_config(6), run).run()
    return run


def _one_line_error(code: int, out: str, err: str, *parts: str) -> None:
    assert code == 2, (code, out, err)
    assert "Traceback" not in out + err, err
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: "), err
    for part in parts:
        assert part in err, (part, err)


def _rows(out: str) -> dict[str, str]:
    """``nas runs list``'s table as run -> its other cells, lines a cell wrapped onto joined."""
    rows: dict[str, str] = {}
    last = ""
    for line in out.splitlines():
        cells = [c.strip() for c in line.split("│")[1:-1]]
        if not cells or cells[:2] == ["run", "space"]:
            continue
        last = cells[0] or last
        rows[last] = " ".join([rows.get(last, ""), *cells[1:]]).strip()
    return {run: " ".join(text.split()) for run, text in rows.items()}


def _snapshot(folder: Path) -> dict[str, str]:
    """Every file and folder under ``folder`` with the sha256 of each file."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        if p.is_file()
        else "/"
        for p in sorted(folder.rglob("*"))
    }


# ----------------------------------------------------------------------------- full disk
class SmallDisk:
    """A folder on a file system of its own that ``fill`` fills and ``free`` frees: a 2 MB
    tmpfs where this process may mount one (root), else a wrapper that makes every storage
    and file write under the folder raise the real ``OSError(ENOSPC)`` while full."""

    def __init__(self, root: Path, mounted: bool, monkeypatch: Any) -> None:
        self.root, self.mounted, self.full = root, mounted, False
        if not mounted:
            self._wrap(monkeypatch)

    def fill(self) -> None:
        self.full = True
        if not self.mounted:
            return
        with open(self.root / "filler", "wb", buffering=0) as f:  # to the last page
            try:
                while f.write(bytes(4096)):
                    pass
            except OSError as e:
                assert e.errno == errno.ENOSPC

    def free(self) -> None:
        self.full = False
        (self.root / "filler").unlink(missing_ok=True)

    def _enospc(self, where: object) -> None:
        if self.full and str(self.root) in str(where):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(where))

    def _guarded(self, real: Any) -> Any:
        def write(storage: Any, *a: Any, **k: Any) -> Any:
            self._enospc(storage.url)
            return real(storage, *a, **k)

        return write

    def _wrap(self, monkeypatch: Any) -> None:
        import optuna

        rdb = optuna.storages.RDBStorage
        for name in (
            "create_new_study",
            "delete_study",
            "set_study_system_attr",
            "create_new_trial",
            "set_trial_user_attr",
            "set_trial_state_values",
        ):
            monkeypatch.setattr(rdb, name, self._guarded(getattr(rdb, name)))
        write_text, replace = Path.write_text, os.replace

        def text(path: Path, *a: Any, **k: Any) -> int:
            self._enospc(path)
            return write_text(path, *a, **k)

        def move(src: Any, dst: Any, **k: Any) -> None:
            self._enospc(dst)
            replace(src, dst, **k)

        monkeypatch.setattr(Path, "write_text", text)
        monkeypatch.setattr(os, "replace", move)


@pytest.fixture
def small_disk(tmp_path, monkeypatch) -> Iterator[SmallDisk]:
    root = tmp_path / "disk"
    root.mkdir()
    try:
        mount = ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(root)]
        mounted = subprocess.run(mount, capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        mounted = False
    try:
        yield SmallDisk(root, mounted, monkeypatch)
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(root)], capture_output=True, timeout=20)


def _fill_at(disk: SmallDisk, monkeypatch: Any, n: int, after: bool) -> None:
    """Fill ``disk`` once, at the ``n``-th finished trial (before or ``after`` its write)."""
    real, count = RunStore.finish, [0]

    def finish(store: RunStore, *a: Any, **k: Any) -> Any:
        count[0] += 1
        if count[0] == n and not after:
            disk.fill()
        rec = real(store, *a, **k)
        if count[0] == n and after:
            disk.fill()
        return rec

    monkeypatch.setattr(RunStore, "finish", finish)


def _saved(run: Path) -> list[tuple[int, str, dict]]:
    _, store = open_run(run)
    return [(r.number, r.arch, r.values) for r in store.completed()]


def test_a_full_disk_mid_search_stops_in_one_line_and_the_resume_loses_nothing(
    nas_cli, small_disk, monkeypatch, clean
) -> None:
    """The storage in the run folder fails on the 12th result: one line naming the folder
    with the resume command, exit 2, the same while the disk stays full; once there is
    space the resume ends as an uninterrupted run (the 11 saved trials kept, no duplicate)."""
    run = small_disk.root / "run"
    _fill_at(small_disk, monkeypatch, 12, after=False)
    search = ("search", *NB201, "--trials", str(TRIALS), "--final-epochs", "0")
    full = (
        f"the disk is full at {run} (",
        f"; once there is space, go on with: nas search --resume {run}",
    )
    _one_line_error(*nas_cli(*search, "--run-dir", str(run)), *full)
    saved = _saved(run)
    assert len(saved) == 11
    _one_line_error(*nas_cli("search", "--resume", str(run)), *full)
    small_disk.free()
    code, _, err = nas_cli("search", "--resume", str(run))
    assert code == 0, err
    done = _saved(run)
    assert done[:11] == saved and len({arch for _, arch, _ in done}) == TRIALS
    assert [arch for _, arch, _ in done] == clean


def test_a_full_disk_writing_the_run_files_stops_in_one_line_and_loses_nothing(
    nas_cli, small_disk, monkeypatch, tmp_path, clean
) -> None:
    """The run folder fills up while the storage (elsewhere) still writes: skipped.json
    after the last trial, then run.json on a resume that extends the budget. Each stops in
    one line with the resume command; run.json is kept whole; the resume then finishes."""
    run, db = small_disk.root / "run", f"sqlite:///{tmp_path / 'study.db'}"
    _fill_at(small_disk, monkeypatch, TRIALS, after=True)
    search = ("search", *NB201, "--trials", str(TRIALS), "--final-epochs", "0", "--storage", db)
    resume = f"nas search --resume {run}"
    _one_line_error(
        *nas_cli(*search, "--run-dir", str(run)), f"the disk is full at {run} ", resume
    )
    assert [arch for _, arch, _ in _saved(run)] == clean
    before = _snapshot(run)
    _one_line_error(*nas_cli("search", "--resume", str(run), "--trials", str(MORE)), resume)
    assert _snapshot(run) == before  # run.json whole and unchanged, no temporary file left
    small_disk.free()
    code, _, err = nas_cli("search", "--resume", str(run), "--trials", str(MORE))
    assert code == 0, err
    done = [arch for _, arch, _ in _saved(run)]
    assert done[:TRIALS] == clean and len(set(done)) == MORE
    assert json.loads((run / "run.json").read_text())["options"]["trials"] == MORE
    assert (run / "report.md").is_file()


# ------------------------------------------------------------------------ damaged run.json
def _info(run: Path) -> dict[str, Any]:
    return json.loads((run / "run.json").read_text())


def _without(info: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in info.items() if k != key}


def _option(info: dict[str, Any], key: str, value: Any) -> dict[str, Any]:
    return {**info, "options": {**info["options"], key: value}}


DAMAGED = {  # name: (run.json from a good one's info, what the error says)
    "json-list": (lambda i: [1, 2, 3], "it holds a JSON list, not an object"),
    "not-json": (lambda i: "{oops", "not JSON"),
    "empty": (lambda i: "", "not JSON"),
    "no-options": (lambda i: _without(i, "options"), "it has no 'options'"),
    "options-list": (lambda i: {**i, "options": []}, "'options' holds a JSON list"),
    "trials-abc": (lambda i: _option(i, "trials", "abc"), "options.trials is 'abc', not an"),
    "trials-true": (lambda i: _option(i, "trials", True), "options.trials is True"),
    "space-number": (lambda i: _option(i, "space", 5), "options.space is 5, not a string"),
    "no-space": (lambda i: _option(i, "space", None), "options.space is None"),
    "objective": (lambda i: _option(i, "objective", "speed"), "options.objective is 'speed'"),
    "study-list": (lambda i: {**i, "study": ["x"]}, "study is ['x'], not a string or null"),
}


@pytest.mark.parametrize("name", list(DAMAGED))
def test_a_damaged_run_json_is_one_line_and_hides_no_other_run(
    nas_cli, tmp_path, finished, name
) -> None:
    root = tmp_path / "runs"
    for good in ("a-good", "z-good"):
        shutil.copytree(finished, root / good)
    bad = root / "m-bad"
    shutil.copytree(finished, bad)
    damage, why = DAMAGED[name]
    text = damage(_info(finished))
    (bad / "run.json").write_text(text if isinstance(text, str) else json.dumps(text))
    code, out, err = nas_cli("runs", "list", str(root))
    assert code == 1 and err == "" and "Traceback" not in out, (out, err)
    rows = _rows(out)
    assert set(rows) == {"a-good", "m-bad", "z-good"}, out
    assert "nb201:cifar10" in rows["a-good"] and "nb201:cifar10" in rows["z-good"]
    assert f"unreadable: {why}" in rows["m-bad"], out
    name_file = (f"{bad / 'run.json'}", why)
    _one_line_error(*nas_cli("runs", "show", str(bad)), *name_file)
    for cmd in ("show", "check"):
        _one_line_error(*nas_cli(cmd, "--run", str(bad)), *name_file)
    onnx = tmp_path / "best.onnx"
    _one_line_error(*nas_cli("export", "--run", str(bad), "-o", str(onnx)), *name_file)
    _one_line_error(*nas_cli("search", "--resume", str(bad)), *name_file)
    assert not onnx.exists()


# ---------------------------------------------------------------------- reading writes nothing
def _hot_journal(run: Path) -> None:
    """Leave study.db as a search killed inside a write does: with its -journal to roll back."""
    code = (
        "import os, sqlite3, sys\n"
        "c = sqlite3.connect(sys.argv[1])\n"
        "c.execute('pragma cache_size=1')\n"
        "c.execute('begin')\n"
        "c.execute('create table junk(x)')\n"
        "c.executemany('insert into junk values (?)', [(b'x' * 1000,)] * 300)\n"
        "os._exit(0)\n"
    )
    subprocess.run([sys.executable, "-c", code, str(run / "study.db")], check=True, timeout=60)
    assert (run / "study.db-journal").stat().st_size > 0


def _empty_db(run: Path) -> None:
    (run / "study.db").write_bytes(b"")


def _missing_storage(run: Path, url: str) -> None:
    info = _info(run)
    (run / "run.json").write_text(json.dumps(_option(info, "storage", url)))


BROKEN = {  # name: (how to break a copy of the run, what reading it says)
    "empty-db": (_empty_db, "the file is empty (0 bytes)"),
    "missing-sqlite": (
        lambda r: _missing_storage(r, f"sqlite:///{r.parent / 'other.db'}"),
        "no such file",
    ),
    "missing-journal": (
        lambda r: _missing_storage(r, f"journal:{r.parent / 'other.log'}"),
        "no such file",
    ),
    "hot-journal": (_hot_journal, "a search stopped in the middle of a write"),
}


def _reads(run: Path, out: Path) -> list[tuple[str, ...]]:
    """Every command that reads a run (dashboard: refused before it serves)."""
    return [
        ("runs", "show", str(run)),
        ("show", "--run", str(run)),
        ("check", "--run", str(run)),
        ("export", "--run", str(run), "-o", str(out)),
    ]


def test_reading_commands_create_and_write_nothing(nas_cli, tmp_path, finished) -> None:
    """Beside a good run: a 0-byte study.db, storage files that run.json names but that are
    gone (SQLite, journal), and a storage left mid-write. Every reading command reads the
    good run and refuses each broken one in one line, ``runs list`` shows them all, and no
    file is created or changed (the sha256 of each, and the list); a resume refuses what it
    cannot read, creating nothing, and rolls the unfinished write back."""
    root, onnx = tmp_path / "runs", tmp_path / "m.onnx"
    shutil.copytree(finished, root / "good")
    for name, (breaks, _) in BROKEN.items():
        shutil.copytree(finished, root / name)
        breaks(root / name)
    before = _snapshot(root)
    for args in _reads(root / "good", onnx):
        code, _, err = nas_cli(*args)
        assert code == 0, (args, err)
        assert _snapshot(root) == before, args
    for name, (_, why) in BROKEN.items():
        reads = _reads(root / name, onnx)
        if name != "hot-journal":  # the dashboard may write (notes): its file is checked
            reads.append(("dashboard", str(root / name)))
        for args in reads:
            _one_line_error(*nas_cli(*args), why)
            assert _snapshot(root) == before, args
    code, out, _ = nas_cli("runs", "list", str(root))
    rows = _rows(out)
    assert code == 1 and "nb201:cifar10" in rows["good"], out
    for name, (_, why) in BROKEN.items():
        assert rows[name].startswith("unreadable: cannot open storage"), out
        assert why in rows[name], out
    assert _snapshot(root) == before
    for name, (_, why) in BROKEN.items():
        if name != "hot-journal":
            _one_line_error(*nas_cli("search", "--resume", str(root / name)), why)
    assert _snapshot(root) == before
    hot = root / "hot-journal"  # a resume rolls the unfinished write back and goes on
    code, _, err = nas_cli("search", "--resume", str(hot))
    assert code == 0, err
    assert len(_saved(hot)) == 6 and not (hot / "study.db-journal").exists()
