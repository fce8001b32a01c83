"""Feeding data to the trainer: normalisation statistics, batches, devices, OOM detection.

Split out of :mod:`nas.train` so the loop itself stays readable.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from nas.exceptions import ConfigurationError

if TYPE_CHECKING:
    from nas.data.base import Split
    from nas.tasks import Task


def channel_stats(x: np.ndarray, chunk: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and std of inputs ``x`` (N, ...), read in chunks (memmap-friendly).

    Channels are axis 1 for images (N, C, H, W) and the last axis otherwise (features).
    A constant channel gets std 1.
    """
    axis = 1 if x.ndim == 4 else x.ndim - 1
    other = tuple(a for a in range(x.ndim) if a != axis)
    s1 = s2 = np.zeros(x.shape[axis])
    for a in range(0, x.shape[0], chunk):
        part = np.asarray(x[a : a + chunk], dtype=np.float64)
        s1 = s1 + part.sum(other)
        s2 = s2 + np.square(part).sum(other)
    count = x.size / x.shape[axis]
    mean = s1 / count
    std = np.sqrt(np.maximum(s2 / count - mean**2, 0.0))
    std = np.where(std > 1e-8, std, 1.0)
    return mean.astype(np.float32), std.astype(np.float32)


class Feed:
    """One split ready to batch: a resident normalised tensor, or arrays read per batch."""

    def __init__(
        self,
        split: Split,
        task: Task,
        norm: tuple[np.ndarray, np.ndarray],
        device: torch.device,
        resident: bool,
        channels_last: bool,
    ) -> None:
        self.n, self.device, self.arr = len(split), device, split.x
        shape = [1] * split.x.ndim
        shape[1 if split.x.ndim == 4 else -1] = -1
        self.mean, self.std = (np.asarray(v).reshape(shape) for v in norm)
        self.memory = torch.channels_last if channels_last and split.x.ndim == 4 else None
        self.y = task.targets(split.y).to(device)
        self.x = None
        if resident:
            try:
                self.x = torch.empty(split.x.shape, dtype=torch.float32, device=device)
                for a in range(0, self.n, 4096):
                    self.x[a : a + 4096] = self._read(slice(a, a + 4096))
                if self.memory is not None:
                    self.x = self.x.contiguous(memory_format=self.memory)
            except (MemoryError, RuntimeError) as e:
                if not is_oom(e):
                    raise
                self.x = None  # no room for the whole split: read it batch by batch

    def _read(self, idx: slice | np.ndarray) -> torch.Tensor:
        xb = (np.asarray(self.arr[idx], dtype=np.float32) - self.mean) / self.std
        return torch.from_numpy(xb.astype(np.float32, copy=False)).to(self.device)

    def batch(self, idx: slice | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.x is not None:
            xb = self.x[idx.to(self.device) if isinstance(idx, torch.Tensor) else idx]
        else:
            idx = idx if isinstance(idx, slice) else np.sort(idx.numpy())
            xb = self._read(idx)
            idx = idx if isinstance(idx, slice) else torch.from_numpy(idx)
        yb = self.y[idx.to(self.device) if isinstance(idx, torch.Tensor) else idx]
        if self.memory is not None:
            xb = xb.contiguous(memory_format=self.memory)
        return xb, yb


#: Bytes of activations a CPU training step may hold by default (keeps a trial near 1 GB).
ACTIVATION_BUDGET = 512 * 2**20
MIN_BATCH = 8


def fit_batches(cfg: Any, activation: int, device: torch.device) -> Any:
    """``cfg`` with batch sizes halved until the estimated activations fit the budget.

    ``activation`` is the analysis' activation elements per sample. Training keeps every
    output for the backward pass (and about as much again in gradients): 8 bytes per
    element; evaluation keeps less: 4. Never below :data:`MIN_BATCH` (BatchNorm needs a
    few samples); the config is returned unchanged when it fits.
    """
    budget = cfg.max_activation_bytes
    if budget is None:
        if device.type != "cpu":
            return cfg
        budget = ACTIVATION_BUDGET
    train_b, eval_b = cfg.batch_size, cfg.eval_batch_size
    while train_b > MIN_BATCH and 8 * activation * train_b > budget:
        train_b //= 2
    while eval_b > MIN_BATCH and 4 * activation * eval_b > budget:
        eval_b //= 2
    if (train_b, eval_b) == (cfg.batch_size, cfg.eval_batch_size):
        return cfg
    return replace(cfg, batch_size=max(train_b, MIN_BATCH), eval_batch_size=max(eval_b, MIN_BATCH))


def module_activation(model: torch.nn.Module, input_shape: tuple[int, ...]) -> int:
    """Activation elements one sample allocates in ``model``: the outputs of its leaf
    modules on a zero input (what :func:`fit_batches` takes for a module given as such,
    e.g. a baseline, where an architecture has its analysis)."""
    total = 0

    def count(_module: Any, _inp: Any, out: Any) -> None:
        nonlocal total
        for t in out if isinstance(out, list | tuple) else (out,):
            if isinstance(t, torch.Tensor):
                total += t[0].numel() if t.dim() else 1

    leaves = [m for m in model.modules() if not any(True for _ in m.children())]
    hooks = [m.register_forward_hook(count) for m in leaves]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            device = next(model.parameters(), torch.empty(0)).device
            model(torch.zeros((1, *input_shape), device=device))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return total


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigurationError(f"unknown device {name!r}.") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigurationError(f"device {name!r} requested but CUDA is not available.")
    return device


def is_oom(e: BaseException) -> bool:
    """Whether ``e`` means out of memory (torch on CUDA or CPU, or numpy's MemoryError)."""
    text = str(e)
    return isinstance(e, torch.cuda.OutOfMemoryError | MemoryError) or (
        isinstance(e, RuntimeError) and ("out of memory" in text or "can't allocate" in text)
    )
