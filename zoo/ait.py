"""zoo:ait — AiT soft tokens (Ning et al., "All in Tokens", ICCV 2023) for depth estimation.

Stage 1 trains a VQ-VAE over hole-free true depth maps (mask augmentation: random patches
of the input depth are blanked while the whole depth is the target, so the tokenizer learns
to in-paint). Stage 2 freezes it and trains a transformer that predicts every token's
distribution from the image; the decoder reads soft tokens (softmax-weighted mixtures of
codes) and the loss is cross-entropy on the tokenizer's ids of the true depth plus SiLog on
the decoded depth over the sensor's valid pixels. The task is nas.data.depthscenes (32x32
scenes; invalid sensor pixels are excluded from losses and metrics, never tokenised).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from nas.zoo._ait_layers import VQVAE, AitModel, TokenPredictor
from nas.zoo._fit import FitConfig, FitLog, minibatches, run_epochs
from nas.zoo._registry import Family, TaskInfo, ZooResult, register_family
from torch import nn

from nas.data import depthscenes as scenes
from nas.data.cache import cached
from nas.exceptions import ConfigurationError

__all__ = ["AiT", "depth_metrics"]

Split = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # image, sensor depth, true depth
_CHUNK = 250
#: (train, valid, test) scenes per size: the stand-ins' sizes before their evaluation splits
#: grew (the depth task's figures in docs/zoo/ait.md were measured on these).
SCENE_SIZES = {
    "small": (2_000, 500, 500),
    "medium": (10_000, 2_000, 2_000),
    "full": (45_000, 15_000, 10_000),
}


def depth_metrics(pred: torch.Tensor, gt: torch.Tensor) -> dict[str, float]:
    """RMSE (m), mean absolute relative error and delta < 1.25 over valid (gt > 0) pixels."""
    valid = gt > 0
    p, g = pred[valid].clamp(scenes.MIN_DEPTH / 10, scenes.MAX_DEPTH), gt[valid]
    ratio = torch.maximum(p / g, g / p)
    return {
        "rmse": float(((p - g) ** 2).mean().sqrt()),
        "abs_rel": float(((p - g).abs() / g).mean()),
        "delta1": float((ratio < 1.25).float().mean()),
    }


def silog(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """AiT's scale-invariant log loss over valid pixels: sqrt(E[d^2] - 0.5 E[d]^2)."""
    valid = gt > 0
    d = torch.log(gt[valid]) - torch.log(pred[valid].clamp_min(0.1))
    return torch.sqrt((d**2).mean() - 0.5 * d.mean() ** 2 + 1e-8)


