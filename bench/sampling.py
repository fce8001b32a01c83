"""Benchmark the einspace sampler: speed, validity and the size distribution of draws.

Usage: python bench/sampling.py [--n 1000] [--shape 3x28x28] [--seed 0] [--no-forward]
                                [--mutate]

Prints draws/s, p50/p99/max draw time, the share of draws that compile and run a
forward pass (batch 2, one torch thread), and the distributions of depth, op count,
parameters and FLOPs that the default budgets produce. With ``--mutate``, each draw is
also mutated once (``nas.evolution.mutate``, rng seeded with ``--seed``): failures, how
many children are valid (check + compile + forward) and differ from their parent, CPU time
per child, the share made by the insertion fallback, and the child/parent size ratios.
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import time

import torch

from nas.compile import compile_arch
from nas.evolution import mutate
from nas.exceptions import NasError
from nas.ops.spec import parse_shape
from nas.sampling import Sampler
from nas.space import load_space


def quantiles(values: list[float], qs: tuple[float, ...] = (0.1, 0.5, 0.9, 0.99, 1.0)) -> str:
    v = sorted(values)
    return "  ".join(
        f"p{int(q * 100)}={v[min(len(v) - 1, int(q * len(v)))]:,.0f}"
        if q < 1
        else f"max={v[-1]:,.0f}"
        for q in qs
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--space", default="einspace")
    ap.add_argument("--shape", default="3x28x28")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-forward", action="store_true")
    ap.add_argument("--mutate", action="store_true", help="also mutate every draw once")
    args = ap.parse_args()
    torch.set_num_threads(1)
    space = load_space(args.space).with_input(parse_shape(args.shape))
    sampler = Sampler(space, seed=args.seed)
    times, depth, ops, params, flops = [], [], [], [], []
    failures = 0
    archs = []
    t_all = time.perf_counter()
    for _ in range(args.n):
        t = time.perf_counter()
        arch = sampler.sample()
        times.append(time.perf_counter() - t)
        archs.append(arch)
    total = time.perf_counter() - t_all
    fwd_times = []
    for arch in archs:
        a = space.check(arch)
        depth.append(a.depth)
        ops.append(a.n_ops)
        params.append(a.params)
        flops.append(a.flops)
        if args.no_forward:
            continue
        t = time.perf_counter()
        if not runs(space, arch):
            failures += 1
        fwd_times.append(time.perf_counter() - t)
    ms = sorted(t * 1000 for t in times)
    n = len(ms)
    print(f"space={args.space} input={args.shape} draws={n} seed={args.seed}")
    print(f"draws/s: {n / total:.1f}")
    print(f"draw time ms: p50={ms[n // 2]:.2f} p99={ms[int(0.99 * n)]:.2f} max={ms[-1]:.2f}")
    if not args.no_forward:
        print(
            f"compile+forward ok: {n - failures}/{n} "
            f"(failure rate {failures / n:.2%}); compile+forward s: "
            f"p50={statistics.median(fwd_times):.3f} max={max(fwd_times):.3f}"
        )
    print(f"depth:  {quantiles(depth)}")
    print(f"ops:    {quantiles(ops)}")
    print(f"params: {quantiles(params)}")
    print(f"MACs:   {quantiles(flops)}")
    hist: dict[int, int] = {}
    for o in ops:
        b = 1 << max(0, o - 1).bit_length()
        hist[b] = hist.get(b, 0) + 1
    print(
        "ops histogram (upper bound: count): "
        + ", ".join(f"<={k}: {hist[k]}" for k in sorted(hist))
    )
    if args.mutate:
        mutation_report(space, archs, sampler, args.seed, forward=not args.no_forward)


def runs(space, arch) -> bool:
    """Whether ``arch`` compiles and a forward pass of batch 2 gives the head's shape."""
    try:
        model = compile_arch(arch, space.input_shape, space.num_classes).eval()
        with torch.no_grad():
            y = model(torch.randn(2, *space.input_shape))
    except Exception as e:
        print("FAILED:", type(e).__name__, e, str(arch)[:200])
        return False
    return tuple(y.shape) == (2, space.num_classes)


def ratio_quantiles(values: list[float]) -> str:
    v = sorted(values)
    geo = math.exp(statistics.fmean(math.log(r) for r in v))
    return (
        f"p10={v[int(0.1 * len(v))]:.2f} median={statistics.median(v):.2f} "
        f"p90={v[int(0.9 * len(v))]:.2f} geometric mean={geo:.2f}"
    )


def mutation_report(space, parents, sampler: Sampler, seed: int, forward: bool) -> None:
    """Mutate each parent once; print failures, validity, CPU time, fallbacks and size ratios."""
    rng = random.Random(seed)
    times, first, inserts, failed, bad = [], 0, 0, 0, 0
    r_params, r_ops = [], []
    for parent in parents:
        stats: dict[str, int] = {}
        t = time.process_time()
        try:
            child = mutate(space, parent, rng, sampler=sampler, stats=stats)
        except NasError as e:
            failed += 1
            print("MUTATION FAILED:", e, str(parent)[:200])
            continue
        times.append(time.process_time() - t)
        first += stats.get("draws", 0) == 1
        inserts += stats.get("inserts", 0)
        try:
            a, b = space.check(parent), space.check(child)
        except NasError as e:
            bad += 1
            print("INVALID CHILD:", e, str(child)[:200])
            continue
        bad += not (child != parent and a.out == b.out and (not forward or runs(space, child)))
        r_params.append((b.params + 1) / (a.params + 1))
        r_ops.append(b.n_ops / a.n_ops)
    n = len(parents)
    ms = sorted(t * 1000 for t in times)
    checked = "check + compile + forward" if forward else "check"
    print(
        f"mutation: {n} parents, {failed} failures, {n - failed - bad} children valid "
        f"({checked}) and different, {first} on the first position drawn"
    )
    print(
        f"mutation CPU ms: median={statistics.median(ms):.1f} "
        f"p99={ms[int(0.99 * len(ms))]:.1f} max={ms[-1]:.1f}"
    )
    print(f"insertion fallback: {inserts}/{n} ({inserts / n:.1%})")
    print(f"child/parent params+1: {ratio_quantiles(r_params)}")
    print(f"child/parent ops:      {ratio_quantiles(r_ops)}")


if __name__ == "__main__":
    main()
