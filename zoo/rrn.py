"""Recurrent Relational Networks (Palm, Paquet & Winther, NeurIPS 2018) on Sudoku.

Each cell is a node of the Sudoku constraint graph (an edge joins two cells sharing a row,
column or box). For ``t = 1..T``: every edge carries a message ``m_ij = f(h_i, h_j)`` (an
MLP), each node sums its incoming messages, an MLP ``g`` mixes them with the node's input
``x_j`` and an LSTM cell updates the node state; a linear read-out gives digit logits at
every step and the loss is the cross-entropy averaged over all steps. Aggregation is a
constant node-by-edge incidence matrix times the messages (an ONNX ``MatMul``), and the
number of steps is fixed, so the export is a plain unrolled graph.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from nas.zoo._fit import FitConfig, check_options, minibatches, run_epochs
from nas.zoo._registry import Family, TaskInfo, ZooResult, register_family
from torch import nn
from torch.nn import functional as F

from nas.data.cache import cached
from nas.data.puzzles import sudoku_edges, sudoku_puzzles, sudoku_valid
from nas.exceptions import ConfigurationError

__all__ = ["RRNFamily", "RecurrentRelationalNet"]

# task -> (box, givens range, unique solutions); the number of givens sets the difficulty.
# Uniqueness is enforced on 4x4 (exhaustively checked); 9x9 puzzles may have several
# solutions, so "solved" always means "a valid completion of the givens".
TASKS = {"sudoku4": (2, (6, 10), True), "sudoku9": (3, (40, 60), False)}
SIZES = {"small": (10_000, 500, 1_000), "medium": (50_000, 2_000, 2_000)}
SIZES["full"] = (200_000, 5_000, 5_000)


def _mlp(d_in: int, width: int, depth: int) -> nn.Sequential:
    """``depth`` ReLU layers of ``width`` then a linear output of ``width`` (the paper's MLPs)."""
    layers: list[nn.Module] = []
    for _ in range(depth):
        layers += [nn.Linear(d_in, width), nn.ReLU()]
        d_in = width
    return nn.Sequential(*layers, nn.Linear(d_in, width))


class RecurrentRelationalNet(nn.Module):
    """RRN over the ``n*n`` cells of an ``n x n`` Sudoku (``n = box**2``).

    Input: ``puzzle`` (B, n*n) int64, 0 for a blank. ``forward`` runs ``steps`` steps and
    returns the last step's digit logits (B, n*n, n) and the solution (B, n*n), digits 1..n.

    Example:
        >>> net = RecurrentRelationalNet(box=2, hidden=16, steps=2, mlp_depth=1)
        >>> logits, digits = net(torch.zeros(3, 16, dtype=torch.long))
        >>> tuple(logits.shape), tuple(digits.shape)
        ((3, 16, 4), (3, 16))
    """

    def __init__(
        self,
        box: int = 2,
        hidden: int = 64,
        steps: int = 8,
        mlp_depth: int = 2,
        emb: int = 16,
        pos_emb: bool = False,
    ) -> None:
        super().__init__()
        n = box * box
        self.n, self.steps = n, steps
        src, dst = torch.from_numpy(sudoku_edges(box))
        self.register_buffer("src", src, persistent=False)
        self.register_buffer("dst", dst, persistent=False)
        incidence = torch.zeros(n * n, src.numel())
        incidence[dst, torch.arange(src.numel())] = 1.0
        self.register_buffer("incidence", incidence, persistent=False)
        cell = torch.arange(n * n)
        self.register_buffer("row", cell // n, persistent=False)
        self.register_buffer("col", cell % n, persistent=False)
        self.digit = nn.Embedding(n + 1, emb)
        # The paper adds row/column embeddings; the released code zeroes them (off here).
        self.pos = nn.ModuleList([nn.Embedding(n, emb), nn.Embedding(n, emb)]) if pos_emb else None
        self.pre = _mlp(emb * (3 if pos_emb else 1), hidden, mlp_depth)
        # f(h_i, h_j) = out(relu(...relu(A h_i + B h_j))). Its first linear layer is split
        # into a sender and a receiver part applied per node before gathering along the
        # edges, and its linear output layer commutes with the sum over neighbours, so it is
        # applied per node after aggregation (bias times in-degree): the same function with
        # far fewer FLOPs on the edges.
        self.msg_src = nn.Linear(hidden, hidden)
        self.msg_dst = nn.Linear(hidden, hidden, bias=False)
        self.msg_hidden = _mlp(hidden, hidden, mlp_depth - 1)[:-1]
        self.msg_out = nn.Linear(hidden, hidden)
        self.register_buffer("degree", incidence.sum(1, keepdim=True), persistent=False)
        self.update = _mlp(2 * hidden, hidden, mlp_depth)
        self.lstm = nn.LSTMCell(hidden, hidden)
        self.readout = nn.Linear(hidden, n)

    def run(self, puzzle: torch.Tensor, steps: int | None = None) -> list[torch.Tensor]:
        """Digit logits (B, cells, n) after each of ``steps`` steps (default: ``self.steps``)."""
        e = self.digit(puzzle)
        if self.pos is not None:
            b = puzzle.shape[0]
            rc = [
                m(i).expand(b, -1, -1) for m, i in zip(self.pos, (self.row, self.col), strict=True)
            ]
            e = torch.cat([e, *rc], dim=-1)
        x = self.pre(e)
        b, cells, width = x.shape
        h, c = x.reshape(b * cells, width), torch.zeros_like(x).reshape(b * cells, width)
        outs = []
        for _ in range(self.steps if steps is None else steps):
            hn = h.reshape(b, cells, width)
            pre = self.msg_src(hn).index_select(1, self.src) + self.msg_dst(hn).index_select(
                1, self.dst
            )
            hidden = self.msg_hidden(F.relu(pre))
            agg = torch.matmul(self.incidence, hidden)  # (B, cells, H): sum over neighbours
            agg = F.linear(agg, self.msg_out.weight) + self.degree * self.msg_out.bias
            inp = self.update(torch.cat([x, agg], dim=-1)).reshape(b * cells, width)
            h, c = self.lstm(inp, (h, c))
            outs.append(self.readout(h).reshape(b, cells, self.n))
        return outs

    def forward(self, puzzle: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Last-step logits and the predicted digits (1..n)."""
        logits = self.run(puzzle)[-1]
        return logits, logits.argmax(-1) + 1


def _scores(logits: torch.Tensor, puzzle: torch.Tensor, sol: torch.Tensor, box: int):
    """Cell accuracy on blanks, share solved (any valid completion) and exact matches."""
    pred = logits.argmax(-1) + 1
    blank = puzzle == 0
    cell = float(((pred == sol) & blank).sum()) / max(1, int(blank.sum()))
    valid = sudoku_valid(pred.numpy(), puzzle.numpy(), box)
    exact = float((pred == sol).all(dim=1).float().mean())
    return cell, valid, exact


@register_family
class RRNFamily(Family):
    """Recurrent relational network solving Sudoku by message passing on its constraints."""

    name = "rrn"
    train_seconds = 18.0  # default config, default epochs, 2-core CPU (bench/zoo.py)
    summary = "recurrent relational network (message passing + LSTM) on Sudoku"
    paper = "Palm, Paquet & Winther, Recurrent Relational Networks, NeurIPS 2018"
    tasks = (
        TaskInfo("sudoku4", "4x4 Sudoku, 6-10 givens, unique solutions", "cell_acc"),
        TaskInfo("sudoku9", "9x9 Sudoku, 40-60 givens (too slow for CPU minutes)", "cell_acc"),
    )
    hyperparams = {
        "steps": 8,
        "hidden": 64,
        "mlp_depth": 2,
        "emb": 16,
        "pos_emb": False,
        "lr": 2e-3,
        "weight_decay": 1e-4,
        "batch_size": 32,
        "epochs": 1,
        "grad_noise": 0.0,  # annealed gradient noise eta (Neelakantan et al. 2015)
    }
    searched = ("steps", "hidden", "mlp_depth")
    input_names = ("puzzle",)
    output_names = ("logits", "solution")

    def validate(self, config: dict[str, Any]) -> None:
        """Reject sizes and rates outside their ranges with one line."""
        check_options(grad_noise=config["grad_noise"])
        for key in ("steps", "hidden", "mlp_depth", "emb", "batch_size", "epochs"):
            if config[key] < 1:
                raise ConfigurationError(f"{key} must be >= 1, but got {key}={config[key]}.")
        if config["mlp_depth"] > 8 or config["steps"] > 128:
            raise ConfigurationError(
                "mlp_depth must be <= 8 and steps <= 128, but got "
                f"mlp_depth={config['mlp_depth']}, steps={config['steps']}."
            )
        if not config["lr"] > 0 or config["weight_decay"] < 0:
            raise ConfigurationError(
                f"lr must be > 0 and weight_decay >= 0, but got lr={config['lr']}, "
                f"weight_decay={config['weight_decay']}."
            )

    def make_data(self, task: str, size: str = "small", seed: int = 0) -> dict[str, Any]:
        """Train/valid/test puzzles with their generating solutions (seeded, milliseconds)."""
        name = self.task(task).name
        box, givens, unique = TASKS[name]
        if size not in SIZES:
            raise ConfigurationError(f"size must be one of {', '.join(SIZES)}, got {size!r}.")
        splits = ("train", "valid", "test")

        def generate() -> dict[str, np.ndarray]:
            out = {}
            for i, (split, count) in enumerate(zip(splits, SIZES[size], strict=True)):
                p, s = sudoku_puzzles(count, box, givens, seed=seed * 3 + i, unique=unique)
                out[f"{split}_puzzle"], out[f"{split}_solution"] = p, s
            return out

        arrays, _ = cached(f"zoo-rrn-{name}", size, seed, "1", generate)
        data: dict[str, Any] = {"box": box, "givens": givens, "unique": unique}
        for split in splits:
            pair = (arrays[f"{split}_puzzle"], arrays[f"{split}_solution"])
            data[split] = tuple(torch.from_numpy(a) for a in pair)
        return data

    def build(self, config: dict[str, Any], data: Any) -> nn.Module:
        """The RRN for the data's grid size."""
        keys = ("hidden", "steps", "mlp_depth", "emb", "pos_emb")
        return RecurrentRelationalNet(data["box"], **{k: config[k] for k in keys})

    def _evaluate(self, model: nn.Module, split: tuple, box: int) -> dict[str, float]:
        with torch.no_grad():
            cell, valid, exact = _scores(model.run(split[0])[-1], *split, box)
        return {"cell_acc": cell, "solved": float(valid.mean()), "exact": exact}

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
        """Adam(W) on the cross-entropy averaged over every step; score at ``steps`` steps."""
        puzzles, sols = data["train"]
        box = data["box"]
        cfg = FitConfig(
            epochs=epochs or config["epochs"],
            lr=config["lr"],
            weight_decay=config["weight_decay"],
            time_budget_s=time_budget_s,
            grad_clip=5.0,
            grad_noise=config["grad_noise"],
        )

        def loss_fn(m: nn.Module, idx: torch.Tensor) -> torch.Tensor:
            target = (sols[idx] - 1).reshape(-1)
            outs = m.run(puzzles[idx])
            return sum(F.cross_entropy(o.reshape(-1, o.shape[-1]), target) for o in outs) / len(
                outs
            )

        log = run_epochs(
            model,
            lambda e: minibatches(len(puzzles), config["batch_size"], e, seed),
            loss_fn,
            cfg,
            evaluate=lambda: self._evaluate(model, data["valid"], box),
            on_epoch=on_epoch,
            seed=seed,
        )
        return ZooResult(
            self._evaluate(model, data["valid"], box),
            self._evaluate(model, data["test"], box),
            log.epochs,
            log.seconds,
            log.status,
            log.reason,
            extra=self._extra(model, data, config["steps"]),
        )

    def _extra(self, model: nn.Module, data: Any, steps: int) -> dict[str, Any]:
        """Test cell accuracy and share solved after each of 1..2T steps, and by givens."""
        puzzle, sol = data["test"]
        box = data["box"]
        cells, solved = [], []
        with torch.no_grad():
            outs = model.run(puzzle, 2 * steps)
        for logits in outs:
            cell, valid, _ = _scores(logits, puzzle, sol, box)
            cells.append(round(cell, 4))
            solved.append(round(float(valid.mean()), 4))
        _, valid, _ = _scores(outs[steps - 1], puzzle, sol, box)
        givens = (puzzle > 0).sum(dim=1).numpy()
        by_givens = {int(g): round(float(valid[givens == g].mean()), 4) for g in np.unique(givens)}
        return {
            "steps_trained": steps,
            "steps_run": 2 * steps,  # the per-step lists run twice as long as training did
            "cell_acc_per_step": cells,
            "solved_per_step": solved,
            "solved_by_givens": by_givens,
            "scoring": "solved = any valid completion of the givens"
            + ("; puzzles have unique solutions" if data["unique"] else ""),
        }

    def baseline(self, data: Any) -> dict[str, float]:
        """Input-blind: the most frequent training digit of each cell, givens ignored."""
        _, train_sol = data["train"]
        n = data["box"] ** 2
        counts = F.one_hot(train_sol - 1, n).sum(dim=0)  # (cells, n)
        puzzle, sol = data["test"]
        logits = counts.float().expand(len(puzzle), -1, -1)
        cell, valid, exact = _scores(logits, puzzle, sol, data["box"])
        return {"cell_acc": cell, "solved": float(valid.mean()), "exact": exact}

    def example_inputs(self, config: dict[str, Any], data: Any, batch: int = 2) -> tuple:
        """The first ``batch`` test puzzles."""
        return (data["test"][0][:batch],)
