"""Parameters and FLOPs of ONNX graphs against torch's counts of the same modules.

Truth on the torch side: the parameters the forward pass uses (those that get a gradient),
each counted once, and torch's FLOP counter halved (multiply-accumulates) at batch 1. Two
things a file cannot show are corrected for, explicitly: a BatchNorm that the exporter
folds into the convolution before it is stored as that convolution's bias (C numbers where
torch has 2C, 3C with a conv bias, or 0 for a BatchNorm without affine parameters); and
weights are drawn at random so that no two are equal (the exporter stores equal initial
values once, which trained weights never are).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

ROOT = Path(__file__).resolve().parents[1]
ZOO = ("ait", "deeponet", "mgno", "moe", "ptrnet", "rrn", "slimmable")
SEEDS = ("mlp_mixer", "resnet18", "vit", "wrn16_4")
# What the file holds beyond torch's parameters, for reasons a file cannot show:
# * ait: the VQ codebook (64 x 32), a buffer updated by a moving average, not by gradients;
# * rrn: the exporter folds msg_out.bias (64) times the node degrees into one 16 x 64
#   constant, which is stored instead of the bias.
BUFFER_WEIGHTS = {"ait": 64 * 32, "rrn": 16 * 64 - 64}


def _randomise(module: nn.Module) -> None:
    """Distinct random values in every parameter and BatchNorm statistic."""
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.01 * torch.randn(p.shape, generator=gen))
        for m in module.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.running_var is not None:
                m.running_mean.add_(0.01 * torch.randn(m.running_mean.shape, generator=gen))
                m.running_var.add_(0.01 * torch.rand(m.running_var.shape, generator=gen))


def _flat(out: Any) -> list[torch.Tensor]:
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, dict):
        out = list(out.values())
    return [t for o in out for t in _flat(o)]


def torch_counts(module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> tuple[int, int]:
    """(parameters as the exported file holds them, MACs at batch 1) of ``module``."""
    module.eval()
    # conv output id -> (conv, the output itself): keeping the output alive keeps its id
    # from being reused by a later tensor (which made a BN look folded at random)
    convs: dict[int, tuple[nn.Module, torch.Tensor]] = {}
    folded = 0

    def conv_hook(m: nn.Module, _: Any, out: torch.Tensor) -> None:
        convs[id(out)] = (m, out)

    def bn_hook(m: nn.Module, args: Any, _: Any) -> None:
        nonlocal folded
        conv, _out = convs.get(id(args[0]), (None, None))
        if conv is not None:  # folded: the conv's bias holds C numbers
            c = m.num_features
            had = c if conv.bias is not None else 0
            folded += (2 * c if m.affine else 0) + had - c

    hooks = []
    for m in module.modules():
        if isinstance(m, nn.modules.conv._ConvNd):
            hooks.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.modules.batchnorm._BatchNorm):
            hooks.append(m.register_forward_hook(bn_hook))
    counter = FlopCounterMode(display=False)
    with counter, torch.enable_grad():
        outs = _flat(module(*inputs))
    for h in hooks:
        h.remove()
    loss = sum(o.float().sum() for o in outs if o.is_floating_point())
    params = [p for p in module.parameters() if p.requires_grad]
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    used = sum(p.numel() for p, g in zip(params, grads, strict=True) if g is not None)
    return used - folded, int(counter.get_total_flops() // 2)


def _dims(path: Path, inputs: tuple[torch.Tensor, ...]) -> dict[str, int]:
    """Sizes of the file's symbolic input dims (the batch excluded) from the torch inputs."""
    import onnx

    g = onnx.load(str(path), load_external_data=False).graph
    inits = {t.name for t in g.initializer}
    dims: dict[str, int] = {}
    for vi, t in zip([i for i in g.input if i.name not in inits], inputs, strict=True):
        for j, d in enumerate(vi.type.tensor_type.shape.dim):
            if d.dim_param and d.dim_param != "batch":
                dims[d.dim_param] = int(t.shape[j])
    return dims


