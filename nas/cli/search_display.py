"""The live panel of ``nas search`` on a terminal: progress, best so far, failures, ETA."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

from rich.table import Table

__all__ = ["Display"]


class Display:
    """The live panel: progress, best so far, failures by reason, ETA."""

    def __init__(
        self,
        total: int,
        done: int,
        best: Any = None,
        fitness: str = "",
        baselines: list[Any] | None = None,
        time_budget: float | None = None,
    ) -> None:
        self.total, self.start_done, self.t0 = total, done, time.monotonic()
        self.time_budget = time_budget  # no new trial starts after it: caps the ETA
        self.fitness = fitness  # what the "accuracy" objective is, when it is not accuracy
        self.done, self.best, self.fail = done, best, Counter()
        self.baselines = baselines or []  # shown beside the best so far (valid accuracy)

    def update(self, rec: Any) -> Table:
        """Count a finished trial; keep the best by the first objective (maximised)."""
        self.done += 1
        if not rec.ok:
            self.fail[rec.status] += 1
        elif self.best is None or rec.values["accuracy"] > self.best.values["accuracy"]:
            self.best = rec
        return self.render()

    def render(self) -> Table:
        """The panel as it stands: trials and ETA, the best so far, baselines, failures."""
        t = Table(show_header=False, box=None)
        rate = (time.monotonic() - self.t0) / max(1, self.done - self.start_done)
        eta = rate * (self.total - self.done) if self.done > self.start_done else None
        if eta is not None and self.time_budget is not None:
            left = self.time_budget - (time.monotonic() - self.t0)
            eta = min(eta, max(0.0, left) + rate)  # the trial in flight still finishes
        eta_text = f"   ETA {eta / 60:.1f} min" if eta is not None else ""
        t.add_row("trials", f"{self.done}/{self.total}{eta_text}")
        if self.best is not None:
            v = ", ".join(
                f"{self.fitness if k == 'accuracy' and self.fitness else k} {x:.4g}"
                for k, x in self.best.values.items()
            )
            arch = self.best.arch if len(self.best.arch) < 90 else self.best.arch[:87] + "..."
            t.add_row("best", f"trial {self.best.number}: {v}; {self.best.params or 0:,} params")
            t.add_row("", arch)
        if self.baselines:
            best = self.best.values.get("accuracy") if self.best is not None else None
            t.add_row(
                "vs baselines",
                ", ".join(
                    f"{b.name} {100 * b.valid:.1f}%"
                    + (f" ({100 * (best - b.valid):+.1f})" if best is not None else "")
                    for b in self.baselines
                    if b.valid is not None
                )
                + " (valid)",
            )
        if self.fail:
            t.add_row("failures", ", ".join(f"{k} {n}" for k, n in self.fail.items()))
        return t
