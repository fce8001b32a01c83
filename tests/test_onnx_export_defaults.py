"""A user's own model exported for ``nas rank`` with torch's defaults (issue 25): the dynamo
exporter (torch 2.13's default, which needs onnxscript) and the TorchScript one both write
files that onnx loads, onnxruntime runs as torch does, and ``nas rank`` ranks."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch


def _tiny() -> torch.nn.Module:
    """A small CNN classifier on 3x16x16."""
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.MaxPool2d(2),
        torch.nn.Flatten(),
        torch.nn.Linear(8 * 8 * 8, 10),
    ).eval()


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::FutureWarning")
def test_both_exporters_write_files_onnx_loads_and_nas_ranks(
    tmp_path: Path,
    nas_cli: Callable[..., tuple[int, str, str]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """torch.onnx.export with its defaults (dynamo) and with dynamo=False, as users do."""
    model, x = _tiny(), torch.randn(2, 3, 16, 16)
    dynamo, script = tmp_path / "dynamo.onnx", tmp_path / "torchscript.onnx"
    torch.onnx.export(model, (x,), str(dynamo), opset_version=17)
    torch.onnx.export(model, (x,), str(script), opset_version=17, dynamo=False)
    with torch.no_grad():
        want = model(x).numpy()
    for path in (dynamo, script):
        proto = onnx.load(str(path))
        onnx.checker.check_model(proto, full_check=True)
        assert {o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")} == {17}
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        (got,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5, err_msg=path.name)
    capsys.readouterr()  # the dynamo exporter's progress lines
    code, out, err = nas_cli("rank", str(dynamo), str(script), "--json")
    assert code == 0, err
    result = json.loads(out)
    assert not result["errors"], result["errors"]
    assert sorted(Path(r["file"]).name for r in result["ranked"]) == [
        "dynamo.onnx",
        "torchscript.onnx",
    ]
