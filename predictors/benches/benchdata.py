"""Benchmark tables the benches need at run time, shipped in ``nas.benchmarks`` (gzipped).

* ``nb201_unique.csv.gz``: NB201's ``UniqueString`` (isomorphism class) per NB201 index;
* ``nb201_zero_cost_725.json.gz``: 725 NB201 cells per dataset, keyed by NASLib's op-index
  tuple, with the 200-epoch validation accuracy and the zero-cost proxy scores;
* ``nb101_zero_cost_500.json.gz``: 500 NAS-Bench-101 cells keyed by 49 adjacency bits and
  7 op codes, with the 108-epoch validation accuracy and zero-cost proxy scores;
* ``nb301_zero_cost_725.json.gz``: 725 DARTS / NAS-Bench-301 cells keyed by their
  ``((normal), (reduction))`` genotype, with CIFAR-10 validation accuracy and proxies.

See ``nas/benchmarks/PROVENANCE.md`` for sources and checks.
"""

from __future__ import annotations

import functools
import gzip
import json
from importlib import resources
from typing import Any

#: Keys of a zero-cost entry that are not proxies.
NOT_PROXIES = ("val_accuracy", "params", "flops")


def _read(name: str) -> bytes:
    return gzip.decompress(resources.files("nas.benchmarks").joinpath(name).read_bytes())


@functools.cache
def nb201_unique_strings() -> tuple[str, ...]:
    """NB201's isomorphism class (UniqueString) of every cell, in NB201 index order."""
    lines = _read("nb201_unique.csv.gz").decode().splitlines()
    if not lines or lines[0] != "UniqueString":
        raise RuntimeError("nb201_unique.csv.gz has an unexpected header.")
    return tuple(lines[1:])


@functools.cache
def nb201_zero_cost() -> dict[str, dict[str, dict[str, float]]]:
    """dataset (cifar10, cifar100, ImageNet16-120) -> op-index tuple string -> scores."""
    return json.loads(_read("nb201_zero_cost_725.json.gz"))


@functools.cache
def nb101_zero_cost() -> dict[str, dict[str, float]]:
    """NB101 key string (49 adjacency bits, then 7 op codes) -> scores and accuracy."""
    return json.loads(_read("nb101_zero_cost_500.json.gz"))


@functools.cache
def nb301_zero_cost() -> dict[str, dict[str, float]]:
    """DARTS genotype string ``((normal), (reduction))`` -> scores and accuracy."""
    return json.loads(_read("nb301_zero_cost_725.json.gz"))


def proxy_names(entries: Any) -> list[str]:
    """Sorted proxy names present in any of ``entries`` (dicts of scores)."""
    return sorted({k for e in entries for k in e if k not in NOT_PROXIES})
