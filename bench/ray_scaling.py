"""Throughput of the Ray backend: trials per hour with 1 and 2 workers, and its overhead.

Usage: python bench/ray_scaling.py [--budget 45] [--cheap 20] [--dataset unseen:language]

1. Training trials (einspace, 1 epoch, random search) for ``--budget`` seconds with 1 and
   with 2 Ray workers (1 CPU each): trials finished per hour.
2. ``--cheap`` table-mode trials (an NB201 lookup, ~1 ms of work) with the local runner and
   with the Ray backend (1 worker): seconds per trial and the ratio, i.e. the per-trial
   overhead of going through Tune.

Ray is started once (``num_cpus`` = the machine's cores) and shut down at the end.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from typing import Any


def _strategy(space: str) -> Any:
    from nas.searches import create_strategy

    from nas.space import load_space

    return create_strategy("rs", load_space(space), seed=0)


def main() -> None:
    """Run both measurements and print them."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget", type=float, default=45.0, help="seconds per training run")
    ap.add_argument("--cheap", type=int, default=20, help="table-mode trials per backend")
    ap.add_argument("--dataset", default="unseen:language")
    args = ap.parse_args()

    import ray
    from nas.searches import evaluators
    from nas.searches.ray_runner import run_search_ray
    from nas.searches.runner import run_search
    from nas.searches.store import RunStore

    from nas.train import TrainConfig

    root = tempfile.mkdtemp(prefix="nas-bench-ray-")
    os.environ.setdefault("XDG_CACHE_HOME", os.path.join(root, "cache"))
    t = time.perf_counter()
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    print(f"ray.init: {time.perf_counter() - t:.1f} s ({os.cpu_count()} CPUs)")
    try:
        cfg = evaluators.config_dict(
            TrainConfig.preset("quick", epochs=1, seed=0, time_budget_s=10)
        )
        train = evaluators.EvaluatorSpec(
            "train", {"space": "einspace", "dataset": args.dataset, "config": cfg, "size": "small"}
        )
        rates = {}
        for workers in (1, 2):
            store = RunStore(os.path.join(root, f"train{workers}"))
            t = time.perf_counter()
            done = run_search_ray(
                _strategy("einspace"), store, 10_000, train, args.budget, workers
            )
            wall = time.perf_counter() - t
            rates[workers] = len(done) / wall * 3600
            print(
                f"training, {workers} worker(s): {len(done)} trials in {wall:.1f} s "
                f"= {rates[workers]:.0f} trials/h"
            )
        print(f"speed-up with 2 workers: {rates[2] / rates[1]:.2f}x")

        table = evaluators.EvaluatorSpec("table", {"dataset": "cifar10"})
        per = {}
        for name in ("local", "ray"):
            store = RunStore(os.path.join(root, f"cheap-{name}"))
            t = time.perf_counter()
            if name == "local":
                run_search(_strategy("nb201"), store, args.cheap, table)
            else:
                run_search_ray(_strategy("nb201"), store, args.cheap, table, workers=1)
            per[name] = (time.perf_counter() - t) / args.cheap
            print(f"cheap trials, {name}: {per[name] * 1000:.1f} ms per trial")
        print(
            f"Ray overhead: {per['ray'] / per['local']:.0f}x the local runner, "
            f"+{(per['ray'] - per['local']) * 1000:.0f} ms per trial"
        )
    finally:
        ray.shutdown()


if __name__ == "__main__":
    main()
