"""Slimmable controllable multi-task nets (Aich et al., "Efficient Controllable Multi-Task
Architectures", ICCV 2023, arXiv 2308.11744).

A shared encoder and one decoder per task, all channel-slimmable, trained once as a
super-net: each step trains the largest, the smallest and ``n_random`` random width
configurations (sandwich rule) with the task losses plus the configuration-invariant
knowledge-distillation loss, which pulls every slimmed encoder's features towards the
(detached) full encoder's. After training, :meth:`Slimmable.configure` maps task
preferences and a compute budget to widths (wider decoders for preferred tasks, the encoder
chosen to fit the budget) with no retraining; the exported sub-network is a plain module
holding only the sliced weights.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from nas.zoo._fit import FitConfig, minibatches, run_epochs
from nas.zoo._registry import Family, TaskInfo, ZooResult, register_family
from nas.zoo._slim_layers import SlimMultiTaskNet, conv_macs, materialise
from torch import nn

from nas.compile import count_params
from nas.data import scenes
from nas.exceptions import ConfigurationError

__all__ = ["Slimmable", "choose_widths", "parse_flops", "width_set"]

TASKS = ("seg", "depth")
SELECTION = ("enc_width", "dec_width_seg", "dec_width_depth")
VERSION = "1"
# Columns of the width table: one row per sub-network, measured on the validation split.
COLUMNS = ("enc", "seg", "depth", "macs", "params", "miou", "rmse", "score", "rmse_blind")


def width_set(config: dict[str, Any]) -> tuple[float, ...]:
    """The width multipliers of a config: ``n_widths`` evenly spaced from ``min_width`` to 1."""
    lo, n = config["min_width"], config["n_widths"]
    return tuple(round(lo + i * (1.0 - lo) / (n - 1), 6) for i in range(n))


def parse_flops(text: str | float | int) -> float:
    """A budget such as ``50M``, ``1.2G``, ``300k`` or a plain number (MACs per sample)."""
    s = str(text).strip().upper()
    scale = {"K": 1e3, "M": 1e6, "G": 1e9}.get(s[-1:], 1.0)
    try:
        value = float(s[:-1] if scale != 1.0 else s) * scale
    except ValueError:
        value = -1.0
    if not value > 0:
        raise ConfigurationError(
            f"the compute budget must be a positive number of MACs such as 50M or 1.2G, "
            f"but got {text!r}."
        )
    return value


def _floats(text: str, what: str, n: int) -> list[float]:
    try:
        values = [float(v) for v in str(text).split(",")]
    except ValueError:
        values = []
    if len(values) != n:
        raise ConfigurationError(
            f"{what} must be {n} comma-separated numbers (encoder first for widths), "
            f"but got {text!r}."
        )
    return values


@register_family
class Slimmable(Family):
    """Slimmable shared encoder + per-task decoders, controllable after training."""

    name = "slimmable"
    train_seconds = 45.0  # default config, default epochs, 2-core CPU (bench/zoo.py)
    summary = "slimmable multi-task CNN; widths set by task preference and budget"
    paper = "Aich et al., Efficient Controllable Multi-Task Architectures, ICCV 2023"
    tasks = (
        TaskInfo(
            "scenes",
            "32x32 procedural shapes: per-pixel class (mIoU) and depth (RMSE, metres); "
            "score = (mIoU + 1 - RMSE/RMSE_blind) / 2",
            "score",
        ),
    )
    hyperparams = {
        "enc_channels": 16,
        "enc_blocks": 1,
        "dec_channels": 24,
        "dec_depth": 2,
        "min_width": 0.25,
        "n_widths": 4,
        "enc_width": 1.0,
        "dec_width_seg": 1.0,
        "dec_width_depth": 1.0,
        "kd_weight": 1.0,
        "n_random": 2,
        "lr": 0.005,
        "batch_size": 16,
        "epochs": 6,
    }
    searched = ("enc_channels", "enc_blocks", "dec_channels", "dec_depth", "min_width", "n_widths")
    input_names = ("image",)
    output_names = ("seg_logits", "depth")

    # -- config --------------------------------------------------------------------------------
    def validate(self, config: dict[str, Any]) -> None:
        """Check sizes, the width set and that the selected widths belong to it."""
        for key in ("enc_channels", "enc_blocks", "dec_channels", "dec_depth", "batch_size"):
            if config[key] < 1:
                raise ConfigurationError(f"{key} must be >= 1, but got {key}={config[key]}.")
        if not 1 <= config["dec_depth"] <= 3:
            raise ConfigurationError(
                f"dec_depth must be 1, 2 or 3, but got {config['dec_depth']}."
            )
        if not 0 < config["min_width"] < 1:
            raise ConfigurationError(
                f"min_width must be in (0, 1), but got min_width={config['min_width']}."
            )
        if not 2 <= config["n_widths"] <= 8:
            raise ConfigurationError(f"n_widths must be in [2, 8], but got {config['n_widths']}.")
        for key in ("kd_weight", "n_random", "lr"):
            if config[key] < 0 or (key == "lr" and config[key] == 0):
                bound = "> 0" if key == "lr" else ">= 0"
                raise ConfigurationError(f"{key} must be {bound}, but got {key}={config[key]}.")
        widths = width_set(config)
        for key in SELECTION:
            if not any(abs(config[key] - w) < 1e-4 for w in widths):
                raise ConfigurationError(
                    f"{key} must be one of the width multipliers "
                    f"{', '.join(f'{w:g}' for w in widths)}, but got {key}={config[key]:g}."
                )

    def selection(self, config: dict[str, Any]) -> tuple[int, ...]:
        """Width indices (encoder, seg decoder, depth decoder) of the config's sub-network."""
        widths = width_set(config)
        return tuple(
            min(range(len(widths)), key=lambda i: abs(widths[i] - config[k])) for k in SELECTION
        )

    # -- data -------------------------------------------------------------------------------
    def make_data(self, task: str, size: str = "small", seed: int = 0) -> dict[str, Any]:
        """Train/valid/test tensors (image, class map, depth map) and blind-predictor stats."""
        self.task(task)
        if size not in scenes.COUNTS:
            raise ConfigurationError(
                f"unknown size {size!r}; expected one of {list(scenes.COUNTS)}."
            )
        arr = scenes.load(size, seed)
        data: dict[str, Any] = {}
        for split in scenes.SPLITS:
            data[split] = (
                torch.from_numpy(arr[f"{split}_x"].astype(np.float32) / 255.0),
                torch.from_numpy(arr[f"{split}_seg"].astype(np.int64)),
                torch.from_numpy(arr[f"{split}_depth"]),
            )
        seg, depth = arr["train_seg"], arr["train_depth"]
        counts = np.stack([(seg == c).sum(0) for c in range(len(scenes.CLASSES))])
        data["blind_seg"], data["blind_depth"] = counts.argmax(0), depth.mean(0)
        data["rmse_blind"] = scenes.rmse(np.broadcast_to(data["blind_depth"], depth.shape), depth)
        data["depth_stats"] = (float(depth.mean()), float(depth.std()))
        return data

    # -- model ------------------------------------------------------------------------------
    def build(self, config: dict[str, Any], data: Any) -> SlimMultiTaskNet:
        """The super-net with the config's sub-network selected."""
        net = SlimMultiTaskNet(
            config["enc_channels"],
            config["enc_blocks"],
            config["dec_channels"],
            config["dec_depth"],
            width_set(config),
            (len(scenes.CLASSES), 1),
            scenes.SIZE,
        )
        mean, std = data["depth_stats"]
        net.out_scale[1], net.out_shift[1] = std, mean
        net.select(self.selection(config))
        return net

    def export_module(self, model: nn.Module, config: dict[str, Any]) -> nn.Module:
        """A plain module holding only the selected sub-network's (sliced, BN-folded) weights."""
        assert isinstance(model, SlimMultiTaskNet)
        return materialise(model, self.selection(config))

    def example_inputs(self, config: dict[str, Any], data: Any, batch: int = 2) -> tuple:
        """A batch of test images."""
        return (data["test"][0][:batch],)

    # -- scoring ----------------------------------------------------------------------------
    def _metrics(self, seg: np.ndarray, depth: np.ndarray, split: tuple, data: Any) -> dict:
        miou = scenes.miou(seg, split[1].numpy())
        rmse = scenes.rmse(depth, split[2].numpy())
        score = 0.5 * miou + 0.5 * (1.0 - rmse / data["rmse_blind"])
        return {"score": score, "miou": miou, "rmse": rmse}

    @torch.no_grad()
    def evaluate(
        self,
        model: nn.Module,
        data: Any,
        split: str = "valid",
        config: tuple | None = None,
        limit: int | None = None,
    ) -> dict[str, float]:
        """Metrics of ``model`` (a super-net at ``config``, or any plain sub-network)."""
        x, seg, depth = (t[:limit] for t in data[split])
        model.eval()
        preds: list[list[torch.Tensor]] = [[], []]
        for i in range(0, len(x), 250):
            if config is not None:
                assert isinstance(model, SlimMultiTaskNet)
                _, outs = model.run(x[i : i + 250], config)
                outs = [outs[0], outs[1][:, 0]]
            else:
                outs = list(model(x[i : i + 250]))
            preds[0].append(outs[0].argmax(1))
            preds[1].append(outs[1])
        return self._metrics(
            torch.cat(preds[0]).numpy(), torch.cat(preds[1]).numpy(), (x, seg, depth), data
        )

    def baseline(self, data: Any) -> dict[str, float]:
        """Per-pixel majority class and per-pixel mean depth of the training split."""
        n = len(data["test"][0])
        seg = np.broadcast_to(data["blind_seg"], (n, scenes.SIZE, scenes.SIZE))
        depth = np.broadcast_to(data["blind_depth"], (n, scenes.SIZE, scenes.SIZE))
        return self._metrics(seg, depth, data["test"], data)

    # -- training ---------------------------------------------------------------------------
    def fit(
        self,
        model: nn.Module,
        config: dict[str, Any],
        data: Any,
        epochs: int | None = None,
        time_budget_s: float | None = None,
        seed: int = 0,
        on_epoch: Callable[[int, dict[str, float]], Any] | None = None,
    ) -> ZooResult:
        """Sandwich-rule super-net training with CI-KD; scores the selected sub-network."""
        assert isinstance(model, SlimMultiTaskNet)
        x, seg, depth = data["train"]
        n_w = len(model.widths)
        full, smallest = (n_w - 1,) * 3, (0,) * 3
        gen = torch.Generator().manual_seed(seed)
        mean, std = data["depth_stats"]

        def loss_fn(net: nn.Module, idx: torch.Tensor) -> torch.Tensor:
            xb, sb, db = x[idx], seg[idx], (depth[idx] - mean) / std
            configs = [full, smallest]
            configs += [
                tuple(torch.randint(n_w, (3,), generator=gen).tolist())
                for _ in range(config["n_random"])
            ]
            total, teacher = torch.zeros(()), None
            for c in configs:
                f, (s_out, d_out) = net.run(xb, c)
                d_norm = (d_out[:, 0] - mean) / std
                total = total + F.cross_entropy(s_out, sb) + F.mse_loss(d_norm, db)
                if teacher is None:
                    teacher = f.detach()  # the full encoder teaches the slimmed ones (CI-KD)
                elif config["kd_weight"] > 0:
                    total = total + config["kd_weight"] * F.mse_loss(f, teacher[:, : f.shape[1]])
            return total

        sel = self.selection(config)
        fit_cfg = FitConfig(
            epochs=epochs or config["epochs"], lr=config["lr"], time_budget_s=time_budget_s
        )
        log = run_epochs(
            model,
            lambda e: minibatches(len(x), config["batch_size"], e, seed),
            loss_fn,
            fit_cfg,
            evaluate=lambda: self.evaluate(model, data, "valid", sel),
            on_epoch=on_epoch,
            seed=seed,
        )
        model.select(sel)
        extra = {
            "widths": list(model.widths),
            "selected": dict(zip(SELECTION, (model.widths[i] for i in sel), strict=True)),
            "smallest_valid": self.evaluate(model, data, "valid", smallest),
        }
        return ZooResult(
            self.evaluate(model, data, "valid", sel),
            self.evaluate(model, data, "test", sel),
            log.epochs,
            log.seconds,
            log.status,
            log.reason,
            extra,
        )

    # -- controllability ----------------------------------------------------------------------
    def width_table(self, model: SlimMultiTaskNet, data: Any) -> np.ndarray:
        """One row per width configuration (see ``COLUMNS``), scored on the validation split."""
        rows = []
        for c in itertools.product(range(len(model.widths)), repeat=1 + len(TASKS)):
            plain = materialise(model, c)
            m = self.evaluate(plain, data, "valid")
            macs = conv_macs(plain, (3, scenes.SIZE, scenes.SIZE))
            rows.append([*c, macs, count_params(plain), m["miou"], m["rmse"], m["score"]])
        table = np.array(rows, dtype=np.float64)
        return np.concatenate([table, np.full((len(rows), 1), data["rmse_blind"])], axis=1)

    def supernet(
        self, config: dict[str, Any], seed: int = 0, size: str = "small", epochs: int | None = None
    ) -> tuple[SlimMultiTaskNet, Any, np.ndarray, dict]:
        """The trained super-net of ``config`` and its width table, cached after the first run.

        The cache (under ``nas.data.cache.cache_dir()``) is keyed by the super-net's
        hyperparameters, the epochs, the data size and the seed.
        """
        from nas.data.cache import cached

        key_cfg = {k: v for k, v in config.items() if k not in SELECTION}
        key_cfg["epochs"] = epochs or config["epochs"]
        key = hashlib.sha1(json.dumps(key_cfg, sort_keys=True).encode()).hexdigest()[:12]
        data = self.make_data("scenes", size, seed)
        torch.manual_seed(seed)
        model = self.build(config, data)

        def generate() -> dict[str, np.ndarray]:
            res = self.fit(model, config, data, epochs=epochs, seed=seed)
            if res.status != "ok":
                raise ConfigurationError(f"super-net training failed: {res.reason}.")
            arrays = {f"w:{k}": v.numpy() for k, v in model.state_dict().items()}
            return {**arrays, "table": self.width_table(model, data)}

        arrays, meta = cached(
            f"zoo-slimmable-{key}", size, seed, f"{VERSION}.{scenes.VERSION}", generate, ("table",)
        )
        state = {k[2:]: torch.from_numpy(v) for k, v in arrays.items() if k.startswith("w:")}
        model.load_state_dict(state)
        model.select(self.selection(config))
        return model.eval(), data, arrays["table"], meta

    def configure(
        self,
        prefs: str | None = None,
        budget_macs: str | float | None = None,
        widths: str | None = None,
        config: dict[str, Any] | None = None,
        seed: int = 0,
        size: str = "small",
        epochs: int | None = None,
        budget_flops: str | float | None = None,
    ) -> dict[str, Any]:
        """Widths for task preferences and a MAC budget, or the overrides of given ``widths``.

        The budget is in MACs per sample (``budget_flops`` is its old name, also MACs).

        With ``widths`` ("enc,seg,depth", e.g. "0.5,1,0.25") returns the config overrides
        selecting that sub-network. Otherwise trains (or reads from the cache) the
        super-net of ``config`` and returns the chosen widths, the sub-network's validation
        metrics measured on the trained super-net, and its MACs and parameters.

        Raises:
            ConfigurationError: malformed preferences, widths or budget, or a budget below
                the smallest sub-network.
        """
        budget_macs = budget_macs if budget_macs is not None else budget_flops
        if widths is not None:
            if prefs is not None or budget_macs is not None:
                raise ConfigurationError("give either widths or prefs/budget, not both.")
            values = _floats(widths, "widths", len(SELECTION))
            if any(not 0 < v <= 1 for v in values):
                raise ConfigurationError(f"widths must lie in (0, 1], but got {widths!r}.")
            return dict(zip(SELECTION, values, strict=True))
        cfg = self.config(config)
        p = np.array(_floats(prefs, "prefs", len(TASKS)) if prefs is not None else [1.0, 1.0])
        if (p < 0).any() or p.sum() <= 0:
            raise ConfigurationError(f"prefs must be non-negative and not all 0, got {prefs!r}.")
        p = p / p.sum()
        budget = parse_flops(budget_macs) if budget_macs is not None else None
        _, _, table, meta = self.supernet(cfg, seed, size, epochs)
        row = table[choose_widths(table, p, budget)]
        ws = width_set(cfg)
        chosen = [ws[int(i)] for i in row[:3]]
        col = dict(zip(COLUMNS, row, strict=True))
        return {
            **dict(zip(SELECTION, chosen, strict=True)),
            "widths": ",".join(f"{w:g}" for w in chosen),
            "predicted": {k: round(float(col[k]), 4) for k in ("miou", "rmse", "score")},
            "macs": int(col["macs"]),
            "params": int(col["params"]),
            "budget_macs": budget,
            "full_macs": int(table[:, 3].max()),
            "prefs": [round(float(x), 4) for x in p],
            "supernet": f"{meta['cache_file']} ({meta['cache']})",
        }


