"""Reading many ONNX files for ``nas rank``: in worker processes when there are many.

Each file is read, normalised, costed and probed (:func:`rank_record`) under its own time
limit, and whatever goes wrong with it is its own error. With ``workers`` > 1, at least
:data:`PARALLEL_MIN` files and :data:`PARALLEL_MIN_BYTES` in all, the reading is spread
over spawned processes (one thread each, each with its own capped onnxruntime arena),
which about halves the wall time on two cores; results keep the files' order. If a worker
process dies (a file that crashes onnxruntime itself) or none can be started, the files
not read yet are read in this process, as without workers.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

from nas.predictors.bench import GraphRecord, read_record
from nas.predictors.onnxfile import as_file_error, time_limit

from nas.exceptions import NasError

# fewer files, or fewer bytes in all: spawning workers (about 1.5 s) costs more than it saves
# (71 files of a few KB took 5.8 s with two workers, 3.0 s without)
PARALLEL_MIN = 64
PARALLEL_MIN_BYTES = 32 * 2**20
CHUNK = 8  # files a worker takes at a time
# one thread per worker: two processes each spinning two BLAS threads lose on two cores
_ONE_THREAD = {k: "1" for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}

Read = tuple[GraphRecord | None, float, str]  # (record, NASWOT score, error) of one file


def rank_record(
    f: Path,
    max_bytes: int,
    dims: Mapping[str, int] | None,
    proxy: bool,
    probe_bytes: int,
) -> tuple[GraphRecord, float]:
    """The record and NASWOT score (NaN without ``proxy``) of one file, read once
    (:func:`~nas.predictors.bench.read_record`, as a bench's records are); notes about what
    could not be computed end up in ``record.notes``."""
    record = read_record(f, max_bytes, dims, probe_bytes, signals=proxy)
    return record, record.signals.get("nwot", math.nan)


def read_one(
    f: Path,
    max_bytes: int,
    dims: Mapping[str, int] | None,
    time_limit_s: float | None,
    proxy: bool,
    probe_bytes: int,
) -> Read:
    """One file's record and score, or its one-line error (the file's name left out)."""
    try:
        with time_limit(time_limit_s, f):
            record, nwot = as_file_error(
                f, lambda: rank_record(f, max_bytes, dims, proxy, probe_bytes)
            )
        return record, nwot, ""
    except NasError as e:
        return None, math.nan, str(e).removeprefix(f"{f}: ")


def _bytes(files: Sequence[Path]) -> int:
    """The files' total size (a file that cannot be stat'ed counts 0: reading it will say
    what is wrong)."""
    total = 0
    for f in files:
        with contextlib.suppress(OSError):
            total += Path(f).stat().st_size
    return total


@contextlib.contextmanager
def _one_thread_env() -> Iterator[None]:
    """Spawned workers inherit one-thread BLAS settings; this process's are restored."""
    old = {k: os.environ.get(k) for k in _ONE_THREAD}
    os.environ.update(_ONE_THREAD)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def read_files(
    files: Sequence[Path],
    workers: int = 1,
    reader: Callable[..., Read] = read_one,
    **kw: object,
) -> list[Read]:
    """``reader`` (:func:`read_one`) of every file, in order; in ``workers`` processes when
    there are at least :data:`PARALLEL_MIN` files of :data:`PARALLEL_MIN_BYTES` in all."""
    read = functools.partial(reader, **kw)
    if workers <= 1 or len(files) < PARALLEL_MIN or _bytes(files) < PARALLEL_MIN_BYTES:
        return [read(f) for f in files]
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    out: list[Read] = []
    ctx = multiprocessing.get_context("spawn")
    try:
        with _one_thread_env(), ProcessPoolExecutor(workers, mp_context=ctx) as pool:
            out.extend(pool.map(read, files, chunksize=CHUNK))
    except (BrokenProcessPool, OSError):
        pass  # a worker died, or none could start: the rest is read here, as without workers
    return out + [read(f) for f in files[len(out) :]]
