"""Can a mutation's children learn? Parents from a real search, children trained like trials.

Takes the parents from a search run (``--run RUN_DIR``; without it, the default search is
run first, ``--dataset`` and ``--seed`` passed on): the run's seeds and its best other
trials, ``--parents`` in all. Each parent and ``--children`` children of it are trained
under the run's trial protocol (same epochs, cap and training seed), and the children are
compared with their parent's validation accuracy. Printed per operator (``--operators``,
each used alone) and for the mix a search uses (``--mutations``, default: its default
weights), each as one line:

    children: median child/parent accuracy ratio R; at chance F%; better than parent B%

A child is at chance within 1.5x the majority-class accuracy; a child that fails to train
counts as at chance with ratio 0.

    .venv/bin/python bench/mutation.py [--run RUN_DIR] [--parents 8] [--children 6]
        [--operators all|param,swap,...] [--workers 2] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

_EVALUATOR: Any = None


def _init(options: dict[str, Any]) -> None:
    """A worker process: build the run's evaluator once (one torch thread)."""
    global _EVALUATOR
    from nas.searches.evaluators import EvaluatorSpec

    from nas.runtime import configure

    configure()
    _EVALUATOR = EvaluatorSpec("train", options)()


def _train(arch: str) -> float | None:
    """Validation accuracy of ``arch`` under the trial protocol (None if it failed)."""
    from nas.dsl import parse_arch

    out = _EVALUATOR(parse_arch(arch))
    return out.values["accuracy"] if out.status == "ok" and out.values else None


def parents_of(run: Path, n: int) -> tuple[list[tuple[str, str]], dict[str, Any], float, Any]:
    """(name, arch) of the run's seeds then its best other trials, ``n`` in all; the
    evaluator options of its trials; the majority-class valid accuracy; its space."""
    from nas.searches import Search
    from nas.searches.baselines import load
    from nas.searches.store import open_run

    _, store = open_run(run)
    job = Search.resume(run)
    seeds = {str(a): name for name, a in job.space.seeds.items()}
    ranked = store.best(None)
    chosen = [(seeds[r.arch], r.arch) for r in ranked if r.arch in seeds]
    chosen += [(f"trial {r.number}", r.arch) for r in ranked if r.arch not in seeds]
    options = {k: v for k, v in job.evaluator.options.items() if k != "uncapped"}
    chance = next(b.valid for b in load(run) or [] if b.name == "chance")
    return chosen[:n], options, chance, job.space


def children_of(space: Any, arch: str, k: int, weights: dict[str, float] | None, seed: int):
    """``k`` distinct children of ``arch`` by the operators of ``weights``, screened as the
    search screens them (nothing learnable, constant output, one pooled feature)."""
    from nas.degenerate import canonical_key, degenerate_reason
    from nas.dsl import parse_arch
    from nas.exceptions import SamplingError
    from nas.mutations import mutate_with
    from nas.sampling import Sampler

    rng = random.Random(seed)
    sampler = Sampler(space, seed=seed)
    parent = parse_arch(arch)
    seen = {canonical_key(parent)}
    out: list[tuple[str, str]] = []
    for _ in range(20 * k):
        if len(out) == k:
            break
        try:
            child, op = mutate_with(
                space,
                parent,
                rng,
                weights,
                sampler,
                lambda a: degenerate_reason(a, space.input, space.num_classes),
            )
        except SamplingError:
            break
        key = canonical_key(child)
        if key not in seen:
            seen.add(key)
            out.append((str(child), op))
    return out