def mask_patches(depth: torch.Tensor, ratio: float, patch: int) -> torch.Tensor:
    """AiT's mask augmentation: zero random ``patch`` x ``patch`` cells at ``ratio``."""
    b, _, h, w = depth.shape
    keep = torch.rand(b, 1, h // patch, w // patch) >= ratio
    keep = keep.repeat_interleave(patch, 2).repeat_interleave(patch, 3)
    return depth * keep


def code_usage(idx: torch.Tensor, codes: int) -> dict[str, float]:
    """Codes used, their share of the codebook and the perplexity of the code histogram."""
    counts = torch.bincount(idx.flatten(), minlength=codes).double()
    p = counts / counts.sum()
    entropy = -(p[p > 0] * p[p > 0].log()).sum()
    used = int((counts > 0).sum())
    return {"codes_used": used, "code_share": used / codes, "perplexity": float(entropy.exp())}


@register_family
class AiT(Family):
    """AiT: VQ-VAE depth tokens predicted by a parallel transformer, decoded as soft tokens."""

    name = "ait"
    train_seconds = 119.0  # default config, default epochs, 2-core CPU (bench/zoo.py)
    summary = "AiT soft tokens: VQ-VAE depth tokenizer + transformer token predictor"
    paper = "Ning et al., All in Tokens: Unifying Output Space of Visual Tasks, ICCV 2023"
    tasks = (
        TaskInfo(
            "depth",
            "32x32 rendered scenes (shapes at known depths), image -> metric depth; "
            "RMSE over valid pixels",
            "rmse",
            higher_is_better=False,
        ),
    )
    hyperparams = {
        # searched
        "codebook": 64,  # codes K
        "grid": 8,  # tokens per side (downsample 32 / grid)
        "width": 64,  # transformer width
        "depth": 2,  # encoder layers = decoder layers
        "mask_ratio": 0.25,  # share of input patches blanked in stage 1
        # fixed
        "code_dim": 32,
        "vq_channels": 32,
        "res_blocks": 1,
        "mask_aug": True,  # ablation switch: False trains the tokenizer on unmasked input
        "mask_patch": 4,
        "soft_tokens": True,  # ablation switch: False = CE only, argmax (hard) decoding
        "tau": 0.8,
        "soft_loss": 5.0,  # weight of SiLog on the soft-decoded depth (CE has weight 1)
        "heads": 4,
        "commitment": 0.25,
        "vq_epochs": 4,
        "pred_epochs": 8,
        "vq_lr": 2e-3,
        "lr": 2e-3,
        "batch_size": 32,
        "vq_share": 0.4,  # share of a time budget given to stage 1
    }
    searched = ("codebook", "grid", "width", "depth", "mask_ratio")
    input_names = ("image",)
    output_names = ("depth", "tokens")

    def validate(self, config: dict[str, Any]) -> None:
        """One-line errors for values the model cannot use."""
        side = scenes.SIDE
        grid, patch = config["grid"], config["mask_patch"]
        checks = [
            (config["codebook"] >= 2, "codebook must be >= 2", "codebook"),
            (
                2 <= grid <= side // 2 and grid & (grid - 1) == 0,
                f"grid must be a power of two in [2, {side // 2}]",
                "grid",
            ),
            (config["depth"] >= 1, "depth must be >= 1", "depth"),
            (
                config["width"] >= 2 * config["heads"] >= 2
                and config["width"] % (2 * config["heads"]) == 0,
                "width must be a positive multiple of 2 * heads",
                "width",
            ),
            (0 <= config["mask_ratio"] < 1, "mask_ratio must be in [0, 1)", "mask_ratio"),
            (patch >= 1 and side % patch == 0, f"mask_patch must divide {side}", "mask_patch"),
            (config["code_dim"] >= 1, "code_dim must be >= 1", "code_dim"),
            (config["vq_channels"] >= 1, "vq_channels must be >= 1", "vq_channels"),
            (config["res_blocks"] >= 0, "res_blocks must be >= 0", "res_blocks"),
            (config["tau"] > 0, "tau must be > 0", "tau"),
            (config["soft_loss"] >= 0, "soft_loss must be >= 0", "soft_loss"),
            (config["commitment"] >= 0, "commitment must be >= 0", "commitment"),
            (config["vq_epochs"] >= 1, "vq_epochs must be >= 1", "vq_epochs"),
            (config["pred_epochs"] >= 1, "pred_epochs must be >= 1", "pred_epochs"),
            (config["vq_lr"] > 0, "vq_lr must be > 0", "vq_lr"),
            (config["lr"] > 0, "lr must be > 0", "lr"),
            (config["batch_size"] >= 1, "batch_size must be >= 1", "batch_size"),
            (0 < config["vq_share"] < 1, "vq_share must be in (0, 1)", "vq_share"),
        ]
        for ok, rule, key in checks:
            if not ok:
                raise ConfigurationError(f"zoo:ait {rule}, but got {key}={config[key]!r}.")

    # -- data -------------------------------------------------------------------------------
    def make_data(self, task: str, size: str = "small", seed: int = 0) -> dict[str, Split]:
        """Scenes ``{split: (images (N, 3, 32, 32), sensor depths, true depths)}``."""
        self.task(task)
        if size not in SCENE_SIZES:
            raise ConfigurationError(
                f"unknown size {size!r}; expected one of {list(SCENE_SIZES)}."
            )
        arrays, _ = cached(
            "depthscenes",
            size,
            seed,
            scenes.VERSION,
            lambda: scenes.generate(SCENE_SIZES[size], seed),
            required=tuple(f"{s}_{k}" for s in scenes.SPLITS for k in ("image", "depth", "true")),
        )
        return {
            s: tuple(torch.from_numpy(arrays[f"{s}_{k}"]) for k in ("image", "depth", "true"))
            for s in scenes.SPLITS
        }

    def build(self, config: dict[str, Any], data: dict[str, Split]) -> nn.Module:
        """The two-stage model (untrained) for images of the data's size."""
        side = data["train"][0].shape[-1]
        c = config
        vqvae = VQVAE(
            c["codebook"], c["code_dim"], c["vq_channels"], side // c["grid"], c["res_blocks"]
        )
        predictor = TokenPredictor(
            c["codebook"], c["grid"], c["width"], c["depth"], c["heads"], side
        )
        return AitModel(vqvae, predictor, c["tau"], c["soft_tokens"], scenes.MAX_DEPTH)

    # -- training ---------------------------------------------------------------------------
    def _vq_loss(self, config: dict[str, Any], true: torch.Tensor) -> Callable:
        ratio = config["mask_ratio"] if config["mask_aug"] else 0.0

        def loss(vq: nn.Module, idx: torch.Tensor) -> torch.Tensor:
            target = true[idx] / scenes.MAX_DEPTH
            inp = mask_patches(target, ratio, config["mask_patch"]) if ratio > 0 else target
            recon, _, commit = vq(inp)
            valid = (target > 0).float()
            mse = (((recon - target) ** 2) * valid).sum() / valid.sum().clamp_min(1)
            return mse + config["commitment"] * commit

        return loss

    def _pred_loss(
        self, config: dict[str, Any], image: torch.Tensor, depth: torch.Tensor, ids: torch.Tensor
    ) -> Callable:
        def loss(model: nn.Module, idx: torch.Tensor) -> torch.Tensor:
            logits = model.predictor(image[idx])
            k = logits.shape[-1]
            ce = F.cross_entropy(logits.reshape(-1, k), ids[idx].reshape(-1))
            if not config["soft_tokens"] or config["soft_loss"] == 0:
                return ce
            probs = torch.softmax(config["tau"] * logits, dim=-1)
            return ce + config["soft_loss"] * silog(model.decode_probs(probs), depth[idx])

        return loss

    @torch.no_grad()
    def _tokens(self, model: AitModel, depth: torch.Tensor) -> torch.Tensor:
        """The frozen tokenizer's ids (N, h, w) for hole-free depths (N, 1, H, W)."""
        vq = model.vqvae
        return torch.cat(
            [
                vq.encode(depth[i : i + _CHUNK] / scenes.MAX_DEPTH)[1]
                for i in range(0, len(depth), _CHUNK)
            ]
        )

    @torch.no_grad()
    def _predict(self, model: AitModel, image: torch.Tensor, soft: bool | None = None) -> tuple:
        model.eval()
        outs, toks = [], []
        for i in range(0, len(image), _CHUNK):
            probs = torch.softmax(model.tau * model.predictor(image[i : i + _CHUNK]), dim=-1)
            outs.append(model.decode_probs(probs, soft))
            toks.append(probs.argmax(-1))
        return torch.cat(outs), torch.cat(toks)

    def _score(self, model: AitModel, split: Split) -> dict[str, float]:
        image, depth, _ = split
        return depth_metrics(self._predict(model, image)[0], depth)

    def fit(
        self,
        model: nn.Module,
        config: dict[str, Any],
        data: dict[str, Split],
        epochs: int | None = None,
        time_budget_s: float | None = None,
        seed: int = 0,
        on_epoch: Callable[[int, dict[str, float]], Any] | None = None,
    ) -> ZooResult:
        """Stage 1 (VQ-VAE), then stage 2 (token predictor); ``epochs`` sets both stages.

        A time budget gives ``vq_share`` of it to stage 1 and the rest to stage 2;
        ``on_epoch`` sees stage 2's validation metrics.
        """
        assert isinstance(model, AitModel)
        torch.manual_seed(seed)
        t0 = time.perf_counter()
        image, depth, true = data["train"]
        bs = config["batch_size"]

        def batches(e: int) -> list[torch.Tensor]:
            return minibatches(len(image), bs, e, seed)

        budget1 = time_budget_s * config["vq_share"] if time_budget_s else None
        cfg1 = FitConfig(epochs or config["vq_epochs"], config["vq_lr"], time_budget_s=budget1)
        log1 = run_epochs(model.vqvae, batches, self._vq_loss(config, true), cfg1, seed=seed)
        model.freeze_vqvae()
        log2 = FitLog(status="skipped", reason=f"stage 1 {log1.status}")
        if log1.ok:
            ids = self._tokens(model, true)
            budget2 = (
                max(1.0, time_budget_s - (time.perf_counter() - t0)) if time_budget_s else None
            )
            cfg2 = FitConfig(epochs or config["pred_epochs"], config["lr"], time_budget_s=budget2)
            log2 = run_epochs(
                model,
                batches,
                self._pred_loss(config, image, depth, ids),
                cfg2,
                evaluate=lambda: self._score(model, data["valid"]),
                on_epoch=on_epoch,
                seed=seed,
            )
        # The first stage that did not finish decides (a stage 1 timeout is the trial's).
        first = next((log for log in (log1, log2) if log.status != "ok"), log2)
        status, reason = first.status, first.reason
        return ZooResult(
            self._score(model, data["valid"]),
            self._score(model, data["test"]),
            log2.epochs,
            time.perf_counter() - t0,
            status,
            reason,
            self._extra(model, data["test"], log1, log2),
        )

    def _extra(self, model: AitModel, split: Split, log1: FitLog, log2: FitLog) -> dict:
        """Code usage, tokenizer reconstruction and the other decoding on the test split."""
        image, depth, true = split
        quant = model.vqvae.quantizer
        ids = self._tokens(model, true)
        with torch.no_grad():
            recon = torch.cat(
                [
                    model.vqvae.decoder(quant.lookup(ids[i : i + _CHUNK])) * scenes.MAX_DEPTH
                    for i in range(0, len(ids), _CHUNK)
                ]
            )
        pred_hard, pred_ids = self._predict(model, image, soft=False)
        pred_soft, _ = self._predict(model, image, soft=True)
        return {
            "vq_epochs": log1.epochs,
            "vq_seconds": round(log1.seconds, 2),
            "vq_recon_rmse": round(depth_metrics(recon, depth)["rmse"], 4),
            "code_usage": {k: round(v, 4) for k, v in code_usage(ids, quant.codes).items()},
            "predicted_code_usage": {
                k: round(v, 4) for k, v in code_usage(pred_ids, quant.codes).items()
            },
            "code_restarts": quant.restarts,
            "test_rmse_soft_decode": round(depth_metrics(pred_soft, depth)["rmse"], 4),
            "test_rmse_hard_decode": round(depth_metrics(pred_hard, depth)["rmse"], 4),
            "token_accuracy": round(float((pred_ids == ids).float().mean()), 4),
        }

    def baseline(self, data: dict[str, Split]) -> dict[str, float]:
        """Per-pixel mean of the valid training depths (global mean where none is valid)."""
        depth = data["train"][1]
        valid = (depth > 0).float()
        count = valid.sum(0)
        mean = (depth * valid).sum(0) / count.clamp_min(1)
        mean = torch.where(count > 0, mean, depth[depth > 0].mean())
        gt = data["test"][1]
        return depth_metrics(mean.expand_as(gt), gt)

    def example_inputs(
        self, config: dict[str, Any], data: dict[str, Split], batch: int = 2
    ) -> tuple:
        """A batch of test images."""
        return (data["test"][0][:batch],)
