"""The driver's housekeeping around a Ray it starts: nothing outlives it, SIGTERM stays its own.

* :func:`start_reaper` / :func:`stop_reaper`: the watchdog (``_reaper.py``) that kills what
  a killed driver's Ray leaves behind;
* :func:`restore_sigterm`: ``ray.init`` installs a native SIGTERM handler that dumps a stack
  and exits, so the driver's own (``nas search``: stop and say how to resume) is put back;
* :func:`sweep_scratch`: Tune's scratch folders of drivers killed before their cleanup ran.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from typing import Any

SCRATCH = "nas-ray-"  # Tune's scratch folders: nas-ray-<driver pid>-<random>


def sweep_scratch(root: str | None = None) -> list[str]:
    """Remove the scratch folders of drivers that are gone (killed before their ``finally``
    could), by the pid in the name; returns what it removed. A live pid's folder stays."""
    removed = []
    root = root or tempfile.gettempdir()
    for name in os.listdir(root):
        pid = name[len(SCRATCH) :].partition("-")[0]
        if not name.startswith(SCRATCH) or not pid.isdigit():
            continue
        try:
            os.kill(int(pid), 0)
            continue  # alive (or another user's process): not ours to judge
        except ProcessLookupError:
            pass
        except OSError:
            continue
        shutil.rmtree(os.path.join(root, name), ignore_errors=True)
        removed.append(name)
    return removed


def restore_sigterm(handler: Any) -> None:
    """Put back the driver's Python SIGTERM handler: ``ray.init`` installs its own native
    one, which prints a stack dump and exits, so ``nas search`` could not stop cleanly and
    say how to resume (its handler is still what Python reports, so it is set again)."""
    if callable(handler) and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, handler)


def start_reaper() -> subprocess.Popen:
    """The watchdog that kills what this driver's Ray leaves behind if the driver dies."""
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_reaper.py")
    return subprocess.Popen(
        [sys.executable, script, str(os.getpid())],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def stop_reaper(reaper: subprocess.Popen | None) -> None:
    if reaper is None:
        return
    try:
        reaper.stdin.write(b"done\n")  # type: ignore[union-attr]
        reaper.stdin.close()  # type: ignore[union-attr]
        reaper.wait(5)
    except (OSError, subprocess.TimeoutExpired):
        reaper.kill()
