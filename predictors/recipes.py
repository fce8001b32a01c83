"""Training recipes: named changes of the model and training configuration, one registry.

``nas predictor train --recipe NAME`` and the leave-one-space-out table
(:mod:`nas.predictors.loso`, where they are its variants) read the same :data:`RECIPES`.
Each entry takes the command line's (``ModelConfig``, ``TrainConfig``) and returns them
changed. ``full`` is the v1 recipe itself. Ablations train the same recipe without a part:

* ``no-signals``: the head does not see log params / log FLOPs (``globals_mode='none'``);
* ``op-only text``: each node's text embedding is replaced by that of its op type alone
  (no attributes, shapes or weights); it keeps the configuration and swaps the embeddings;
* ``no-graph``: no message passing (0 rounds), a bag of node texts.

Variants that change the recipe rather than remove a part (see
:class:`~nas.predictors.model.ModelConfig`):

* ``set-signals``: the head sees params/FLOPs as percentile ranks within the scored space
  (``globals_norm='set'``), not on the training spaces' scale;
* ``params-prior``: set signals, and the score is the rank of params plus a bounded learned
  correction (``prior='params'``): a residual on the best-transferring baseline;
* ``prior-short`` (a third of the steps), ``prior-half`` (correction bound 0.5),
  ``prior-listnet`` (ListNet loss), ``prior-ensemble`` (3 seeds averaged), ``prior-no-graph``,
  ``prior-no-signals``, ``prior-op-only``: the prior recipe with one more change;
* ``prior-listnet-wide``: ListNet, correction bound 2 (half the prior's range), a third of
  the steps: the best of these by LOSO (README).

The :data:`OP_ONLY` variants need swapped embeddings when scoring too, which a saved model
cannot ask for, so :func:`apply_recipe` (the recipes a saved model may be trained with)
refuses them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields, replace
from typing import TYPE_CHECKING, Any

from nas.exceptions import ConfigurationError

if TYPE_CHECKING:  # the registry only copies dataclasses: importing it loads no torch
    from nas.predictors.fit import TrainConfig
    from nas.predictors.model import ModelConfig

    Recipe = tuple[ModelConfig, TrainConfig]


def _model(**kw: Any) -> Callable[[ModelConfig, TrainConfig], Recipe]:
    return lambda mc, tc: (replace(mc, **kw), tc)


PRIOR = {"globals_norm": "set", "prior": "params"}
DEFAULT = "full"

# recipe name -> how it changes the command line's recipe (model and training config);
# ``op-only text`` keeps the recipe and swaps the node embeddings
RECIPES: dict[str, Callable[[ModelConfig, TrainConfig], Recipe]] = {
    "full": lambda mc, tc: (mc, tc),
    "op-only text": lambda mc, tc: (mc, tc),
    "no-signals": _model(globals_mode="none"),
    "no-graph": _model(layers=0),
    "set-signals": _model(globals_norm="set"),
    "params-prior": _model(**PRIOR),
    "prior-no-graph": _model(**PRIOR, layers=0),
    "prior-no-signals": _model(**PRIOR, globals_mode="none"),
    "prior-half": _model(**PRIOR, correction=0.5),
    "prior-short": lambda mc, tc: (replace(mc, **PRIOR), replace(tc, steps=tc.steps // 3)),
    "prior-listnet": lambda mc, tc: (replace(mc, **PRIOR), replace(tc, loss="listnet")),
    "prior-ensemble": _model(**PRIOR, members=3),
    "prior-op-only": _model(**PRIOR),
    "prior-listnet-wide": lambda mc, tc: (
        replace(mc, **PRIOR, correction=2.0),
        replace(tc, loss="listnet", steps=tc.steps // 3),
    ),
}
OP_ONLY = {"op-only text", "prior-op-only"}  # variants trained on op-type-only embeddings


def trainable() -> list[str]:
    """The recipes a saved model can be trained with (every one but :data:`OP_ONLY`)."""
    return [k for k in RECIPES if k not in OP_ONLY]


def apply_recipe(name: str, model_config: ModelConfig, config: TrainConfig) -> Recipe:
    """The configurations ``name`` makes of the given ones (copies; the inputs stay as they
    are). An unknown or LOSO-only name, or a recipe that leaves no step, is a
    ConfigurationError."""
    choices = ", ".join(trainable())
    if name in OP_ONLY:
        raise ConfigurationError(
            f"recipe {name!r} is a LOSO-only ablation (it swaps node embeddings for op types, "
            f"which scoring cannot do); choose from {choices}."
        )
    if name not in RECIPES:
        raise ConfigurationError(f"unknown recipe {name!r}; choose from {choices}.")
    mc, tc = RECIPES[name](replace(model_config), replace(config))
    if tc.steps < 1:
        raise ConfigurationError(
            f"recipe {name!r} leaves {tc.steps} of {config.steps} steps; give more steps."
        )
    return mc, tc


def changes(before: Recipe, after: Recipe) -> list[str]:
    """``field old -> new`` for every setting a recipe changed (for the user and the model's
    meta, so a changed step count is said)."""
    out = []
    for a, b in zip(before, after, strict=True):
        for f in fields(a):
            old, new = getattr(a, f.name), getattr(b, f.name)
            if f.name != "meta" and old != new:
                out.append(f"{f.name} {old} -> {new}")
    return out
