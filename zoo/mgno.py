"""MgNO: a neural operator whose linear maps are multigrid V-cycles (He, Liu & Xu, ICLR 2024).

"MgNO: Efficient Parameterization of Linear Operators via Multigrid". Each layer is
``u <- act(V(u) + W u + b)``: ``V`` is one V-cycle (3x3 smoothing convolutions ``A`` and ``S``,
stride-2 restrictions ``R`` and ``Pi``, transposed-convolution prolongation) mapping the input
channels to the output channels, ``W`` a pointwise (1x1) path and ``b`` a function-valued bias (a
learnable field, resampled to the input's grid). There is no lifting or projection layer: the first
V-cycle maps the coefficient (1 channel) to the hidden channels and the last maps them to the
solution (1 channel). Task: 2-D Darcy flow (nas.data.pde), relative L2 error; a model trained at
32x32 is also scored on 64x64 inputs (``extra``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from nas.zoo._fit import FitConfig, minibatches, run_epochs
from nas.zoo._registry import Family, TaskInfo, ZooResult, register_family
from torch import nn

from nas.data.cache import cached
from nas.data.pde import darcy_dataset, size_scale
from nas.exceptions import ConfigurationError

__all__ = ["MgNO", "MgNOFamily", "VCycle", "rel_l2", "two_grid"]

_ACTS: dict[str, Callable[[], nn.Module]] = {"gelu": nn.GELU, "silu": nn.SiLU, "relu": nn.ReLU}
_GRIDS = {"darcy": 32, "darcy64": 64}
_MIN_COARSE = 2  # the coarsest grid of a V-cycle on the smaller task grid is at least 2x2


def _conv(c_in: int, c_out: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)


class VCycle(nn.Module):
    """A linear operator from ``c_in`` to ``c_out`` channels parameterised as one V-cycle.

    Level ``l`` runs its pre-smoothing ``u <- u + S(f - A u)`` (the very first step is
    ``u = S f``), restricts ``f <- R f`` and ``u <- Pi u`` to the next level; on the way up,
    ``u_l <- u_l + P(u_{l+1})`` followed by the post-smoothing steps. The coarsest level smooths
    ``2 * pre`` times (the paper's Darcy schedule [1,0], ..., [2,0]). All loops are fixed.
    """

    def __init__(self, c_in: int, c_out: int, levels: int, pre: int, post: int) -> None:
        super().__init__()
        self.levels = levels
        counts = [pre] * (levels - 1) + [2 * pre]
        self.S = nn.ModuleList()
        self.A = nn.ModuleList()
        for lvl, count in enumerate(counts):
            self.S.append(nn.ModuleList(_conv(c_in, c_out) for _ in range(count)))
            first = 1 if lvl == 0 else 0  # u = S f needs no A
            self.A.append(
                nn.ModuleList(
                    nn.Identity() if i < first else _conv(c_out, c_in) for i in range(count)
                )
            )
        self.R = nn.ModuleList(_conv(c_in, c_in, 2) for _ in range(levels - 1))
        self.Pi = nn.ModuleList(_conv(c_out, c_out, 2) for _ in range(levels - 1))
        self.P = nn.ModuleList(
            nn.ConvTranspose2d(c_out, c_out, 4, stride=2, padding=1, bias=False)
            for _ in range(levels - 1)
        )
        self.post_S = nn.ModuleList(
            nn.ModuleList(_conv(c_in, c_out) for _ in range(post)) for _ in range(levels - 1)
        )
        self.post_A = nn.ModuleList(
            nn.ModuleList(_conv(c_out, c_in) for _ in range(post)) for _ in range(levels - 1)
        )

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        """Apply the operator to ``f`` (B, c_in, H, W); returns (B, c_out, H, W)."""
        us: list[torch.Tensor] = []
        fs: list[torch.Tensor] = []
        u = torch.zeros(0)
        for lvl in range(self.levels):
            if lvl > 0:
                f = self.R[lvl - 1](f)
                u = self.Pi[lvl - 1](u)
            for i, (smooth, op) in enumerate(zip(self.S[lvl], self.A[lvl], strict=True)):
                u = smooth(f) if lvl == 0 and i == 0 else u + smooth(f - op(u))
            us.append(u)
            fs.append(f)
        for lvl in range(self.levels - 2, -1, -1):
            u = us[lvl] + self.P[lvl](u)
            for smooth, op in zip(self.post_S[lvl], self.post_A[lvl], strict=True):
                u = u + smooth(fs[lvl] - op(u))
        return u


class MgNO(nn.Module):
    """MgNO for a scalar field to a scalar field: layers of ``act(V u + W u + b(x))``.

    ``grid`` is the training resolution, where the function-valued biases live; other
    resolutions resample them bilinearly. Input ``a`` (B, 1, H, W) in physical units; the
    model normalises it and returns ``u`` (B, 1, H, W) in physical units.
    """

    def __init__(
        self,
        channels: int,
        layers: int,
        levels: int,
        pre: int,
        post: int,
        grid: int,
        act: str = "gelu",
        stats: tuple[float, float, float] = (0.0, 1.0, 1.0),
    ) -> None:
        super().__init__()
        widths = [1] + [channels] * (layers - 1) + [1]
        self.ops = nn.ModuleList(
            VCycle(widths[i], widths[i + 1], levels, pre, post) for i in range(layers)
        )
        self.local = nn.ModuleList(
            nn.Conv2d(widths[i], widths[i + 1], 1, bias=False) for i in range(layers)
        )
        self.biases = nn.ParameterList(
            nn.Parameter(torch.zeros(1, widths[i + 1], grid, grid)) for i in range(layers)
        )
        self.act = _ACTS[act]()
        self.register_buffer("stats", torch.tensor(stats, dtype=torch.float32))

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        """Solution field for coefficient field ``a``."""
        u = (a - self.stats[0]) / self.stats[1]
        size = (a.shape[-2], a.shape[-1])
        for i, (op, local, bias) in enumerate(zip(self.ops, self.local, self.biases, strict=True)):
            b = F.interpolate(bias, size=size, mode="bilinear", align_corners=False)
            u = op(u) + local(u) + b
            if i < len(self.ops) - 1:
                u = self.act(u)
        return u * self.stats[2]


def rel_l2(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Relative L2 error of each sample (flattened over all but the batch axis)."""
    diff = (pred - target).flatten(1).norm(dim=1)
    return diff / target.flatten(1).norm(dim=1).clamp_min(1e-12)


def two_grid(model: nn.Module, a: torch.Tensor, grid: int) -> torch.Tensor:
    """Apply a model trained on ``grid`` x ``grid`` to ``a`` on another grid.

    A fixed outer level of transfer operators: the coefficient is sampled onto the training grid
    by nearest-neighbour injection (which keeps a piecewise-constant coefficient's two values,
    where 2x2 averages would create unseen ones), the trained model runs there, and its output
    is interpolated bilinearly back to the input's grid.
    """
    size = a.shape[-2:]
    coarse = F.interpolate(a, size=(grid, grid), mode="nearest")
    return F.interpolate(model(coarse), size=size, mode="bilinear", align_corners=False)


@register_family
class MgNOFamily(Family):
    """MgNO on 2-D Darcy flow with piecewise-constant coefficients."""

    name = "mgno"
    train_seconds = 49.0  # default config, default epochs, 2-core CPU (bench/zoo.py)
    summary = "MgNO: neural operator of multigrid V-cycles, Darcy flow"
    paper = (
        "He, Liu & Xu, MgNO: Efficient Parameterization of Linear Operators via Multigrid, "
        "ICLR 2024"
    )
    tasks = (
        TaskInfo(
            "darcy",
            "-div(a grad u) = 1 on 32x32, a in {3, 12} (thresholded GRF), u = 0 on the "
            "boundary; also scored on 64x64 inputs",
            "rel_l2",
            higher_is_better=False,
        ),
        TaskInfo(
            "darcy64",
            "the same Darcy problem trained and scored on 64x64; also scored on 32x32",
            "rel_l2",
            higher_is_better=False,
        ),
    )
    hyperparams = {
        "levels": 4,
        "channels": 16,
        "pre": 1,
        "post": 0,
        "layers": 4,
        "act": "gelu",
        "lr": 1e-3,
        "batch_size": 16,
        "epochs": 12,
    }
    searched = ("levels", "channels", "pre", "post", "layers")
    input_names = ("a",)
    output_names = ("u",)

    def validate(self, config: dict[str, Any]) -> None:
        """Check ranges; the V-cycle must fit the 32x32 grid (coarsest level >= 2x2)."""
        max_levels = int(np.log2(min(_GRIDS.values()) // _MIN_COARSE)) + 1
        if not 1 <= config["levels"] <= max_levels:
            raise ConfigurationError(
                f"levels must be in [1, {max_levels}] (the 32x32 grid halves down to 2x2), "
                f"but got levels={config['levels']}."
            )
        for key, low in (("channels", 1), ("pre", 1), ("post", 0), ("layers", 2)):
            if config[key] < low:
                raise ConfigurationError(f"{key} must be >= {low}, but got {key}={config[key]}.")
        if config["act"] not in _ACTS:
            raise ConfigurationError(
                f"act must be one of {', '.join(_ACTS)}, but got act={config['act']!r}."
            )
        if config["lr"] <= 0 or config["batch_size"] < 1 or config["epochs"] < 1:
            raise ConfigurationError("lr, batch_size and epochs must be positive.")

    def make_data(self, task: str, size: str = "small", seed: int = 0) -> dict[str, Any]:
        """Train/valid/test at the task's grid, plus a test set at the other resolution."""
        grid = _GRIDS[self.task(task).name]
        other = 64 if grid == 32 else 32
        scale = size_scale(size)
        counts = {"train": 1000, "valid": 100, "test": 100, "cross": 50}
        if grid == 64:
            counts["train"] = 500
        counts = {k: v * scale for k, v in counts.items()}

        def generate() -> dict[str, np.ndarray]:
            out = {}
            for i, (split, n) in enumerate(counts.items()):
                d = darcy_dataset(n, other if split == "cross" else grid, seed * 10 + i)
                out[f"{split}_a"], out[f"{split}_u"] = d["a"], d["u"]
            return out

        arrays, meta = cached(f"zoo-mgno-{task}", size, seed, "2", generate, ("cross_u",))
        data: dict[str, Any] = {"task": task, "grid": grid, "other": other, "meta": meta}
        for split in counts:
            data[split] = (
                torch.from_numpy(arrays[f"{split}_a"]).unsqueeze(1),
                torch.from_numpy(arrays[f"{split}_u"]).unsqueeze(1),
            )
        return data

    def build(self, config: dict[str, Any], data: dict[str, Any]) -> nn.Module:
        """An MgNO with input/output scales taken from the training split."""
        a, u = data["train"]
        stats = (float(a.mean()), float(a.std()), float(u.std()))
        return MgNO(
            config["channels"],
            config["layers"],
            config["levels"],
            config["pre"],
            config["post"],
            data["grid"],
            config["act"],
            stats,
        )

    def _score(
        self, model: nn.Module, split: tuple[torch.Tensor, torch.Tensor], grid: int = 0
    ) -> float:
        a, u = split
        model.eval()
        run = model if not grid else (lambda x: two_grid(model, x, grid))
        with torch.no_grad():
            errs = [rel_l2(run(a[i : i + 50]), u[i : i + 50]) for i in range(0, len(a), 50)]
        return float(torch.cat(errs).mean())

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
        """Train with the relative-L2 loss (AdamW + cosine); score valid, test and cross-grid."""
        a, u = data["train"]
        cfg = FitConfig(
            epochs=epochs or config["epochs"], lr=config["lr"], time_budget_s=time_budget_s
        )
        bs = config["batch_size"]
        log = run_epochs(
            model,
            lambda e: ((a[i], u[i]) for i in minibatches(len(a), bs, e, seed)),
            lambda m, b: rel_l2(m(b[0]), b[1]).mean(),
            cfg,
            evaluate=lambda: {"rel_l2": self._score(model, data["valid"])},
            on_epoch=on_epoch,
            seed=seed,
        )
        other = data["other"]
        extra = {
            f"rel_l2_{other}x{other}": self._score(model, data["cross"], data["grid"]),
            f"rel_l2_{other}x{other}_direct": self._score(model, data["cross"]),
            f"baseline_rel_l2_{other}x{other}": self._mean_field_error(data, "cross"),
            "cross_resolution": f"trained at {data['grid']}x{data['grid']}, scored on "
            f"{other}x{other} inputs: through the training grid (two-grid transfer) and direct",
        }
        return ZooResult(
            {"rel_l2": self._score(model, data["valid"])},
            {"rel_l2": self._score(model, data["test"])},
            log.epochs,
            log.seconds,
            log.status,
            log.reason,
            extra,
        )

    def _mean_field_error(self, data: dict[str, Any], split: str) -> float:
        mean = data["train"][1].mean(0, keepdim=True)
        target = data[split][1]
        if mean.shape[-1] != target.shape[-1]:
            mean = F.interpolate(mean, size=target.shape[-2:], mode="bilinear")
        return float(rel_l2(mean.expand_as(target), target).mean())

    def baseline(self, data: dict[str, Any]) -> dict[str, float]:
        """The training mean field predicted for every test input."""
        return {"rel_l2": self._mean_field_error(data, "test")}

    def example_inputs(
        self, config: dict[str, Any], data: dict[str, Any], batch: int = 2
    ) -> tuple:
        """A batch of coefficient fields at the task's grid."""
        return (data["test"][0][:batch],)

    def dynamic_axes(self) -> dict[str, dict[int, str]]:
        """Batch and both spatial axes are dynamic (the V-cycle is unrolled, size-agnostic)."""
        axes = {0: "batch", 2: "height", 3: "width"}
        return {"a": dict(axes), "u": dict(axes)}
