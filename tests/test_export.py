"""ONNX export: self-contained files, dynamic batch, onnxruntime parity for samples."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
import torch

from nas.compile import compile_arch
from nas.dsl import parse_arch
from nas.exceptions import ExportError
from nas.export import OPSET, export_onnx, parity


def test_sampled_architectures_match_onnxruntime(
    einspace, einspace_samples, tmp_path: Path
) -> None:
    for i, arch in enumerate(einspace_samples[:40]):
        torch.manual_seed(i)
        model = compile_arch(arch, einspace.input_shape, einspace.num_classes)
        path = export_onnx(model, einspace.input_shape, tmp_path / f"m{i}.onnx")
        assert parity(model, path, einspace.input_shape) < 1e-4, str(arch)


def test_file_is_self_contained_with_dynamic_batch(tmp_path: Path) -> None:
    arch = parse_arch(
        "seq(route(im2col(k=3,s=1,p=1),compute(linear(out=8)),col2im),compute(norm))"
    )
    model = compile_arch(arch, (3, 16, 16), 5)
    path = export_onnx(model, (3, 16, 16), tmp_path / "m.onnx")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]  # weights inside
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto)
    assert proto.opset_import[0].version == OPSET
    dim0 = proto.graph.input[0].type.tensor_type.shape.dim[0]
    assert dim0.dim_param == "batch"
    # The conv route was compiled to a real convolution.
    assert "Conv" in {n.op_type for n in proto.graph.node}
    assert parity(model, path, (3, 16, 16), batch=7) < 1e-4


def test_unwritable_path_is_an_export_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    model = compile_arch(parse_arch("compute(norm)"), (3, 8, 8), 2)
    with pytest.raises(ExportError):
        export_onnx(model, (3, 8, 8), blocker / "sub" / "m.onnx")


def test_a_failed_export_keeps_the_old_file_and_leaves_no_partial(tmp_path: Path) -> None:
    class Unexportable(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.fft.fft(x).real  # no ONNX symbolic in the TorchScript exporter

    old = tmp_path / "best.onnx"
    old.write_bytes(b"the user's trained model")
    with pytest.raises(ExportError, match="ONNX export failed"):
        export_onnx(Unexportable(), (3, 8, 8), old)
    assert old.read_bytes() == b"the user's trained model"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.onnx"]
    model = compile_arch(parse_arch("compute(norm)"), (3, 8, 8), 2)
    export_onnx(model, (3, 8, 8), old)  # a good export replaces it
    onnx.checker.check_model(onnx.load(str(old)))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.onnx"]
