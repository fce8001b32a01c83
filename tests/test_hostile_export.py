"""The export parity check: relative to the outputs' scale, yet still catching wrong exports."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from nas.compile import compile_arch
from nas.export import _difference, export_onnx, parity_report
from nas.nb201 import from_nb201

# From issue 13: outputs of magnitude ~7e5, max |diff| ~0.03, i.e. a relative error ~5e-8.
BIG = "|skip_connect~0|+|skip_connect~0|skip_connect~1|+|none~0|avg_pool_3x3~1|avg_pool_3x3~2|"
SHAPE = (3, 32, 32)


@pytest.fixture(scope="module")
def big_export(tmp_path_factory) -> tuple[torch.nn.Module, Path]:
    torch.manual_seed(0)
    model = compile_arch(from_nb201(BIG), SHAPE, 10)
    path = export_onnx(model, SHAPE, tmp_path_factory.mktemp("x") / "big.onnx")
    return model, path


def test_large_outputs_pass_relative_to_their_scale(big_export) -> None:
    model, path = big_export
    p = parity_report(model, path, SHAPE)
    assert p.scale > 1e4  # the outputs really are large
    assert p.max_abs > 1e-4  # an absolute 1e-4 check (the old one) fails this export...
    assert p.relative < 1e-6 and p.ok(1e-4)  # ...but tiny against the outputs' size


def test_a_deliberately_wrong_export_still_fails(big_export) -> None:
    model, path = big_export
    wrong = compile_arch(from_nb201(BIG), SHAPE, 10)
    wrong.load_state_dict(model.state_dict())
    with torch.no_grad():  # one head weight off by 1%: a subtle but real mismatch
        wrong.head.fc.weight[0, 0] *= 1.01
    p = parity_report(wrong, path, SHAPE)
    assert not p.ok(1e-4), p
    # And a completely different model is far off.
    torch.manual_seed(1)
    other = compile_arch(from_nb201(BIG), SHAPE, 10)
    assert parity_report(other, path, SHAPE).relative > 1e-2


def test_small_outputs_are_held_to_the_absolute_difference() -> None:
    r = np.array([[0.001, -0.002]])
    diff, scale = _difference(r + 5e-4, r)
    assert math.isclose(diff, 5e-4) and scale == 0.002  # relative = diff / max(1, scale)


@pytest.mark.parametrize(
    ("got", "ref", "finite"),
    [
        ([np.nan, 1.0], [np.nan, 1.0], True),
        ([np.inf, 1.0], [np.inf, 1.0], True),
        ([1.0, 1.0], [np.nan, 1.0], False),
        ([np.nan, 1.0], [2.0, 1.0], False),
        ([-np.inf, 1.0], [np.inf, 1.0], False),
        ([np.inf, 1.0], [5.0, 1.0], False),
    ],
)
def test_non_finite_values_must_match_exactly(got, ref, finite: bool) -> None:
    diff, _ = _difference(np.array(got), np.array(ref))
    assert math.isfinite(diff) == finite


def test_cli_export_reports_relative_error_and_passes_big_outputs(nas_cli, tmp_path) -> None:
    code, out, err = nas_cli("export", BIG, "--space", "nb201", "-o", str(tmp_path / "m.onnx"))
    assert code == 0, err
    assert "relative error" in out and "outputs up to" in out
    code, _, _ = nas_cli("export", "--help")
    assert code == 0


@pytest.mark.parametrize("tol", ["nan", "-1"])
def test_bad_tolerance_is_a_usage_error(nas_cli, tmp_path, tol: str) -> None:
    code, _, err = nas_cli(
        "export",
        "seq(compute(norm),compute(norm))",
        "-o",
        str(tmp_path / "m.onnx"),
        "--tolerance",
        tol,
    )
    assert code == 2 and "--tolerance must be at least 0" in err


def test_an_output_path_that_cannot_be_a_file_says_why(nas_cli, tmp_path) -> None:
    arch = "seq(compute(linear(out=16)),compute(leakyrelu))"
    (tmp_path / "model.onnx").write_bytes(b"kept")
    cases = {
        str(tmp_path): "it is a folder; give a file name such as model.onnx",
        str(
            tmp_path / "model.onnx" / "x.onnx"
        ): f"{tmp_path / 'model.onnx'} is a file, not a folder",
    }
    for output, why in cases.items():
        code, _, err = nas_cli("export", arch, "-o", output)
        assert code == 2 and err.strip() == f"error: cannot write {output}: {why}."
    assert (tmp_path / "model.onnx").read_bytes() == b"kept"
