"""Benches (nas.predictors.benches): the training data of the ranker.

A bench (``bench``) holds the graph records of many architectures with their labels,
published zero-cost proxies and our own signals. Builders: NAS-Bench-201 (``nb201_bench``,
its cells' graphs built directly by ``nb201_graph``), NAS-Bench-101 (``nb101_bench``, its
network ``nb101``), NAS-Bench-301 / DARTS (``nb301_bench``, ``darts``) and finished search
runs (``run_bench``); ``benchdata`` reads the shipped tables they use. Ranking
(:mod:`nas.predictors`) imports none of it.
"""
