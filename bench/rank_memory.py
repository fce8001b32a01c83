"""`nas rank` memory on a folder of mixed files (issue 26): bounded by the largest file's
work, not by the sum of the files.

Usage (from the repository root)::

    .venv/bin/python bench/rank_memory.py [--keep DIR] [--nodes 8000000] [-- RANK OPTIONS]

Makes 40 files in a temporary folder (``--keep DIR``: there, reused on the next run):

* 32 real networks, exported as ``nas export`` and ``nas zoo export`` write them: the nine
  einspace seeds, eight sampled einspace architectures, eight NB201 cells and the seven zoo
  families at their default configurations, with fresh random weights;
* 8 hostile files: ``--nodes`` (8 million) empty nodes appended to a valid model (a 16 MB
  file; the model is made with the onnx helper and the empty ``NodeProto`` entries are
  written in their wire form, two bytes each, which is what serialising them would give),
  a truncated copy of a real network, a text file, an empty file, a model the ONNX checker
  rejects (an ``Add`` with one input), a custom-domain op without an opset import (ranked,
  with a note), a ``ConstantOfShape`` of 2^32 values and a 6,000-node ``Relu`` chain.

Then ``nas rank --json`` runs on the folder in a child process, again on a copy without the
huge file (the baseline), and on the largest real file alone. Each line gives the peak RSS
of that child (``os.wait4``: ``getrusage(RUSAGE_CHILDREN)`` of that one child, reader
processes included), its wall time and how many files were ranked and not ranked; the
target (issue 26) is a peak under 1 GB for the folder.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NB201_CELLS = [
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|",
    "|nor_conv_1x1~0|+|skip_connect~0|nor_conv_3x3~1|+|avg_pool_3x3~0|none~1|nor_conv_1x1~2|",
    "|skip_connect~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|nor_conv_1x1~0|skip_connect~1|none~2|",
    "|avg_pool_3x3~0|+|nor_conv_1x1~0|nor_conv_1x1~1|+|nor_conv_3x3~0|none~1|skip_connect~2|",
    "|nor_conv_3x3~0|+|none~0|skip_connect~1|+|nor_conv_3x3~0|nor_conv_1x1~1|avg_pool_3x3~2|",
    "|none~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_1x1~0|nor_conv_3x3~1|nor_conv_3x3~2|",
    "|nor_conv_1x1~0|+|nor_conv_1x1~0|avg_pool_3x3~1|+|skip_connect~0|skip_connect~1|none~2|",
    "|skip_connect~0|+|avg_pool_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_1x1~2|",
]  # fmt: skip


def real_networks(folder: Path) -> list[Path]:
    """The 32 real networks (einspace seeds and samples, NB201 cells, zoo families)."""
    import torch
    from nas.zoo import export_config, list_families

    from nas.compile import compile_arch
    from nas.dsl.arch import parse_arch
    from nas.export import export_onnx
    from nas.nb201 import from_nb201
    from nas.sampling import Sampler
    from nas.space import load_space

    torch.manual_seed(0)
    sp = load_space("einspace")
    files = []
    for seed in sorted((ROOT / "spaces" / "seeds").glob("*.arch")):
        model = compile_arch(parse_arch(seed.read_text()), sp.input_shape, sp.num_classes, sp.mode)
        files.append(export_onnx(model.eval(), sp.input_shape, folder / f"seed_{seed.stem}.onnx"))
    sampler, k = Sampler(sp, seed=26), 0
    while k < 8:  # a draw that does not compile or export is drawn again
        try:
            arch = sampler.sample()
            model = compile_arch(arch, sp.input_shape, sp.num_classes, sp.mode).eval()
            files.append(export_onnx(model, sp.input_shape, folder / f"einspace_{k}.onnx"))
            k += 1
        except Exception as e:  # a sampled network that cannot be exported
            print(f"  (a sample skipped: {type(e).__name__})", flush=True)
    for k, cell in enumerate(NB201_CELLS):
        model = compile_arch(from_nb201(cell), (3, 32, 32), 10).eval()
        files.append(export_onnx(model, (3, 32, 32), folder / f"nb201_{k}.onnx"))
    for name in list_families():
        files.append(export_config(name, folder / f"zoo_{name}.onnx")[0])
    return files


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _model(nodes: list) -> bytes:
    """A small model in bytes: ``nodes`` from ``x`` [1, 4] to ``y`` [1, 4]."""
    from onnx import TensorProto as TP
    from onnx import helper as h

    graph = h.make_graph(
        nodes, "g", [h.make_tensor_value_info("x", TP.FLOAT, [1, 4])],
        [h.make_tensor_value_info("y", TP.FLOAT, [1, 4])],
    )  # fmt: skip
    return h.make_model(graph, opset_imports=[h.make_opsetid("", 17)]).SerializeToString()


def huge_file(path: Path, nodes: int) -> Path:
    """A valid one-node model followed by ``nodes`` empty ``NodeProto`` entries of its
    graph (a second ``graph`` field merges into the first when parsed)."""
    from onnx import helper as h

    body = b"\x0a\x00" * nodes  # field 1 (node), length 0
    path.write_bytes(
        _model([h.make_node("Relu", ["x"], ["y"])]) + b"\x3a" + _varint(len(body)) + body
    )
    return path


def hostile_files(folder: Path, real: Path, nodes: int) -> list[Path]:
    """The 8 hostile files; ``real`` is truncated for one of them."""
    from onnx import TensorProto as TP
    from onnx import helper as h

    files = [huge_file(folder / "huge_empty_nodes.onnx", nodes)]
    data = real.read_bytes()
    (folder / "truncated.onnx").write_bytes(data[: len(data) // 2])
    (folder / "not_onnx.onnx").write_text("this is not an ONNX model\n")
    (folder / "empty.onnx").write_bytes(b"")
    (folder / "invalid_add.onnx").write_bytes(_model([h.make_node("Add", ["x"], ["y"])]))
    (folder / "custom_op.onnx").write_bytes(
        _model([h.make_node("Foo", ["x"], ["y"], domain="my.ops")])
    )
    shape = h.make_tensor("s", TP.INT64, [2], [65536, 65536])
    (folder / "bomb.onnx").write_bytes(
        _model(
            [
                h.make_node("Constant", [], ["s"], value=shape),
                h.make_node("ConstantOfShape", ["s"], ["c"]),
                h.make_node("ReduceSum", ["c"], ["r"], keepdims=0),
                h.make_node("Add", ["x", "r"], ["y"]),
            ]
        )
    )
    chain = [h.make_node("Relu", [f"t{i}"], [f"t{i + 1}"]) for i in range(6000)]
    chain.append(h.make_node("Identity", ["t6000"], ["y"]))
    chain[0].input[0] = "x"
    (folder / "relu_chain.onnx").write_bytes(_model(chain))
    names = ["truncated", "not_onnx", "empty", "invalid_add", "custom_op", "bomb", "relu_chain"]
    return files + [folder / f"{n}.onnx" for n in names]


def rank_child(where: Path, extra: list[str]) -> dict:
    """``nas rank --json WHERE`` (a folder or a file) in a child process: peak RSS (MB),
    wall seconds, counts, error rows and the rows the ONNX checker's objections flag."""
    nas = Path(sys.executable).parent / "nas"
    cmd = [str(nas), "rank", "--json", str(where), *extra]
    t0 = time.perf_counter()
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - t0
        out.seek(0)
        text = out.read().decode(errors="replace")
    try:
        result = json.loads(text)
    except ValueError:
        print(text[-2000:])
        raise SystemExit(f"nas rank exited {proc.returncode} without JSON") from None
    return {
        "peak_mb": usage.ru_maxrss / 1024,
        "wall_s": wall,
        "ranked": len(result["ranked"]),
        "errors": result["errors"],
        "flagged": {
            Path(r["file"]).name: n for r in result["ranked"] for n in r["notes"] if "checker" in n
        },
        "exit": proc.returncode,
    }


