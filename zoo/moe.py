"""zoo:moe: multi-task mixtures of experts (MMoE, HoME, TaskExpert) beside a shared bottom.

Papers: Ma et al., "Modeling Task Relationships in Multi-task Learning with Multi-gate
Mixture-of-Experts", KDD 2018; Wang et al. (Kuaishou), "HoME: Hierarchy of Multi-Gate
Experts for Multi-Task Learning at Kuaishou", arXiv 2408.05430, 2024; Ye & Xu, "TaskExpert:
Dynamically Assembling Multi-Task Representations with Memorial Mixture-of-Experts", ICCV
2023. Modules are in :mod:`nas.zoo._moe_layers`; the choices made where the papers are
silent are listed in docs/zoo/moe.md.

Tasks: ``synthetic`` (the MMoE paper's regression pair, task correlation 0.5; write
``synthetic:P`` for correlation P) scored by mean R^2, and ``digits`` (AddNIST and MultNIST
labels of the same three-digit image) scored by mean accuracy.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from nas.zoo._fit import (
    FitConfig,
    check_options,
    minibatches,
    parse_task_weights,
    run_epochs,
)
from nas.zoo._moe_layers import GATES, VARIANTS, ConvBottom, build_model, utilisation
from nas.zoo._registry import Family, TaskInfo, ZooResult, register_family
from torch import nn
from torch.nn import functional as F

from nas.exceptions import ConfigurationError, UnknownNameError

__all__ = ["MoE", "MoEData", "make_digits", "make_synthetic"]

SYNTHETIC_SIZES = {"small": (8_000, 1_000, 1_000), "medium": (20_000, 2_000, 2_000)}
SYNTHETIC_SIZES["full"] = (100_000, 10_000, 10_000)
DEFAULT_EPOCHS = {"synthetic": 30, "digits": 20}
SPLITS = ("train", "valid", "test")


@dataclass
class MoEData:
    """A two-task data set: inputs and one target per task for each split."""

    task: str  # "synthetic" or "digits"
    names: list[str]  # task names (metric suffixes)
    n_outs: list[int]  # 1 (regression) or the number of classes, per task
    splits: dict[str, tuple[torch.Tensor, list[torch.Tensor]]]
    info: dict[str, Any]

    @property
    def regression(self) -> bool:
        """Whether the tasks are regressions (else classifications)."""
        return self.task == "synthetic"


def make_synthetic(
    correlation: float = 0.5, size: str = "small", seed: int = 0, dim: int = 100
) -> MoEData:
    """The MMoE paper's synthetic pair (Sec. 3.2) with task correlation ``correlation``.

    u1, u2 orthonormal; w1 = c u1, w2 = c (p u1 + sqrt(1 - p^2) u2); x ~ N(0, I);
    y_k = w_k.x + sum_i sin(alpha_i w_k.x + beta_i) + noise, with c = 1, m = 10 sines whose
    alpha_i, beta_i ~ N(0, 1) are shared by both tasks, noise std 0.01. Targets are
    standardised with the training split's mean and std.
    """
    if not -1.0 <= correlation <= 1.0:
        raise ConfigurationError(f"task correlation must be in [-1, 1], got {correlation}.")
    n_tr, n_va, n_te = SYNTHETIC_SIZES[size]
    n = n_tr + n_va + n_te
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((dim, 2)))
    u1, u2 = q[:, 0], q[:, 1]
    w = [u1, correlation * u1 + np.sqrt(1 - correlation**2) * u2]
    alpha, beta = rng.standard_normal(10), rng.standard_normal(10)
    x = rng.standard_normal((n, dim))
    ys = []
    for wk in w:
        z = x @ wk
        y = z + np.sin(alpha * z[:, None] + beta).sum(1) + 0.01 * rng.standard_normal(n)
        ys.append((y - y[:n_tr].mean()) / y[:n_tr].std())
    bounds = {"train": (0, n_tr), "valid": (n_tr, n_tr + n_va), "test": (n_tr + n_va, n)}
    t = torch.from_numpy
    splits = {
        s: (t(x[a:b].astype(np.float32)), [t(y[a:b].astype(np.float32)) for y in ys])
        for s, (a, b) in bounds.items()
    }
    label_corr = float(np.corrcoef(ys[0][:n_tr], ys[1][:n_tr])[0, 1])
    info = {"correlation": correlation, "label_pearson": round(label_corr, 4)}
    return MoEData("synthetic", ["task1", "task2"], [1, 1], splits, info)


def make_digits(size: str = "small", seed: int = 0) -> MoEData:
    """AddNIST and MultNIST labels of the same three-digit images (the offline stand-in).

    Images are the AddNIST stand-in's; ``load_components`` gives each image's digits, from
    which ``label_of('multnist', digits)`` (product mod 10) is the second task's label.
    """
    from nas.data import load_components, load_dataset
    from nas.data.digits import label_of

    ds = load_dataset("standin:addnist", size=size, seed=seed)
    comps = load_components("standin:addnist", size, seed)
    splits = {}
    for s in SPLITS:
        part = getattr(ds, s)
        digits = comps[f"{s}_digits"]
        add = label_of("addnist", digits)
        if not np.array_equal(add, part.y):
            raise ConfigurationError("AddNIST stand-in labels do not match its digits.")
        mult = label_of("multnist", digits)
        y = [torch.from_numpy(add.astype(np.int64)), torch.from_numpy(mult.astype(np.int64))]
        splits[s] = (torch.from_numpy(np.ascontiguousarray(part.x, dtype=np.float32)), y)
    return MoEData("digits", ["addnist", "multnist"], [20, 10], splits, {"source": ds.source})


def _r2(pred: torch.Tensor, y: torch.Tensor) -> float:
    return float(1 - ((pred - y) ** 2).sum() / ((y - y.mean()) ** 2).sum())


def _metrics(data: MoEData, outs: list[torch.Tensor], ys: list[torch.Tensor]) -> dict:
    if data.regression:
        per = {
            f"r2_{n}": _r2(o.reshape(-1), y) for n, o, y in zip(data.names, outs, ys, strict=True)
        }
        return {"r2": sum(per.values()) / len(per), **per}
    per = {
        f"acc_{n}": float((o.argmax(-1) == y).float().mean())
        for n, o, y in zip(data.names, outs, ys, strict=True)
    }
    return {"accuracy": sum(per.values()) / len(per), **per}


def _predict(model: nn.Module, x: torch.Tensor, chunk: int = 512) -> list[torch.Tensor]:
    model.eval()
    with torch.no_grad():
        parts = [model(x[i : i + chunk]) for i in range(0, len(x), chunk)]
    return [torch.cat([p[t] for p in parts]) for t in range(len(parts[0]))]


@register_family
class MoE(Family):
    """Multi-task mixtures of experts: shared-bottom, MMoE, HoME and TaskExpert."""

    name = "moe"
    train_seconds = 3.0  # default config, default epochs, 2-core CPU (bench/zoo.py)
    summary = "multi-task mixtures of experts: shared-bottom, MMoE, HoME, TaskExpert"
    paper = "Ma et al. KDD 2018; Wang et al. arXiv 2408.05430; Ye & Xu ICCV 2023"
    variants = VARIANTS
    tasks = (
        TaskInfo(
            "synthetic",
            "MMoE synthetic regression pair, task correlation 0.5 (synthetic:P sets P)",
            "r2",
        ),
        TaskInfo("digits", "AddNIST + MultNIST labels of one three-digit image", "accuracy"),
    )
    hyperparams = {
        "variant": "mmoe",
        "shared_experts": 8,
        "group_experts": 2,
        "task_experts": 1,
        "expert_width": 16,
        "expert_depth": 1,
        "gate": "softmax",
        "tower_width": 8,
        # Not searched.
        "sb_match": "mmoe",  # shared_bottom: match this variant's parameter count
        "groups": "",  # HoME task -> group ids, e.g. "0,0"; "" = one group per task
        "lora_rank": 4,  # HoME feature-gate rank; 0 turns feature-gates off
        "self_gate": True,  # HoME self-gates
        "te_layers": 2,  # TaskExpert backbone layers, one memorial MoE after each
        "lr": 0.003,
        "batch_size": 128,
        "weight_decay": 0.0,
        "weighting": "fixed",  # or "uncertainty" (Kendall et al. 2018)
        "task_weights": "",  # fixed weights, e.g. "1,3"; "" = equal
        "grad_noise": 0.0,  # annealed gradient noise eta (Neelakantan et al. 2015)
    }
    searched = (
        "variant",
        "shared_experts",
        "group_experts",
        "task_experts",
        "expert_width",
        "expert_depth",
        "gate",
        "tower_width",
    )
    input_names = ("x",)
    output_names = ("out1", "out2")

    def validate(self, config: dict[str, Any]) -> None:
        """One-line errors for values outside the family's ranges."""
        check_options(config["weighting"], config["grad_noise"])
        parse_task_weights(config["task_weights"], 2)
        if config["gate"] not in GATES:
            raise ConfigurationError(
                f"gate must be one of {', '.join(GATES)}, but got gate={config['gate']!r}."
            )
        if config["sb_match"] not in VARIANTS[1:]:
            raise ConfigurationError(
                f"sb_match must be one of {', '.join(VARIANTS[1:])}, "
                f"but got sb_match={config['sb_match']!r}."
            )
        for key in ("shared_experts", "group_experts", "task_experts", "expert_width"):
            if not 1 <= config[key] <= 256:
                raise ConfigurationError(
                    f"{key} must be in [1, 256], but got {key}={config[key]}."
                )
        for key in ("expert_depth", "te_layers"):
            if not 1 <= config[key] <= 8:
                raise ConfigurationError(f"{key} must be in [1, 8], but got {key}={config[key]}.")
        if not 1 <= config["tower_width"] <= 1024:
            raise ConfigurationError(
                f"tower_width must be in [1, 1024], but got tower_width={config['tower_width']}."
            )
        if config["lora_rank"] < 0 or config["lr"] <= 0 or config["batch_size"] < 2:
            raise ConfigurationError(
                "lora_rank must be >= 0, lr > 0 and batch_size >= 2, but got "
                f"lora_rank={config['lora_rank']}, lr={config['lr']}, "
                f"batch_size={config['batch_size']}."
            )
        _parse_groups(config["groups"], None)

    def task(self, name: str | None = None) -> TaskInfo:
        """A task by name; ``synthetic:P`` is the synthetic pair with task correlation P."""
        if name is not None and name.startswith("synthetic:"):
            p = _correlation(name)
            return TaskInfo(name, f"MMoE synthetic regression pair, task correlation {p}", "r2")
        return super().task(name)

    def make_data(self, task: str, size: str = "small", seed: int = 0) -> MoEData:
        """Generate a task's splits offline (``synthetic[:P]`` or ``digits``)."""
        if size not in SYNTHETIC_SIZES:
            raise ConfigurationError(
                f"size must be one of {', '.join(SYNTHETIC_SIZES)}, but got size={size!r}."
            )
        if task == "digits":
            return make_digits(size, seed)
        if task == "synthetic" or task.startswith("synthetic:"):
            p = _correlation(task) if ":" in task else 0.5
            return make_synthetic(p, size, seed)
        return self.make_data(self.task(task).name, size, seed)

    def build(self, config: dict[str, Any], data: MoEData) -> nn.Module:
        """The variant's model for ``data`` (a conv bottom for images)."""
        cfg = dict(config, task_groups=_parse_groups(config["groups"], len(data.n_outs)))
        x = data.splits["train"][0]
        image = x.dim() == 4
        d = ConvBottom.out_features if image else x.shape[1]
        return build_model(cfg, d, data.n_outs, image)

    def _score(self, model: nn.Module, data: MoEData, split: str) -> dict[str, float]:
        x, ys = data.splits[split]
        return _metrics(data, _predict(model, x), ys)

    def fit(
        self,
        model: nn.Module,
        config: dict[str, Any],
        data: MoEData,
        epochs: int | None = None,
        time_budget_s: float | None = None,
        seed: int = 0,
        on_epoch: Callable[[int, dict[str, float]], Any] | None = None,
    ) -> ZooResult:
        """Train with per-task MSE (synthetic) or cross-entropy (digits) summed over tasks."""
        x, ys = data.splits["train"]
        bs = config["batch_size"]

        def batches(epoch: int) -> Iterator[tuple[torch.Tensor, list[torch.Tensor]]]:
            for idx in minibatches(len(x), bs, epoch, seed):
                if len(idx) > 1:  # BatchNorm (HoME) needs two samples
                    yield x[idx], [y[idx] for y in ys]

        def loss(m: nn.Module, batch: Any) -> list[torch.Tensor]:
            outs = m(batch[0])
            if data.regression:
                return [F.mse_loss(o.reshape(-1), y) for o, y in zip(outs, batch[1], strict=True)]
            return [F.cross_entropy(o, y) for o, y in zip(outs, batch[1], strict=True)]

        cfg = FitConfig(
            epochs=epochs or DEFAULT_EPOCHS[data.task],
            lr=config["lr"],
            weight_decay=config["weight_decay"],
            time_budget_s=time_budget_s,
            weighting=config["weighting"],
            task_weights=parse_task_weights(config["task_weights"], len(ys)),
            grad_noise=config["grad_noise"],
        )
        log = run_epochs(
            model,
            batches,
            loss,
            cfg,
            evaluate=lambda: self._score(model, data, "valid"),
            on_epoch=on_epoch,
            n_tasks=len(ys),
            seed=seed,
        )
        x_test = data.splits["test"][0][:512]
        extra = {"utilisation": utilisation(model, x_test, data.names), **data.info}
        return ZooResult(
            self._score(model, data, "valid"),
            self._score(model, data, "test"),
            log.epochs,
            log.seconds,
            log.status,
            log.reason,
            extra,
        )

    def baseline(self, data: MoEData) -> dict[str, float]:
        """Input-blind predictors: the training mean (R^2) or majority class (accuracy)."""
        train_ys = data.splits["train"][1]
        ys = data.splits["test"][1]
        outs = []
        for y_tr, y in zip(train_ys, ys, strict=True):
            if data.regression:
                outs.append(torch.full((len(y), 1), float(y_tr.mean())))
            else:
                counts = torch.bincount(y_tr, minlength=int(y_tr.max()) + 1)
                outs.append(F.one_hot(counts.argmax().expand(len(y)), len(counts)).float())
        return _metrics(data, outs, ys)

    def example_inputs(self, config: dict[str, Any], data: MoEData, batch: int = 2) -> tuple:
        """The first ``batch`` test inputs."""
        return (data.splits["test"][0][:batch],)


def _correlation(task: str) -> float:
    text = task.partition(":")[2].removeprefix("p=")
    try:
        p = float(text)
    except ValueError:
        raise UnknownNameError(
            f"synthetic:P needs a task correlation P in [-1, 1], but got {task!r}."
        ) from None
    if not -1.0 <= p <= 1.0:
        raise ConfigurationError(f"task correlation must be in [-1, 1], but got {task!r}.")
    return p


def _parse_groups(text: str, n_tasks: int | None) -> list[int]:
    """HoME's task -> group ids ("" means one group per task); checks the task count."""
    if not text.strip():
        return list(range(n_tasks or 0))
    try:
        ids = [int(part) for part in text.split(",")]
    except ValueError:
        raise ConfigurationError(
            f"groups must be comma-separated group ids such as '0,0', but got groups={text!r}."
        ) from None
    if any(i < 0 for i in ids) or sorted(set(ids)) != list(range(max(ids) + 1)):
        raise ConfigurationError(
            f"groups must number groups 0, 1, ... without gaps, but got groups={text!r}."
        )
    if n_tasks is not None and len(ids) != n_tasks:
        raise ConfigurationError(
            f"groups must give one group per task ({n_tasks} tasks), but got groups={text!r}."
        )
    return ids
