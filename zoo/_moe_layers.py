"""Modules of zoo:moe: experts, gates and the four multi-task models.

- shared-bottom: one shared MLP, one tower per task (the classic baseline);
- MMoE (Ma et al., KDD 2018): shared ReLU experts, one gate per task, towers;
- HoME (Wang et al., Kuaishou 2024, arXiv 2408.05430): normalised Swish experts, a two-level
  hierarchy (global / task-group / task-specific experts), feature-gates and self-gates;
- TaskExpert (Ye & Xu, ICCV 2023, arXiv 2307.15324): experts decomposing each backbone
  layer's feature, per-task per-sample gates and a multi-task feature memory read as an
  extra expert and written at every layer.

Every model maps ``x`` to one output tensor per task. ``run(x, trace)`` also records expert
activations and per-task gate weights for the utilisation statistics.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from nas.compile import count_params

__all__ = ["GATES", "VARIANTS", "ConvBottom", "MoEModel", "build_model", "utilisation"]

GATES = ("softmax", "topk", "sigmoid")
VARIANTS = ("shared_bottom", "mmoe", "home", "taskexpert")
TOPK = 2  # experts kept by the noisy top-k gate (Shazeer et al. 2017), masked densely
Trace = dict[str, Any] | None


class ConvBottom(nn.Module):
    """A small conv stem for 3x28x28 three-digit images -> 432 features.

    The same three conv-BN-ReLU-maxpool stages (8, 16, 16 channels) read each colour
    channel (each holds one digit) on its own; the three 16x3x3 maps are concatenated.
    """

    out_features = 3 * 16 * 3 * 3

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for c_in, c_out in ((1, 8), (8, 16), (16, 16)):
            layers += [nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU()]
            layers.append(nn.MaxPool2d(2))
        self.stem = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, 28, 28) -> (B, 432)."""
        per_digit = self.stem(x.reshape(-1, 1, 28, 28))  # (3B, 16, 3, 3)
        return per_digit.reshape(-1, self.out_features)


class ExpertBank(nn.Module):
    """``n`` MLP experts run as one batched matmul: ``depth`` x (linear, norm, activation).

    ``kind``: ``relu`` (MMoE, shared-bottom), ``bn_swish`` (HoME's expert normalisation:
    Swish(BN(linear)), BN per expert and unit), ``ln_gelu`` (TaskExpert: linear, LayerNorm,
    GELU). Input (B, d) shared by all experts or (n, B, d), one view per expert; output
    (n, B, width), expert-major.
    """

    def __init__(self, n: int, d_in: int, width: int, depth: int, kind: str = "relu") -> None:
        super().__init__()
        self.n, self.width, self.kind = n, width, kind
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        self.norms = nn.ModuleList()
        for i in range(depth):
            fan_in = d_in if i == 0 else width
            bound = 1 / math.sqrt(fan_in)  # nn.Linear's default initialisation
            self.weights.append(
                nn.Parameter(torch.empty(n, fan_in, width).uniform_(-bound, bound))
            )
            self.biases.append(nn.Parameter(torch.empty(n, 1, width).uniform_(-bound, bound)))
            if kind == "bn_swish":
                self.norms.append(nn.BatchNorm1d(n * width))
            elif kind == "ln_gelu":
                self.norms.append(_ExpertLayerNorm(n, width))
            else:
                self.norms.append(nn.Identity())

    def forward(self, x: torch.Tensor, trace: Trace = None) -> torch.Tensor:
        """(n, B, width) outputs; each layer's activations are recorded in ``trace['acts']``."""
        h = x.unsqueeze(0) if x.dim() == 2 else x
        for w, b, norm in zip(self.weights, self.biases, self.norms, strict=True):
            h = torch.matmul(h, w) + b
            if self.kind == "bn_swish":  # (n, B, w) -> (B, n*w): one BN channel per unit
                flat = norm(h.transpose(0, 1).reshape(-1, self.n * self.width))
                h = F.silu(flat.reshape(-1, self.n, self.width).transpose(0, 1))
            elif self.kind == "ln_gelu":
                h = F.gelu(norm(h))
            else:
                h = F.relu(h)
            if trace is not None:
                trace["acts"].append(h.detach().transpose(0, 1).reshape(h.shape[1], -1))
        return h


class _ExpertLayerNorm(nn.Module):
    """LayerNorm over each expert's units, with a separate affine map per expert."""

    def __init__(self, n: int, width: int) -> None:
        super().__init__()
        self.shape = (width,)
        self.weight = nn.Parameter(torch.ones(n, 1, width))
        self.bias = nn.Parameter(torch.zeros(n, 1, width))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """Normalised (n, B, width)."""
        return F.layer_norm(h, self.shape) * self.weight + self.bias


