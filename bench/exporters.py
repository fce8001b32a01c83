"""Exporter parity: one network exported by dynamo and by TorchScript must rank the same.

Usage: python bench/exporters.py [--out FOLDER] [--keep]

Builds 10 torch models of different families, exports each twice at opset 17 (the
default dynamo exporter and ``dynamo=False``), ranks all 20 files as one set with
``nas rank --json`` and prints, per model, each export's score and rank percentile
within the set, their difference, and the op multiset difference of the two normalised
graphs (what the normalisation rules still leave apart). Target (issue 28, item 4): every
difference at most 0.05.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import subprocess
import sys
import tempfile
import time
import warnings
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

TARGET = 0.05
ROOT = Path(__file__).resolve().parent.parent


class Residual(nn.Module):
    """A ResNet basic block."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(c, c, 3, padding=1, bias=False),
            nn.BatchNorm2d(c),
            nn.ReLU(),
            nn.Conv2d(c, c, 3, padding=1, bias=False),
            nn.BatchNorm2d(c),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x + self.body(x))


class Encoder(nn.Module):
    """A small ViT: patch embedding, pre-norm attention blocks, mean-pooled head."""

    def __init__(self, dim: int = 32, depth: int = 2) -> None:
        super().__init__()
        self.patch = nn.Conv2d(3, dim, 4, stride=4)
        self.blocks = nn.ModuleList(
            nn.TransformerEncoderLayer(
                dim, 4, dim * 2, dropout=0.0, batch_first=True, norm_first=True, activation="gelu"
            )
            for _ in range(depth)
        )
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch(x).flatten(2).transpose(1, 2)
        for b in self.blocks:
            x = b(x)
        return self.head(self.norm(x).mean(1))


