"""Trials per hour with 1, 2 and 4 concurrent trials sharing one GPU (``--workers N``).

Usage: python bench/gpu_trials.py [--concurrency 1,2,4] [--arch resnet18,small]
       [--epochs 8] [--size full] [--device cuda] [--no-amp] [--no-channels-last]

Each trial is what one search worker does: a separate process trains a network with the
one trainer (``nas.train``) at the einspace protocol (SGD, 8 epochs of 45,000 AddNIST
images at 3x28x28, batch 256), its data resident on the device, AMP bf16 and channels-last
on CUDA by default. For each concurrency k, k processes start together; trials per hour is
k * 3600 / (wall time of the slowest). The einspace reference needs about 14.5 s per
ResNet-18-sized trial at this protocol on an H200 (248 trials/h); the target is twice that.

On a CPU-only machine, ``--device cpu --size small --epochs 1`` runs the same code as a
smoke test (the numbers then say nothing about GPUs).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

ARCHS = {
    "resnet18": "seed:resnet18",
    # About 40k parameters: the kind of net that leaves most of a GPU idle.
    "small": (
        "seq(route(im2col(k=3,s=1,p=1),compute(linear(out=64)),col2im),"
        "seq(compute(norm),seq(compute(leakyrelu),"
        "seq(route(im2col(k=3,s=2,p=1),compute(linear(out=64)),col2im),compute(leakyrelu)))))"
    ),
}
REFERENCE_S = 14.5  # einspace reference, ResNet-18 seed, H200, per trial

CHILD = r"""
import json, sys, time
arch, epochs, size, device, amp, cl = sys.argv[1:7]
from nas.formats import resolve_arch
from nas.data import load_dataset
from nas.train import TrainConfig, train
ds = load_dataset("unseen:addnist", size=size)
cfg = TrainConfig.preset("einspace", epochs=int(epochs), device=device, amp=amp == "1",
                         channels_last=cl == "1")
node = resolve_arch(arch, "einspace")
t0 = time.perf_counter()
res = train(node, ds, cfg)
print(json.dumps({"wall": time.perf_counter() - t0, "status": res.status,
                  "img_s": res.images_per_s, "train_s": res.train_time_s,
                  "acc": (res.test or {}).get("accuracy")}))
"""


def run_k(k: int, arch: str, a: argparse.Namespace) -> dict:
    """Start ``k`` trials at once; return their results and the wall time of the slowest."""
    args = [ARCHS.get(arch, arch), str(a.epochs), a.size, a.device]
    args += ["0" if a.no_amp else "1", "0" if a.no_channels_last else "1"]
    t0 = time.perf_counter()
    procs = [
        subprocess.Popen([sys.executable, "-c", CHILD, *args], stdout=subprocess.PIPE, text=True)
        for _ in range(k)
    ]
    outs = [p.communicate()[0] for p in procs]
    wall = time.perf_counter() - t0
    res = []
    for p, o in zip(procs, outs, strict=True):
        if p.returncode != 0 or not o.strip():
            sys.exit(f"a trial failed (exit {p.returncode}); see its stderr above.")
        res.append(json.loads(o.strip().splitlines()[-1]))
    return {"wall": wall, "trials": res}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--concurrency", default="1,2,4")
    p.add_argument("--arch", default="resnet18,small")
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--size", default="full", help="full: 45,000 train images (einspace)")
    p.add_argument("--device", default="cuda")
    p.add_argument("--no-amp", action="store_true")
    p.add_argument("--no-channels-last", action="store_true")
    a = p.parse_args(argv)
    ks = [int(k) for k in a.concurrency.split(",")]
    print(
        f"device {a.device}, {a.epochs} epochs on the {a.size} AddNIST stand-in, "
        f"amp={'off' if a.no_amp else 'bf16'}, channels_last={not a.no_channels_last}"
    )
    for arch in a.arch.split(","):
        base = None
        for k in ks:
            r = run_k(k, arch, a)
            per_h = k * 3600 / r["wall"]
            base = base or per_h
            img_s = sum(t["img_s"] or 0 for t in r["trials"])
            line = (
                f"{arch:9s} k={k}: {r['wall']:7.1f} s wall, {per_h:7.1f} trials/h "
                f"({per_h / base:.2f}x k=1), aggregate {img_s:,.0f} img/s"
            )
            if arch == "resnet18":
                line += f", {per_h / (3600 / REFERENCE_S):.2f}x the reference's 248/h"
            print(line, flush=True)


if __name__ == "__main__":
    main()