class Gate(nn.Module):
    """Mixture weights over ``n`` experts: softmax, noisy top-k (dense mask) or sigmoid."""

    def __init__(self, d_in: int, n: int, kind: str = "softmax") -> None:
        super().__init__()
        self.kind, self.n = kind, n
        self.lin = nn.Linear(d_in, n)
        self.noise = nn.Linear(d_in, n) if kind == "topk" else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, n) non-negative weights summing to 1."""
        logits = self.lin(x)
        if self.kind == "sigmoid":
            s = torch.sigmoid(logits)
            return s / s.sum(-1, keepdim=True)
        if self.noise is not None:
            if self.training:  # tunable Gaussian noise, as in noisy top-k gating
                logits = logits + torch.randn_like(logits) * F.softplus(self.noise(x))
            if self.n > TOPK:  # keep the k largest: a dense -1e9 mask (exports as TopK+Where)
                kth = torch.topk(logits, TOPK, dim=-1).values[:, -1:]
                logits = logits.masked_fill(logits < kth, -1e9)
        return torch.softmax(logits, dim=-1)


def mix(weights: torch.Tensor, outputs: list[torch.Tensor]) -> torch.Tensor:
    """Sum of expert outputs (a list of (n_i, B, w) banks) weighted by (B, sum n_i) gates."""
    stacked = torch.cat(outputs, dim=0) if len(outputs) > 1 else outputs[0]
    return (weights.t().unsqueeze(-1) * stacked).sum(dim=0)


def _tower(width: int, hidden: int, n_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(width, hidden), nn.ReLU(), nn.Linear(hidden, n_out))


class MoEModel(nn.Module):
    """Input bottom -> multi-task mixing core -> one tower per task."""

    def __init__(self, bottom: nn.Module, feat: int, tower: int, n_outs: list[int]) -> None:
        super().__init__()
        self.bottom = bottom
        self.towers = nn.ModuleList(_tower(feat, tower, n) for n in n_outs)
        self.n_tasks = len(n_outs)

    def core(self, v: torch.Tensor, trace: Trace) -> list[torch.Tensor]:
        """One feature per task (the towers' inputs); subclasses implement it."""
        raise NotImplementedError

    def run(self, x: torch.Tensor, trace: Trace = None) -> list[torch.Tensor]:
        """Per-task outputs, recording activations and gates into ``trace`` when given."""
        feats = self.core(self.bottom(x), trace)
        return [tower(f) for tower, f in zip(self.towers, feats, strict=True)]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Per-task outputs: (B, 1) regressions or (B, classes) logits."""
        return tuple(self.run(x))


def _gate(trace: Trace, task: int, g: torch.Tensor) -> None:
    if trace is not None:
        trace["gates"].setdefault(task, []).append(g.detach())


class SharedBottom(MoEModel):
    """One shared MLP feeding every tower (Caruana 1997), sized to a given cost."""

    def __init__(self, bottom: nn.Module, d: int, cfg: dict, n_outs: list[int]) -> None:
        width = cfg["sb_width"]
        super().__init__(bottom, width, cfg["tower_width"], n_outs)
        self.shared = ExpertBank(1, d, width, cfg["expert_depth"], "relu")

    def core(self, v: torch.Tensor, trace: Trace) -> list[torch.Tensor]:
        h = self.shared(v, trace)[0]
        return [h] * self.n_tasks


class MMoE(MoEModel):
    """Multi-gate mixture of experts: shared experts, one gate per task (Ma et al. 2018)."""

    def __init__(self, bottom: nn.Module, d: int, cfg: dict, n_outs: list[int]) -> None:
        w, n = cfg["expert_width"], cfg["shared_experts"]
        super().__init__(bottom, w, cfg["tower_width"], n_outs)
        self.experts = ExpertBank(n, d, w, cfg["expert_depth"], "relu")
        self.gates = nn.ModuleList(Gate(d, n, cfg["gate"]) for _ in n_outs)

    def core(self, v: torch.Tensor, trace: Trace) -> list[torch.Tensor]:
        outs = self.experts(v, trace)
        feats = []
        for t, gate in enumerate(self.gates):
            g = gate(v)
            _gate(trace, t, g)
            feats.append(mix(g, [outs]))
        return feats


class FeatureGates(nn.Module):
    """HoME's feature-gates for ``n`` experts: v * 2 sigmoid(v A_i B_i), low-rank A_i B_i.

    The gate multiplies the input (the paper's form); B starts at zero, so each expert
    starts from v itself. Output (n, B, d): one private view of the input per expert.
    """

    def __init__(self, n: int, d: int, rank: int) -> None:
        super().__init__()
        self.a = nn.Parameter(torch.randn(n, d, rank) / math.sqrt(d))
        self.b = nn.Parameter(torch.zeros(n, rank, d))

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        """Each expert's gated input."""
        logits = torch.matmul(torch.matmul(v.unsqueeze(0), self.a), self.b)
        return v.unsqueeze(0) * 2 * torch.sigmoid(logits)


class HoMEExperts(nn.Module):
    """A bank of normalised Swish experts, with feature-gates on the input when rank > 0."""

    def __init__(self, n: int, d: int, w: int, depth: int, rank: int) -> None:
        super().__init__()
        self.fgate = FeatureGates(n, d, rank) if rank > 0 else None
        self.mlp = ExpertBank(n, d, w, depth, "bn_swish")

    def forward(self, v: torch.Tensor, trace: Trace = None) -> torch.Tensor:
        """(n, B, w): Swish(BN(MLP(feature-gated v)))."""
        return self.mlp(self.fgate(v) if self.fgate is not None else v, trace)


class HoME(MoEModel):
    """Hierarchy of multi-gate experts (two gate levels, hierarchy mask, self-gates)."""

    def __init__(self, bottom: nn.Module, d: int, cfg: dict, n_outs: list[int]) -> None:
        w, depth, kind = cfg["expert_width"], cfg["expert_depth"], cfg["gate"]
        ns, ng, nt = cfg["shared_experts"], cfg["group_experts"], cfg["task_experts"]
        super().__init__(bottom, w, cfg["tower_width"], n_outs)
        self.groups = list(cfg["task_groups"])
        n_groups, rank = max(self.groups) + 1, cfg["lora_rank"]
        # Level 1 (meta layer): global-shared and per-group experts on the raw input.
        self.meta_shared = HoMEExperts(ns, d, w, depth, rank)
        self.meta_group = nn.ModuleList(
            HoMEExperts(ng, d, w, depth, rank) for _ in range(n_groups)
        )
        self.meta_gate_shared = Gate(d, ns + n_groups * ng, kind)
        self.meta_gate_group = nn.ModuleList(Gate(d, ns + ng, kind) for _ in range(n_groups))
        # Level 2 (task layer): global on z_shared; group and task-specific on z_group.
        self.task_shared = HoMEExperts(ns, w, w, depth, 0)
        self.task_group = nn.ModuleList(HoMEExperts(ng, w, w, depth, 0) for _ in range(n_groups))
        self.task_specific = nn.ModuleList(HoMEExperts(nt, w, w, depth, 0) for _ in n_outs)
        self.task_gate = nn.ModuleList(Gate(2 * w, ns + ng + nt, kind) for _ in n_outs)
        self.self_gate = (
            nn.ModuleList(nn.Linear(2 * w, nt) for _ in n_outs) if cfg["self_gate"] else None
        )

    def core(self, v: torch.Tensor, trace: Trace) -> list[torch.Tensor]:
        shared = self.meta_shared(v, trace)
        group = [g(v, trace) for g in self.meta_group]
        z_shared = mix(self.meta_gate_shared(v), [shared, *group])
        z_group = [mix(gate(v), [shared, group[k]]) for k, gate in enumerate(self.meta_gate_group)]
        global_out = self.task_shared(z_shared, trace)
        group_out = [e(z, trace) for e, z in zip(self.task_group, z_group, strict=True)]
        feats = []
        for t, k in enumerate(self.groups):
            specific = self.task_specific[t](z_group[k], trace)
            gin = torch.cat([z_shared, z_group[k]], dim=-1)
            g = self.task_gate[t](gin)  # the mask: only this task's allowed experts compete
            _gate(trace, t, g)
            f = mix(g, [global_out, group_out[k], specific])
            if self.self_gate is not None:  # residual path over the task's own experts
                logits = self.self_gate[t](gin)
                sg = torch.sigmoid(logits) if specific.shape[0] == 1 else torch.softmax(logits, -1)
                f = f + mix(sg, [specific])
            feats.append(f)
        return feats


class TaskExpert(MoEModel):
    """Memorial MoE after each backbone layer; the task memories feed the towers."""

    def __init__(self, bottom: nn.Module, d: int, cfg: dict, n_outs: list[int]) -> None:
        w, n, layers = cfg["expert_width"], cfg["shared_experts"], cfg["te_layers"]
        super().__init__(bottom, w, cfg["tower_width"], n_outs)
        self.backbone = nn.ModuleList(
            nn.Sequential(nn.Linear(d if i == 0 else w, w), nn.GELU()) for i in range(layers)
        )
        self.experts = nn.ModuleList(
            ExpertBank(n, w, w, cfg["expert_depth"], "ln_gelu") for _ in range(layers)
        )
        # One gate per layer and task over the N experts plus the memory slot.
        self.gates = nn.ModuleList(
            nn.ModuleList(Gate(w, n + 1, cfg["gate"]) for _ in n_outs) for _ in range(layers)
        )
        self.memory0 = nn.Parameter(torch.zeros(len(n_outs), 1, 1, w))  # initial memory

    def core(self, v: torch.Tensor, trace: Trace) -> list[torch.Tensor]:
        x = v
        memory = [self.memory0[t].expand(-1, v.shape[0], -1) for t in range(self.n_tasks)]
        for block, experts, gates in zip(self.backbone, self.experts, self.gates, strict=True):
            x = block(x)
            outs = experts(x, trace)
            for t, gate in enumerate(gates):
                g = gate(x)  # per-task, per-sample gate on the backbone feature
                _gate(trace, t, g)
                memory[t] = mix(g, [outs, memory[t]]).unsqueeze(0)  # read, then write
        return [m[0] for m in memory]


_MODELS: dict[str, type[MoEModel]] = {
    "shared_bottom": SharedBottom,
    "mmoe": MMoE,
    "home": HoME,
    "taskexpert": TaskExpert,
}


def _sb_params(width: int, d: int, cfg: dict, n_outs: list[int]) -> int:
    depth, tw = cfg["expert_depth"], cfg["tower_width"]
    body = d * width + width + (depth - 1) * (width * width + width)
    return body + sum(width * tw + tw + tw * n + n for n in n_outs)


def equal_cost_width(cfg: dict, d: int, n_outs: list[int]) -> int:
    """The shared-bottom width whose parameters match variant ``cfg['sb_match']``'s.

    Mixtures here are dense (every expert runs), so equal parameters is also about equal
    multiply-adds; the input bottom is the same for all variants and is left out.
    """
    target = count_params(_MODELS[cfg["sb_match"]](nn.Identity(), d, cfg, n_outs))
    best = min(range(1, 4097), key=lambda w: abs(_sb_params(w, d, cfg, n_outs) - target))
    return best


def build_model(cfg: dict, d: int, n_outs: list[int], image: bool) -> MoEModel:
    """The model of variant ``cfg['variant']`` on ``d`` input features (after the bottom)."""
    cfg = dict(cfg)
    if cfg["variant"] == "shared_bottom":
        cfg["sb_width"] = equal_cost_width(cfg, d, n_outs)
    bottom = ConvBottom() if image else nn.Identity()
    return _MODELS[cfg["variant"]](bottom, d, cfg, n_outs)


@torch.no_grad()
def utilisation(model: MoEModel, x: torch.Tensor, names: list[str]) -> dict[str, Any]:
    """Expert-utilisation statistics on ``x`` (eval mode).

    ``expert_zero_share``: share of expert activations that are exactly zero;
    ``expert_dead_units``: share of expert units that are zero on every sample;
    ``gate_entropy``: per task, mean gate entropy divided by log(#experts), in [0, 1];
    ``gate_usage``: per task, the mean weight of each slot of its (last) gate.
    """
    model.eval()
    trace: dict[str, Any] = {"acts": [], "gates": {}}
    model.run(x, trace)
    zeros = sum(int((a == 0).sum()) for a in trace["acts"])
    total = sum(a.numel() for a in trace["acts"])
    dead = sum(int((a == 0).all(dim=0).sum()) for a in trace["acts"])
    units = sum(a.shape[1] for a in trace["acts"])
    entropy, usage = {}, {}
    for t, gates in sorted(trace["gates"].items()):
        values = []
        for g in gates:
            h = -(g * torch.log(g.clamp_min(1e-12))).sum(-1).mean()
            values.append(float(h) / math.log(g.shape[1]) if g.shape[1] > 1 else 0.0)
        entropy[names[t]] = round(sum(values) / len(values), 4)
        usage[names[t]] = [round(float(u), 4) for u in gates[-1].mean(0)]
    return {
        "expert_zero_share": round(zeros / max(1, total), 4),
        "expert_dead_units": round(dead / max(1, units), 4),
        "gate_entropy": entropy,
        "gate_usage": usage,
    }
