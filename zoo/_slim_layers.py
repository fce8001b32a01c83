"""Slimmable layers and the multi-task super-net of ``zoo:slimmable`` (Aich et al., ICCV 2023).

A slimmable convolution keeps one kernel of the largest width and uses its first ``c_out``
output and first ``c_in`` input channels at a smaller width (Yu et al., "Slimmable Neural
Networks", 2019). Batch normalisation shares its affine parameters (sliced the same way)
but keeps private running statistics per width configuration, since a slimmed layer sees
differently scaled inputs. :func:`materialise` copies one sub-network's sliced weights
(with batch norm folded into the convolutions) into a plain module for deployment.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "PlainMultiTaskNet",
    "SlimBatchNorm",
    "SlimConv",
    "SlimMultiTaskNet",
    "channels",
    "conv_macs",
    "materialise",
]


def channels(full: int, width: float) -> int:
    """Active channels of a layer of ``full`` channels at width multiplier ``width``."""
    return max(1, round(full * width))


class SlimConv(nn.Module):
    """A convolution whose active channels are prefixes of a max-width kernel."""

    def __init__(self, c_in: int, c_out: int, k: int = 3, stride: int = 1, bias: bool = False):
        super().__init__()
        self.stride, self.pad = stride, k // 2
        self.weight = nn.Parameter(torch.empty(c_out, c_in, k, k))
        nn.init.kaiming_normal_(self.weight, nonlinearity="relu")
        self.bias = nn.Parameter(torch.zeros(c_out)) if bias else None

    def forward(self, x: torch.Tensor, c_out: int) -> torch.Tensor:
        """Convolve ``x`` (its channel count is the active input width) to ``c_out`` maps."""
        w = self.weight[:c_out, : x.shape[1]]
        b = self.bias[:c_out] if self.bias is not None else None
        return F.conv2d(x, w, b, self.stride, self.pad)


class SlimBatchNorm(nn.Module):
    """Batch norm with shared (sliced) affine parameters and private statistics per key."""

    def __init__(self, c: int, n_keys: int, momentum: float = 0.1, eps: float = 1e-5):
        super().__init__()
        self.momentum, self.eps = momentum, eps
        self.weight = nn.Parameter(torch.ones(c))
        self.bias = nn.Parameter(torch.zeros(c))
        self.register_buffer("running_mean", torch.zeros(n_keys, c))
        self.register_buffer("running_var", torch.ones(n_keys, c))

    def forward(self, x: torch.Tensor, key: int) -> torch.Tensor:
        """Normalise ``x`` with the statistics of configuration ``key``."""
        c = x.shape[1]
        return F.batch_norm(
            x,
            self.running_mean[key, :c],
            self.running_var[key, :c],
            self.weight[:c],
            self.bias[:c],
            self.training,
            self.momentum,
            self.eps,
        )

    def folded(self, conv_w: torch.Tensor, key: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(weight, bias) of a plain conv equal to the sliced ``conv_w`` followed by this norm."""
        c = conv_w.shape[0]
        scale = self.weight[:c] / torch.sqrt(self.running_var[key, :c] + self.eps)
        bias = self.bias[:c] - self.running_mean[key, :c] * scale
        return conv_w * scale[:, None, None, None], bias


