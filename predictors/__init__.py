"""Zero-shot performance predictors (nas.predictors): ranking ONNX files, in three parts.

* Ranking (the modules of this package itself): read an ONNX file once into a graph record
  (:mod:`nas.predictors.record`), choose the model for the set
  (:func:`nas.predictors.rank.choose_model`) and score it (:mod:`nas.predictors.rank`).
  It imports nothing of the two parts below.
* :mod:`nas.predictors.benches`: building benches, the records of many architectures with
  their labels, the training data (NB201, NB101, NB301 tables; search runs).
* :mod:`nas.predictors.training`: training and evaluating a ranker on benches (``nas
  predictor train|eval``), its recipes; :mod:`nas.predictors.research`: the research
  harness over them (leave-one-space-out tables, signal blends, few-shot tables).

The public names below are imported on first use, so ``import nas.predictors`` stays
cheap: :func:`rank_files`, :func:`rank_set` and :class:`RankResult` (``nas rank`` as a
library call), :func:`choose_model` (which bundled model scores a set),
:class:`GraphRecord` and :func:`read_record` (one file's record), :class:`Predictor`
(a trained ranker; ``Predictor.load()`` is the bundled default).
"""

from __future__ import annotations

from typing import Any

# public name -> the module that defines it
_PUBLIC = {
    "rank_files": "nas.predictors.rank",
    "rank_set": "nas.predictors.rank",
    "RankResult": "nas.predictors.rank",
    "choose_model": "nas.predictors.rank",
    "GraphRecord": "nas.predictors.record",
    "read_record": "nas.predictors.record",
    "Predictor": "nas.predictors.model",
}

__all__ = [
    "GraphRecord",
    "Predictor",
    "RankResult",
    "choose_model",
    "rank_files",
    "rank_set",
    "read_record",
]


def __getattr__(name: str) -> Any:
    """The public names, imported on first use (the model's module loads torch)."""
    if name in _PUBLIC:
        import importlib

        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'nas.predictors' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_PUBLIC})
