"""The NAS-Bench-201 space: grammar, conversions to NB201's encodings, published params."""

from __future__ import annotations

import csv
import gzip
import io
import itertools
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from nas.analysis import analyse
from nas.compile import compile_arch, count_params
from nas.dsl import parse_arch
from nas.dsl.derive import derive, derives
from nas.exceptions import ArchSyntaxError
from nas.export import export_onnx, parity
from nas.nb201 import (
    from_index_tuple,
    from_nb201,
    is_nb201_string,
    to_index_tuple,
    to_nb201,
)
from nas.ops.nb201 import EDGE_OPS
from nas.ops.spec import Spec
from nas.sampling import Sampler
from nas.space import SearchSpace, load_space

DATA = Path(__file__).parent / "data" / "nb201"
EXAMPLE = (
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+"
    "|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
)
# Dataset -> (input shape, classes, column of zero_cost_725_params.csv).
DATASETS = {
    "cifar10": ((3, 32, 32), 10, "cifar10_params"),
    "cifar100": ((3, 32, 32), 100, "cifar100_params"),
    "ImageNet16-120": ((3, 16, 16), 120, "imagenet16_120_params"),
}


@pytest.fixture(scope="module")
def space() -> SearchSpace:
    return load_space("nb201")


@pytest.fixture(scope="module")
def archs() -> list[tuple[str, float]]:
    """All 15,625 NB201 cell strings (NB201 index order) with CIFAR-100 test accuracy."""
    text = gzip.decompress((DATA / "nb201_archs.csv.gz").read_bytes()).decode()
    rows = csv.DictReader(io.StringIO(text))
    return [(r["ArchitectureString"], float(r["CIFAR100TestAccuracy200Epochs"])) for r in rows]


@pytest.fixture(scope="module")
def zero_cost() -> list[dict[str, str]]:
    """The 725 NASLib zero-cost cells: op-index key, published params, CIFAR-100 val acc."""
    with (DATA / "zero_cost_725_params.csv").open() as f:
        return list(csv.DictReader(f))


def test_data_holds_every_cell_once(archs: list[tuple[str, float]]) -> None:
    strings = {s for s, _ in archs}
    assert len(archs) == len(strings) == 5**6


def test_example_converts_both_ways() -> None:
    node = from_nb201(EXAMPLE)
    assert str(node) == (
        "nb201(c=16,n=5,cell(nor_conv_3x3,nor_conv_3x3,avg_pool_3x3,"
        "skip_connect,nor_conv_3x3,skip_connect))"
    )
    assert to_nb201(node) == EXAMPLE
    assert to_nb201(node.children[0]) == EXAMPLE  # a bare cell converts too
    assert str(from_nb201(EXAMPLE, c=8, n=1)).startswith("nb201(c=8,n=1,cell(")


def test_round_trips_all_cells(archs: list[tuple[str, float]]) -> None:
    for s, _ in archs:
        node = from_nb201(s)
        assert to_nb201(node) == s
        text = str(node)
        again = parse_arch(text)
        assert again == node and str(again) == text
        assert from_index_tuple(to_index_tuple(node)) == node


def test_every_cell_is_derivable_and_within_budget(
    space: SearchSpace, archs: list[tuple[str, float]]
) -> None:
    g = space.grammar
    memo: dict = {}
    for s, _ in archs:
        node = from_nb201(s)
        assert derives(g, g.start, node, memo), s
        space.check(node)  # raises BudgetError/ShapeError if the budgets are too tight
    derive(g, from_nb201(EXAMPLE))


def test_index_tuple_edge_order_and_op_codes() -> None:
    # Edges (0→1, 0→2, 0→3, 1→2, 1→3, 2→3); 0=skip, 1=none, 2=conv3x3, 3=conv1x1, 4=avgpool.
    node = from_index_tuple((0, 2, 3, 2, 3, 1))
    assert to_nb201(node) == (
        "|skip_connect~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_1x1~0|nor_conv_1x1~1|none~2|"
    )
    assert from_index_tuple("(0, 2, 3, 2, 3, 1)") == node
    assert to_index_tuple(node) == (0, 2, 3, 2, 3, 1)
    for t in itertools.product(range(5), repeat=6):
        assert to_index_tuple(from_index_tuple(t)) == t


def test_index_tuple_mapping_agrees_with_benchmark_accuracy(
    archs: list[tuple[str, float]], zero_cost: list[dict[str, str]]
) -> None:
    """Params cannot check the edge order, so compare accuracies: NASLib's CIFAR-100
    validation accuracy of each keyed cell must match NB201's test accuracy of the cell our
    conversion names (same trained network, two halves of the test set). A wrong edge order
    names other cells and the agreement collapses (reading the key in string order: ~2x)."""
    test_acc = dict(archs)
    names = ("skip_connect", "none", "nor_conv_3x3", "nor_conv_1x1", "avg_pool_3x3")

    def mean_gap(to_string: Callable[[str], str]) -> float:
        gaps = [
            abs(test_acc[to_string(r["arch"])] - float(r["cifar100_val_accuracy"]))
            for r in zero_cost
        ]
        return sum(gaps) / len(gaps)

    ours = mean_gap(lambda k: to_nb201(from_index_tuple(k)))

    def naive(k: str) -> str:  # the tuple read as if it were in NB201 string order
        ops = [names[int(v)] for v in k.strip("()").split(",")]
        return to_nb201(parse_arch(f"cell({','.join(ops)})"))

    assert ours < 0.5
    assert mean_gap(naive) > 2 * ours


