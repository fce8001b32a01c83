"""ONNX export with one pinned exporter and opset, and an onnxruntime parity check.

We use the TorchScript exporter (``dynamo=False``) everywhere: it is fast on a CPU, needs
no extra packages, and gives the predictor one op vocabulary to learn. Weights are stored
inside the file and the batch axis is dynamic. A search's ``best.onnx`` and ``nas export``
carry what the file is in its ``metadata_props`` (:func:`network_metadata`, read back with
:func:`read_metadata`): the architecture, space, dataset, input and its normalisation.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from nas.exceptions import ExportError

OPSET = 17
EXPORTER = "torchscript"
INPUT_NAME = "input"
OUTPUT_NAME = "logits"


def export_onnx(
    model: nn.Module,
    input_shape: tuple[int, ...],
    path: str | Path,
    seed: int = 0,
    metadata: Mapping[str, object] | None = None,
) -> Path:
    """Write ``model`` as a self-contained ONNX file with a dynamic batch axis (and
    ``metadata`` as its metadata_props, see :func:`write_metadata`).

    Raises:
        ExportError: the exporter failed or the file cannot be written.
    """
    gen = torch.Generator().manual_seed(seed)
    dummy = torch.randn(2, *input_shape, generator=gen)
    axes = {INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}}
    return export_inputs(model, (dummy,), path, (INPUT_NAME,), (OUTPUT_NAME,), axes, metadata)


def network_metadata(
    arch: object,
    space: str,
    input_shape: Sequence[int],
    num_classes: int,
    *,
    dataset: str | None = None,
    dataset_source: str | None = None,
    normalisation: Mapping[str, Sequence[float]] | None = None,
    input_scale: float = 1.0,
    weights: str = "trained",
) -> dict[str, str]:
    """What an exported network is, as ONNX metadata: what a user of the file needs to feed
    it (shape, classes, the trainer's input normalisation) and to find it again (arch, space).

    ``dataset_source`` says what the dataset was (real files or a stand-in, ``Dataset.source``);
    ``normalisation`` is the trainer's per-channel ``mean``/``std`` (train split only,
    ``TrainResult.normalisation``); ``input_scale`` what the dataset multiplied its stored
    values by first (1/255 for a stand-in's uint8 pixels). None: the weights saw no data.
    """
    meta = {
        "architecture": str(arch),
        "space": space,
        **({"dataset": dataset} if dataset else {}),
        **({"dataset_source": dataset_source} if dataset_source else {}),
        "input_name": INPUT_NAME,
        "input_shape": json.dumps([int(d) for d in input_shape]),
        "num_classes": str(int(num_classes)),
        "weights": weights,
    }
    if not normalisation:
        return {**meta, "normalisation": "none: the weights were never trained on data"}
    return {
        **meta,
        "normalisation": "per channel c (axis 1 of an image batch, else the last axis): "
        "input = (x * input_scale - input_mean[c]) / input_std[c], x as the dataset stores it",
        "input_scale": repr(float(input_scale)),
        "input_mean": json.dumps([float(v) for v in normalisation["mean"]]),
        "input_std": json.dumps([float(v) for v in normalisation["std"]]),
    }


def write_metadata(path: str | Path, metadata: Mapping[str, object]) -> None:
    """Set an ONNX file's metadata_props to ``metadata`` plus ``nas_version`` (text as is,
    anything else as JSON), so a file says where it came from wherever it is copied."""
    import onnx

    from nas._version import __version__

    model = onnx.load(str(path))
    props = {"nas_version": __version__, **metadata}
    text = {k: v if isinstance(v, str) else json.dumps(v, default=str) for k, v in props.items()}
    onnx.helper.set_model_props(model, text)
    onnx.save(model, str(path))


def read_metadata(path: str | Path) -> dict[str, str]:
    """An ONNX file's metadata_props as a dict (what :func:`write_metadata` wrote)."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return {p.key: p.value for p in model.metadata_props}


def checked_exporter(
    model: nn.Module, shape: tuple[int, ...], metadata: Mapping[str, object] | None = None
) -> Callable[[Path], tuple[Path, Parity]]:
    """``export(path) -> (file, its Parity with torch)`` of a compiled network for
    ``shape`` inputs, stamped with ``metadata`` (a search's final step calls it)."""

    def export(path: Path) -> tuple[Path, Parity]:
        out = export_onnx(model, shape, path, metadata=metadata)
        return out, parity_report(model, out, shape)

    return export


def parity(
    model: nn.Module, path: str | Path, input_shape: tuple[int, ...], batch: int = 3, seed: int = 1
) -> float:
    """Max absolute difference between torch and onnxruntime on a random batch.

    The batch size differs from the one used for export, so the dynamic axis is tested.
    """
    return parity_report(model, path, input_shape, batch, seed).max_abs