def main() -> None:
    """Make the folder, rank it and the folder without the huge file, print the figures."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keep", type=Path, help="make the files here and reuse them")
    ap.add_argument("--nodes", type=int, default=8_000_000, help="empty nodes of the huge file")
    ap.add_argument("rank_options", nargs="*", help="more `nas rank` options (after --)")
    args = ap.parse_args()
    tmp = tempfile.TemporaryDirectory()
    folder = args.keep or Path(tmp.name) / "all"
    folder.mkdir(parents=True, exist_ok=True)
    files = sorted(folder.glob("*.onnx"))
    if len(files) != 40:
        for f in files:
            f.unlink()
        t0 = time.perf_counter()
        real = real_networks(folder)
        hostile_files(folder, real[0], args.nodes)
        files = sorted(folder.glob("*.onnx"))
        print(f"made {len(files)} files in {time.perf_counter() - t0:.0f} s", flush=True)
    assert len(files) == 40, [f.name for f in files]
    base = Path(tmp.name) / "baseline"
    base.mkdir()
    for f in files:
        if f.name != "huge_empty_nodes.onnx":
            shutil.copy(f, base / f.name)
    mb = sum(f.stat().st_size for f in files) / 2**20
    biggest = max(base.glob("*.onnx"), key=lambda f: f.stat().st_size)
    print(f"{len(files)} files, {mb:.0f} MB; the largest but the huge one: {biggest.name}")
    figures = {}
    runs = (
        ("all 40 files", folder),
        ("baseline, without the huge file", base),
        (f"the largest real file alone ({biggest.name})", biggest),
    )
    for name, where in runs:
        r = figures[name] = rank_child(where, args.rank_options)
        print(
            f"{name}: peak RSS {r['peak_mb']:,.0f} MB, {r['wall_s']:.1f} s wall, "
            f"{r['ranked']} ranked, {len(r['errors'])} not ranked, exit {r['exit']}",
            flush=True,
        )
        for e in r["errors"]:
            print(f"  not ranked {Path(e['file']).name}: {e['error']}")
        for file, note in r["flagged"].items():
            print(f"  ranked with a note {file}: {note}")
    a, b, c = (r["peak_mb"] for r in figures.values())
    print(f"peak of all / baseline: {a / b:.2f}; all / the largest file alone: {a / c:.2f}")
    tmp.cleanup()


if __name__ == "__main__":
    main()