class SlimMultiTaskNet(nn.Module):
    """Shared slimmable CNN encoder and one slimmable decoder per dense task.

    The encoder has three stages of ``c, 2c, 4c`` channels (strides 1, 2, 2; ``blocks``
    convs each); each decoder has ``dec_depth`` 3x3 convs of ``d`` channels with a 2x
    bilinear upsampling between them, a 1x1 head and a final upsampling to the input size.
    ``widths`` is the set of width multipliers; :meth:`select` picks the active one for
    the encoder and for each decoder. Encoder norms keep statistics per encoder width,
    decoder norms per (encoder width, decoder width).
    """

    def __init__(
        self,
        enc_channels: int,
        enc_blocks: int,
        dec_channels: int,
        dec_depth: int,
        widths: tuple[float, ...],
        task_channels: tuple[int, ...],
        size: int = 32,
    ):
        super().__init__()
        self.widths, self.task_channels, self.size = tuple(widths), task_channels, size
        n = len(widths)
        self.enc_full, self.enc_strides = [], []
        c_in = 3
        for stage, stride in enumerate((1, 2, 2)):
            for b in range(enc_blocks):
                self.enc_full.append(enc_channels * 2**stage)
                self.enc_strides.append(stride if b == 0 else 1)
        self.enc_convs = nn.ModuleList()
        self.enc_norms = nn.ModuleList()
        for c, s in zip(self.enc_full, self.enc_strides, strict=True):
            self.enc_convs.append(SlimConv(c_in, c, 3, s))
            self.enc_norms.append(SlimBatchNorm(c, n))
            c_in = c
        self.dec_full = dec_channels
        self.dec_depth = dec_depth
        self.decoders = nn.ModuleList()
        for out in task_channels:
            dec = nn.Module()
            dec.convs = nn.ModuleList(
                [
                    SlimConv(c_in if i == 0 else dec_channels, dec_channels)
                    for i in range(dec_depth)
                ]
            )
            dec.norms = nn.ModuleList(
                [SlimBatchNorm(dec_channels, n * n) for _ in range(dec_depth)]
            )
            dec.head = SlimConv(dec_channels, out, 1, bias=True)
            self.decoders.append(dec)
        self.register_buffer("out_scale", torch.ones(len(task_channels)))
        self.register_buffer("out_shift", torch.zeros(len(task_channels)))
        self.active: tuple[int, ...] = (n - 1,) * (1 + len(task_channels))

    # -- configuration -----------------------------------------------------------------------
    def select(self, config: tuple[int, ...]) -> None:
        """Make ``config`` (width indices: encoder, then one per decoder) the active one."""
        self.active = tuple(config)

    def upsamplings(self) -> tuple[list[bool], float]:
        """Which decoder layers are followed by a 2x upsampling, and the final scale factor."""
        down = 4  # two stride-2 stages
        ups = [i < self.dec_depth - 1 and 2 ** (i + 1) <= down for i in range(self.dec_depth)]
        return ups, down / 2 ** sum(ups)

    # -- forward --------------------------------------------------------------------------------
    def encode(self, x: torch.Tensor, e: int) -> torch.Tensor:
        """Encoder features at encoder width index ``e``."""
        for conv, norm, full in zip(self.enc_convs, self.enc_norms, self.enc_full, strict=True):
            x = F.relu(norm(conv(x, channels(full, self.widths[e])), e))
        return x

    def decode(self, t: int, f: torch.Tensor, e: int, d: int) -> torch.Tensor:
        """Task ``t``'s output from features ``f`` (encoder width ``e``, decoder width ``d``)."""
        dec = self.decoders[t]
        ups, final = self.upsamplings()
        key = e * len(self.widths) + d
        x = f
        for conv, norm, up in zip(dec.convs, dec.norms, ups, strict=True):
            x = F.relu(norm(conv(x, channels(self.dec_full, self.widths[d])), key))
            if up:
                x = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)
        x = dec.head(x, self.task_channels[t])
        if final != 1:
            x = F.interpolate(x, scale_factor=final, mode="bilinear", align_corners=False)
        return x * self.out_scale[t] + self.out_shift[t]

    def run(self, x: torch.Tensor, config: tuple[int, ...]) -> tuple[torch.Tensor, list]:
        """Encoder features and all task outputs of width configuration ``config``."""
        f = self.encode(x, config[0])
        return f, [self.decode(t, f, config[0], d) for t, d in enumerate(config[1:])]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Outputs of the active configuration (segmentation logits, depth map)."""
        _, outs = self.run(x, self.active)
        return tuple(o[:, 0] if o.shape[1] == 1 else o for o in outs)


class PlainMultiTaskNet(nn.Module):
    """A materialised sub-network: ordinary convs (batch norm folded in), no slicing."""

    def __init__(self, encoder: nn.Sequential, decoders: list[nn.Sequential]):
        super().__init__()
        self.encoder = encoder
        self.decoders = nn.ModuleList(decoders)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Outputs of every task (single-channel outputs squeezed)."""
        f = self.encoder(x)
        outs = [dec(f) for dec in self.decoders]
        return tuple(o[:, 0] if o.shape[1] == 1 else o for o in outs)


def _plain_conv(weight: torch.Tensor, bias: torch.Tensor, stride: int) -> nn.Conv2d:
    c_out, c_in, k, _ = weight.shape
    conv = nn.Conv2d(c_in, c_out, k, stride, k // 2)
    with torch.no_grad():
        conv.weight.copy_(weight)
        conv.bias.copy_(bias)
    return conv


@torch.no_grad()
def materialise(net: SlimMultiTaskNet, config: tuple[int, ...]) -> PlainMultiTaskNet:
    """Copy sub-network ``config``'s sliced weights into a plain module (eval-mode norms)."""
    e = config[0]
    layers: list[nn.Module] = []
    c_in = 3
    for conv, norm, full, s in zip(
        net.enc_convs, net.enc_norms, net.enc_full, net.enc_strides, strict=True
    ):
        c = channels(full, net.widths[e])
        w, b = norm.folded(conv.weight[:c, :c_in], e)
        layers += [_plain_conv(w, b, s), nn.ReLU()]
        c_in = c
    decoders = []
    ups, final = net.upsamplings()
    for t, d in enumerate(config[1:]):
        dec, key = net.decoders[t], e * len(net.widths) + d
        mods: list[nn.Module] = []
        ci = c_in
        for conv, norm, up in zip(dec.convs, dec.norms, ups, strict=True):
            c = channels(net.dec_full, net.widths[d])
            w, b = norm.folded(conv.weight[:c, :ci], key)
            mods += [_plain_conv(w, b, 1), nn.ReLU()]
            if up:
                mods.append(nn.Upsample(scale_factor=2.0, mode="bilinear", align_corners=False))
            ci = c
        scale, shift = net.out_scale[t], net.out_shift[t]
        head_w = dec.head.weight[:, :ci] * scale
        mods.append(_plain_conv(head_w, dec.head.bias * scale + shift, 1))
        if final != 1:
            mods.append(nn.Upsample(scale_factor=final, mode="bilinear", align_corners=False))
        decoders.append(nn.Sequential(*mods))
    return PlainMultiTaskNet(nn.Sequential(*layers), decoders).eval()


def conv_macs(module: nn.Module, input_shape: tuple[int, ...]) -> int:
    """Multiply-accumulates per sample of the convolutions and linear layers of ``module``."""
    total = 0

    def hook(mod: nn.Module, inp: tuple, out: torch.Tensor) -> None:
        nonlocal total
        if isinstance(mod, nn.Conv2d):
            k = math.prod(mod.kernel_size) * mod.in_channels // mod.groups
            total += out[0].numel() * k
        elif isinstance(mod, nn.Linear):
            total += out[0].numel() * mod.in_features

    handles = [
        m.register_forward_hook(hook)
        for m in module.modules()
        if isinstance(m, nn.Conv2d | nn.Linear)
    ]
    try:
        with torch.no_grad():
            module.eval()(torch.zeros(1, *input_shape))
    finally:
        for h in handles:
            h.remove()
    return total