class MixerBlock(nn.Module):
    """An MLP-Mixer block: token mixing, then channel mixing, each pre-normed."""

    def __init__(self, tokens: int, dim: int) -> None:
        super().__init__()
        self.n1, self.n2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.tok = nn.Sequential(
            nn.Linear(tokens, tokens * 2), nn.GELU(), nn.Linear(tokens * 2, tokens)
        )
        self.ch = nn.Sequential(nn.Linear(dim, dim * 2), nn.GELU(), nn.Linear(dim * 2, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.tok(self.n1(x).transpose(1, 2)).transpose(1, 2)
        return x + self.ch(self.n2(x))


class Mixer(nn.Module):
    """A small MLP-Mixer on 4x4 patches of a 32x32 image."""

    def __init__(self, dim: int = 32) -> None:
        super().__init__()
        self.patch = nn.Conv2d(3, dim, 4, stride=4)
        self.blocks = nn.Sequential(MixerBlock(64, dim), MixerBlock(64, dim))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.patch(x).flatten(2).transpose(1, 2))
        return self.head(self.norm(x).mean(1))


class SeqConv(nn.Module):
    """A sequence net of Conv1d blocks over the 32 rows of an image (no recurrence)."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv1d(96, 64, 3, padding=1),
            nn.BatchNorm1d(64),
            nn.ReLU(),
            nn.Conv1d(64, 64, 3, padding=2, dilation=2),
            nn.BatchNorm1d(64),
            nn.ReLU(),
            nn.AdaptiveAvgPool1d(1),
            nn.Flatten(),
            nn.Linear(64, 10),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.permute(0, 2, 1, 3).reshape(x.shape[0], 32, 96).transpose(1, 2))


def _dw(cin: int, cout: int, s: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cin, 3, s, 1, groups=cin, bias=False),
        nn.BatchNorm2d(cin),
        nn.ReLU6(),
        nn.Conv2d(cin, cout, 1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU6(),
    )


def _seed(name: str) -> nn.Module:
    """An einspace seed of the project compiled to torch."""
    from nas.compile import compile_arch
    from nas.dsl import parse_arch

    arch = parse_arch((ROOT / "spaces" / "seeds" / f"{name}.arch").read_text().strip())
    return compile_arch(arch, (3, 32, 32), 10)


def models() -> dict[str, Callable[[], nn.Module]]:
    """The 10 model families, each built with fixed weights (by name)."""
    return {
        "cnn_bn": lambda: nn.Sequential(
            nn.Conv2d(3, 16, 3, padding=1),
            nn.BatchNorm2d(16),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1),
            nn.BatchNorm2d(32),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(32, 10),
        ),
        "resnet": lambda: nn.Sequential(
            nn.Conv2d(3, 16, 3, padding=1, bias=False),
            nn.BatchNorm2d(16),
            nn.ReLU(),
            Residual(16),
            Residual(16),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(16, 10),
        ),
        "mlp": lambda: nn.Sequential(
            nn.Flatten(),
            nn.Linear(3072, 128),
            nn.ReLU(),
            nn.Linear(128, 64),
            nn.ReLU(),
            nn.Linear(64, 10),
        ),
        "vit": Encoder,
        "mixer": Mixer,
        "dwsep": lambda: nn.Sequential(
            nn.Conv2d(3, 16, 3, 2, 1, bias=False),
            nn.BatchNorm2d(16),
            nn.ReLU6(),
            _dw(16, 32, 1),
            _dw(32, 64, 2),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(64, 10),
        ),
        "seqconv": SeqConv,
        "gelu_silu": lambda: nn.Sequential(
            nn.Conv2d(3, 16, 3, padding=1),
            nn.GELU(),
            nn.Conv2d(16, 32, 3, 2, 1),
            nn.SiLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(32, 32),
            nn.GELU(),
            nn.Linear(32, 10),
        ),
        "seed_cnn": lambda: _seed("cnn_cpu"),
        "seed_vit": lambda: _seed("vit_cpu"),
    }


def export_pair(name: str, model: nn.Module, folder: Path, size: int = 32) -> tuple[Path, Path]:
    """Write ``model`` twice: ``NAME.dynamo.onnx`` (default exporter) and ``NAME.ts.onnx``,
    on a batch of 2 images of 3 x ``size`` x ``size``."""
    model.eval()
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(0))
    dyn, ts = folder / f"{name}.dynamo.onnx", folder / f"{name}.ts.onnx"
    quiet = contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO())
    with warnings.catch_warnings(), quiet[0], quiet[1]:
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (x,), str(dyn), opset_version=17)
        torch.onnx.export(model, (x,), str(ts), opset_version=17, dynamo=False)
    return dyn, ts


def rank(folder: Path) -> dict[str, float]:
    """Score of every file in ``folder`` from ``nas rank --json`` (by file name)."""
    nas = Path(sys.executable).parent / "nas"
    cmd = [str(nas), "rank", str(folder), "--json", "--no-proxy"]
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    data = json.loads(res.stdout)
    rows = data["ranked"]
    return {Path(r["file"]).name: float(r["score"]) for r in rows if r.get("score") is not None}


def percentiles(scores: dict[str, float]) -> dict[str, float]:
    """Rank percentile within the set: 0 for the lowest score, 1 for the highest (ties share)."""
    vals = sorted(scores.values())
    n = len(vals)
    out = {}
    for k, v in scores.items():
        below = sum(u < v for u in vals)
        equal = sum(u == v for u in vals)
        out[k] = (below + (equal - 1) / 2) / (n - 1) if n > 1 else 0.5
    return out


def op_diff(dyn: Path, ts: Path) -> str:
    """Ops of the dynamo graph minus those of the TorchScript one, after normalisation."""
    from nas.predictors.graph import load_graph

    a = Counter(n.op for n in load_graph(dyn).nodes)
    b = Counter(n.op for n in load_graph(ts).nodes)
    plus = [f"+{k}x{v}" for k, v in sorted((a - b).items())]
    minus = [f"-{k}x{v}" for k, v in sorted((b - a).items())]
    return " ".join(plus + minus) or "same ops"


def main() -> None:
    """Export, rank, print the table and whether the target holds."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, help="folder for the 20 files (default: a temp one)")
    args = ap.parse_args()
    t0 = time.perf_counter()
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.out or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        pairs = {name: export_pair(name, build(), folder) for name, build in models().items()}
        t1 = time.perf_counter()
        scores = rank(folder)
        pct = percentiles(scores)
        print(f"{'model':<10} {'dynamo':>8} {'pct':>5} {'ts':>8} {'pct':>5} {'|d|':>5}  ops")
        diffs = []
        for name, (dyn, ts) in pairs.items():
            sd, st = scores.get(dyn.name), scores.get(ts.name)
            if sd is None or st is None:
                print(f"{name:<10} not ranked (dynamo {sd}, ts {st})")
                diffs.append(1.0)
                continue
            d = abs(pct[dyn.name] - pct[ts.name])
            diffs.append(d)
            print(
                f"{name:<10} {sd:8.4f} {pct[dyn.name]:5.2f} {st:8.4f} {pct[ts.name]:5.2f}"
                f" {d:5.3f}  {op_diff(dyn, ts)}"
            )
        mx, mean = max(diffs), sum(diffs) / len(diffs)
        ok = "holds" if mx <= TARGET else "missed"
        print(f"max |d| {mx:.3f}  mean |d| {mean:.3f}  target <= {TARGET}: {ok}")
        print(f"export {t1 - t0:.1f} s, rank and report {time.perf_counter() - t1:.1f} s")


if __name__ == "__main__":
    main()
