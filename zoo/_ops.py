"""Ops that let a grammar write a zoo family's config: ``fam(hp(k=KEY, v=VALUE), ...)``.

``hp`` holds one hyperparameter value; the family op (registered with the family) takes one
``hp`` child per hyperparameter, in the family's order. Neither is a layer: they pass the
(nominal) input through unchanged, so sampling, mutation and the Optuna samplers treat a
family's hyperparameters like any other grammar.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from nas.exceptions import ShapeError
from nas.ops._registry import ChildBuild, ChildInfer, Combinator, Op, register_op
from nas.ops.spec import Signal

if TYPE_CHECKING:
    from torch import nn


@register_op
class HyperParam(Op):
    """``hp(k=KEY, v=VALUE)``: one hyperparameter of a zoo family's config."""

    name = "hp"
    params: ClassVar[dict] = {"k": str, "v": str}
    is_view = True

    def infer(self, x: Signal) -> Signal:
        return x

    def flops(self, x: Signal, y: Signal) -> int:
        return 0

    def build(self, x: Signal) -> nn.Module:
        raise ShapeError("hp is a hyperparameter of a zoo family, not a layer.")


class ConfigOp(Combinator):
    """A zoo family's config: one ``hp`` child per hyperparameter."""

    keys: ClassVar[tuple[str, ...]] = ()

    def flow(self, x: Signal, child: ChildInfer) -> Signal:
        for i in range(self.n_slots):
            child(i, x)
        return x

    def flops(self, x: Signal, y: Signal) -> int:
        return 0

    def build_with(self, x: Signal, child: ChildBuild) -> nn.Module:
        raise ShapeError(
            f"{self.name}(...) is a zoo config; build it with nas.zoo, not the compiler."
        )


def register_config_op(family: str, keys: tuple[str, ...]) -> type[Op]:
    """Register the op named ``family`` taking one ``hp`` child per key."""
    cls = type(
        f"ConfigOp_{family}",
        (ConfigOp,),
        {
            "name": family,
            "n_slots": len(keys),
            "keys": keys,
            "__doc__": f"Config of zoo:{family}: {', '.join(keys)}.",
        },
    )
    return register_op(cls)
