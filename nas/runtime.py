"""Process-wide runtime defaults (threads), applied once by the CLI and the trainers.

Small models on a few busy cores run many times faster with one torch thread than with
several (OpenMP spin-waiting); ``bench/threads.py`` measures it. ``NAS_THREADS``
overrides the default.
"""

from __future__ import annotations

import os

DEFAULT_THREADS = 1


def configure(threads: int | None = None) -> int:
    """Set torch's intra-op threads (only if torch is already imported or needed)."""
    n = threads or int(os.environ.get("NAS_THREADS", DEFAULT_THREADS))
    import sys

    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(n)
    else:
        os.environ.setdefault("OMP_NUM_THREADS", str(n))
    return n
