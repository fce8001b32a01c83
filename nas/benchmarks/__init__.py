"""Tabular NAS benchmarks: measured accuracies that stand in for training (table mode).

A search in table mode asks a strategy for architectures and tells it the accuracy a
published benchmark measured for them, so strategies can be compared in seconds.
"""

from __future__ import annotations

from nas.benchmarks.nb201 import DATASETS, NB201Table

__all__ = ["DATASETS", "NB201Table"]
