"""On-disk cache of generated stand-in datasets, one ``.npz`` per (name, size, seed, version).

Generating the full-size stand-ins takes seconds to minutes; caching makes every later run
start at once and guarantees that two runs with the same seed see byte-identical arrays.
"""

from __future__ import annotations

import os
import re
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

Arrays = dict[str, np.ndarray]


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/nas/datasets``, else ``~/.cache/nas/datasets``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "nas" / "datasets"


def cache_file(name: str, size: str, seed: int, version: str) -> Path:
    """The cache path for one generated dataset; every part of the key is in the file name."""
    stem = f"{name}-{size}-seed{seed}-v{version}"
    return cache_dir() / (re.sub(r"[^A-Za-z0-9._+-]", "_", stem) + ".npz")


def _read(path: Path) -> Arrays | None:
    """All arrays of a cached file, or None when it is unreadable (then it is regenerated)."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {key: npz[key] for key in npz.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile):
        return None


def _write(path: Path, arrays: Arrays) -> str | None:
    """Write atomically (temp file + rename); returns why it failed, or None on success."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=path.stem + ".", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                np.savez(fh, **arrays)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    except OSError as err:
        return f"{type(err).__name__}: {err}"
    return None


def cached(
    name: str,
    size: str,
    seed: int,
    version: str,
    generate: Callable[[], Arrays],
    required: tuple[str, ...] = (),
    lengths: dict[str, int] | None = None,
) -> tuple[Arrays, dict]:
    """Return the cached arrays for the key, generating and storing them when absent.

    ``required`` lists keys a valid file must hold, ``lengths`` the number of rows of some
    (a size whose split counts changed); a file missing one, of other lengths, or unreadable
    is regenerated. The second value says what happened, for ``Dataset.meta``.
    """
    path = cache_file(name, size, seed, version)
    if path.is_file():
        arrays = _read(path)
        if (
            arrays is not None
            and all(key in arrays for key in required)
            and all(key in arrays and len(arrays[key]) == n for key, n in (lengths or {}).items())
        ):
            return arrays, {"cache_file": str(path), "cache": "reused"}
    arrays = generate()
    failure = _write(path, arrays)
    if failure is None:
        return arrays, {"cache_file": str(path), "cache": "generated and stored"}
    return arrays, {"cache_file": str(path), "cache": f"generated, not stored ({failure})"}
