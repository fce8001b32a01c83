"""`nas rank` speed and memory (issue 15): 1,000 NB201 files with the NASWOT proxy (the
default) and without it, and one 20,000-node exported transformer.

Usage (from the repository root)::

    .venv/bin/python bench/rank_speed.py [--n 1000] [--distinct 100] [--layers 120] [--keep DIR]
                                         [--skip-nb201] [--skip-big] [--labels 16]

* NB201: ``--distinct`` random NB201 cells compiled and exported (``nas export``'s
  exporter, no parity run), copied with fresh random weights up to ``--n`` files, then
  ``nas rank DIR --json`` three times in fresh processes: an empty embedding cache (cold),
  warm (both with the NASWOT proxy and two reader processes, the defaults), warm with
  ``--no-proxy``, and warm with ``--workers 1``. ``--labels K``: then warm again and warm
  with ``--labels`` naming K of the files (random accuracies): the few-shot fit's cost.
* big graph: a stack of ``--layers`` torch ``TransformerEncoderLayer`` (d=64, 4 heads, GELU,
  real random weights; 168 nodes a layer, about 20,000 in all at 120) exported with a
  dynamic batch, then ranked cold, warm and warm with ``--proxy``. Its reshapes leave dims
  unknown, so the shape probe (an onnxruntime run) is part of the time.

Each line gives wall and CPU seconds (reader processes included) and the peak RSS of the
largest process (``wait4``) and of all of them together (sampled from /proc every 0.25 s);
on a shared machine the CPU seconds are the figure its load does not inflate.
``--keep DIR`` keeps the exported files there and reuses them on the next run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path


def export_nb201(folder: Path, n: int, distinct: int, seed: int = 1) -> list[Path]:
    """``n`` NB201 files in ``folder`` (reused when already there): ``distinct`` random cells
    compiled and exported, then copies of them with fresh random weights up to ``n`` (an
    export takes 0.2-2 s here; ranking a file costs the same whatever its weights)."""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    from nas.benchmarks.nb201 import NB201Table
    from nas.compile import compile_arch
    from nas.export import export_onnx
    from nas.nb201 import from_nb201

    folder.mkdir(parents=True, exist_ok=True)
    have = sorted(folder.glob("*.onnx"))
    if len(have) >= n:
        return have[:n]
    table = NB201Table.load()
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(table), min(n, distinct), replace=False)
    t0 = time.perf_counter()
    files = []
    for k, i in enumerate(picks):
        model = compile_arch(from_nb201(table.archs[int(i)]), (3, 32, 32), 10)
        files.append(export_onnx(model, (3, 32, 32), folder / f"nb201_{k:04d}.onnx"))
    for k in range(len(files), n):
        m = onnx.load(str(files[k % len(picks)]))
        for t in m.graph.initializer:
            a = numpy_helper.to_array(t)
            if a.dtype == np.float32 and a.size > 16:
                new = (rng.standard_normal(a.shape) * (a.std() or 1)).astype(np.float32)
                t.CopyFrom(numpy_helper.from_array(new, t.name))
        path = folder / f"nb201_{k:04d}.onnx"
        onnx.save(m, str(path))
        files.append(path)
    took = time.perf_counter() - t0
    print(f"made {n} NB201 files ({len(picks)} cells exported) in {took:.0f} s", flush=True)
    return files


def write_labels(path: Path, folder: Path, k: int, seed: int = 0) -> Path:
    """A labels CSV for ``k`` of the files in ``folder``, with random accuracies (the time
    of a fit does not depend on the values)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    files = sorted(folder.glob("*.onnx"))
    picks = rng.choice(len(files), k, replace=False)
    lines = [f"{files[i]},{rng.uniform(50, 95):.2f}" for i in picks]
    path.write_text("\n".join(["file,accuracy", *lines]) + "\n")
    return path


def export_transformer(path: Path, layers: int) -> Path:
    """A ``layers``-deep transformer encoder exported with a dynamic batch (reused)."""
    if path.is_file():
        return path
    import torch
    from torch import nn

    class Encoder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.layers = nn.ModuleList(
                nn.TransformerEncoderLayer(64, 4, 128, 0.0, "gelu", batch_first=True)
                for _ in range(layers)
            )
            self.head = nn.Linear(64, 10)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            for layer in self.layers:
                x = layer(x)
            return self.head(x.mean(1))

    torch.manual_seed(0)
    t0 = time.perf_counter()
    torch.onnx.export(
        Encoder().eval(), (torch.randn(2, 16, 64),), str(path), input_names=["x"],
        output_names=["y"], dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}},
        opset_version=17, dynamo=False,
    )  # fmt: skip
    print(f"exported a {layers}-layer transformer in {time.perf_counter() - t0:.0f} s")
    return path


TREE_PEAK = [0.0]  # MB: the last timed run's peak of summed RSS over its process tree


