"""Pointer Networks (Vinyals, Fortunato & Jaitly, NeurIPS 2015): sorting and convex hull.

An encoder LSTM reads the input items; a decoder LSTM, fed the item it pointed to last (a
learned "go" vector first), scores every input position with content attention, and the
softmax over positions *is* the output distribution: ``u_j = v^T tanh(W1 e_j + W2 d_i)``
(additive), a scaled dot product, or additive with one glimpse (Vinyals et al., "Order
Matters", 2016). Positions already chosen and padding are masked with -1e9 before the
softmax. Training uses teacher forcing; inference and export decode greedily for a fixed
number of steps inside the graph (ArgMax, one-hot feedback), with -1 after the end.
An optional task hint (Awasthi & Gupta, 2023) adds an auxiliary successor-pointing loss.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from nas.zoo._fit import FitConfig, check_options, minibatches, run_epochs
from nas.zoo._registry import Family, TaskInfo, ZooResult, register_family
from torch import nn
from torch.nn import functional as F

from nas.data.cache import cached
from nas.data.puzzles import (
    IGNORE,
    convex_polygon_area,
    hull_problems,
    pointer_successors,
    sort_problems,
)
from nas.exceptions import ConfigurationError

__all__ = ["PointerAttention", "PointerNet", "PtrNetFamily"]

ATTENTIONS = ("additive", "dot", "glimpse")
NEG = -1e9
# task -> (item dimension, end-of-sequence pointer, train lengths, test length, eval lengths)
TASKS = {
    "sort": (1, False, (5, 10), 10, (5, 10, 15, 20)),
    "hull": (2, True, (5, 10), 10, (5, 10, 15, 20)),
}
# size -> (train, valid, test per evaluation length); the hull's labels cost a scipy call
# per sample, so its training sets are half as large.
SIZES = {"small": (32_000, 500, 1_000), "medium": (128_000, 2_000, 2_000)}
SIZES["full"] = (512_000, 5_000, 5_000)


class PointerAttention(nn.Module):
    """Content attention over ``P`` keys used as a pointer (masked scores, not weights)."""

    def __init__(self, hidden: int, kind: str = "additive") -> None:
        super().__init__()
        self.kind, self.scale = kind, 1.0 / math.sqrt(hidden)
        self.w_key = nn.Linear(hidden, hidden, bias=False)
        self.w_query = nn.Linear(hidden, hidden)
        self.v = nn.Linear(hidden, 1, bias=False)
        if kind == "glimpse":
            self.g_key = nn.Linear(hidden, hidden, bias=False)
            self.g_query = nn.Linear(hidden, hidden)
            self.g_v = nn.Linear(hidden, 1, bias=False)

    def prepare(self, keys: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Query-independent projections of the keys (B, P, H), computed once per input."""
        if self.kind == "glimpse":
            return keys, self.w_key(keys), self.g_key(keys)
        return keys, self.w_key(keys)

    def _additive(self, kp: torch.Tensor, q: torch.Tensor, wq: nn.Linear, v: nn.Linear):
        return v(torch.tanh(kp.unsqueeze(1) + wq(q).unsqueeze(2))).squeeze(-1)

    def forward(
        self, prep: tuple[torch.Tensor, ...], query: torch.Tensor, allowed: torch.Tensor
    ) -> torch.Tensor:
        """Scores (B, Q, P) of queries (B, Q, H); disallowed positions get exactly -1e9."""
        if self.kind == "dot":
            u = torch.matmul(self.w_query(query), prep[1].transpose(1, 2)) * self.scale
        elif self.kind == "additive":
            u = self._additive(prep[1], query, self.w_query, self.v)
        else:
            g = self._additive(prep[2], query, self.g_query, self.g_v)
            g = torch.softmax(torch.where(allowed, g, NEG), dim=-1)
            u = self._additive(prep[1], torch.matmul(g, prep[0]), self.w_query, self.v)
        return torch.where(allowed, u, NEG)


