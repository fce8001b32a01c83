"""Honest baselines for a trained search: what the found network has to beat.

Every baseline is trained with the search's own protocol (the trial ``TrainConfig``) on the
same dataset and scored on the same valid and test splits, so its numbers compare with a
trial's:

- ``chance``: the best input-blind predictor (majority class of the train split);
- ``linear probe``: a linear classifier on the flattened, normalised raw input;
- ``converged linear``: the same classifier trained to convergence (more epochs, the
  learning rate picked on the valid split). Under a short protocol the probe is far from
  its optimum (58% against 72% on the default search's data), so a found network that is
  itself linear in its input could otherwise seem to beat every linear model;
- ``small CNN``: a fixed hand-written conv 32-64-128 (3x3, BatchNorm, ReLU, 2x2 max-pool
  after the first two, global average pool, linear);
- ``best seed``: the best seed architecture the search itself trained (from its records).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nas.searches.store import TrialRecord
    from torch import nn

    from nas.data.base import Dataset
    from nas.train import TrainConfig

FILE = "baselines.json"


@dataclass
class Baseline:
    """One row: a reference model's valid and test accuracy under the search protocol."""

    name: str
    valid: float | None
    test: float | None
    params: int = 0
    note: str = ""


def small_cnn(in_ch: int, num_classes: int) -> nn.Module:
    """conv 32-64-128 (3x3, BN, ReLU; 2x2 max-pool after the first two), pool, linear."""
    from torch import nn

    layers: list[nn.Module] = []
    c = in_ch
    for i, w in enumerate((32, 64, 128)):
        layers += [nn.Conv2d(c, w, 3, padding=1), nn.BatchNorm2d(w), nn.ReLU()]
        if i < 2:
            layers.append(nn.MaxPool2d(2, ceil_mode=True))
        c = w
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, num_classes)]
    return nn.Sequential(*layers)


