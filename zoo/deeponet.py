"""MT-DeepONet: one DeepONet for several PDE tasks (Kumar, Goswami, Kontolati, Shields and
Karniadakis, 2024).

"Synergistic Learning with Multi-Task DeepONet for Efficient PDE Problem Solving" (arXiv
2408.02198). A DeepONet approximates an operator as ``G(v)(y) = sum_k b_k(v) t_k(y) + b0``: the
branch net reads the input function at fixed sensors, the trunk net reads a query coordinate. The
multi-task version puts the task into the branch input: for the Fisher equation the branch sees the
coefficients of the source polynomial beside the initial condition, so one model learns several
functional forms of the source term; for Darcy flow on varying domains the branch (a CNN) sees the
coefficient field and the binary geometry mask, the prediction is multiplied by the mask, and the
loss only counts points inside the domain. Tasks and solvers: nas.data.pde.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from nas.zoo._fit import FitConfig, minibatches, run_epochs
from nas.zoo._registry import Family, TaskInfo, ZooResult, register_family
from torch import nn

from nas.data.cache import cached
from nas.data.pde import FISHER_FAMILIES, GEOMETRIES, darcy_dataset, fisher_dataset, size_scale
from nas.exceptions import ConfigurationError

__all__ = ["DeepONet", "DeepONetFamily", "GeometryBranch", "mlp"]

_ACTS: dict[str, Callable[[], nn.Module]] = {
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,
    "gelu": nn.GELU,
}
TRAIN_GEOMETRIES = GEOMETRIES[:3]  # square, circle, triangle
HELDOUT_GEOMETRY = GEOMETRIES[3]  # lshape: never seen in training
_GRID = 32
# Per-task (epochs, batch size) used when the config leaves them 0: about 1-2 minutes each.
_TASK_FIT = {"fisher": (100, 50), "darcy_geom": (40, 20)}


def mlp(
    d_in: int,
    width: int,
    depth: int,
    d_out: int,
    act: str,
    layer_norm: bool = False,
    last_act: bool = False,
) -> nn.Sequential:
    """``depth`` hidden layers of ``width`` (optional LayerNorm before each activation)."""
    layers: list[nn.Module] = []
    d = d_in
    for _ in range(depth):
        layers.append(nn.Linear(d, width))
        if layer_norm:
            layers.append(nn.LayerNorm(width))
        layers.append(_ACTS[act]())
        d = width
    layers.append(nn.Linear(d, d_out))
    if last_act:
        layers.append(_ACTS[act]())
    return nn.Sequential(*layers)


class Standardise(nn.Module):
    """``(x - mean) / std`` with fixed (training-set) statistics."""

    def __init__(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("mean", mean.float())
        self.register_buffer("std", std.float().clamp_min(1e-6))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The standardised input."""
        return (x - self.mean) / self.std


