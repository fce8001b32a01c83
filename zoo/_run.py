"""What the CLI and the search do with a family: training one config, export."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from nas.zoo._registry import Family, ZooResult, get_family

from nas.exceptions import ConfigurationError

if TYPE_CHECKING:
    from torch import nn


def train_config(
    family: Family | str,
    config: dict[str, Any] | None = None,
    task: str | None = None,
    epochs: int | None = None,
    time_budget_s: float | None = None,
    seed: int = 0,
    size: str = "small",
    on_epoch: Any = None,
) -> tuple[nn.Module, Any, ZooResult]:
    """Build ``config`` (default when None) for ``task``, train it and score it.

    Raises:
        ConfigurationError: ``epochs`` below 1 or a time budget that is not positive.
    """
    import torch

    from nas.train import MAX_EPOCHS

    if epochs is not None and not 1 <= epochs <= MAX_EPOCHS:
        raise ConfigurationError(f"epochs must lie in 1..{MAX_EPOCHS:,}, got {epochs:,}.")
    if time_budget_s is not None and not time_budget_s > 0:
        raise ConfigurationError(f"the time budget must be positive, got {time_budget_s}.")
    fam = get_family(family) if isinstance(family, str) else family
    cfg = fam.config(config)
    info = fam.task(task)
    data = fam.make_data(info.name, size=size, seed=seed)
    torch.manual_seed(seed)
    model = fam.build(cfg, data)
    result = fam.fit(
        model, cfg, data, epochs=epochs, time_budget_s=time_budget_s, seed=seed, on_epoch=on_epoch
    )
    return model, data, result


def export_config(
    family: Family | str,
    path: str | Path,
    config: dict[str, Any] | None = None,
    task: str | None = None,
    model: nn.Module | None = None,
    data: Any = None,
    seed: int = 0,
    metadata: dict[str, Any] | None = None,
) -> tuple[Path, float]:
    """Export a config (or a trained ``model``) to ONNX and check onnxruntime parity.

    The file's metadata_props say the family, config, task, inputs and weights (a trained
    ``model``, or seeded ones), plus ``metadata`` (a search adds its space and architecture).
    Returns the file and the max absolute difference between torch and onnxruntime.
    """
    import torch

    from nas.export import export_inputs, parity_inputs

    fam = get_family(family) if isinstance(family, str) else family
    cfg = fam.config(config)
    task_name = fam.task(task).name
    weights = "trained" if model is not None else f"untrained (freshly initialised, seed {seed})"
    if data is None:
        data = fam.make_data(task_name, size="small", seed=seed)
    if model is None:
        torch.manual_seed(seed)
        model = fam.build(cfg, data)
    module = fam.export_module(model.eval(), cfg).eval()
    inputs = fam.example_inputs(cfg, data, batch=2)
    axes = fam.dynamic_axes()
    meta = {
        "family": fam.name,
        "config": cfg,
        "task": task_name,
        "input_names": list(fam.input_names),
        "input_shapes": [list(t.shape[1:]) for t in inputs],
        "output_names": list(fam.output_names),
        "weights": weights,
        **(metadata or {}),
    }
    out = export_inputs(module, inputs, path, fam.input_names, fam.output_names, axes, meta)
    # Another batch size than the traced one checks the dynamic axis too.
    check = fam.example_inputs(cfg, data, batch=3 if axes else 2)
    return out, parity_inputs(module, out, check, fam.input_names)


def count_macs(family: Family, model: nn.Module, config: dict[str, Any], data: Any) -> int:
    """Multiply-accumulates of one sample's forward pass (torch's FLOP counter / 2)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    module = family.export_module(model.eval(), config).eval()
    with counter, torch.enable_grad():  # the counter's module hooks need autograd on
        module(*family.example_inputs(config, data, batch=1))
    return int(counter.get_total_flops() // 2)
