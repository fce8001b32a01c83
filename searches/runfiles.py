"""The files of a run folder and their faults: a damaged ``run.json``, a full disk, and
storages that reading commands must open without writing.

* :func:`check_run_info` checks ``run.json`` where it is read (``store.read_run_info``), so
  every command that reads a run (``nas runs``, ``show/check/export --run``, ``search
  --resume``) names the file and the problem in one line instead of failing later.
* :class:`DiskFullError`: the disk of a run filled up. The search stops with one line that
  names the run folder and the resume command; every finished trial stays saved.
* :func:`check_storage_file` and :func:`readonly_engine`: a reading command opens a SQLite
  storage read-only and refuses a missing or empty storage file instead of creating it or
  writing a schema into it.
"""

from __future__ import annotations

import contextlib
import errno
import sqlite3
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from nas.searches.objectives import OBJECTIVES

from nas.exceptions import ConfigurationError, NasError

MAX_RUN_JSON = 16 << 20  # bytes read of a run.json at most (one is a few KB)
SQLITE_MAGIC = b"SQLite format 3\x00"
# messages of a full disk from SQLite, the OS and PostgreSQL (whose DiskFull has no errno)
_FULL = ("database or disk is full", "No space left on device", "Disk quota exceeded")

# run.json's fields that commands read: the JSON kind each holds ("?": or null)
_TOP = {"study": "string?", "command": "string?", "strategy_options": "object?"}
_OPTIONS = {
    "space": "string",
    "dataset": "string?",
    "strategy": "string",
    "objective": "string",
    "trials": "integer?",
    "time_budget": "number?",
    "trial_time": "number?",
    "epochs": "integer?",
    "final_epochs": "integer?",
    "preset": "string",
    "seed": "integer",
    "storage": "string?",
    "workers": "integer",
    "data_dir": "string?",
    "size": "string",
    "strategy_options": "object",
    "backend": "string",
    "address": "string?",
    "cpus": "number",
    "gpus": "number",
    "scheduler": "string",
}
_KINDS = {"string": (str,), "integer": (int,), "number": (int, float), "object": (dict,)}


class RunFileError(ConfigurationError):
    """A run's ``run.json`` is missing its fields, holds wrong types or is not JSON."""

    def __init__(self, path: Path, why: str) -> None:
        self.path, self.why = path, why
        super().__init__(f"{path} is unreadable: {why}.")


class StorageLostError(NasError):
    """The run's storage cannot be read or written: the one failure that stops a search."""


class DiskFullError(StorageLostError):
    """The disk of a run (its folder or its storage) is full; nothing saved is lost."""


def read_json_object(path: Path) -> dict[str, Any]:
    """The JSON object in ``path`` (at most :data:`MAX_RUN_JSON` bytes read).

    Raises:
        RunFileError: unreadable, too large, not JSON, or JSON that is not an object.
    """
    import json

    try:
        with path.open("rb") as f:
            data = f.read(MAX_RUN_JSON + 1)
    except OSError as e:
        raise RunFileError(path, e.strerror or type(e).__name__) from None
    if len(data) > MAX_RUN_JSON:
        raise RunFileError(path, f"it is over {MAX_RUN_JSON >> 20} MB, not a run's run.json")
    try:
        info = json.loads(data)
    except ValueError as e:  # not JSON, or not UTF-8
        raise RunFileError(path, f"not JSON ({str(e).splitlines()[0][:120]})") from None
    if not isinstance(info, dict):
        raise RunFileError(path, f"it holds a JSON {_json_kind(info)}, not an object")
    return info


def check_run_info(path: Path, info: dict[str, Any]) -> dict[str, Any]:
    """``info`` (read from ``path``) when its fields have the types commands rely on.

    ``options`` and its ``space`` are required; every other known field may be missing
    (older runs) but must have its type when present.

    Raises:
        RunFileError: naming the file, the field and what it holds.
    """
    _check_fields(path, info, _TOP, "")
    opts = info.get("options")
    if opts is None:
        raise RunFileError(path, "it has no 'options' (the search's options)")
    if not isinstance(opts, dict):
        raise RunFileError(path, f"'options' holds a JSON {_json_kind(opts)}, not an object")
    if "space" not in opts:
        raise RunFileError(path, "its 'options' name no 'space'")
    _check_fields(path, opts, _OPTIONS, "options.")
    if "objective" in opts and opts["objective"] not in OBJECTIVES:
        raise RunFileError(
            path,
            f"options.objective is {opts['objective']!r}, not one of {', '.join(OBJECTIVES)}",
        )
    return info


