"""Modules of zoo:ait: the depth VQ-VAE (EMA codebook) and the parallel token predictor.

Written from Ning et al., "All in Tokens: Unifying Output Space of Visual Tasks via Soft
Token" (ICCV 2023): stage 1 tokenises depth maps with a VQ-VAE; stage 2 predicts the token
distribution of every grid cell from the image in one pass (learned [MASK] queries), and
the frozen VQ decoder reads *soft tokens*, ``sum_k softmax(tau * logits)_k * codebook_k``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["VQVAE", "AitModel", "EMAQuantizer", "TokenPredictor"]


class ResBlock(nn.Module):
    """Residual block of the AiT tokenizer: ReLU-3x3-ReLU-3x3-ReLU-1x1, added to the input."""

    def __init__(self, ch: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.ReLU(),
            nn.Conv2d(ch, ch, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(ch, ch, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(ch, ch, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x + body(x)."""
        return x + self.body(x)


class EMAQuantizer(nn.Module):
    """Vector quantiser with an EMA codebook, encoder-output init and dead-code restarts.

    AiT's EMA codebook (decay 0.99) starts from random normal codes; on a short budget that
    collapses to a single code. Here the first training batch seeds the codebook by
    k-means++ over encoder outputs, and after every training step codes whose EMA count fell
    below ``dead_threshold`` are restarted at encoder outputs drawn in proportion to their
    squared distance to the nearest code (the worst-represented vectors). All updates run
    only ``if self.training``; in eval mode this is a pure nearest-code lookup.
    """

    def __init__(
        self, codes: int, dim: int, decay: float = 0.99, dead_threshold: float = 1.0
    ) -> None:
        super().__init__()
        self.codes, self.dim, self.decay, self.dead_threshold = codes, dim, decay, dead_threshold
        self.eps = 1e-5
        self.register_buffer("embed", torch.randn(codes, dim))
        self.register_buffer("cluster_size", torch.ones(codes))
        self.register_buffer("embed_sum", self.embed.clone())
        self.register_buffer("initialised", torch.zeros((), dtype=torch.bool))
        self.restarts = 0

    def distances(self, flat: torch.Tensor) -> torch.Tensor:
        """Squared distances (N, K) from flat vectors to every code."""
        return (
            flat.pow(2).sum(1, keepdim=True)
            - 2 * flat @ self.embed.t()
            + self.embed.pow(2).sum(1)[None]
        )

    def lookup(self, idx: torch.Tensor) -> torch.Tensor:
        """Codes (B, D, h, w) for indices (B, h, w)."""
        return self.embed[idx].permute(0, 3, 1, 2)

    def soft(self, probs: torch.Tensor) -> torch.Tensor:
        """Soft tokens (B, D, h, w): probability-weighted codes for probs (B, h, w, K)."""
        return torch.einsum("bhwk,kd->bdhw", probs, self.embed)

    @torch.no_grad()
    def _kmeans_pp(self, flat: torch.Tensor) -> None:
        picks = [int(torch.randint(len(flat), ()))]
        nearest = (flat - flat[picks[0]]).pow(2).sum(1)
        for _ in range(1, self.codes):
            weights = nearest + 1e-12
            i = int(torch.multinomial(weights / weights.sum(), 1))
            picks.append(i)
            nearest = torch.minimum(nearest, (flat - flat[i]).pow(2).sum(1))
        self.embed.copy_(flat[picks])
        self.embed_sum.copy_(self.embed)
        self.cluster_size.fill_(1.0)
        self.initialised.fill_(True)

    @torch.no_grad()
    def _update(self, flat: torch.Tensor, idx: torch.Tensor, dist: torch.Tensor) -> None:
        onehot = F.one_hot(idx, self.codes).type(flat.dtype)
        self.cluster_size.mul_(self.decay).add_(onehot.sum(0), alpha=1 - self.decay)
        self.embed_sum.mul_(self.decay).add_(onehot.t() @ flat, alpha=1 - self.decay)
        n = self.cluster_size.sum()
        smoothed = (self.cluster_size + self.eps) / (n + self.codes * self.eps) * n
        self.embed.copy_(self.embed_sum / smoothed[:, None])
        dead = self.cluster_size < self.dead_threshold
        n_dead = int(dead.sum())
        if n_dead:
            weights = dist.gather(1, idx[:, None]).squeeze(1).clamp_min(0) + 1e-12
            picks = torch.multinomial(weights, n_dead, replacement=n_dead > len(flat))
            self.embed[dead] = flat[picks]
            self.embed_sum[dead] = flat[picks]
            self.cluster_size[dead] = 1.0
            self.restarts += n_dead

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Quantise z (B, D, h, w): (straight-through codes, indices, commitment MSE)."""
        b, d, h, w = z.shape
        flat = z.permute(0, 2, 3, 1).reshape(-1, d)
        if self.training and not bool(self.initialised):
            self._kmeans_pp(flat.detach())
        dist = self.distances(flat)
        idx = dist.argmin(1)
        if self.training:
            self._update(flat.detach(), idx, dist.detach())
        q = self.embed[idx].view(b, h, w, d).permute(0, 3, 1, 2)
        commit = F.mse_loss(z, q.detach())
        return z + (q - z).detach(), idx.view(b, h, w), commit


class VQVAE(nn.Module):
    """AiT's depth tokenizer: 4x4 stride-2 conv encoder, EMA quantiser, mirrored decoder."""

    def __init__(
        self, codes: int, dim: int, channels: int, downsample: int, res_blocks: int = 1
    ) -> None:
        super().__init__()
        steps = int(math.log2(downsample))
        enc: list[nn.Module] = [nn.Conv2d(1, channels, 4, 2, 1), nn.ReLU()]
        ch = channels
        for _ in range(steps - 1):
            enc += [nn.Conv2d(ch, ch * 2, 4, 2, 1), nn.ReLU()]
            ch *= 2
        enc += [ResBlock(ch) for _ in range(res_blocks)]
        enc += [nn.ReLU(), nn.Conv2d(ch, dim, 1)]
        self.encoder = nn.Sequential(*enc)
        self.quantizer = EMAQuantizer(codes, dim)
        dec: list[nn.Module] = [nn.Conv2d(dim, ch, 3, padding=1)]
        dec += [ResBlock(ch) for _ in range(res_blocks)]
        dec += [nn.ReLU()]
        for _ in range(steps - 1):
            dec += [nn.ConvTranspose2d(ch, ch // 2, 4, 2, 1), nn.ReLU()]
            ch //= 2
        dec += [nn.ConvTranspose2d(ch, 1, 4, 2, 1)]
        self.decoder = nn.Sequential(*dec)

    def encode(self, depth: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Normalised depth (B, 1, H, W) -> (codes, indices, commitment)."""
        return self.quantizer(self.encoder(depth))

    def forward(self, depth: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Reconstruction, indices and commitment loss."""
        q, idx, commit = self.encode(depth)
        return self.decoder(q), idx, commit


class Block(nn.Module):
    """Pre-norm transformer block: self-attention, optional cross-attention, MLP (4x)."""

    def __init__(self, width: int, heads: int, cross: bool) -> None:
        super().__init__()
        self.heads = heads
        self.n1, self.qkv = nn.LayerNorm(width), nn.Linear(width, 3 * width)
        self.o1 = nn.Linear(width, width)
        self.cross = cross
        if cross:
            self.n2, self.nm = nn.LayerNorm(width), nn.LayerNorm(width)
            self.q2, self.kv2 = nn.Linear(width, width), nn.Linear(width, 2 * width)
            self.o2 = nn.Linear(width, width)
        self.n3 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(
            nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width)
        )

    def _attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        b, t, w = q.shape
        hd = w // self.heads

        def split(x: torch.Tensor) -> torch.Tensor:
            return x.reshape(b, -1, self.heads, hd).transpose(1, 2)

        att = torch.softmax(split(q) @ split(k).transpose(-1, -2) / math.sqrt(hd), dim=-1)
        return (att @ split(v)).transpose(1, 2).reshape(b, t, w)

    def forward(self, x: torch.Tensor, memory: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, T, W), memory (B, S, W) for cross-attention."""
        q, k, v = self.qkv(self.n1(x)).chunk(3, dim=-1)
        x = x + self.o1(self._attend(q, k, v))
        if self.cross and memory is not None:
            k2, v2 = self.kv2(self.nm(memory)).chunk(2, dim=-1)
            x = x + self.o2(self._attend(self.q2(self.n2(x)), k2, v2))
        return x + self.mlp(self.n3(x))


def conv_bn(cin: int, cout: int, stride: int = 1) -> list[nn.Module]:
    """3x3 conv, batch norm, GELU."""
    return [nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.GELU()]


class TokenPredictor(nn.Module):
    """Image -> token logits (B, h, w, K): conv stem, transformer encoder, parallel decoder.

    The stem stands in for AiT's Swin backbone: a small strided CNN (conv-BN-GELU, then per
    halving a stride-2 and a stride-1 conv) that maps the image to the token grid. The
    decoder's inputs are one learned [MASK] embedding plus a positional embedding per token
    (AiT's parallel mode), so all ``grid * grid`` tokens come from one pass.
    """

    def __init__(
        self, codes: int, grid: int, width: int, depth: int, heads: int, side: int = 32
    ) -> None:
        super().__init__()
        steps = int(math.log2(side // grid))
        ch = max(16, width // 2)
        stem = conv_bn(3, ch)
        for _ in range(steps):
            stem += conv_bn(ch, width, 2) + conv_bn(width, width)
            ch = width
        stem += [nn.Conv2d(ch, width, 1)]
        self.stem = nn.Sequential(*stem)
        self.grid = grid
        self.pos_enc = nn.Parameter(torch.randn(1, grid * grid, width) * 0.02)
        self.pos_dec = nn.Parameter(torch.randn(1, grid * grid, width) * 0.02)
        self.mask_token = nn.Parameter(torch.randn(1, 1, width) * 0.02)
        self.encoder = nn.ModuleList(Block(width, heads, cross=False) for _ in range(depth))
        self.decoder = nn.ModuleList(Block(width, heads, cross=True) for _ in range(depth))
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, codes)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """Logits (B, grid, grid, K) for images (B, 3, H, W) in [0, 1]."""
        feat = self.stem(image - 0.5)
        b = feat.shape[0]
        mem = feat.flatten(2).transpose(1, 2) + self.pos_enc
        for blk in self.encoder:
            mem = blk(mem)
        x = self.mask_token.expand(b, -1, -1) + self.pos_dec
        for blk in self.decoder:
            x = blk(x, mem)
        logits = self.head(self.norm(x))
        return logits.reshape(b, self.grid, self.grid, -1)


class AitModel(nn.Module):
    """The whole AiT depth model; ``forward`` is the exported inference path.

    image -> token distributions -> soft tokens (or argmax tokens when ``soft`` is False)
    -> frozen VQ decoder -> depth in metres. Returns (depth, token probabilities).
    """

    def __init__(
        self, vqvae: VQVAE, predictor: TokenPredictor, tau: float, soft: bool, max_depth: float
    ) -> None:
        super().__init__()
        self.vqvae, self.predictor = vqvae, predictor
        self.tau, self.soft, self.max_depth = tau, soft, max_depth
        self.vq_frozen = False

    def freeze_vqvae(self) -> None:
        """Stage 2: the tokenizer stays fixed (eval mode, no gradients to its weights)."""
        self.vq_frozen = True
        for p in self.vqvae.parameters():
            p.requires_grad_(False)
        self.vqvae.eval()

    def train(self, mode: bool = True) -> AitModel:
        """Like nn.Module.train, but a frozen tokenizer never leaves eval mode."""
        super().train(mode)
        if self.vq_frozen:
            self.vqvae.eval()
        return self

    def decode_probs(self, probs: torch.Tensor, soft: bool | None = None) -> torch.Tensor:
        """Depth (B, 1, H, W) in metres from token probabilities (B, h, w, K)."""
        quant = self.vqvae.quantizer
        tokens = quant.soft(probs) if (self.soft if soft is None else soft) else None
        if tokens is None:
            tokens = quant.lookup(probs.argmax(-1))
        return self.vqvae.decoder(tokens) * self.max_depth

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(depth (B, 1, H, W) in metres, token probabilities (B, h, w, K))."""
        probs = torch.softmax(self.tau * self.predictor(image), dim=-1)
        return self.decode_probs(probs), probs
