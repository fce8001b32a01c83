"""Architecture + input + task head -> ``torch.nn.Module``.

Every op builds its own module from the signal it receives (shapes come from the shape
rules, never from dummy forward passes); repeated children get separate weights.
"""

from __future__ import annotations

import torch
from torch import nn

from nas.analysis import analyse
from nas.dsl.arch import Node
from nas.dsl.vocab import create_node
from nas.exceptions import ShapeError
from nas.ops.spec import Signal, Spec, pooled_features


def build_module(node: Node, x: Signal) -> tuple[nn.Module, Signal]:
    """The torch module for ``node`` applied to ``x``, and its output signal."""
    op = create_node(node.op, **dict(node.params))
    if not op.is_combinator:
        return op.build(x), op.infer(x)
    outs: dict[tuple[int, Signal], Signal] = {}

    def child(
        slot: int, s: Signal, copy: int = 0, copies: int = 1, reserve: int = 0
    ) -> tuple[nn.Module, Signal]:
        kid = node.children[op.slot_of(len(node.children), slot, copy)]
        module, out = build_module(kid, s)
        outs[(id(kid), s)] = out
        return module, out

    def child_out(
        slot: int, s: Signal, copy: int = 0, copies: int = 1, reserve: int = 0
    ) -> Signal:
        kid = node.children[op.slot_of(len(node.children), slot, copy)]
        out = outs.get((id(kid), s))
        return out if out is not None else analyse(kid, s).out

    module = op.build_with(x, child)
    return module, op.flow(x, child_out)


class ClassificationHead(nn.Module):
    """Global average pooling (over H, W for images, over tokens for sequences) + Linear."""

    def __init__(self, spec: Spec, num_classes: int) -> None:
        super().__init__()
        features = pooled_features(spec)  # raises ShapeError for other ranks
        self.dims: tuple[int, ...] = {3: (2, 3), 2: (1,), 1: ()}[spec.rank]
        self.fc = nn.Linear(features, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.mean(dim=self.dims) if self.dims else x)


class Network(nn.Module):
    """Backbone compiled from an architecture, followed by a task head."""

    def __init__(
        self, backbone: nn.Module, head: nn.Module, arch: str, input_shape: tuple[int, ...]
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.nas_arch = arch
        self.nas_input_shape = tuple(input_shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))


def compile_arch(
    arch: Node, input_shape: tuple[int, ...], num_classes: int, mode: str = "im"
) -> Network:
    """Compile ``arch`` for inputs of ``input_shape`` (batch excluded) and a class head.

    Raises:
        ShapeError: the architecture does not apply to this input.
    """
    x = (Spec(tuple(input_shape), mode),)
    out = analyse(arch, x).out  # located error messages before any torch work
    if len(out) != 1:
        raise ShapeError("the network ends with unmerged branches; it must return one tensor.")
    backbone, _ = build_module(arch, x)
    return Network(backbone, ClassificationHead(out[0], num_classes), str(arch), input_shape)


def count_params(model: nn.Module) -> int:
    """Trainable parameters of a torch module."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