def linear_probe(input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """A linear classifier on the flattened input (logistic regression)."""
    from torch import nn

    return nn.Sequential(nn.Flatten(), nn.Linear(math.prod(input_shape), num_classes))


CONVERGED_LR_FACTORS = (1.0, 10.0, 100.0)  # times the protocol's learning rate
CONVERGED_EPOCHS = 5  # times the protocol's epochs (at least 10)


def converged_linear(ds: Dataset, cfg: TrainConfig, probe: Baseline | None = None) -> Baseline:
    """The linear probe at its best: the protocol's own run (``probe``, trained here when
    not given) or a longer one at a learning rate of :data:`CONVERGED_LR_FACTORS`, whichever
    has the best valid accuracy. A convex model, so this is about what any network linear
    in its input can reach on the data."""
    from dataclasses import replace

    if probe is None:
        probe = _trained("linear probe", _probe_of(ds), ds, cfg)
    best = replace(probe, name="converged linear", note=f"lr {cfg.lr:g}, {cfg.epochs} epochs")
    epochs = max(10, CONVERGED_EPOCHS * cfg.epochs)
    for f in CONVERGED_LR_FACTORS:
        c = replace(cfg, lr=cfg.lr * f, epochs=epochs)
        b = _trained("converged linear", _probe_of(ds), ds, c)
        b.note = b.note or f"lr {c.lr:g}, {epochs} epochs"
        if (b.valid or 0.0) > (best.valid or 0.0):
            best = b
    best.note += ", picked on valid"
    return best


def _probe_of(ds: Dataset) -> Callable[[], nn.Module]:
    return partial(linear_probe, ds.input_shape, ds.num_classes)


def _trained(name: str, build: Callable[[], nn.Module], ds: Dataset, cfg: TrainConfig) -> Baseline:
    """Build (seeded: the same weights in every process) and train one reference model."""
    import torch

    from nas.train import train

    torch.manual_seed(cfg.seed)
    res = train(build(), ds, cfg)
    acc = res.task.get("primary_metric", "accuracy")
    return Baseline(name, res.valid.get(acc), res.test.get(acc), res.params, res.reason)


def measure(ds: Dataset, cfg: TrainConfig) -> list[Baseline]:
    """Chance, the linear probe (as trained by ``cfg`` and converged) and the small CNN on
    ``ds`` with protocol ``cfg``.

    The baselines train for all of ``cfg.epochs`` without its time budget: a reference
    must not depend on how busy the machine was (both are small and fast).
    """
    from dataclasses import replace

    import numpy as np

    from nas.tasks import task_for

    cfg = replace(cfg, time_budget_s=None)
    task = task_for(ds)
    chance_valid = task.trivial_baseline(np.asarray(ds.train.y), np.asarray(ds.valid.y))
    chance_test = task.trivial_baseline(np.asarray(ds.train.y), np.asarray(ds.test.y))
    key = task.primary_metric
    rows = [
        Baseline("chance", chance_valid.get(key), chance_test.get(key), 0, "majority class"),
        _trained("linear probe", _probe_of(ds), ds, cfg),
    ]
    rows.append(converged_linear(ds, cfg, rows[-1]))
    if len(ds.input_shape) == 3:
        cnn = partial(small_cnn, ds.input_shape[0], ds.num_classes)
        rows.append(_trained("small CNN", cnn, ds, cfg))
    return rows


def best_seed(records: list[TrialRecord], seeds: dict[str, str]) -> Baseline | None:
    """The best (by valid accuracy) trial whose architecture is one of ``seeds`` (name: arch)."""
    by_arch = {arch: name for name, arch in seeds.items()}
    done = [r for r in records if r.ok and r.arch in by_arch]
    if not done:
        return None
    r = max(done, key=lambda r: r.values["accuracy"])
    test = (r.metrics.get("test") or {}).get("accuracy")
    return Baseline(f"best seed ({by_arch[r.arch]})", r.values["accuracy"], test, r.params or 0)


def found_row(records: list[TrialRecord]) -> Baseline | None:
    """The search's best trial (by valid accuracy) as a row of the same table."""
    ok = [r for r in records if r.ok and "accuracy" in r.values]
    if not ok:
        return None
    r = max(ok, key=lambda r: r.values["accuracy"])
    test = (r.metrics.get("test") or {}).get("accuracy")
    return Baseline(f"found (trial {r.number})", r.values["accuracy"], test, r.params or 0)


def save(run_dir: Path, rows: list[Baseline]) -> None:
    """Write the measured baselines to ``run_dir/baselines.json``."""
    (run_dir / FILE).write_text(json.dumps([asdict(b) for b in rows], indent=2) + "\n")


def load(run_dir: Path) -> list[Baseline] | None:
    """The baselines a run measured, or None."""
    path = run_dir / FILE
    if not path.is_file():
        return None
    return [Baseline(**row) for row in json.loads(path.read_text())]


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.1f}%"


def table(found: Baseline | None, rows: list[Baseline]) -> list[str]:
    """Markdown lines: the found network first, then each baseline, with the margin on test."""
    out = [
        "| model | valid | test | found - it (test) | params | note |",
        "|---|---|---|---|---|---|",
    ]
    for b in ([found] if found else []) + rows:
        diff = (
            ""
            if found is None or b is found or None in (found.test, b.test)
            else (f"{100 * (found.test - b.test):+.1f} pts")
        )
        out.append(
            f"| {b.name} | {_pct(b.valid)} | {_pct(b.test)} | {diff} | {b.params:,} | {b.note} |"
        )
    return out


def summary(found: Baseline | None, rows: list[Baseline]) -> str:
    """One console line: the found test accuracy against each baseline's."""
    parts = [f"{b.name} {_pct(b.test)}" for b in rows]
    head = f"found {_pct(found.test)} test" if found else "no network found"
    return f"{head} vs baselines: " + ", ".join(parts)


def collect(run_dir: Path, records: list[TrialRecord], seeds: dict[str, str]) -> list[Baseline]:
    """The measured baselines of a run plus its best seed row (if seeds were trained)."""
    rows = list(load(run_dir) or [])
    seed = best_seed(records, seeds)
    return rows + ([seed] if seed else [])


def to_dicts(rows: list[Baseline]) -> list[dict[str, Any]]:
    """Plain dicts (for JSON outputs such as bench/main_job.py)."""
    return [asdict(b) for b in rows]
