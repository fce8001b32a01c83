"""Reading many ONNX files for ``nas rank``: one at a time, in worker processes when there
are many.

Each file is read, checked, normalised, costed and probed (:func:`rank_record`) under its
own time limit, and whatever goes wrong with it is its own error. Files are read one after
the other and yielded as each is done (:func:`iter_read`): a file's parsed model and graphs
are released before the next one is read, and what is kept of it (:func:`compact`: its node
texts, identical ones sharing one string, and its edges as an int32 array) takes about 16
bytes a node, so memory follows the largest file, not the folder. With ``workers`` > 1, at
least :data:`PARALLEL_MIN` files and :data:`PARALLEL_MIN_BYTES` in all, the reading is
spread over spawned processes (one thread each, each with its own capped onnxruntime
arena), which about halves the wall time on two cores; results keep the files' order. If a
worker process dies (a file that crashes onnxruntime itself) or none can be started, the
files not read yet are read in this process, as without workers.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
from nas.predictors.onnxcheck import DEFAULT_MAX_NODES
from nas.predictors.onnxfile import as_file_error, time_limit
from nas.predictors.record import GraphRecord, read_record

from nas.exceptions import NasError

# fewer files, or fewer bytes in all: spawning workers (about 1.5 s) costs more than it saves
# (71 files of a few KB took 5.8 s with two workers, 3.0 s without)
PARALLEL_MIN = 64
PARALLEL_MIN_BYTES = 32 * 2**20
CHUNK = 8  # files a worker takes at a time
# one thread per worker: two processes each spinning two BLAS threads lose on two cores
_ONE_THREAD = {k: "1" for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}

Read = tuple[GraphRecord | None, float, str]  # (record, NASWOT score, error) of one file


def compact(record: GraphRecord) -> GraphRecord:
    """What ``nas rank`` keeps of a file until the set is scored: identical node texts share
    one string and the edges are an (n, 2) int32 array (about 16 bytes a node, not 200)."""
    shared: dict[str, str] = {}
    texts = [shared.setdefault(t, t) for t in record.texts]
    edges = np.asarray(record.edges, np.int32).reshape(-1, 2)
    return replace(record, texts=texts, edges=edges)


def rank_record(
    f: Path,
    max_bytes: int,
    dims: Mapping[str, int] | None,
    proxy: bool,
    probe_bytes: int,
    max_nodes: int = DEFAULT_MAX_NODES,
) -> tuple[GraphRecord, float]:
    """The compact record and NASWOT score (NaN without ``proxy``) of one file, read once
    (:func:`~nas.predictors.record.read_record`, as a bench's records are, plus the ONNX
    checker); notes about what could not be computed end up in ``record.notes``."""
    record = read_record(f, max_bytes, dims, probe_bytes, proxy, max_nodes, check=True)
    return compact(record), record.signals.get("nwot", math.nan)


def read_one(
    f: Path,
    max_bytes: int,
    dims: Mapping[str, int] | None,
    time_limit_s: float | None,
    proxy: bool,
    probe_bytes: int,
    max_nodes: int = DEFAULT_MAX_NODES,
) -> Read:
    """One file's record and score, or its one-line error (the file's name left out)."""
    try:
        with time_limit(time_limit_s, f):
            record, nwot = as_file_error(
                f, lambda: rank_record(f, max_bytes, dims, proxy, probe_bytes, max_nodes)
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


def iter_read(
    files: Sequence[Path],
    workers: int = 1,
    reader: Callable[..., Read] = read_one,
    **kw: object,
) -> Iterator[Read]:
    """``reader`` (:func:`read_one`) of every file, in order, each yielded once read; in
    ``workers`` processes when there are at least :data:`PARALLEL_MIN` files of
    :data:`PARALLEL_MIN_BYTES` in all."""
    read = functools.partial(reader, **kw)
    done = 0
    if workers > 1 and len(files) >= PARALLEL_MIN and _bytes(files) >= PARALLEL_MIN_BYTES:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor
        from concurrent.futures.process import BrokenProcessPool

        ctx = multiprocessing.get_context("spawn")
        try:
            with _one_thread_env(), ProcessPoolExecutor(workers, mp_context=ctx) as pool:
                for result in pool.map(read, files, chunksize=CHUNK):
                    yield result
                    done += 1
        except (BrokenProcessPool, OSError):
            pass  # a worker died, or none could start: the rest is read here
    for f in files[done:]:
        yield read(f)


def read_files(
    files: Sequence[Path],
    workers: int = 1,
    reader: Callable[..., Read] = read_one,
    **kw: object,
) -> list[Read]:
    """:func:`iter_read` as a list."""
    return list(iter_read(files, workers, reader, **kw))
