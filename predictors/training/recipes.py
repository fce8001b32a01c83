"""Training recipes: named changes of the model and training configuration, one registry.

``nas predictor train --recipe NAME`` and the leave-one-space-out table
(:mod:`nas.predictors.research.loso`, where they are its variants) read the same :data:`RECIPES`.
Each entry takes the command line's (``ModelConfig``, ``RankerTrainConfig``) and returns them
changed. ``full`` is the v1 recipe itself. Ablations train the same recipe without a part:

* ``no-signals``: the head does not see log params / log FLOPs (``globals_mode='none'``);
* ``op-only text``: each node's text embedding is replaced by that of its op type alone
  (no attributes, shapes or weights); it keeps the configuration and swaps the embeddings;
* ``no-graph``: no message passing (0 rounds), a bag of node texts;
* ``shape-free text``: node texts without sizes (:func:`shape_free`: no weight shapes, the
  output's rank only), so a conv reads the same in every space whatever its widths.

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
  the steps: the best single model of these by LOSO (docs/predictor.md);
* ``prior-shape-free``: ``prior-listnet-wide`` on shape-free texts;
* ``prior-signals``: ``prior-listnet-wide`` whose head also sees the set ranks of depth,
  node count, width and the NASWOT proxy (:data:`SIGNALS`), so its correction can lean on
  them; ``prior-signals-ens``: as an ensemble of 3 seeds, the best by LOSO (5 seeds, six
  spaces) and the recipe of transfer-v2 and of the bundled transfer-v3 (eight spaces;
  docs/predictor.md);
* ``prior-listnet-wide-ens``: ``prior-listnet-wide`` as an ensemble of 3 seeds (the
  recipe of the earlier transfer-v1).

The :data:`TEXT_VIEWS` variants need the same view of node texts when scoring, which a
saved model cannot ask for, so :func:`apply_recipe` (the recipes a saved model may be
trained with) refuses them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields, replace
from typing import TYPE_CHECKING, Any

from nas.predictors.textviews import op_only, shape_free

from nas.exceptions import ConfigurationError
from nas.registry import Registry

if TYPE_CHECKING:  # the registry only copies dataclasses: importing it loads no torch
    from nas.predictors.model import ModelConfig
    from nas.predictors.training.fit import RankerTrainConfig

    Recipe = tuple[ModelConfig, RankerTrainConfig]


def _model(**kw: Any) -> Callable[[ModelConfig, RankerTrainConfig], Recipe]:
    return lambda mc, tc: (replace(mc, **kw), tc)


PRIOR = {"globals_norm": "set", "prior": "params"}


def _wide(**kw: Any) -> Callable[[ModelConfig, RankerTrainConfig], Recipe]:
    """``prior-listnet-wide`` (params prior, correction bound 2, ListNet loss, a third of the
    steps) with more model changes ``kw`` (list values are copied per use)."""

    def recipe(mc: ModelConfig, tc: RankerTrainConfig) -> Recipe:
        more = {k: list(v) if isinstance(v, list) else v for k, v in kw.items()}
        return (
            replace(mc, **PRIOR, correction=2.0, **more),
            replace(tc, loss="listnet", steps=tc.steps // 3),
        )

    return recipe


DEFAULT = "full"

# recipe name -> how it changes the command line's recipe (model and training config);
# the TEXT_VIEWS variants keep a recipe and swap the node embeddings. Listed in registration
# order (``--recipe``'s help); a name taken twice by two different recipes is an error.
RECIPES: Registry[Callable[[ModelConfig, RankerTrainConfig], Recipe]] = Registry(
    "recipe", ordered=True
)
RECIPES.add("full", lambda mc, tc: (mc, tc))
RECIPES.add("op-only text", lambda mc, tc: (mc, tc))
RECIPES.add("no-signals", _model(globals_mode="none"))
RECIPES.add("no-graph", _model(layers=0))
RECIPES.add("set-signals", _model(globals_norm="set"))
RECIPES.add("params-prior", _model(**PRIOR))
RECIPES.add("prior-no-graph", _model(**PRIOR, layers=0))
RECIPES.add("prior-no-signals", _model(**PRIOR, globals_mode="none"))
RECIPES.add("prior-half", _model(**PRIOR, correction=0.5))
RECIPES.add("prior-short", lambda mc, tc: (replace(mc, **PRIOR), replace(tc, steps=tc.steps // 3)))
RECIPES.add("prior-listnet", lambda mc, tc: (replace(mc, **PRIOR), replace(tc, loss="listnet")))
RECIPES.add("prior-ensemble", _model(**PRIOR, members=3))
RECIPES.add("prior-op-only", _model(**PRIOR))
RECIPES.add("prior-listnet-wide", _wide())
SIGNALS = ["depth", "nodes", "width", "nwot"]  # the head signals of the prior-signals recipes
RECIPES.add("prior-listnet-wide-ens", _wide(members=3))
RECIPES.add("prior-signals", _wide(signals=SIGNALS))
RECIPES.add("prior-signals-ens", _wide(signals=SIGNALS, members=3))
RECIPES.add("shape-free text", RECIPES.get("full"))  # same recipes, other texts (TEXT_VIEWS)
RECIPES.add("prior-shape-free", RECIPES.get("prior-listnet-wide"))


# variant -> the view of node texts it trains and scores on (others: the full text)
TEXT_VIEWS: dict[str, Callable[[str], str]] = {
    "op-only text": op_only,
    "prior-op-only": op_only,
    "shape-free text": shape_free,
    "prior-shape-free": shape_free,
}


def trainable() -> list[str]:
    """The recipes a saved model can be trained with (every one but :data:`TEXT_VIEWS`)."""
    return [k for k in RECIPES.names() if k not in TEXT_VIEWS]


def apply_recipe(name: str, model_config: ModelConfig, config: RankerTrainConfig) -> Recipe:
    """The configurations ``name`` makes of the given ones (copies; the inputs stay as they
    are). An unknown or LOSO-only name, or a recipe that leaves no step, is a
    ConfigurationError."""
    choices = ", ".join(trainable())
    if name in TEXT_VIEWS:
        raise ConfigurationError(
            f"recipe {name!r} is a LOSO-only ablation (it trains on another view of the node "
            f"texts, which scoring cannot do); choose from {choices}."
        )
    if name not in RECIPES:
        raise ConfigurationError(f"unknown recipe {name!r}; choose from {choices}.")
    try:  # a changed config checks itself; the one a recipe changes is the step count
        mc, tc = RECIPES.get(name)(replace(model_config), replace(config))
    except ConfigurationError:
        raise ConfigurationError(
            f"recipe {name!r} leaves 0 of {config.steps} steps; give more steps."
        ) from None
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