def _zoo_case(name: str, tmp: Path) -> tuple[Path, tuple[int, int], dict[str, int]]:
    from nas.zoo import export_config, get_family

    fam = get_family(name)
    cfg = fam.config()
    data = fam.make_data(fam.task().name, size="small", seed=0)
    torch.manual_seed(0)
    model = fam.build(cfg, data)
    _randomise(model)
    path, _ = export_config(fam, tmp / f"{name}.onnx", cfg, model=model, data=data)
    inputs = fam.example_inputs(cfg, data, batch=1)
    params, macs = torch_counts(fam.export_module(model.eval(), cfg), inputs)
    return path, (params + BUFFER_WEIGHTS.get(name, 0), macs), _dims(path, inputs)


def _seed_case(name: str, tmp: Path) -> tuple[Path, tuple[int, int], dict[str, int]]:
    from nas.compile import compile_arch
    from nas.dsl.arch import parse_arch
    from nas.export import export_onnx
    from nas.space import load_space

    sp = load_space("einspace")
    torch.manual_seed(0)
    node = parse_arch((ROOT / "spaces" / "seeds" / f"{name}.arch").read_text())
    model = compile_arch(node, sp.input_shape, sp.num_classes, sp.mode).eval()
    _randomise(model)
    path = export_onnx(model, sp.input_shape, tmp / f"{name}.onnx")
    return path, torch_counts(model, (torch.randn(1, *sp.input_shape),)), {}


def _check(case: tuple[Path, tuple[int, int], dict[str, int]]) -> None:
    from nas.predictors.record import file_record

    path, (params, macs), dims = case
    r = file_record(path, dims=dims)
    assert r.params == params, path.name
    # The exporter drops computation no output reads (rrn's per-step heads but the last;
    # ptrnet's last attention readout): at most 1% of the MACs.
    assert r.flops == pytest.approx(macs, rel=0.01), path.name


def test_every_zoo_family_is_checked() -> None:
    from nas.zoo import list_families
    from nas.zoo._registry import FAMILIES

    # the built-in families (the test suite's own toy family may be registered too)
    built_in = [f for f in list_families() if FAMILIES.get(f).__module__.startswith("nas.zoo.")]
    assert sorted(built_in) == sorted(ZOO)


@pytest.mark.parametrize("name", ZOO)
def test_zoo_counts_match_torch(name: str, tmp_path: Path) -> None:
    _check(_zoo_case(name, tmp_path))


@pytest.mark.parametrize("name", SEEDS)
def test_einspace_seed_counts_match_torch(name: str, tmp_path: Path) -> None:
    _check(_seed_case(name, tmp_path))


@pytest.mark.parametrize("name", ["ptrnet", "mgno"])
def test_fresh_exports_count_reused_weights_once(name: str, tmp_path: Path) -> None:
    """Freshly initialised: ptrnet's weights, reused by 20 unrolled steps, count once (not
    5.6M); mgno's zero-initialised biases, stored once by the exporter, count each."""
    from nas.predictors.record import file_record
    from nas.zoo import export_config, get_family

    fam = get_family(name)
    cfg = fam.config()
    data = fam.make_data(fam.task().name, size="small", seed=0)
    torch.manual_seed(0)
    model = fam.build(cfg, data)
    path, _ = export_config(fam, tmp_path / f"{name}.onnx", cfg, model=model, data=data)
    inputs = fam.example_inputs(cfg, data, batch=1)
    params, _ = torch_counts(fam.export_module(model.eval(), cfg), inputs)
    assert file_record(path).params == params


def test_nas_rank_sizes_symbolic_dims(tmp_path: Path, nas_cli) -> None:
    """deeponet's query points are a symbolic dim: FLOPs per point unless --dim sizes it."""
    import json

    path, (_, macs), dims = _zoo_case("deeponet", tmp_path)
    assert dims == {"points": 640}
    code, out, _ = nas_cli("rank", str(path), "--json")
    one = json.loads(out)["ranked"][0]["flops"]
    code, out, _ = nas_cli("rank", str(path), "--json", "--dim", "points=640")
    assert code == 0
    assert json.loads(out)["ranked"][0]["flops"] == macs
    assert one < macs / 100
    code, _, err = nas_cli("rank", str(path), "--dim", "points")
    assert code == 2 and "NAME=SIZE" in err