@pytest.mark.parametrize("dataset", list(DATASETS))
def test_symbolic_params_match_published_for_all_725(
    zero_cost: list[dict[str, str]], dataset: str
) -> None:
    """analyse(...).params + the head (64*classes + classes) is the published count, exactly
    (the published value is in millions with 6 decimals, i.e. to the parameter)."""
    shape, classes, col = DATASETS[dataset]
    checked = 0
    for r in zero_cost:
        if not r[col]:
            continue  # ImageNet16-120 lacks one cell
        node = from_index_tuple(r["arch"])
        ours = analyse(node, (Spec(shape, "im"),)).params + 64 * classes + classes
        published = round(float(r[col]) * 1e6)
        assert abs(ours - published) <= 1e-3 * published, (r["arch"], ours, published)
        assert ours == published, (r["arch"], ours, published)
        checked += 1
    assert checked == (724 if dataset == "ImageNet16-120" else 725)


def test_compiled_params_match_published_for_all_725(zero_cost: list[dict[str, str]]) -> None:
    """Every one of the 725 cells compiled (CIFAR-10 head) has the published count
    (all 725 are built: about 10 s on one CPU thread)."""
    for r in zero_cost:
        model = compile_arch(from_index_tuple(r["arch"]), (3, 32, 32), 10)
        published = round(float(r["cifar10_params"]) * 1e6)
        ours = count_params(model)
        assert abs(ours - published) <= 1e-3 * published, (r["arch"], ours, published)
        assert ours == published, (r["arch"], ours, published)


def test_samples_compile_run_and_convert(space: SearchSpace) -> None:
    sampler = Sampler(space, seed=0)
    x = torch.randn(2, 3, 32, 32)
    for _ in range(4):
        node = sampler.sample()
        text = to_nb201(node)
        assert is_nb201_string(text)
        assert from_nb201(text) == node
        model = compile_arch(node, space.input_shape, space.num_classes).eval()
        with torch.no_grad():
            y = model(x)
        assert y.shape == (2, 10)
        assert torch.isfinite(y).all()


def test_samples_cover_the_edge_ops(space: SearchSpace) -> None:
    sampler = Sampler(space, seed=1)
    seen = {k.op for _ in range(20) for k in sampler.sample().children[0].children}
    assert seen == set(EDGE_OPS)


def test_onnx_parity(tmp_path: Path) -> None:
    model = compile_arch(from_nb201(EXAMPLE), (3, 32, 32), 10)
    path = export_onnx(model, (3, 32, 32), tmp_path / "nb201.onnx")
    assert parity(model, path, (3, 32, 32)) < 1e-4


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "|nor_conv_3x3~0|",
        "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|",
        "|nor_conv_3x3~0|+|nor_conv_3x3~0|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|",
        "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|",
        "|nor_conv_3x3~1|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|none~2|",
        "|conv_5x5~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|none~2|",
        "|nor_conv_3x3|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|none~2|",
        "nor_conv_3x3~0+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|none~2|",
        EXAMPLE + "+|none~0|",
        EXAMPLE.replace("~2", "~x"),
        "nb201(c=16,n=5,cell(none,none,none,none,none,none))",
    ],
)
def test_malformed_nb201_strings_raise(bad: str) -> None:
    with pytest.raises(ArchSyntaxError, match=r"expected|unknown NB201 op"):
        from_nb201(bad)
    assert not is_nb201_string(bad)


def test_is_nb201_string_accepts_surrounding_whitespace_only() -> None:
    assert is_nb201_string(EXAMPLE)
    assert is_nb201_string(f"  {EXAMPLE}\n")
    assert not is_nb201_string(None)


@pytest.mark.parametrize(
    "bad",
    [
        (0, 2, 3, 2, 3),
        (0, 2, 3, 2, 3, 5),
        (0, 2, 3, 2, 3, -1),
        (0, 2, 3, 2, 3, 1, 0),
        (0, 2, 3, 2, 3, 1.0),
        "0, 2, 3, 2, 3, 1",
        "(0, 2, 3, 2, x, 1)",
        7,
    ],
)
def test_bad_index_tuples_raise(bad: object) -> None:
    with pytest.raises(ArchSyntaxError, match="expected 6 NASLib op indices"):
        from_index_tuple(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "arch",
    [
        "seq(compute(norm),compute(identity))",
        "nb201(c=16,n=5,seq(compute(norm),compute(identity)))",
    ],
)
def test_non_nb201_architectures_raise(arch: str) -> None:
    with pytest.raises(ArchSyntaxError, match="expected"):
        to_nb201(parse_arch(arch))
    with pytest.raises(ArchSyntaxError, match="expected"):
        to_index_tuple(parse_arch(arch))
