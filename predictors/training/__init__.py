"""Training the ranker (nas.predictors.training): ``nas predictor train|eval`` as a library.

``fit`` trains and evaluates a graph ranker on a bench (ranking losses, group-wise splits,
baselines), ``trainset`` builds what ``nas predictor train`` trains on (one bench, or
several joined by ``corpus``), ``recipes`` names the training recipes and ``rankmetrics``
holds the rank metrics.
Ranking (:mod:`nas.predictors`) imports none of it.
"""
