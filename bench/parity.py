"""Survey the ONNX parity check on random NB201 cells and einspace draws (false alarms).

Usage: python bench/parity.py [--n 200] [--seed 0] [--tolerance 1e-4]

For each draw: compile with fresh weights, export, run onnxruntime on a batch of 3 and
compare with torch (nas.export.parity_report). Prints, per space, how many exports pass
the relative tolerance, how many would fail an absolute 1e-4, and the largest errors.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path

import torch

from nas.compile import compile_arch
from nas.export import export_onnx, parity_report
from nas.nb201 import from_nb201
from nas.ops.nb201 import EDGE_OPS
from nas.sampling import Sampler
from nas.space import load_space


def nb201_cells(n: int, seed: int) -> list[str]:
    """``n`` uniformly random NB201 cells in NB201's string form."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        e = [rng.choice(EDGE_OPS) for _ in range(6)]
        out.append(f"|{e[0]}~0|+|{e[1]}~0|{e[2]}~1|+|{e[3]}~0|{e[4]}~1|{e[5]}~2|")
    return out


def survey(name: str, archs: list, space, tolerance: float, tmp: Path) -> None:
    """Export every architecture and print pass counts and the worst errors."""
    t = time.perf_counter()
    fails, abs_fails, worst_rel, worst_abs = [], 0, 0.0, 0.0
    for i, arch in enumerate(archs):
        torch.manual_seed(i)
        model = compile_arch(arch, space.input_shape, space.num_classes, space.mode)
        path = export_onnx(model, space.input_shape, tmp / f"{name}.onnx")
        p = parity_report(model, path, space.input_shape)
        worst_rel, worst_abs = max(worst_rel, p.relative), max(worst_abs, p.max_abs)
        abs_fails += p.max_abs > 1e-4
        if not p.ok(tolerance):
            fails.append((str(arch), p))
    dt = time.perf_counter() - t
    print(
        f"{name}: {len(archs)} exports in {dt:.0f} s; relative check fails {len(fails)}, "
        f"an absolute 1e-4 would fail {abs_fails}; worst relative {worst_rel:.3g}, "
        f"worst absolute {worst_abs:.3g}"
    )
    for arch, p in fails[:5]:
        print(f"  FAIL {arch[:100]}: {p}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tolerance", type=float, default=1e-4)
    ap.add_argument("--spaces", default="nb201,einspace")
    args = ap.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as d:
        for name in args.spaces.split(","):
            space = load_space(name)
            if name == "nb201":
                archs = [from_nb201(c) for c in nb201_cells(args.n, args.seed)]
            else:
                sampler = Sampler(space, seed=args.seed)
                archs = [sampler.sample() for _ in range(args.n)]
            survey(name, archs, space, args.tolerance, Path(d))


if __name__ == "__main__":
    main()
