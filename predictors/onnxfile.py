"""Reading ONNX files from untrusted folders: bounded, regular files only, one error each.

* Only regular files are opened (a FIFO, a device, a directory is refused before any read),
  and at most ``max_bytes`` are read whatever ``st_size`` says (``/proc`` files and devices
  report 0).
* A symlink is followed only when its target lies in the link's own folder, the rule that
  external data follows: a ``model.onnx`` link to ``/dev/zero`` or ``~/.ssh/x`` is refused.
* Whatever goes wrong while a file is decoded (a bad tensor, invalid UTF-8, a bit flip that
  the protobuf still parses) becomes one :class:`~nas.exceptions.OnnxFileError` naming the
  file, through :func:`as_file_error`; :func:`time_limit` turns a file that takes too long
  into one as well.
"""

from __future__ import annotations

import contextlib
import os
import signal
import stat
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import onnx
from onnx import TensorProto as TP

from nas.exceptions import NasError, OnnxFileError

DEFAULT_MAX_BYTES = 512 * 2**20
T = TypeVar("T")


def file_error(path: Path | str, reason: str) -> OnnxFileError:
    """The one-line error of one file."""
    return OnnxFileError(f"{path}: {reason}")


def _inside(target: Path, folder: Path) -> bool:
    return target == folder or target.is_relative_to(folder)


def checked_path(path: str | Path) -> Path:
    """The file to open for ``path``: the path itself, or a link's target in its folder."""
    p = Path(path)
    if p.is_symlink():
        target = p.resolve()
        if not _inside(target, p.parent.resolve()):
            raise file_error(p, f"is a link to '{target}', outside the file's folder.")
        return target
    return p


