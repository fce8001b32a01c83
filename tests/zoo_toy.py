"""A test-only zoo family: an MLP fitting y = sin(3x) + 0.5 * x (tiny, seconds to train)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from nas.zoo import Family, TaskInfo, ZooResult, register_family
from nas.zoo._fit import FitConfig, minibatches, run_epochs
from torch import nn


def _r2(pred: torch.Tensor, y: torch.Tensor) -> float:
    return float(1 - ((pred - y) ** 2).sum() / ((y - y.mean()) ** 2).sum())


@register_family
class ToyZoo(Family):
    """MLP regression used to test the zoo contract."""

    name = "toyzoo"
    summary = "test-only MLP regressor"
    paper = "none"
    tasks = (TaskInfo("wave", "y = sin(3x) + x/2 on [-2, 2]", "r2"),)
    hyperparams = {"width": 32, "depth": 2, "act": "tanh", "lr": 0.01}
    searched = ("width", "depth", "act")
    grammar_path = str(Path(__file__).parent / "data" / "zoo" / "toyzoo.pcfg")
    input_names = ("x",)
    output_names = ("y",)

    def validate(self, config):
        if config["act"] not in ("relu", "tanh"):
            from nas.exceptions import ConfigurationError

            raise ConfigurationError(f"act must be relu or tanh, got {config['act']!r}.")

    def make_data(self, task, size="small", seed=0):
        rng = np.random.default_rng(seed)
        x = rng.uniform(-2, 2, (600, 1)).astype(np.float32)
        y = (np.sin(3 * x) + 0.5 * x).astype(np.float32)
        t = torch.from_numpy
        return {
            "train": (t(x[:400]), t(y[:400])),
            "valid": (t(x[400:500]), t(y[400:500])),
            "test": (t(x[500:]), t(y[500:])),
        }

    def build(self, config, data):
        act = nn.ReLU if config["act"] == "relu" else nn.Tanh
        layers, d = [], 1
        for _ in range(config["depth"]):
            layers += [nn.Linear(d, config["width"]), act()]
            d = config["width"]
        return nn.Sequential(*layers, nn.Linear(d, 1))

    def _score(self, model, split):
        x, y = split
        with torch.no_grad():
            return {"r2": _r2(model(x), y)}

    def fit(self, model, config, data, epochs=None, time_budget_s=None, seed=0, on_epoch=None):
        x, y = data["train"]
        cfg = FitConfig(epochs=epochs or 30, lr=config["lr"], time_budget_s=time_budget_s)
        log = run_epochs(
            model,
            lambda e: ((x[i], y[i]) for i in minibatches(len(x), 32, e, seed)),
            lambda m, b: nn.functional.mse_loss(m(b[0]), b[1]),
            cfg,
            evaluate=lambda: self._score(model, data["valid"]),
            on_epoch=on_epoch,
            seed=seed,
        )
        return ZooResult(
            self._score(model, data["valid"]),
            self._score(model, data["test"]),
            log.epochs,
            log.seconds,
            log.status,
            log.reason,
        )

    def baseline(self, data):
        y_tr = data["train"][1]
        _, y = data["test"]
        return {"r2": _r2(torch.full_like(y, float(y_tr.mean())), y)}

    def example_inputs(self, config, data, batch=2):
        return (data["test"][0][:batch],)