def summary(rows: list[dict[str, Any]], chance: float) -> str:
    """The one line of the issue for a set of children."""
    ratios = [r["ratio"] for r in rows]
    if not ratios:
        return "children: none"
    at_chance = sum(r["child"] is None or r["child"] <= 1.5 * chance for r in rows)
    better = sum(r["ratio"] > 1 for r in rows)
    return (
        f"children: median child/parent accuracy ratio {statistics.median(ratios):.2f}; "
        f"at chance {100 * at_chance / len(rows):.0f}%; better than parent "
        f"{100 * better / len(rows):.0f}% ({len(rows)} children of "
        f"{len({r['parent'] for r in rows})} parents)"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, help="a search run to take the parents from")
    ap.add_argument("--dataset", default="unseen", help="without --run: the search's task")
    ap.add_argument("--seed", type=int, default=0, help="without --run: the search's seed")
    ap.add_argument("--parents", type=int, default=8)
    ap.add_argument("--children", type=int, default=6, help="per parent and operator")
    ap.add_argument(
        "--operators", default="all",
        help="operators measured one at a time, comma-separated ('all': every registered "
        "one; '' for none)",
    )  # fmt: skip
    ap.add_argument("--mutations", default="default", help="the mix measured ('' for none)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--json", type=Path, help="write every child's row here")
    a = ap.parse_args()
    from multiprocessing import get_context

    from nas.searches import Search, SearchConfig

    from nas.mutations import DEFAULT_WEIGHTS

    run = a.run
    if run is None:
        run = Path(tempfile.mkdtemp(prefix="mutation-bench-")) / "run"
        print(f"running the default search on {a.dataset} (seed {a.seed}) in {run} ...")
        Search(SearchConfig(dataset=a.dataset, seed=a.seed, final_epochs=0), run).run()
    parents, options, chance, space = parents_of(run, a.parents)
    mixes: dict[str, dict[str, float] | None] = {}
    names = list(DEFAULT_WEIGHTS) if a.operators == "all" else a.operators.split(",")
    for op in filter(None, names):
        if op not in DEFAULT_WEIGHTS:
            sys.exit(f"unknown operator {op!r}; expected some of {', '.join(DEFAULT_WEIGHTS)}")
        mixes[op] = {op: 1.0}
    if a.mutations:
        mixes["mix"] = None if a.mutations == "default" else {
            w.partition(":")[0]: float(w.partition(":")[2] or DEFAULT_WEIGHTS[w.partition(":")[0]])
            for w in a.mutations.split(",")
        }  # fmt: skip
    jobs: list[tuple[str, str, str, str]] = []  # (mix, parent name, child arch, operator)
    for i, (name, arch) in enumerate(parents):
        for mix, weights in mixes.items():
            for child, op in children_of(space, arch, a.children, weights, seed=1000 * i + 7):
                jobs.append((mix, name, child, op))
    archs = sorted({arch for _, arch in parents} | {j[2] for j in jobs})
    print(
        f"{len(parents)} parents ({', '.join(n for n, _ in parents)}), {len(jobs)} children, "
        f"{len(archs)} trainings on {a.workers} processes ...", flush=True
    )  # fmt: skip
    t0 = time.perf_counter()
    with get_context("spawn").Pool(a.workers, _init, (options,)) as pool:
        acc = dict(zip(archs, pool.map(_train, archs, chunksize=1), strict=True))
    rows = []
    for mix, name, child, op in jobs:
        p = acc[dict(parents)[name]] or 0.0
        c = acc[child]
        rows.append({"mix": mix, "parent": name, "op": op, "parent_acc": p, "child": c,
                     "ratio": (c or 0.0) / p if p else 0.0, "arch": child})  # fmt: skip
    print(f"trained in {(time.perf_counter() - t0) / 60:.1f} min; chance {100 * chance:.1f}%")
    for name, arch in parents:
        print(f"  parent {name}: valid {100 * (acc[arch] or 0):.1f}%")
    for mix in mixes:
        label = "mix (default weights)" if mix == "mix" and mixes[mix] is None else mix
        print(f"{label:22s} {summary([r for r in rows if r['mix'] == mix], chance)}")
    if a.json:
        a.json.write_text(json.dumps({"run": str(run), "chance": chance, "rows": rows}, indent=1))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
