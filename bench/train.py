"""Training throughput of the compiled einspace ResNet-18 seed vs a hand-written torch ResNet-18.

Usage: python bench/train.py [--rounds 7] [--steps 8] [--batch 64] [--threads 1]
       python bench/train.py --accuracy [--epochs 8] [--time-budget 600]

Both networks have the same shape (widths 64..512, 3x3 convs with bias, BatchNorm,
LeakyReLU, a stride-2 3x3 conv in place of max-pool, pooled linear head) and the same
parameter count; they train (forward + backward + SGD step) on the same random 3x28x28
batches, 20 classes, in alternating rounds. Prints the median images/s of each and the
ratio compiled / plain (target >= 0.95). ``--accuracy`` trains the seed on the
``unseen:addnist`` stand-in with the einspace protocol instead (needs nas.data).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
from torch import nn

SEED = Path(__file__).resolve().parents[1] / "spaces" / "seeds" / "resnet18.arch"


class Block(nn.Module):
    """Basic residual block as the seed writes it: conv-BN-act-conv-BN (+ shortcut), act."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.act1 = nn.LeakyReLU()
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride, 0), nn.BatchNorm2d(c_out)
            )
        self.act2 = nn.LeakyReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn2(self.conv2(self.act1(self.bn1(self.conv1(x)))))
        return self.act2(y + self.shortcut(x))


class ResNet18(nn.Module):
    """The plain-torch twin of spaces/seeds/resnet18.arch (resnet18 without max-pool)."""

    def __init__(self, channels: int = 3, num_classes: int = 20) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(channels, 64, 3, 1, 1),
            nn.BatchNorm2d(64),
            nn.LeakyReLU(),
            nn.Conv2d(64, 64, 3, 2, 1),  # replaces max-pool, no BN/act after it (as the seed)
        )
        blocks, c_in = [], 64
        for c_out, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            blocks += [Block(c_in, c_out, stride), Block(c_out, c_out, 1)]
            c_in = c_out
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(512, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.blocks(self.stem(x)).mean(dim=(2, 3)))


def _rate(
    model: nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor, steps: int
) -> float:
    """Images/s of ``steps`` training steps."""
    model.train()
    t = time.perf_counter()
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    return steps * x.shape[0] / (time.perf_counter() - t)


def throughput(args: argparse.Namespace) -> None:
    """Alternating timing rounds of the two networks; prints medians and the ratio."""
    from nas.compile import compile_arch, count_params
    from nas.dsl import parse_arch

    torch.manual_seed(0)
    seed = compile_arch(parse_arch(SEED.read_text().strip()), (3, 28, 28), 20)
    plain = ResNet18()
    n_seed, n_plain = count_params(seed), count_params(plain)
    print(f"parameters: compiled seed {n_seed:,}   plain torch {n_plain:,}")
    if n_seed != n_plain:
        raise SystemExit("parameter counts differ: the two networks are not the same shape.")
    x, y = torch.randn(args.batch, 3, 28, 28), torch.randint(0, 20, (args.batch,))
    models = {"compiled seed": seed, "plain torch": plain}
    opts = {k: torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9) for k, m in models.items()}
    for k, m in models.items():  # warm-up (allocator, kernels)
        _rate(m, opts[k], x, y, 2)
    rates: dict[str, list[float]] = {k: [] for k in models}
    for r in range(args.rounds):
        order = list(models) if r % 2 == 0 else list(reversed(models))
        for k in order:
            rates[k].append(_rate(models[k], opts[k], x, y, args.steps))
    med = {k: statistics.median(v) for k, v in rates.items()}
    for k, v in rates.items():
        spread = f"{min(v):.1f}..{max(v):.1f}"
        print(f"{k:14s} median {med[k]:8.1f} images/s  (rounds: {spread})")
    ratio = med["compiled seed"] / med["plain torch"]
    verdict = "ok" if ratio >= 0.95 else "BELOW TARGET"
    print(f"ratio compiled / plain: {ratio:.3f}  (target >= 0.95: {verdict})")


def accuracy(args: argparse.Namespace) -> None:
    """Train the seed on the AddNIST stand-in with the einspace protocol; print the record."""
    try:
        from nas.data import load_dataset
    except ImportError:
        raise SystemExit("--accuracy needs nas.data.load_dataset (not available).") from None
    from nas.train import TrainConfig, train

    ds = load_dataset("unseen:addnist", size=args.size)
    cfg = TrainConfig.preset("einspace", epochs=args.epochs, time_budget_s=args.time_budget)
    res = train(SEED.read_text(), ds, cfg)
    print(f"dataset {ds.name}: {ds.source}")
    print(
        f"status {res.status} {res.reason}  epochs {res.epochs_done}  "
        f"{res.images_per_s:.0f} images/s on {res.device}"
    )
    print(f"valid {res.valid}\ntest  {res.test}  (best valid epoch {res.best_epoch})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--accuracy", action="store_true")
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--time-budget", type=float, default=600.0)
    ap.add_argument("--size", default="small", help="AddNIST stand-in size for --accuracy")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s)")
    accuracy(args) if args.accuracy else throughput(args)


if __name__ == "__main__":
    main()
