"""The einspace seed architectures in spaces/seeds (written by tools/make_seeds.py)."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
import torch

from nas.compile import compile_arch, count_params
from nas.dsl.arch import Node, parse_arch
from nas.dsl.derive import NotDerivableError, derive
from nas.export import export_onnx, parity
from nas.space import SearchSpace, load_space

ROOT = Path(__file__).resolve().parents[1]
SEED_DIR = ROOT / "spaces" / "seeds"
SEEDS = ("mlp_mixer", "resnet18", "vit", "wrn16_4")
# sized for a CPU search
CPU_SEEDS = ("cnn_cpu", "mixer_cpu", "mlp_cpu", "resnet_cpu", "seqconv_cpu", "vit_cpu")
INPUT = (3, 28, 28)

# Backbone parameters (head excluded) on 3x28x28 as counted by the reference
# (einspace-notes.md section 3); ours match exactly.
REFERENCE_BACKBONE = {
    "resnet18": 11_210_560,
    "wrn16_4": 2_748_576,
    "vit": 4_261_888,
    "mlp_mixer": 2_317_288,
}
RESNET18_10_CLASSES = 11_215_690


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def space() -> SearchSpace:
    return load_space("einspace")


def _seed(name: str) -> Node:
    return parse_arch((SEED_DIR / f"{name}.arch").read_text())


def _make_seeds() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_seeds", ROOT / "tools" / "make_seeds.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_space_loads_every_seed(space: SearchSpace) -> None:
    assert sorted(space.seeds) == sorted(SEEDS + CPU_SEEDS)


def test_files_match_generator() -> None:
    built = _make_seeds().build_seeds()
    assert sorted(built) == sorted(SEEDS + CPU_SEEDS)
    for name, text in built.items():
        assert (SEED_DIR / f"{name}.arch").read_text() == text + "\n", name


@pytest.mark.parametrize("name", SEEDS)
def test_seed_is_canonical(name: str, space: SearchSpace) -> None:
    text = (SEED_DIR / f"{name}.arch").read_text()
    assert text.endswith("\n") and text.count("\n") == 1
    arch = parse_arch(text)
    assert str(arch) == text[:-1]
    assert space.seeds[name] == arch


@pytest.mark.parametrize("name", SEEDS)
def test_seed_passes_space_check(name: str, space: SearchSpace) -> None:
    a = space.check(_seed(name))
    assert a.params == REFERENCE_BACKBONE[name]


@pytest.mark.parametrize("name", SEEDS)
def test_seed_compiles_and_runs(name: str) -> None:
    model = compile_arch(_seed(name), INPUT, 20).eval()
    assert count_params(model.backbone) == REFERENCE_BACKBONE[name]
    with torch.no_grad():
        y = model(torch.randn(2, *INPUT))
    assert y.shape == (2, 20)
    assert torch.isfinite(y).all()


def test_resnet18_param_count() -> None:
    n = count_params(compile_arch(_seed("resnet18"), INPUT, 10))
    assert abs(n - RESNET18_10_CLASSES) <= 0.01 * RESNET18_10_CLASSES
    assert n == RESNET18_10_CLASSES


@pytest.mark.parametrize(("name", "backbone"), [("resnet18", 11_210_560), ("vit", 4_367_872)])
def test_seed_compiles_on_64x64(name: str, backbone: int) -> None:
    model = compile_arch(_seed(name), (3, 64, 64), 20).eval()
    assert count_params(model.backbone) == backbone
    with torch.no_grad():
        y = model(torch.randn(1, 3, 64, 64))
    assert y.shape == (1, 20)


@pytest.mark.parametrize("name", SEEDS)
def test_seed_onnx_parity(name: str, tmp_path: Path) -> None:
    model = compile_arch(_seed(name), INPUT, 20)
    path = export_onnx(model, INPUT, tmp_path / f"{name}.onnx")
    assert parity(model, path, INPUT) < 1e-4


@pytest.mark.parametrize("name", ["resnet18", "wrn16_4", "vit"])
def test_seed_is_derivable(name: str, space: SearchSpace) -> None:
    derive(space.grammar, _seed(name))
    space.check(_seed(name), strict=True)


def test_mixer_is_not_derivable(space: SearchSpace) -> None:
    with pytest.raises(NotDerivableError, match="linear_rel"):
        derive(space.grammar, _seed("mlp_mixer"))


@pytest.mark.parametrize("name", CPU_SEEDS)
def test_cpu_seeds_are_small_derivable_and_learnable(space: SearchSpace, name: str) -> None:
    from nas.degenerate import degenerate_reason

    for shape in ((3, 28, 28), (1, 24, 24)):
        sp = space.with_input(shape, 10)
        # the mixer's token MLP uses linear_rel, outside the grammar (as the reference's)
        a = sp.check(sp.seeds[name], strict=name != "mixer_cpu")
        assert a.params < 400_000 and a.flops < 30_000_000  # seqconv_cpu: 328k, 27.8M on 3x28x28
        assert degenerate_reason(sp.seeds[name], sp.input) is None