def _tree_rss_mb(root: int) -> float:
    """Summed RSS (MB) of ``root`` and its descendants, from /proc (reader workers too)."""
    parent: dict[int, int] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                parent[int(d.name)] = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    tree, todo = set(), [root]
    while todo:
        p = todo.pop()
        tree.add(p)
        todo += [c for c, pp in parent.items() if pp == p and c not in tree]
    kb = 0
    for p in tree:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    kb += int(line.split()[1])
        except OSError:
            continue
    return kb / 1024


def _sample_tree(root: int, peak: list[float]) -> None:
    """Keep the largest summed RSS of ``root``'s tree in ``peak[0]`` until it exits."""
    while Path(f"/proc/{root}").exists():
        peak[0] = max(peak[0], _tree_rss_mb(root))  # files gone mid-read count as 0
        time.sleep(0.25)


def timed_rank(target: Path, cache: Path, *extra: str) -> tuple[float, float, float, dict]:
    """(wall seconds, CPU seconds, peak RSS in MB, parsed --json output) of one ``nas rank``
    process (CPU seconds are what a shared machine's load does not inflate)."""
    cmd = [str(Path(sys.executable).parent / "nas"), "rank", str(target), "--json", *extra]
    env = {**os.environ, "XDG_CACHE_HOME": str(cache)}
    t0 = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.DEVNULL)
        peak = [0.0]
        sampler = threading.Thread(target=_sample_tree, args=(proc.pid, peak), daemon=True)
        sampler.start()
        _, status, usage = os.wait4(proc.pid, 0)
        took = time.perf_counter() - t0
        sampler.join()
        TREE_PEAK[0] = peak[0]
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read()
    result = json.loads(text) if text.strip().startswith("{") else {"ranked": [], "errors": []}
    return took, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, result


def report(label: str, took: float, cpu: float, rss: float, result: dict) -> None:
    """One line: label, wall and CPU seconds, peak RSS, files ranked / errors, notes."""
    ranked, errors = result.get("ranked", []), result.get("errors", [])
    nwot = sum(r.get("nwot") is not None for r in ranked)
    notes = sorted({n for r in ranked for n in r.get("notes", [])})
    print(
        f"{label:40s} {took:7.1f} s (CPU {cpu:6.1f} s)  peak RSS {rss:5.0f} MB "
        f"(all processes {TREE_PEAK[0]:5.0f} MB)  "
        f"ranked {len(ranked)}, "
        f"errors {len(errors)}, with nwot {nwot}" + (f"  notes: {notes[:2]}" if notes else ""),
        flush=True,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1000, help="NB201 files")
    ap.add_argument("--distinct", type=int, default=100, help="NB201 cells exported")
    ap.add_argument("--layers", type=int, default=120, help="transformer layers (168 nodes each)")
    ap.add_argument("--keep", default=None, help="folder to keep (and reuse) the files in")
    ap.add_argument("--skip-nb201", action="store_true")
    ap.add_argument("--skip-big", action="store_true")
    ap.add_argument(
        "--labels", type=int, default=0, help="also rank warm with --labels of this many files"
    )
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="nas-rank-speed-") as tmp:
        root = Path(args.keep) if args.keep else Path(tmp)
        if not args.skip_nb201:
            folder = root / f"nb201-{args.n}"
            export_nb201(folder, args.n, args.distinct)
            cache = Path(tmp) / "cache-nb201"
            report(f"{args.n} NB201 files, cold cache", *timed_rank(folder, cache))
            report(f"{args.n} NB201 files, warm", *timed_rank(folder, cache))
            report(
                f"{args.n} NB201 files, warm, --no-proxy", *timed_rank(folder, cache, "--no-proxy")
            )
            one = timed_rank(folder, cache, "--workers", "1")
            report(f"{args.n} NB201 files, warm, --workers 1", *one)
            if args.labels:
                csv = write_labels(Path(tmp) / "labels.csv", folder, args.labels)
                again = timed_rank(folder, cache)
                report(f"{args.n} NB201 files, warm (again)", *again)
                fitted = timed_rank(folder, cache, "--labels", str(csv))
                report(f"{args.n} NB201 files, warm, --labels k={args.labels}", *fitted)
                print(f"  mode: {fitted[3].get('header', '?')}", flush=True)
        if not args.skip_big:
            import onnx

            path = export_transformer(root / f"transformer-{args.layers}.onnx", args.layers)
            nodes = len(onnx.load(str(path), load_external_data=False).graph.node)
            cache = Path(tmp) / "cache-big"
            label = f"{nodes:,}-node transformer"
            report(f"{label}, cold cache", *timed_rank(path, cache))
            report(f"{label}, warm", *timed_rank(path, cache))
            report(f"{label}, warm, --no-proxy", *timed_rank(path, cache, "--no-proxy"))


if __name__ == "__main__":
    main()