def read_bounded(path: str | Path, max_bytes: int) -> bytes:
    """The bytes of a regular file, refusing other kinds and anything over ``max_bytes``."""
    p = Path(path)
    target = checked_path(p)
    try:
        fd = os.open(target, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0))
    except OSError as e:
        raise file_error(p, f"cannot read the file: {e.strerror}.") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise file_error(p, "is not a regular file (a FIFO, device or folder).")
        if st.st_size > max_bytes:
            raise file_error(p, f"{st.st_size:,} bytes is more than the limit of {max_bytes:,}.")
        chunks, total = [], 0
        while True:
            chunk = os.read(fd, min(1 << 20, max_bytes + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
            if total > max_bytes:
                raise file_error(p, f"more than the limit of {max_bytes:,} bytes.")
        return b"".join(chunks)
    except OSError as e:
        raise file_error(p, f"cannot read the file: {e.strerror}.") from None
    finally:
        os.close(fd)


def tensors(graph: onnx.GraphProto) -> Iterator[onnx.TensorProto]:
    """Every tensor proto in a graph, subgraphs included."""
    yield from graph.initializer
    for n in graph.node:
        for a in n.attribute:
            if a.HasField("t"):
                yield a.t
            yield from a.tensors
            if a.HasField("g"):
                yield from tensors(a.g)
            for sub in a.graphs:
                yield from tensors(sub)


_FIELDS = {  # the typed field that holds a tensor's values when it has no raw_data
    TP.FLOAT: "float_data", TP.COMPLEX64: "float_data", TP.DOUBLE: "double_data",
    TP.COMPLEX128: "double_data", TP.INT64: "int64_data", TP.UINT32: "uint64_data",
    TP.UINT64: "uint64_data", TP.STRING: "string_data",
}  # fmt: skip
_PER_VALUE = {TP.COMPLEX64: 2, TP.COMPLEX128: 2}


_SUB_BYTE = {
    getattr(TP, n, -1)
    for n in ("UINT4", "INT4", "FLOAT4E2M1", "UINT2", "INT2", "FLOAT6E2M3", "FLOAT6E3M2")
}


def _stored_values(t: onnx.TensorProto) -> int | None:
    """How many values a tensor's data holds (None when it cannot tell: external data,
    packed sub-byte types)."""
    dt = t.data_type
    if t.data_location == TP.EXTERNAL or dt in _SUB_BYTE:
        return None
    if dt == TP.STRING:
        return len(t.string_data)
    if t.HasField("raw_data"):
        return len(t.raw_data) // onnx.helper.tensor_dtype_to_np_dtype(dt).itemsize
    return len(getattr(t, _FIELDS.get(dt, "int32_data"))) // _PER_VALUE.get(dt, 1)


def check_tensors(model: onnx.ModelProto, p: Path) -> None:
    """Every stored tensor has a known type, non-negative dims and data for its shape."""
    valid = set(TP.DataType.values()) - {TP.UNDEFINED}
    for t in tensors(model.graph):
        name = t.name or "<unnamed>"
        if t.data_type not in valid:
            raise file_error(p, f"tensor '{name}' has an unknown element type {t.data_type}.")
        if any(d < 0 for d in t.dims):
            raise file_error(p, f"tensor '{name}' has a negative dim {list(t.dims)}.")
        n = 1
        for d in t.dims:
            n *= d
        held = _stored_values(t)
        if held is not None and held != n:
            raise file_error(
                p, f"tensor '{name}' holds {held:,} values for its shape {list(t.dims)}."
            )


def check_external_data(model: onnx.ModelProto, p: Path, size: int, max_bytes: int) -> None:
    """External data must lie in the model's folder, be regular files and fit the limit."""
    base = checked_path(p).resolve().parent
    total = size
    for t in tensors(model.graph):
        if t.data_location != onnx.TensorProto.EXTERNAL:
            continue
        loc = {e.key: e.value for e in t.external_data}.get("location", "")
        target = (base / loc).resolve()
        if not loc or not _inside(target, base):
            raise file_error(p, f"external data '{loc}' lies outside the model's folder.")
        if not target.is_file():
            raise file_error(p, f"external data file '{loc}' is missing or not a regular file.")
        total += target.stat().st_size
        if total > max_bytes:
            raise file_error(p, f"with its external data it is over the limit of {max_bytes:,}.")


class _Timeout(BaseException):
    """Raised inside a file's work when its time is up (BaseException: not swallowed)."""


_deadline: float | None = None  # time.monotonic() at which the current file's time is up


def time_left() -> float | None:
    """Seconds left under the innermost :func:`time_limit` (None when there is none), so a
    long call into C code (an onnxruntime run) can be stopped at the same moment."""
    return None if _deadline is None else max(0.0, _deadline - time.monotonic())


@contextlib.contextmanager
def time_limit(seconds: float | None, path: str | Path) -> Iterator[None]:
    """Raise OnnxFileError when the block runs longer than ``seconds`` (main thread only;
    a long call inside C code is interrupted when it returns to Python, and onnxruntime
    runs are told to stop through :func:`time_left`)."""
    if not seconds or threading.current_thread() is not threading.main_thread():
        yield
        return

    global _deadline

    armed = True

    def alarm(*_: object) -> None:
        if armed:  # never once the block is over (a late signal must not escape)
            raise _Timeout

    outer = _deadline
    left = seconds if outer is None else max(min(seconds, outer - time.monotonic()), 1e-3)
    _deadline = mine = time.monotonic() + left
    old = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, left)
    try:
        yield
        armed = False
        # The alarm's exception is lost where Python cannot raise (a gc callback, a
        # finaliser), so the deadline itself is checked once the block ends.
        if time.monotonic() >= mine:
            raise _Timeout
    except _Timeout:
        raise file_error(path, f"took more than the time limit of {seconds:g} s.") from None
    finally:
        armed = False
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
        _deadline = outer
        if outer is not None:  # a nested limit gives the outer one its timer back
            signal.setitimer(signal.ITIMER_REAL, max(outer - time.monotonic(), 1e-3))


def as_file_error(path: str | Path, fn: Callable[[], T]) -> T:
    """``fn()``, with any failure other than a project error made one error for ``path``."""
    try:
        return fn()
    except NasError:
        raise
    except RecursionError:
        raise file_error(path, "the graph is nested too deeply to read.") from None
    except MemoryError:
        raise file_error(path, "not enough memory to read the graph.") from None
    except Exception as e:  # any decoding failure of this one file
        msg = (str(e).strip().splitlines() or [""])[0][:200]
        raise file_error(path, f"cannot read the graph ({type(e).__name__}: {msg}).") from None
