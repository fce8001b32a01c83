"""What a trained search found, in words a user can check: its lineage from the seeds,
and whether it beats the best seed and the converged linear classifier by more than the
noise of the test split.

The lineage follows each trial's recorded origin (``TrialRecord.origin``: a seed, a grammar
draw, or an operator applied to a parent) back from the found network. The noise is the
standard error of the found network's test accuracy, ``sqrt(p (1 - p) / n)`` on the ``n``
test images; a difference is reported in those units.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from nas.searches.runner import arch_digest

if TYPE_CHECKING:
    from nas.searches.baselines import Baseline
    from nas.searches.store import TrialRecord

__all__ = ["Verdict", "lineage", "standard_error", "verdict"]

#: The baselines a found network is judged against, besides the best seed.
JUDGED = ("converged linear",)


def standard_error(p: float, n: int) -> float:
    """Standard error of an accuracy ``p`` measured on ``n`` independent test images."""
    return math.sqrt(max(p * (1 - p), 0.0) / n) if n > 0 else math.nan


def lineage(records: list[TrialRecord], found: TrialRecord) -> list[TrialRecord]:
    """The trials from the root of ``found``'s lineage (a seed or a draw) to ``found``."""
    by_digest: dict[str, TrialRecord] = {}
    for r in sorted(records, key=lambda r: r.number):
        by_digest.setdefault(arch_digest(r.arch), r)
    chain = [found]
    while (parent := chain[-1].origin.get("parent")) in by_digest and len(chain) < 10_000:
        chain.append(by_digest[parent])
        if chain[-1] in chain[:-1]:  # a cycle cannot be recorded; stop rather than loop
            chain.pop()
            break
    return chain[::-1]


@dataclass
class Verdict:
    """The found network against its origin and the baselines (test accuracies)."""

    found: TrialRecord
    origin: str  # "seed mlp_cpu, unchanged", "mlp_cpu + 2 mutations (remove, swap)", ...
    test: float | None
    se: float  # standard error of the found test accuracy (nan when unknown)
    against: list[tuple[str, float, float]] = field(default_factory=list)  # (name, test, diff)
    capped: int = 0  # trials stopped by the per-trial cap
    capped_seeds: list[str] = field(default_factory=list)
    unchanged_seed: bool = False

    def lines(self) -> list[str]:
        """The verdict as console and report lines."""
        out = [f"found: trial {self.found.number} = {self.origin}"]
        if self.test is not None:
            se = "" if math.isnan(self.se) else f" (standard error {100 * self.se:.1f} pts)"
            parts = [
                f"{name} {100 * test:.1f}%, {self._margin(diff)}"
                for name, test, diff in self.against
            ]
            out.append(f"found {100 * self.test:.1f}% test{se} against " + "; ".join(parts))
        if self.capped:
            named = ", ".join(self.capped_seeds)
            seeds = f", seeds among them: {named}" if named else ", no seed among them"
            out.append(f"trials stopped by the --trial-time cap: {self.capped}{seeds}")
        return out

    def _margin(self, diff: float) -> str:
        pts = f"{100 * diff:+.1f} pts"
        if math.isnan(self.se) or self.se == 0:
            return pts
        k = diff / self.se
        if abs(k) <= 1:
            return f"{pts}, within one standard error"
        side = "above" if k > 0 else "below"
        return f"{pts}, {abs(k):.1f} standard errors {side}"

    def beats(self, name: str, errors: float = 1.0) -> bool | None:
        """Whether the found network is more than ``errors`` standard errors above ``name``."""
        for n, _, diff in self.against:
            if n.startswith(name) and not math.isnan(self.se):
                return diff > errors * self.se
        return None


def verdict(
    records: list[TrialRecord],
    seeds: dict[str, str],
    rows: list[Baseline],
    test_images: int | None,
) -> Verdict | None:
    """The verdict on a trained search's best trial (by valid accuracy), or None.

    ``seeds`` maps names to architecture strings, ``rows`` are the measured baselines (the
    best-seed row included), ``test_images`` the size of the test split (None: unknown).
    """
    ok = [r for r in records if r.ok and "accuracy" in r.values]
    if not ok:
        return None
    found = min(ok, key=lambda r: (-r.values["accuracy"], r.number))
    names = {arch: name for name, arch in seeds.items()}
    chain = lineage(records, found)
    root = chain[0]
    ops = [r.origin.get("op", "?") for r in chain[1:]]
    if root.arch in names:
        base = f"seed {names[root.arch]}"
    elif root.origin.get("op") == "seed":
        base = "a seed"
    else:
        base = "a grammar draw"
    unchanged = not ops and found.arch in names
    if unchanged:
        origin = f"seed {names[found.arch]}, unchanged"
    elif not ops:
        origin = base
    else:
        what = "mutation" if len(ops) == 1 else "mutations"
        origin = f"{base.removeprefix('seed ')} + {len(ops)} {what} ({', '.join(ops)})"
    test = (found.metrics.get("test") or {}).get("accuracy")
    se = standard_error(test, test_images) if test is not None and test_images else math.nan
    against = []
    for b in sorted(rows, key=lambda b: not b.name.startswith("best seed")):
        if b.test is None or test is None:
            continue
        if b.name.startswith("best seed") or b.name in JUDGED:
            against.append((b.name, b.test, test - b.test))
    capped = [r for r in records if r.status == "timeout"]
    return Verdict(
        found,
        origin,
        test,
        se,
        against,
        len(capped),
        sorted({names[r.arch] for r in capped if r.arch in names}),
        unchanged,
    )
