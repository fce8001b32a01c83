"""Calibrate the digit stand-ins: a fixed small CNN's test accuracy against data size and epochs.

Usage: ``python bench/calibrate_digits.py --kind addnist --train 2000 5000 --epochs 4 8``.
One torch thread; prints one row per (size, epochs) with test accuracy and user CPU time.
"""

from __future__ import annotations

import argparse
import resource
import time

import torch
from nas.searches.baselines import small_cnn  # the search reports' CNN baseline

from nas.data import digits
from nas.data.base import Dataset, Split
from nas.train import TrainConfig, train


def dataset(kind: str, n_train: int, n_eval: int, seed: int) -> Dataset:
    arr = digits.generate(kind, (n_train, n_eval, n_eval), seed)
    splits = {s: Split(arr[f"{s}_x"], arr[f"{s}_y"]) for s in ("train", "valid", "test")}
    return Dataset(
        name=f"standin:{kind}",
        input_shape=(3, 28, 28),
        num_classes=digits.NUM_CLASSES[kind],
        train=splits["train"],
        valid=splits["valid"],
        test=splits["test"],
        task="classification",
        source="calibration",
    )


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--kind", default="addnist")
    p.add_argument(
        "--dataset", default=None, help="a registered dataset instead (e.g. unseen:language)"
    )
    p.add_argument("--size", default="small")
    p.add_argument("--train", type=int, nargs="+", default=[2000])
    p.add_argument("--epochs", type=int, nargs="+", default=[8])
    p.add_argument("--eval", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--batch", type=int, default=128)
    a = p.parse_args()
    torch.set_num_threads(1)
    for n in a.train:
        if a.dataset:
            from nas.data import load_dataset

            ds = load_dataset(a.dataset, size=a.size, seed=a.seed)
            n, a.kind = len(ds.train), a.dataset
        else:
            ds = dataset(a.kind, n, a.eval, a.seed)
        for ep in a.epochs:
            torch.manual_seed(a.seed)
            model = small_cnn(ds.input_shape[0], ds.num_classes)
            cfg = TrainConfig(
                optimizer="adamw",
                lr=a.lr,
                weight_decay=1e-2,
                epochs=ep,
                batch_size=a.batch,
                seed=a.seed,
                threads=1,
                schedule_unit="step",
            )
            u0, t0 = resource.getrusage(resource.RUSAGE_SELF).ru_utime, time.perf_counter()
            res = train(model, ds, cfg)
            u1 = resource.getrusage(resource.RUSAGE_SELF).ru_utime
            hist = " ".join(f"{h['valid_accuracy']:.2f}" for h in res.history)
            wall = time.perf_counter() - t0
            print(
                f"{a.kind} train={n} epochs={ep} test={res.test['accuracy']:.3f} "
                f"valid={res.fitness:.3f} user={u1 - u0:.0f}s wall={wall:.0f}s "
                f"valid/epoch: {hist}",
                flush=True,
            )


if __name__ == "__main__":
    main()
