"""The predictor's research harness (nas.predictors.research), run by bench/predictor.py.

``loso``: the leave-one-space-out table over the training recipes; ``blend``: the data-free
signals mixed or picked without a graph model; ``fewshot_loso``: the few-shot tables.
Nothing of the package's ranking, benches or training imports it.
"""
