"""Tasks: what a network is trained to do (its head, its loss and how it is scored).

The trainer knows nothing about classes or labels; everything task-specific sits behind
:class:`Task`, so regression, multi-task and sequence-output tasks can be added without
touching the training loop.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from nas.exceptions import ConfigurationError, ShapeError, UnknownNameError
from nas.ops.spec import Spec

if TYPE_CHECKING:
    import torch
    from torch import nn

    from nas.compile import Network
    from nas.data.base import Dataset
    from nas.dsl.arch import Node


class Task(ABC):
    """Head, loss and metrics of one kind of supervised problem.

    Attributes:
        name: registry name, the same as ``Dataset.task``.
        primary_metric: key of :meth:`metrics` that a search optimises (its fitness).
        higher_is_better: direction of ``primary_metric``.
    """

    name: str = ""
    primary_metric: str = ""
    higher_is_better: bool = True

    @abstractmethod
    def build_head(self, spec: Spec) -> nn.Module:
        """The module mapping a backbone output of ``spec`` (batch excluded) to predictions."""

    @abstractmethod
    def loss(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Scalar training loss of one batch (what the optimiser minimises)."""

    @abstractmethod
    def metrics(self, outputs: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
        """Scores of a whole split from its concatenated outputs and targets (on CPU)."""

    def targets(self, y: np.ndarray) -> torch.Tensor:
        """Targets of a split as a tensor of the dtype :meth:`loss` expects."""
        import torch

        return torch.as_tensor(np.asarray(y))

    def trivial_baseline(self, train_y: np.ndarray, y: np.ndarray) -> dict[str, float]:
        """Metrics of the best input-blind predictor fitted on ``train_y`` (empty if unknown)."""
        return {}

    def better(self, a: float, b: float) -> bool:
        """Whether primary-metric value ``a`` beats ``b``."""
        return a > b if self.higher_is_better else a < b

    def describe(self) -> dict[str, Any]:
        """A JSON-serialisable description recorded with every run."""
        return {"name": self.name, "primary_metric": self.primary_metric}


class ClassificationTask(Task):
    """Single-label classification: pooled linear head, cross-entropy, accuracy (and top-5).

    Accuracies are fractions in [0, 1]; ``loss`` in the metrics is the plain cross-entropy
    (no label smoothing), so runs with different smoothing compare.
    """

    name = "classification"
    primary_metric = "accuracy"
    higher_is_better = True

    def __init__(self, num_classes: int, label_smoothing: float = 0.0) -> None:
        if num_classes < 2:
            raise ConfigurationError(f"classification needs >= 2 classes, got {num_classes}.")
        if not 0.0 <= label_smoothing < 1.0:
            raise ConfigurationError(f"label_smoothing must be in [0, 1), got {label_smoothing}.")
        self.num_classes = num_classes
        self.label_smoothing = label_smoothing

    def build_head(self, spec: Spec) -> nn.Module:
        from nas.compile import ClassificationHead

        return ClassificationHead(spec, self.num_classes)

    def loss(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        from torch.nn import functional as F

        return F.cross_entropy(output, target, label_smoothing=self.label_smoothing)

    def metrics(self, outputs: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
        from torch.nn import functional as F

        outputs = outputs.float()
        out = {
            "loss": float(F.cross_entropy(outputs, targets)),
            "accuracy": float((outputs.argmax(1) == targets).float().mean()),
        }
        if self.num_classes > 5:
            top5 = outputs.topk(5, dim=1).indices
            out["top5"] = float((top5 == targets[:, None]).any(1).float().mean())
        return out

    def targets(self, y: np.ndarray) -> torch.Tensor:
        import torch

        return torch.as_tensor(np.asarray(y, dtype=np.int64))

    def trivial_baseline(self, train_y: np.ndarray, y: np.ndarray) -> dict[str, float]:
        """Accuracy of always predicting the most frequent training class."""
        counts = np.bincount(np.asarray(train_y, dtype=np.int64), minlength=self.num_classes)
        return {"accuracy": float(np.mean(np.asarray(y) == int(counts.argmax())))}

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "num_classes": self.num_classes,
            "label_smoothing": self.label_smoothing,
        }


# Dataset.task -> factory(dataset, **options) building its Task.
TASKS: dict[str, Callable[..., Task]] = {
    "classification": lambda ds, **kw: ClassificationTask(ds.num_classes, **kw),
}


def task_for(dataset: Dataset, **options: Any) -> Task:
    """The Task for ``dataset.task`` (options such as ``label_smoothing`` go to it).

    Raises:
        UnknownNameError: no task of that kind is registered.
    """
    factory = TASKS.get(dataset.task)
    if factory is None:
        raise UnknownNameError(
            f"unknown task {dataset.task!r} for dataset {dataset.name!r}; "
            f"known: {', '.join(sorted(TASKS))}."
        )
    return factory(dataset, **options)


def compile_for_task(
    arch: Node | str, input_shape: tuple[int, ...], task: Task, mode: str = "im"
) -> Network:
    """Compile ``arch`` for inputs of ``input_shape`` (batch excluded) with ``task``'s head.

    Raises:
        ShapeError: the architecture does not apply to this input or ends in branches.
        ArchSyntaxError: ``arch`` is a string that does not parse.
    """
    from nas.analysis import analyse
    from nas.compile import Network, build_module
    from nas.dsl import parse_arch

    node = parse_arch(arch.strip()) if isinstance(arch, str) else arch
    x = (Spec(tuple(input_shape), mode),)
    out = analyse(node, x).out  # located error messages before any torch work
    if len(out) != 1:
        raise ShapeError("the network ends with unmerged branches; it must return one tensor.")
    backbone, _ = build_module(node, x)
    return Network(backbone, task.build_head(out[0]), str(node), input_shape)
