"""What every dataset provides: three labelled splits of arrays and where they came from.

Datasets hand out raw arrays (possibly memory-mapped); the trainer normalises them with
statistics of the training split, so no split leaks into another.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Split:
    """One split: inputs ``x`` (N, *shape), float32, channels first; labels ``y`` (N,)."""

    x: np.ndarray
    y: np.ndarray

    def __len__(self) -> int:
        return int(self.y.shape[0])


@dataclass
class Dataset:
    """A dataset ready to train on.

    Attributes:
        name: registry name, e.g. ``"unseen:addnist"``.
        input_shape: shape of one input without the batch dim, e.g. ``(3, 28, 28)``.
        num_classes: number of classes (classification tasks).
        train, valid, test: the splits.
        source: one line saying what was used, e.g. ``"real files in /data/addnist"`` or
            ``"stand-in generated offline (size small, seed 0)"``; shown to the user.
        task: the task kind that owns the head, loss and metrics.
        meta: anything else worth recording in a run (recipe details, substitutions).
    """

    name: str
    input_shape: tuple[int, ...]
    num_classes: int
    train: Split
    valid: Split
    test: Split
    source: str
    task: str = "classification"
    meta: dict = field(default_factory=dict)