def _check_fields(path: Path, obj: dict[str, Any], kinds: dict[str, str], prefix: str) -> None:
    """Raise :class:`RunFileError` for the first field of ``obj`` not of its kind."""
    for key, kind in kinds.items():
        value = obj.get(key)
        if key not in obj or (value is None and kind.endswith("?")):
            continue
        name = kind.rstrip("?")
        if isinstance(value, bool) or not isinstance(value, _KINDS[name]):  # true is no count
            shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
            article = "an" if name[0] in "aeiou" else "a"
            null = " or null" if kind.endswith("?") else ""
            raise RunFileError(path, f"{prefix}{key} is {shown}, not {article} {name}{null}")


def _json_kind(value: Any) -> str:
    """What a JSON value is, in words (``list``, ``string``, ``null``, ...)."""
    kinds = {list: "list", str: "string", bool: "boolean", int: "number", float: "number"}
    return "null" if value is None else kinds.get(type(value), type(value).__name__)


# --------------------------------------------------------------------------- full disk
def disk_full(e: BaseException | None) -> str | None:
    """What in ``e`` (or the exceptions it came from) says the disk is full; None if
    nothing does."""
    seen: set[int] = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
            return e.strerror or "No space left on device"
        text = str(e)
        hit = next((m for m in _FULL if m in text), None)
        if hit is not None:
            return hit
        e = e.__cause__ or e.__context__
    return None


def disk_full_error(run_dir: Path, why: str, storage: str | None = None) -> DiskFullError:
    """The one-line error of a full disk: where, what is kept, and the command that goes
    on (``storage``: the storage that failed when it lies outside the run folder, its
    password masked)."""
    where = (
        f"the disk of storage {storage} is full" if storage else f"the disk is full at {run_dir}"
    )
    if (run_dir / "run.json").is_file():
        return DiskFullError(
            f"{where} ({why}): the search stopped and its finished trials are saved; once "
            f"there is space, go on with: nas search --resume {run_dir}"
        )
    return DiskFullError(
        f"{where} ({why}): the search {run_dir} stopped before it recorded its options; "
        "free some space and start it again."
    )


@contextlib.contextmanager
def disk_full_stops(run_dir: str | Path) -> Iterator[None]:
    """Turn any failure of the block that comes from a full disk (a storage write, run.json,
    a report file) into :class:`DiskFullError`; other failures pass unchanged."""
    try:
        yield
    except DiskFullError:
        raise
    except Exception as e:
        why = disk_full(e)
        if why is None:
            raise
        raise disk_full_error(Path(run_dir), why) from None


# ------------------------------------------------------------------- reading storages
def storage_why(e: BaseException, readonly: bool = False) -> str:
    """Why a storage failed, in one line: the database's own error rather than Optuna's
    generic StorageInternalError; under ``readonly``, SQLite refusing to write means a
    search stopped in the middle of a write (its ``-journal`` is left to roll back)."""
    if type(e).__name__ == "StorageInternalError" and e.__cause__ is not None:
        e = e.__cause__
    text = f"{type(e).__name__}: {(str(e).strip().splitlines() or [''])[0]}"[:300]
    if readonly and "attempt to write a readonly database" in text:
        return (
            "a search stopped in the middle of a write (its -journal file is left); "
            "nas search --resume finishes or undoes it, a reading command writes nothing"
        )
    return text


def storage_file(url: str) -> Path | None:
    """The file behind a SQLite or journal storage URL; None for a database server."""
    if url.startswith("journal:"):
        return Path(url[len("journal:") :])
    scheme, sep, rest = url.partition(":///")
    if not sep or scheme.split("+")[0] != "sqlite":
        return None
    path = rest.split("?", 1)[0]
    return None if path in ("", ":memory:") or path.startswith("file:") else Path(path)


def check_storage_file(url: str, shown: str) -> None:
    """Refuse a storage file that opening would create or write a schema into: missing,
    not a regular file, empty, or (SQLite) not a database. ``shown``: the masked URL.

    Raises:
        StorageLostError: naming the file and what is wrong with it.
    """
    path = storage_file(url)
    if path is None:
        return
    why = ""
    try:
        if not path.exists():
            why = "no such file"
        elif not path.is_file():
            why = "not a regular file"
        elif path.stat().st_size == 0:
            why = "the file is empty (0 bytes)"
        elif not url.startswith("journal:"):
            with path.open("rb") as f:
                if f.read(len(SQLITE_MAGIC)) != SQLITE_MAGIC:
                    why = "not a SQLite database"
    except OSError as e:
        why = e.strerror or type(e).__name__
    if why:
        raise StorageLostError(f"cannot open storage {shown}: {why}.")


def readonly_engine(url: str) -> dict[str, Any]:
    """``engine_kwargs`` that open a SQLite storage read-only: no schema is written, no
    journal or file is created (empty for other storages)."""
    path = storage_file(url)
    if path is None or url.startswith("journal:"):
        return {}
    uri = f"file:{urllib.parse.quote(str(path.resolve()))}?mode=ro"

    def connect() -> sqlite3.Connection:
        return sqlite3.connect(uri, uri=True, check_same_thread=False)

    return {"creator": connect}