class GeometryBranch(nn.Module):
    """CNN branch on [coefficient a, mask]: normalised log a (zero outside) and the mask.

    ``depth`` blocks of 5x5 convolution, activation and 2x2 average pooling (16, 32, 64, ...
    channels, at most ``width``), then an MLP with one hidden layer of ``width``.
    """

    def __init__(
        self, width: int, depth: int, latent: int, act: str, log_stats: tuple[float, float]
    ) -> None:
        super().__init__()
        self.log_stats = log_stats
        chans = [min(width, 16 * 2**i) for i in range(depth)]  # the paper's 16, 32, 64, ...
        layers: list[nn.Module] = []
        c = 2
        for ch in chans:
            layers += [nn.Conv2d(c, ch, 5, padding=2), _ACTS[act](), nn.AvgPool2d(2)]
            c = ch
        side = _GRID // 2**depth
        self.conv = nn.Sequential(*layers, nn.Flatten())
        self.head = mlp(c * side * side, width, 1, latent, act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Branch coefficients (B, latent) for ``x`` (B, 2, H, W) = [a, mask]."""
        mask = x[:, 1:2]
        z = (torch.log(x[:, 0:1]) - self.log_stats[0]) / self.log_stats[1] * mask
        return self.head(self.conv(torch.cat([z, mask], dim=1)))


class DeepONet(nn.Module):
    """``u(v)(y) = scale * (branch(v) . trunk(y) + b0) + shift``, times the mask if ``masked``.

    Inputs: ``v`` the branch input (B, ...), ``y`` the query points (P, 2); output (B, P). With
    ``masked`` the branch input's second channel is the domain mask on a ``grid`` x ``grid`` cell
    grid of [-1, 1]^2, and each query point takes the mask value of the cell it falls in.
    """

    def __init__(
        self,
        branch: nn.Module,
        trunk: nn.Module,
        scale: float,
        shift: float = 0.0,
        masked: bool = False,
        grid: int = _GRID,
    ) -> None:
        super().__init__()
        self.branch, self.trunk = branch, trunk
        self.b0 = nn.Parameter(torch.zeros(1))
        self.register_buffer("out", torch.tensor([scale, shift], dtype=torch.float32))
        self.masked, self.grid = masked, grid

    def forward(self, v: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Predicted solution at the query points."""
        g = self.branch(v) @ self.trunk(y).T + self.b0
        u = g * self.out[0] + self.out[1]
        if self.masked:
            u = u * self.mask_at(v[:, 1], y)
        return u

    def mask_at(self, mask: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Mask value (B, P) of the cell holding each query point (nearest cell centre)."""
        n = self.grid
        cell = torch.round(((y + 1) * n - 1) / 2).clamp(0, n - 1).long()
        return mask.flatten(1).index_select(1, cell[:, 0] * n + cell[:, 1])


def _rel_l2(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return (pred - target).norm(dim=1) / target.norm(dim=1).clamp_min(1e-12)


@register_family
class DeepONetFamily(Family):
    """MT-DeepONet on Fisher reaction-diffusion and Darcy flow on varying geometries."""

    name = "deeponet"
    train_seconds = 22.0  # default config, default epochs, 2-core CPU (bench/zoo.py)
    summary = "MT-DeepONet: multi-task DeepONet (source families, geometry masks)"
    paper = "Kumar et al., Synergistic Learning with Multi-Task DeepONet, arXiv 2408.02198 (2024)"
    tasks = (
        TaskInfo(
            "fisher",
            "1-D Fisher reaction-diffusion, IC + source polynomial -> u(t, x) on 20x64; "
            f"source families {', '.join(FISHER_FAMILIES)} in one model",
            "rel_l2",
            higher_is_better=False,
        ),
        TaskInfo(
            "darcy_geom",
            "2-D Darcy on 32x32 masked geometries (square, circle, triangle); the L-shape is "
            "held out (rel_l2_heldout)",
            "rel_l2",
            higher_is_better=False,
        ),
    )
    hyperparams = {
        "branch_width": 128,
        "branch_depth": 2,
        "trunk_width": 128,
        "trunk_depth": 3,
        "latent": 100,
        "act": "leaky_relu",
        "layer_norm": True,
        "lr": 1e-3,
        "batch_size": 0,  # 0: the task's default (_TASK_FIT)
        "epochs": 0,  # 0: the task's default (_TASK_FIT)
    }
    searched = ("branch_width", "branch_depth", "trunk_width", "trunk_depth", "latent", "act")
    input_names = ("v", "y")
    output_names = ("u",)

    def validate(self, config: dict[str, Any]) -> None:
        """Positive sizes, a known activation, a CNN branch that fits the 32x32 grid."""
        for key in ("epochs", "batch_size"):
            if config[key] < 0:
                raise ConfigurationError(f"{key} must be >= 0, but got {key}={config[key]}.")
        for key in ("branch_width", "trunk_width", "latent"):
            if config[key] < 1:
                raise ConfigurationError(f"{key} must be >= 1, but got {key}={config[key]}.")
        if not 1 <= config["branch_depth"] <= 4 or not 1 <= config["trunk_depth"] <= 8:
            raise ConfigurationError(
                "branch_depth must be in [1, 4] (the CNN branch pools 32x32 down to 2x2) and "
                f"trunk_depth in [1, 8], but got {config['branch_depth']} and "
                f"{config['trunk_depth']}."
            )
        if config["act"] not in _ACTS:
            raise ConfigurationError(
                f"act must be one of {', '.join(_ACTS)}, but got act={config['act']!r}."
            )
        if config["lr"] <= 0:
            raise ConfigurationError(f"lr must be > 0, but got lr={config['lr']}.")

    # -- data ---------------------------------------------------------------------------------
    def make_data(self, task: str, size: str = "small", seed: int = 0) -> dict[str, Any]:
        """Splits of (branch input, solution at all points, group); coordinates ``y``."""
        task = self.task(task).name
        scale = size_scale(size)
        gen = self._fisher if task == "fisher" else self._darcy
        arrays, meta = cached(
            f"zoo-deeponet-{task}", size, seed, "1", lambda: gen(scale, seed), ("y",)
        )
        data: dict[str, Any] = {"task": task, "meta": meta, "y": torch.from_numpy(arrays["y"])}
        data["groups"] = list(FISHER_FAMILIES if task == "fisher" else TRAIN_GEOMETRIES)
        for split in ("train", "valid", "test", "heldout"):
            if f"{split}_v" in arrays:
                data[split] = tuple(
                    torch.from_numpy(arrays[f"{split}_{k}"]) for k in ("v", "u", "g")
                )
        return data

    @staticmethod
    def _fisher(scale: int, seed: int) -> dict[str, np.ndarray]:
        counts = {"train": 400 * scale, "valid": 40 * scale, "test": 100 * scale}
        out: dict[str, np.ndarray] = {}
        for i, (split, n) in enumerate(counts.items()):
            d = fisher_dataset(n, seed * 10 + i)
            out[f"{split}_v"], out[f"{split}_g"] = d["branch"], d["family"]
            out[f"{split}_u"] = d["u"].reshape(len(d["u"]), -1)
        tt, xx = np.meshgrid(d["t"] / d["t"].max() * 2 - 1, d["x"] * 2 - 1, indexing="ij")
        out["y"] = np.stack([tt.ravel(), xx.ravel()], axis=1).astype(np.float32)
        return out

    @staticmethod
    def _darcy(scale: int, seed: int) -> dict[str, np.ndarray]:
        counts = {"train": 300 * scale, "valid": 30 * scale, "test": 60 * scale}
        out: dict[str, np.ndarray] = {}
        for i, (split, n) in enumerate(counts.items()):
            parts = [
                darcy_dataset(n, _GRID, seed * 100 + 10 * i + j, geom)
                for j, geom in enumerate(TRAIN_GEOMETRIES)
            ]
            groups = np.repeat(np.arange(len(parts)), n)
            _store_darcy(out, split, parts, groups)
        held = darcy_dataset(100 * scale, _GRID, seed * 100 + 99, HELDOUT_GEOMETRY)
        _store_darcy(out, "heldout", [held], np.zeros(100 * scale, dtype=np.int64))
        c = (np.arange(_GRID) + 0.5) / _GRID * 2 - 1
        xx, yy = np.meshgrid(c, c, indexing="ij")
        out["y"] = np.stack([xx.ravel(), yy.ravel()], axis=1).astype(np.float32)
        return out

    # -- model --------------------------------------------------------------------------------
    def build(self, config: dict[str, Any], data: dict[str, Any]) -> nn.Module:
        """Branch (MLP for Fisher, CNN for Darcy), trunk MLP, output scale from the train split."""
        v, u, _ = data["train"]
        act, p = config["act"], config["latent"]
        trunk = mlp(2, config["trunk_width"], config["trunk_depth"], p, act, last_act=True)
        if data["task"] == "fisher":
            branch = nn.Sequential(
                Standardise(v.mean(0), v.std(0)),
                mlp(
                    v.shape[1],
                    config["branch_width"],
                    config["branch_depth"],
                    p,
                    act,
                    config["layer_norm"],
                ),
            )
            return DeepONet(branch, trunk, float(u.std()), float(u.mean()))
        inside = v[:, 0][v[:, 1] > 0].log()
        stats = (float(inside.mean()), float(inside.std()))
        branch = GeometryBranch(config["branch_width"], config["branch_depth"], p, act, stats)
        return DeepONet(branch, trunk, float(u[u != 0].std()), 0.0, masked=True)

    # -- training and scoring -----------------------------------------------------------------
    def _scores(self, model: nn.Module, data: dict[str, Any], split: str) -> dict[str, float]:
        v, u, g = data[split]
        model.eval()
        with torch.no_grad():
            pred = torch.cat([model(v[i : i + 100], data["y"]) for i in range(0, len(v), 100)])
        return self._metrics(pred, u, g, data, split)

    def _metrics(
        self,
        pred: torch.Tensor,
        u: torch.Tensor,
        g: torch.Tensor,
        data: dict[str, Any],
        split: str,
    ) -> dict[str, float]:
        err = _rel_l2(pred, u)
        if split == "heldout":
            return {"rel_l2_heldout": float(err.mean())}
        scores = {"rel_l2": float(err.mean())}
        for i, name in enumerate(data["groups"]):
            scores[f"rel_l2_{name}"] = float(err[g == i].mean())
        return scores

    def fit(
        self,
        model: nn.Module,
        config: dict[str, Any],
        data: dict[str, Any],
        epochs: int | None = None,
        time_budget_s: float | None = None,
        seed: int = 0,
        on_epoch: Callable[[int, dict[str, float]], Any] | None = None,
    ) -> ZooResult:
        """MSE in normalised units, over the points inside the domain (AdamW + cosine)."""
        v, u, _ = data["train"]
        y = data["y"]
        task_epochs, task_batch = _TASK_FIT[data["task"]]
        bs = config["batch_size"] or task_batch
        scale = float(model.out[0])
        cfg = FitConfig(
            epochs=epochs or config["epochs"] or task_epochs,
            lr=config["lr"],
            time_budget_s=time_budget_s,
        )

        def loss(m: nn.Module, idx: torch.Tensor) -> torch.Tensor:
            pred, target = m(v[idx], y), u[idx]
            sq = ((pred - target) / scale) ** 2
            if not m.masked:
                return sq.mean()
            return sq.sum() / m.mask_at(v[idx][:, 1], y).sum().clamp_min(1.0)

        log = run_epochs(
            model,
            lambda e: minibatches(len(v), bs, e, seed),
            loss,
            cfg,
            evaluate=lambda: self._scores(model, data, "valid"),
            on_epoch=on_epoch,
            seed=seed,
        )
        test = self._scores(model, data, "test")
        if "heldout" in data:
            test.update(self._scores(model, data, "heldout"))
        return ZooResult(
            self._scores(model, data, "valid"),
            test,
            log.epochs,
            log.seconds,
            log.status,
            log.reason,
            {"heldout_geometry": HELDOUT_GEOMETRY} if "heldout" in data else None,
        )

    def baseline(self, data: dict[str, Any]) -> dict[str, float]:
        """The training mean field, predicted for every test (and held-out) input."""
        mean = data["train"][1].mean(0, keepdim=True)
        out: dict[str, float] = {}
        for split in ("test", "heldout"):
            if split in data:
                _, u, g = data[split]
                out.update(self._metrics(mean.expand_as(u), u, g, data, split))
        return out

    def example_inputs(
        self, config: dict[str, Any], data: dict[str, Any], batch: int = 2
    ) -> tuple:
        """Branch inputs and query points; odd batches query every other point (dynamic P)."""
        y = data["y"] if batch % 2 == 0 else data["y"][::2]
        return (data["test"][0][:batch], y)

    def dynamic_axes(self) -> dict[str, dict[int, str]]:
        """The batch of functions and the number of query points are both dynamic."""
        return {"v": {0: "batch"}, "y": {0: "points"}, "u": {0: "batch", 1: "points"}}


def _store_darcy(
    out: dict[str, np.ndarray], split: str, parts: list[dict[str, np.ndarray]], groups: np.ndarray
) -> None:
    a = np.concatenate([p["a"] for p in parts])
    mask = np.concatenate([p["mask"] for p in parts])
    out[f"{split}_v"] = np.stack([a, mask], axis=1).astype(np.float32)
    out[f"{split}_u"] = np.concatenate([p["u"] for p in parts]).reshape(len(a), -1)
    out[f"{split}_g"] = groups.astype(np.int64)
