"""Symbolic tensor descriptions that shape rules work on (no torch needed)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from math import prod


@dataclass(frozen=True, slots=True)
class Spec:
    """One tensor without its batch dimension.

    Attributes:
        shape: the non-batch dimensions, e.g. ``(3, 28, 28)``.
        mode: ``"im"`` for ``(C, H, W)`` feature maps, ``"col"`` for ``(tokens, features)``.
        fold: the ``(H', W')`` grid an ``im2col`` produced, carried only to the ``col2im``
            of the same routing module.
    """

    shape: tuple[int, ...]
    mode: str = "im"
    fold: tuple[int, int] | None = None

    @property
    def numel(self) -> int:
        """Number of elements per sample."""
        return prod(self.shape)

    @property
    def rank(self) -> int:
        """Number of non-batch dimensions."""
        return len(self.shape)

    def with_shape(self, shape: tuple[int, ...], mode: str | None = None) -> Spec:
        """A copy with another shape (and optionally mode); ``fold`` is dropped."""
        return Spec(tuple(shape), self.mode if mode is None else mode, None)

    def unfolded(self) -> Spec:
        """The same tensor without the im2col fold information."""
        return self if self.fold is None else replace(self, fold=None)

    def __str__(self) -> str:
        return f"{'x'.join(map(str, self.shape))}:{self.mode}"


# A signal is what flows along an edge: one tensor, or the k tensors of a branching op.
Signal = tuple[Spec, ...]


def one(spec: Spec) -> Signal:
    """Wrap a single spec as a signal."""
    return (spec,)


def pooled_features(spec: Spec) -> int:
    """Features left after global pooling: channels of an image, features of tokens."""
    from nas.exceptions import ShapeError

    if spec.rank == 3 or spec.rank == 1:
        return spec.shape[0]
    if spec.rank == 2:
        return spec.shape[1]
    raise ShapeError(f"no classification head for a backbone output {spec}.")


def head_params(spec: Spec, num_classes: int) -> int:
    """Parameters of the classification head (pooling + Linear) on a backbone output."""
    return (pooled_features(spec) + 1) * num_classes


def parse_shape(text: str) -> tuple[int, ...]:
    """Parse ``"3x28x28"`` (or ``"3,28,28"``) into a shape tuple.

    Raises:
        ConfigurationError: the text is not a list of positive integers.
    """
    from nas.exceptions import ConfigurationError

    parts = text.replace(",", "x").lower().split("x")
    try:
        shape = tuple(int(p) for p in parts)
    except ValueError:
        shape = ()
    if not shape or any(d <= 0 for d in shape):
        raise ConfigurationError(
            f"an input shape must be positive integers joined by 'x' such as 3x28x28, "
            f"but got {text!r}."
        )
    return shape