def export_inputs(
    model: nn.Module,
    inputs: tuple[torch.Tensor, ...],
    path: str | Path,
    input_names: tuple[str, ...],
    output_names: tuple[str, ...],
    dynamic_axes: dict[str, dict[int, str]] | None = None,
    metadata: Mapping[str, object] | None = None,
) -> Path:
    """Write a model with several named inputs/outputs (zoo families) as one ONNX file.

    Same exporter and opset as :func:`export_onnx`; ``dynamic_axes`` marks the batch axes;
    ``metadata`` (if given) becomes the file's metadata_props (:func:`write_metadata`).

    Raises:
        ExportError: the exporter failed or the file cannot be written.
    """
    path = Path(path)
    model = model.eval()
    tmp = path.with_name(f".{path.name}.partial")  # a failed or killed export leaves no torn file
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                model,
                tuple(inputs),
                str(tmp),
                dynamo=False,
                opset_version=OPSET,
                input_names=list(input_names),
                output_names=list(output_names),
                dynamic_axes=dynamic_axes or {},
                do_constant_folding=True,
            )
        if metadata is not None:
            write_metadata(tmp, metadata)
        os.replace(tmp, path)
    except OSError as e:
        raise ExportError(f"cannot write {path}: {_why_unwritable(path, e)}.") from None
    except Exception as e:  # the exporter raises many types; all mean "not exportable"
        raise ExportError(f"ONNX export failed: {type(e).__name__}: {e}") from None
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
    return path


def _why_unwritable(path: Path, e: OSError) -> str:
    """The reason a user can act on: a folder given as the file, or a file in the way of
    a folder of the path (the OS only says "File exists")."""
    if path.is_dir():
        return "it is a folder; give a file name such as model.onnx"
    blocker = next((p for p in path.parents if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        return f"{blocker} is a file, not a folder"
    return str(e.strerror or e)


def ort_session(path: str | Path):
    """An onnxruntime CPU session on one thread with warnings silenced (checks, benchmarks)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.log_severity_level = 3
    # no fallback: its "EP Error" retry prints to stdout and only tries the same provider
    return ort.InferenceSession(
        str(path), opts, providers=["CPUExecutionProvider"], enable_fallback=0
    )


@dataclass(frozen=True)
class Parity:
    """How far onnxruntime is from torch, measured against the size of the outputs.

    ``relative`` is, for the worst output, max |torch - onnxruntime| divided by
    max(1, max |torch output|): float32 rounding grows with the values computed, so an
    output of magnitude 7e5 may differ by 0.03 (5e-8 of its scale) and still be right,
    while outputs of magnitude below 1 are held to the absolute difference.
    Non-finite values must match exactly (NaN for NaN, +inf for +inf).
    """

    max_abs: float
    scale: float
    relative: float

    def ok(self, tolerance: float) -> bool:
        """Whether the export passes at ``tolerance`` (relative, see the class)."""
        return self.relative <= tolerance


def parity_report(
    model: nn.Module, path: str | Path, input_shape: tuple[int, ...], batch: int = 3, seed: int = 1
) -> Parity:
    """Compare torch and onnxruntime on a random batch (not the export's batch size)."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, *input_shape, generator=gen)
    return parity_inputs_report(model, path, (x,), (INPUT_NAME,))


def parity_inputs(
    model: nn.Module,
    path: str | Path,
    inputs: tuple[torch.Tensor, ...],
    input_names: tuple[str, ...],
) -> float:
    """Max absolute difference over all outputs between torch and onnxruntime on ``inputs``."""
    return parity_inputs_report(model, path, inputs, input_names).max_abs


def parity_inputs_report(
    model: nn.Module,
    path: str | Path,
    inputs: tuple[torch.Tensor, ...],
    input_names: tuple[str, ...],
) -> Parity:
    """:class:`Parity` of torch and onnxruntime over all outputs on ``inputs``."""
    with torch.no_grad():
        ref = model.eval()(*inputs)
    refs = [ref] if isinstance(ref, torch.Tensor) else list(ref)
    try:
        sess = ort_session(path)
        feed = {n: t.numpy() for n, t in zip(input_names, inputs, strict=True)}
        got = sess.run(None, feed)
    except Exception as e:  # onnxruntime raises its own exception types
        raise ExportError(f"onnxruntime cannot run {path}: {e}") from None
    if len(got) != len(refs):
        raise ExportError(f"onnxruntime gives {len(got)} outputs, torch {len(refs)}.")
    worst, scale, relative = 0.0, 0.0, 0.0
    for g, r in zip(got, refs, strict=True):
        r = r.detach().float().numpy() if r.dtype.is_floating_point else r.numpy()
        if g.shape != r.shape:
            raise ExportError(f"onnxruntime output shape {g.shape} != torch {r.shape}.")
        if not r.size:
            continue
        diff, size = _difference(np.asarray(g, np.float64), np.asarray(r, np.float64))
        worst, scale = max(worst, diff), max(scale, size)
        relative = max(relative, diff / max(1.0, size))
    return Parity(worst, scale, relative)


def _difference(g: np.ndarray, r: np.ndarray) -> tuple[float, float]:
    """(max |g - r|, max |r|) over finite entries; inf if the non-finite entries differ."""
    finite = np.isfinite(r)
    same_special = np.array_equal(np.isnan(g), np.isnan(r)) and np.array_equal(
        np.where(finite, 0.0, np.nan_to_num(r, nan=0.0)),
        np.where(finite, 0.0, np.nan_to_num(g, nan=0.0)),
    )
    if not same_special or not np.isfinite(g[finite]).all():
        return math.inf, float(np.max(np.abs(r[finite]), initial=0.0))
    if not finite.any():
        return 0.0, 0.0
    return float(np.max(np.abs(g[finite] - r[finite]))), float(np.max(np.abs(r[finite])))