class PointerNet(nn.Module):
    """Ptr-Net over ``N`` items of dimension ``d_in`` (padding masked out).

    ``forward(x, mask)`` decodes greedily for ``N`` steps (``N + 1`` with an end pointer)
    and returns ``pointers`` (B, S) int64, indices into the items and -1 after the end,
    and the masked ``scores`` (B, S, P) of every step, with ``P = N (+1)``.

    Example:
        >>> net = PointerNet(d_in=1, hidden=16)
        >>> ptr, scores = net(torch.rand(2, 5, 1), torch.ones(2, 5, dtype=torch.bool))
        >>> sorted(ptr[0].tolist()), tuple(scores.shape)
        ([0, 1, 2, 3, 4], (2, 5, 5))
    """

    def __init__(
        self,
        d_in: int,
        hidden: int = 128,
        layers: int = 1,
        attention: str = "additive",
        eos: bool = False,
        init_scale: float = 0.08,
    ) -> None:
        super().__init__()
        self.eos, self.hidden = eos, hidden
        self.embed = nn.Linear(d_in, hidden)
        self.encoder = nn.ModuleList(nn.LSTMCell(hidden, hidden) for _ in range(layers))
        self.decoder = nn.ModuleList(nn.LSTMCell(hidden, hidden) for _ in range(layers))
        self.go = nn.Parameter(torch.zeros(hidden))
        self.end_key = nn.Parameter(torch.zeros(hidden)) if eos else None
        self.attention = PointerAttention(hidden, attention)
        for p in self.parameters():  # the paper's uniform initialisation
            nn.init.uniform_(p, -init_scale, init_scale)

    def encode(self, x: torch.Tensor, mask: torch.Tensor):
        """Keys (B, P, H), fed-back item vectors (B, P, H), allowed positions and state.

        Over padding the LSTM state is carried unchanged, so the decoder starts from the
        state after the last real item whatever the padded width.
        """
        items = self.embed(x * 2.0 - 1.0)  # inputs in [0, 1] -> [-1, 1]
        b = x.shape[0]
        h = [items.new_zeros(b, self.hidden) for _ in self.encoder]
        c = [items.new_zeros(b, self.hidden) for _ in self.encoder]
        outs = []
        for t in range(x.shape[1]):
            inp, keep = items[:, t], mask[:, t : t + 1]
            for i, cell in enumerate(self.encoder):
                hn, cn = cell(inp, (h[i], c[i]))
                h[i], c[i] = torch.where(keep, hn, h[i]), torch.where(keep, cn, c[i])
                inp = h[i]
            outs.append(inp)
        keys = torch.stack(outs, dim=1)
        valid = mask
        if self.end_key is not None:  # position 0 is end-of-sequence
            keys = torch.cat([self.end_key.expand(b, 1, -1), keys], dim=1)
            items = torch.cat([items.new_zeros(b, 1, self.hidden), items], dim=1)
            valid = torch.cat([mask.new_ones(b, 1), mask], dim=1)
        return keys, items, valid, (h, c)

    def _step(self, inp: torch.Tensor, state: tuple[list, list]) -> torch.Tensor:
        h, c = state
        for i, cell in enumerate(self.decoder):
            h[i], c[i] = cell(inp, (h[i], c[i]))
            inp = h[i]
        return inp

    def teacher_forced(
        self, x: torch.Tensor, mask: torch.Tensor, target: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Training scores (B, S, P) for ``target`` pointers (-1 padded), and the keys."""
        keys, items, valid, state = self.encode(x, mask)
        prep = self.attention.prepare(keys)
        pos = torch.arange(keys.shape[1], device=x.device)
        chosen = torch.zeros_like(valid)
        inp, scores = self.go.expand(x.shape[0], -1), []
        for i in range(target.shape[1]):
            d = self._step(inp, state)
            allowed = valid & ~chosen
            scores.append(self.attention(prep, d.unsqueeze(1), allowed.unsqueeze(1)).squeeze(1))
            hit = target[:, i : i + 1] == pos
            chosen = chosen | (hit & (pos > 0) if self.eos else hit)
            inp = torch.matmul(hit.unsqueeze(1).to(items.dtype), items).squeeze(1)
        return torch.stack(scores, dim=1), keys

    def successor_scores(self, keys: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Task hint: every item points to its successor (B, N, P), itself masked."""
        items = keys[:, 1:] if self.eos else keys
        n, p = items.shape[1], keys.shape[1]
        offset = 1 if self.eos else 0
        valid = torch.cat([mask.new_ones(mask.shape[0], 1), mask], 1) if self.eos else mask
        not_self = torch.arange(n).unsqueeze(1) + offset != torch.arange(p)
        allowed = valid.unsqueeze(1) & not_self
        return self.attention(self.attention.prepare(keys), items, allowed)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Greedy decoding for a fixed number of steps: pointers and scores."""
        keys, items, valid, state = self.encode(x, mask)
        prep = self.attention.prepare(keys)
        pos = torch.arange(keys.shape[1], device=x.device)
        offset = 1 if self.eos else 0
        lengths = mask.sum(dim=1)
        chosen = torch.zeros_like(valid)
        done = torch.zeros_like(valid[:, 0])
        inp, scores, pointers = self.go.expand(x.shape[0], -1), [], []
        for i in range(x.shape[1] + offset):
            d = self._step(inp, state)
            s = self.attention(prep, d.unsqueeze(1), (valid & ~chosen).unsqueeze(1)).squeeze(1)
            idx = s.argmax(dim=-1)
            if self.eos:
                active = ~done
                done = done | (idx == 0)
            else:
                active = lengths > i
            pointers.append(torch.where(active, idx - offset, torch.full_like(idx, -1)))
            scores.append(s)
            hit = idx.unsqueeze(1) == pos
            chosen = chosen | (hit & (pos > 0) if self.eos else hit)
            inp = torch.matmul(hit.unsqueeze(1).to(items.dtype), items).squeeze(1)
        return torch.stack(pointers, dim=1), torch.stack(scores, dim=1)


def _generate(task: str, count: int, lengths: tuple[int, int], width: int, seed: int):
    _, eos, *_ = TASKS[task]
    make = hull_problems if eos else sort_problems
    data = make(count, lengths, width, seed=seed)
    data["succ"] = pointer_successors(data["target"], data["n"], width, eos)
    return data


def _tensors(arrays: dict[str, np.ndarray], prefix: str) -> dict[str, torch.Tensor]:
    return {
        k[len(prefix) :]: torch.from_numpy(v) for k, v in arrays.items() if k.startswith(prefix)
    }


def _metrics(task: str, ptr: torch.Tensor, split: dict[str, torch.Tensor]) -> dict[str, float]:
    """sort: exact sequences and per-position accuracy; hull: area coverage, exact, valid."""
    if task == "sort":
        target, mask = split["target"], split["mask"]
        ptr = ptr[:, : target.shape[1]]
        right = (ptr == target) | ~mask
        token = float(((ptr == target) & mask).sum()) / float(mask.sum())
        return {"exact": float(right.all(dim=1).float().mean()), "token": token}
    x, target, area = split["x"].double().numpy(), split["target"], split["area"].numpy()
    cover, exact, valid = [], [], []
    for k, row in enumerate(ptr.numpy()):
        seq = row[: np.argmax(row < 0)] if (row < 0).any() else row
        true = target[k][target[k] > 0].numpy() - 1
        poly = convex_polygon_area(x[k][seq])
        cover.append(poly / area[k])
        valid.append(poly > 0)
        exact.append(len(seq) == len(true) and bool((seq == true).all()))
    return {
        "area_coverage": float(np.mean(cover)),
        "exact": float(np.mean(exact)),
        "valid_polygon": float(np.mean(valid)),
    }


@register_family
class PtrNetFamily(Family):
    """Pointer network: encoder LSTM, decoder LSTM, attention as a pointer over the inputs."""

    name = "ptrnet"
    train_seconds = 40.0  # default config, default epochs, 2-core CPU (bench/zoo.py)
    summary = "pointer network (LSTM encoder/decoder, attention as pointer): sort, convex hull"
    paper = "Vinyals, Fortunato & Jaitly, Pointer Networks, NeurIPS 2015"
    tasks = (
        TaskInfo("sort", "sort n~U[5,10] numbers, test n=10 (and 5-20)", "exact"),
        TaskInfo("hull", "planar convex hull of n~U[5,10] points, test n=10", "area_coverage"),
    )
    hyperparams = {
        "hidden": 128,
        "layers": 1,
        "attention": "additive",
        "aux_weight": 0.0,
        "lr": 2e-3,
        "batch_size": 128,
        "epochs": 3,
        "grad_clip": 2.0,
        "grad_noise": 0.0,  # annealed gradient noise eta (Neelakantan et al. 2015)
    }
    searched = ("hidden", "layers", "attention")
    input_names = ("x", "mask")
    output_names = ("pointers", "scores")

    def validate(self, config: dict[str, Any]) -> None:
        """Reject an unknown attention and out-of-range sizes and rates with one line."""
        check_options(grad_noise=config["grad_noise"])
        if config["attention"] not in ATTENTIONS:
            raise ConfigurationError(
                f"attention must be one of {', '.join(ATTENTIONS)}, "
                f"but got attention={config['attention']!r}."
            )
        for key in ("hidden", "layers", "batch_size", "epochs"):
            if config[key] < 1:
                raise ConfigurationError(f"{key} must be >= 1, but got {key}={config[key]}.")
        if not config["lr"] > 0 or config["aux_weight"] < 0 or config["grad_clip"] < 0:
            raise ConfigurationError(
                "lr must be > 0 and aux_weight, grad_clip >= 0, but got "
                f"lr={config['lr']}, aux_weight={config['aux_weight']}, "
                f"grad_clip={config['grad_clip']}."
            )

    def make_data(self, task: str, size: str = "small", seed: int = 0) -> dict[str, Any]:
        """Train at the task's length range, valid/test at its test length, and one test
        set per evaluation length (cached: the hull labels come from scipy per sample)."""
        name = self.task(task).name
        _, eos, train_len, test_len, eval_lens = TASKS[name]
        if size not in SIZES:
            raise ConfigurationError(f"size must be one of {', '.join(SIZES)}, got {size!r}.")
        n_train, n_valid, n_test = SIZES[size]
        n_train //= 2 if eos else 1

        def generate() -> dict[str, np.ndarray]:
            parts = {"train": (n_train, train_len), "valid": (n_valid, (test_len, test_len))}
            parts.update({f"n{n}": (n_test, (n, n)) for n in eval_lens})
            out = {}
            for i, (split, (count, lens)) in enumerate(parts.items()):
                for k, v in _generate(name, count, lens, lens[1], seed * 101 + i).items():
                    out[f"{split}/{k}"] = v
            return out

        arrays, _ = cached(f"zoo-ptrnet-{name}", size, seed, "2", generate)
        data: dict[str, Any] = {"task": name, "eos": eos, "d": TASKS[name][0]}
        for split in ("train", "valid"):
            data[split] = _tensors(arrays, f"{split}/")
        data["lengths"] = {n: _tensors(arrays, f"n{n}/") for n in eval_lens}
        data["test"] = data["lengths"][test_len]
        return data

    def build(self, config: dict[str, Any], data: Any) -> nn.Module:
        """The Ptr-Net for the task's item dimension (end pointer for the hull)."""
        keys = ("hidden", "layers", "attention")
        return PointerNet(data["d"], eos=data["eos"], **{k: config[k] for k in keys})

    def _evaluate(self, model: nn.Module, task: str, split: dict) -> dict[str, float]:
        with torch.no_grad():
            ptr, _ = model(split["x"], split["mask"])
        return _metrics(task, ptr, split)

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
        """Teacher-forced cross-entropy over the pointer steps (+ the optional task hint)."""
        train, task, aux = data["train"], data["task"], config["aux_weight"]
        cfg = FitConfig(
            epochs=epochs or config["epochs"],
            lr=config["lr"],
            time_budget_s=time_budget_s,
            grad_clip=config["grad_clip"] or None,
            task_weights=[1.0, aux] if aux > 0 else None,
            grad_noise=config["grad_noise"],
        )

        def loss_fn(m: nn.Module, idx: torch.Tensor):
            x, mask, target = train["x"][idx], train["mask"][idx], train["target"][idx]
            width = int(mask.sum(dim=1).max())  # trim the batch's padding
            x, mask = x[:, :width], mask[:, :width]
            target = target[:, : width + int(data["eos"])]
            scores, keys = m.teacher_forced(x, mask, target)
            loss = F.cross_entropy(scores.flatten(0, 1), target.flatten(), ignore_index=IGNORE)
            if aux <= 0:
                return loss
            succ = m.successor_scores(keys, mask)
            hint = F.cross_entropy(
                succ.flatten(0, 1), train["succ"][idx][:, :width].flatten(), ignore_index=IGNORE
            )
            return [loss, hint]

        log = run_epochs(
            model,
            lambda e: minibatches(len(train["x"]), config["batch_size"], e, seed),
            loss_fn,
            cfg,
            evaluate=lambda: self._evaluate(model, task, data["valid"]),
            on_epoch=on_epoch,
            n_tasks=2 if aux > 0 else 1,
            seed=seed,
        )
        metric = self.task(task).metric
        by_length = {
            n: round(self._evaluate(model, task, split)[metric], 4)
            for n, split in data["lengths"].items()
        }
        extra = {
            "train_lengths": list(TASKS[task][2]),
            f"{metric}_by_length": by_length,
            "baseline_by_length": {
                n: round(self._baseline(task, s)[metric], 4) for n, s in data["lengths"].items()
            },
        }
        return ZooResult(
            self._evaluate(model, task, data["valid"]),
            self._evaluate(model, task, data["test"]),
            log.epochs,
            log.seconds,
            log.status,
            log.reason,
            extra=extra,
        )

    def _baseline(self, task: str, split: dict[str, torch.Tensor]) -> dict[str, float]:
        b, width = split["mask"].shape
        ptr = torch.arange(width).expand(b, -1)
        if task == "hull":  # a triangle of the first three points (all points: no polygon)
            ptr = torch.where(ptr < 3, ptr, -1)
        return _metrics(task, torch.where(split["mask"], ptr, -1), split)

    def baseline(self, data: Any) -> dict[str, float]:
        """Input-blind: the identity permutation (sort) / the first three points (hull)."""
        return self._baseline(data["task"], data["test"])

    def example_inputs(self, config: dict[str, Any], data: Any, batch: int = 2) -> tuple:
        """Test items of mixed lengths, padded to the longest evaluation length."""
        lengths = data["lengths"]
        width = max(lengths)
        xs, masks = [], []
        for k in range(batch):
            split = lengths[sorted(lengths)[k % len(lengths)]]
            x, mask = split["x"][k], split["mask"][k]
            pad = width - x.shape[0]
            xs.append(F.pad(x, (0, 0, 0, pad)))
            masks.append(F.pad(mask, (0, pad)))
        return torch.stack(xs), torch.stack(masks)
