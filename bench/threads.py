"""Training-step speed with 1 vs 2 torch threads, to choose the default (nas/runtime.py).

Usage: python bench/threads.py [--steps 20]

Times forward + backward + SGD steps of einspace models of several sizes, each thread
count in its own subprocess (torch's thread pool is fixed once used), and prints the
steps/s and the ratio 1-thread / 2-threads for each.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

MODELS = {
    "tiny (2 ops)": ("seq(compute(linear(out=32)),compute(leakyrelu))", 256),
    "small conv": (
        "seq(route(im2col(k=3,s=1,p=1),compute(linear(out=16)),col2im),"
        "seq(compute(norm),compute(leakyrelu)))",
        64,
    ),
    "resnet18 seed": ("@spaces/seeds/resnet18.arch", 32),
}

CHILD = r"""
import json, sys, time, torch
threads, arch, batch, steps = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
torch.set_num_threads(threads)
from pathlib import Path
from nas.compile import compile_arch
from nas.dsl import parse_arch
text = Path(arch[1:]).read_text() if arch.startswith("@") else arch
torch.manual_seed(0)
model = compile_arch(parse_arch(text.strip()), (3, 28, 28), 20)
opt = torch.optim.SGD(model.parameters(), lr=0.01)
x, y = torch.randn(batch, 3, 28, 28), torch.randint(0, 20, (batch,))
def step():
    opt.zero_grad()
    torch.nn.functional.cross_entropy(model(x), y).backward()
    opt.step()
for _ in range(3):
    step()
t = time.perf_counter()
for _ in range(steps):
    step()
print(json.dumps(steps / (time.perf_counter() - t)))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=20)
    args = ap.parse_args()
    print(f"{'model':16s} {'batch':>5s} {'1 thread':>10s} {'2 threads':>10s} {'ratio':>7s}")
    for name, (arch, batch) in MODELS.items():
        rates = []
        for threads in (1, 2):
            res = subprocess.run(
                [sys.executable, "-c", CHILD, str(threads), arch, str(batch), str(args.steps)],
                capture_output=True,
                text=True,
                check=True,
            )
            rates.append(json.loads(res.stdout.strip().splitlines()[-1]))
        print(
            f"{name:16s} {batch:5d} {rates[0]:9.1f}/s {rates[1]:9.1f}/s "
            f"{rates[0] / rates[1]:6.2f}x"
        )


if __name__ == "__main__":
    main()
