"""Datasets: the Unseen NAS suite (real files or offline stand-ins) behind one registry.

``load_dataset(name, data_dir=None, size="small", seed=0)`` returns a :class:`Dataset`;
``list_datasets()`` and ``get_dataset_info(name)`` describe what exists and what this
machine has (real files, a generated stand-in, or nothing).
"""

from __future__ import annotations

from nas.data._registry import (
    SIZES,
    DatasetInfo,
    get_dataset_info,
    list_datasets,
    load_components,
    load_dataset,
    register_dataset,
    resolve_dataset,
)
from nas.data.base import Dataset, Split
from nas.data.cache import cache_dir

__all__ = [
    "SIZES",
    "Dataset",
    "DatasetInfo",
    "Split",
    "cache_dir",
    "get_dataset_info",
    "list_datasets",
    "load_components",
    "load_dataset",
    "register_dataset",
    "resolve_dataset",
]
