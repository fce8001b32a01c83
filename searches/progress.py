"""A search's progress as plain lines, one per finished trial.

What a log file, ``| tee``, a cluster scheduler's output or ``nas.search(verbose=True)``
shows while a search runs (a terminal gets the live panel instead)::

    [12/30] trial 11  3f2a9c1b0d4e  ok  0.7320  best 0.7320 (trial 11)  swap of trial 7  0.2 s

Trials are numbered from 0 as the run store, the report and ``nas runs show`` number them;
the bracket counts finished trials against the budget.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from nas.searches.runner import arch_digest

if TYPE_CHECKING:
    from nas.searches.store import TrialRecord

__all__ = ["Progress"]


class Progress:
    """Counts finished trials and keeps the best (by ``accuracy``, maximised) to print
    :meth:`line` for each.

    Args:
        total: the trial budget.
        records: the trials already finished (a resumed run's): counted, their best kept.
        label: what the ``accuracy`` objective is when it is not an accuracy (``-rmse``).
    """

    def __init__(
        self, total: int, records: list[TrialRecord] | None = None, label: str = ""
    ) -> None:
        done = [r for r in records or [] if r.status != "abandoned"]
        ok = [r for r in done if r.ok and "accuracy" in r.values]
        self.total, self.done, self.label = total, len(done), label
        self.best = min(ok, key=lambda r: (-r.values["accuracy"], r.number)) if ok else None
        self._number_of: dict[str, int] = {}
        for r in sorted(done, key=lambda r: -r.number):
            self._number_of[arch_digest(r.arch)] = r.number

    def line(self, rec: TrialRecord) -> str:
        """Count ``rec`` and describe it in one line."""
        self.done += 1
        self._number_of.setdefault(arch_digest(rec.arch), rec.number)
        value = rec.values.get("accuracy") if rec.ok else None
        if value is not None and (self.best is None or value > self.best.values["accuracy"]):
            self.best = rec
        shown = "-" if value is None else f"{value:.4f}"
        best = (
            "best -"
            if self.best is None
            else f"best {self.best.values['accuracy']:.4f} (trial {self.best.number})"
        )
        parts = [
            f"[{self.done}/{self.total}] trial {rec.number}",
            arch_digest(rec.arch),
            rec.status,
            f"{self.label + ' ' if self.label else ''}{shown}",
            best,
            self._origin(rec),
            f"{rec.wall_time or 0:.1f} s",
        ]
        text = "  ".join(parts)
        if not rec.ok and rec.reason:
            text += f": {rec.reason}"[:200]
        return text

    def _origin(self, rec: TrialRecord) -> str:
        op = rec.origin.get("op", "draw")
        parent = rec.origin.get("parent")
        if parent is None:
            return op
        number = self._number_of.get(parent)
        return f"{op} of trial {number}" if number is not None else f"{op} of {parent}"
