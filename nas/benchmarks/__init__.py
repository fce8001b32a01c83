"""Tabular NAS benchmarks: measured accuracies that stand in for training (table mode).

A search in table mode asks a strategy for architectures and tells it the accuracy a
published benchmark measured for them, so strategies can be compared in seconds.
"""

from __future__ import annotations

from nas.benchmarks.nb201 import (
    DATASETS,
    TABLE_INPUT_SHAPE,
    TABLE_NUM_CLASSES,
    NB201Table,
    table_dataset,
)

__all__ = ["DATASETS", "TABLE_INPUT_SHAPE", "TABLE_NUM_CLASSES", "NB201Table", "table_dataset"]
