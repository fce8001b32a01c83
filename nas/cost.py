"""What training a network will cost, measured before it trains: a few timed steps.

A search uses this to say, before it starts, which seeds cannot finish their epochs under
the per-trial cap (a seed is never cut short unannounced). The estimate is in seconds of
the trial budget's clock (:func:`nas.loop.budget_clock`: CPU seconds on a CPU), so it
compares directly with ``--trial-time`` and does not depend on what else the machine runs.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import torch

from nas.feed import Feed, fit_batches, resolve_device
from nas.loop import LoopConfig, budget_clock, make_optimiser
from nas.tasks import compile_for_task, task_for

if TYPE_CHECKING:
    from nas.data.base import Dataset
    from nas.dsl.arch import Node
    from nas.train import TrainConfig

__all__ = ["estimate_seconds"]

TIMED_STEPS = 2  # training steps timed after one warm-up step


def estimate_seconds(arch: Node, dataset: Dataset, config: TrainConfig) -> float:
    """Budget-clock seconds that training ``arch`` on ``dataset`` under ``config`` takes for
    all its epochs (training steps and the per-epoch validation), from one warm-up and
    :data:`TIMED_STEPS` timed training steps and one timed evaluation batch.

    Raises:
        ShapeError: ``arch`` does not apply to the dataset's input.
    """
    from nas import runtime
    from nas.analysis import analyse
    from nas.ops.spec import Spec

    device = resolve_device(config.device)
    if device.type == "cpu":
        runtime.configure(config.threads)
    task = task_for(dataset, label_smoothing=config.label_smoothing)
    mode = "im" if len(dataset.input_shape) == 3 else "col"
    a = analyse(arch, (Spec(tuple(dataset.input_shape), mode),))
    cfg = fit_batches(config, a.activation, device)
    torch.manual_seed(config.seed)
    model = compile_for_task(arch, dataset.input_shape, task, mode).to(device)
    c = dataset.train.x.shape[1 if dataset.train.x.ndim == 4 else -1]
    norm = (np.zeros(c, np.float32), np.ones(c, np.float32))
    train = Feed(dataset.train, task, norm, device, resident=False, channels_last=False)
    xb, yb = train.batch(slice(0, cfg.batch_size))
    loop = LoopConfig(epochs=cfg.epochs, optimizer=cfg.optimizer, lr=cfg.lr)
    opt, _ = make_optimiser([p for p in model.parameters() if p.requires_grad], loop, None)
    clock = budget_clock(device)
    model.train()
    for i in range(1 + TIMED_STEPS):
        if i == 1:
            t0 = clock()
        loss = task.loss(model(xb), yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    step = (clock() - t0) / TIMED_STEPS * cfg.batch_size / len(yb)
    model.eval()
    t0 = clock()
    with torch.no_grad():
        model(xb)
    evaluate = (clock() - t0) / len(yb)  # per image
    per_epoch = math.ceil(len(dataset.train) / cfg.batch_size) * step
    per_epoch += len(dataset.valid) * evaluate
    return cfg.epochs * per_epoch
