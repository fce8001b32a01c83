"""Watchdog of a driver that started a local Ray: nothing Ray started outlives the driver.

Run as ``python _reaper.py DRIVER_PID`` with a pipe on stdin (standard library only, so it
starts fast). While the driver lives, it notes the driver's descendants (Ray's gcs,
raylet, agents, workers) every second. If stdin closes without the line ``done`` (the
driver was killed), it SIGKILLs those processes. ``ray::DashboardAgent`` and
``ray::RuntimeEnvAgent`` are otherwise re-parented to PID 1 and keep running forever.
"""

from __future__ import annotations

import os
import select
import signal
import sys


def _stat(pid: int) -> tuple[int, str] | None:
    """(parent pid, start time) of a live process, or None."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (None if fields[0] == "Z" else (int(fields[1]), fields[19])) if fields else None


def descendants(root: int) -> dict[int, str]:
    """Every live descendant of ``root``: pid -> start time (guards against pid reuse)."""
    parent: dict[int, int] = {}
    start: dict[int, str] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            st = _stat(int(name))
            if st is not None:
                parent[int(name)], start[int(name)] = st
    out: dict[int, str] = {}
    frontier = [root]
    while frontier:
        p = frontier.pop()
        for child, pp in parent.items():
            if pp == p and child not in out:
                out[child] = start[child]
                frontier.append(child)
    return out


def kill(known: dict[int, str]) -> int:
    """SIGKILL the processes of ``known`` that are still the same processes."""
    n = 0
    for pid, started in known.items():
        st = _stat(pid)
        if st is not None and st[1] == started:
            try:
                os.kill(pid, signal.SIGKILL)
                n += 1
            except OSError:
                pass
    return n


def main(driver: int) -> None:
    """Watch ``driver`` until it says ``done`` on stdin or dies."""
    known: dict[int, str] = {}
    data = b""
    while True:
        ready, _, _ = select.select([sys.stdin], [], [], 1.0)
        if ready:
            chunk = os.read(sys.stdin.fileno(), 1024)
            data += chunk
            if b"done" in data:
                return
            if not chunk:
                break
        if _stat(driver) is None:
            break
        known.update(descendants(driver))
    known.pop(os.getpid(), None)  # the watchdog is a child of the driver too
    kill(known)


if __name__ == "__main__":
    main(int(sys.argv[1]))