def choose_widths(table: np.ndarray, prefs: np.ndarray, budget: float | None) -> int:
    """Row of the width table chosen for preferences ``prefs`` under MAC ``budget``.

    Decoder widths must be monotone in the preferences (a more preferred task never gets a
    narrower decoder); among the sub-networks that fit the budget, the one maximising the
    preference-weighted sum of per-task performance (mIoU, and depth skill 1 - RMSE /
    RMSE_blind, each min-max normalised over the table) wins, ties going to fewer MACs.
    """
    macs = table[:, 3]
    fits = macs <= (budget if budget is not None else np.inf)
    if not fits.any():
        raise ConfigurationError(
            f"the budget of {budget:,.0f} MACs is below the smallest sub-network "
            f"({macs.min():,.0f} MACs)."
        )
    dec = table[:, 1:3]
    monotone = np.ones(len(table), dtype=bool)
    for i, j in itertools.permutations(range(len(prefs)), 2):
        if prefs[i] > prefs[j]:
            monotone &= dec[:, i] >= dec[:, j]
    perf = np.stack([table[:, 5], 1.0 - table[:, 6] / table[:, 8]], axis=1)
    lo, hi = perf.min(0), perf.max(0)
    utility = ((perf - lo) / np.maximum(hi - lo, 1e-12)) @ prefs
    ok = np.flatnonzero(fits & monotone)
    return int(ok[np.lexsort((macs[ok], -utility[ok]))[0]])
