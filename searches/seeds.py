"""Seeds against the per-trial cap, settled before a search starts.

A seed is a reference point the search is judged against, so it must never be cut short
by the cap unannounced: each seed's trial is estimated from a few timed training steps
(:func:`nas.cost.estimate_seconds`); a seed over the cap is named and left out before the
first trial, and the seeds that are kept train their full epochs whatever the cap.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from nas.dsl import Node, parse_arch
from nas.exceptions import NasError

__all__ = ["SeedFit", "fit_seeds", "seed_nodes"]


@dataclass
class SeedFit:
    """Which seeds fit the cap: the ``seed_archs`` entries kept, and those left out with
    their estimated seconds (``estimates`` has every seed that could be estimated)."""

    kept: list[str] = field(default_factory=list)
    left_out: dict[str, float] = field(default_factory=dict)
    estimates: dict[str, float] = field(default_factory=dict)

    def lines(self, cap: float, epochs: int | None) -> list[str]:
        """What a search says about its seeds before it starts."""
        if not self.estimates:
            return []
        cost = ", ".join(f"{k} {v:.1f}" for k, v in self.estimates.items())
        out = [f"seeds, estimated CPU seconds per trial (cap {cap:g}): {cost}"]
        for name, est in self.left_out.items():
            out.append(
                f"seed {name} cannot finish its {epochs or 'own'} epochs under --trial-time "
                f"{cap:g} (about {est:.0f} CPU s): left out; a larger --trial-time keeps it"
            )
        return out


def seed_nodes(entries: list[str], named: dict[str, Node]) -> dict[str, Node]:
    """``seed_archs`` entries (seed names or architecture strings) as nodes, by entry."""
    out: dict[str, Node] = {}
    for entry in entries:
        try:
            out[entry] = named[entry] if entry in named else parse_arch(entry)
        except NasError:
            continue  # the strategy reports a bad seed itself, in one line
    return out


def fit_seeds(seeds: dict[str, Node], evaluator: Any, cap: float) -> SeedFit:
    """Estimate each seed's trial with ``evaluator`` (a trained-search evaluator with
    ``dataset`` and ``config``) and split them by the cap of ``cap`` seconds."""
    from nas.cost import estimate_seconds
    from nas.loop import RUN_ERRORS

    fit = SeedFit()
    for entry, node in seeds.items():
        name = entry if len(entry) <= 40 else node.digest
        try:
            est = estimate_seconds(node, evaluator.dataset, evaluator.config)
        except (NasError, *RUN_ERRORS):
            fit.kept.append(entry)  # its trial reports what is wrong with it
            continue
        fit.estimates[name] = est
        if est > cap:
            fit.left_out[name] = est
        else:
            fit.kept.append(entry)
    return fit
