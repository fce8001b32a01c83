"""Reference runs of the einspace trainer and two zoo families, recorded before the loops merged.

``python tests/loop_reference.py`` (re)writes ``tests/data/loop_reference.json``;
``tests/test_loop.py`` checks that the one training loop still gives these numbers. A time
budget of 1e-9 s is deterministic: the loop checks the budget before every step but a
run's first, so exactly one step runs.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nas.data.base import Dataset, Split

PATH = Path(__file__).parent / "data" / "loop_reference.json"
CONV = (
    "seq(route(im2col(k=3,s=1,p=1),compute(linear(out=16)),col2im),"
    "seq(compute(norm),compute(leakyrelu)))"
)
CELL = "cell(none,skip_connect,nor_conv_3x3,nor_conv_3x3,nor_conv_1x1,avg_pool_3x3)"
NB201 = f"nb201(c=4,n=1,{CELL})"
CENTRES = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [-1, -1, -1]], dtype=np.float64) * 0.5


def dataset() -> Dataset:
    """Four Gaussian clusters on 3x8x8 inputs (tests/test_train.py's data, fewer samples)."""
    rng = np.random.default_rng(0)

    def split(n: int) -> Split:
        y = rng.integers(0, 4, n)
        x = CENTRES[y][:, :, None, None] + rng.normal(0.0, 1.0, (n, 3, 8, 8))
        return Split((2.0 * x + 5.0).astype(np.float32), y.astype(np.int64))

    return Dataset("synthetic", (3, 8, 8), 4, split(256), split(128), split(128), "clusters")


# name -> (architecture, TrainConfig overrides of the "quick" preset, stop after epoch)
EINSPACE: dict[str, tuple[str, dict[str, Any], int | None]] = {
    "conv_adamw_epoch": (CONV, {}, None),
    "conv_sgd_step": (CONV, {"optimizer": "sgd", "lr": 0.05, "schedule_unit": "step"}, None),
    "conv_budget_tiny": (CONV, {"time_budget_s": 1e-9}, None),
    "conv_budget_large": (CONV, {"time_budget_s": 1e6, "schedule_unit": "step"}, None),
    "conv_eval_every_2_stop": (CONV, {"epochs": 4, "eval_every": 2}, 2),
    "conv_constant_eval_0": (CONV, {"schedule": "constant", "eval_every": 0}, None),
    "resnet_cpu_sgd": ("seed:resnet_cpu", {"optimizer": "sgd", "lr": 0.05}, None),
    "mixer_cpu_step": ("seed:mixer_cpu", {"schedule_unit": "step"}, None),
    "nb201_cell": (NB201, {"optimizer": "sgd", "lr": 0.05}, None),
    "nb201_cell_budget_tiny": (NB201, {"time_budget_s": 1e-9, "schedule_unit": "step"}, None),
}
ZOO: dict[str, tuple[str, dict[str, Any], int]] = {
    "moe": ("moe", {}, 2),
    "moe_uncertainty_noise": ("moe", {"weighting": "uncertainty", "grad_noise": 0.01}, 2),
    "deeponet": ("deeponet", {}, 2),
}
KEYS = ("status", "fitness", "valid", "test", "best_epoch", "epochs_done", "steps_done", "params")
LOOP_KEYS = ("epoch", "steps", "lr", "elapsed_s")
HISTORY_KEYS = ("epoch", "steps", "train_loss", "lr", "valid_accuracy", "valid_loss")


def einspace_run(name: str, ds: Dataset) -> dict[str, Any]:
    """One reference training run of the einspace trainer, as plain data."""
    from nas.formats import resolve_arch
    from nas.train import StopTraining, TrainConfig, train

    arch, over, stop_after = EINSPACE[name]
    node = resolve_arch(arch, "einspace")
    kw = {"epochs": 3, "batch_size": 64, "lr": 1e-2, "seed": 1, "device": "cpu", **over}
    cfg = TrainConfig.preset("quick", **kw)

    def on_epoch(epoch: int, entry: dict[str, float]) -> None:
        if stop_after is not None and epoch >= stop_after:
            raise StopTraining("enough")

    res = train(node, ds, cfg, on_epoch=on_epoch)
    out = {k: getattr(res, k) for k in KEYS}
    out["history"] = [{k: h[k] for k in HISTORY_KEYS if k in h} for h in res.history]
    return out


def zoo_run(name: str) -> dict[str, Any]:
    """One reference fit of a zoo family (default task, small data), as plain data."""
    from nas.zoo import get_family

    family, over, epochs = ZOO[name]
    fam = get_family(family)
    cfg = fam.config(over)
    data = fam.make_data(fam.task().name, size="small", seed=0)
    torch.manual_seed(0)
    model = fam.build(cfg, data)
    history: list[dict[str, float]] = []

    def on_epoch(epoch: int, entry: dict[str, float]) -> None:
        # The train loss and the metrics (the shared loop also passes its bookkeeping).
        history.append({k: v for k, v in entry.items() if k not in LOOP_KEYS})

    res = fam.fit(model, cfg, data, epochs=epochs, seed=0, on_epoch=on_epoch)
    return {
        "status": res.status,
        "valid": res.valid,
        "test": res.test,
        "epochs": res.epochs,
        "history": history,
    }


def record() -> dict[str, Any]:
    """Every reference run."""
    torch.set_num_threads(1)
    ds = dataset()
    return {
        "einspace": {n: einspace_run(n, ds) for n in EINSPACE},
        "zoo": {n: zoo_run(n) for n in ZOO},
    }


if __name__ == "__main__":
    PATH.write_text(json.dumps(record(), indent=1, sort_keys=True) + "\n")
    print(f"wrote {PATH}", file=sys.stderr)
