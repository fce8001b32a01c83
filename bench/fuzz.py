"""Fuzz the input boundaries: architecture strings, grammar files, ONNX files and the CLI.

Usage: python bench/fuzz.py [--seconds 60] [--families arch,grammar,onnx,cli] [--seed 0]
                            [--timeout 10] [--max-n 100000] [--examples 3]

Each family runs in a worker process that takes one generated input at a time; the parent
kills it when an input runs past ``--timeout`` (a hang) and starts a new one. Prints per
family: inputs tried, accepted, clean errors (a NasError, or exit 1/2 without a traceback
from the CLI), unexpected exceptions (anything else, including an accepted architecture
that then fails to compile or run, and a dead worker), hangs and the worker's peak RSS.
"""

from __future__ import annotations

import argparse
import io
import multiprocessing as mp
import os
import random
import re
import resource
import sys
import tempfile
import time
import traceback
from collections import Counter
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

from nas.dsl.fuzz import arch_inputs, grammar_inputs, mutate

SPECIAL_NAMES = ("fifo", "dir", "zero", "big", "latin1")


def make_specials(root: Path) -> None:
    """Files that are not what their name says, for includes, @FILE and *.onnx."""
    for ext in ("pcfg", "onnx", "txt"):
        os.mkfifo(root / f"fifo.{ext}")
        (root / f"dir.{ext}").mkdir()
        (root / f"zero.{ext}").symlink_to("/dev/zero")
        with open(root / f"big.{ext}", "wb") as f:  # sparse: st_size large, no disk used
            f.truncate(3 << 30)
        (root / f"latin1.{ext}").write_bytes(b"a -> compute(norm)\n# caf\xe9\n")


# ----------------------------------------------------------------------- per-input tries
def try_arch(text: str, state: dict) -> str:
    """Parse and check; what check accepts must compile and run a forward pass."""
    import torch

    from nas.compile import compile_arch
    from nas.dsl import parse_arch

    spaces, rng = state["spaces"], state["rng"]
    space = spaces["nb201"] if "cell(" in text or text.startswith("nb201") else spaces["einspace"]
    node = parse_arch(text)
    space.check(node, strict=rng.random() < 0.3)
    model = compile_arch(node, space.input_shape, space.num_classes, space.mode)
    with torch.no_grad():
        y = model(torch.randn(2, *space.input_shape))
    if tuple(y.shape) != (2, space.num_classes):
        raise AssertionError(f"output shape {tuple(y.shape)}")
    return "ok"


def try_grammar(src: bytes, state: dict) -> str:
    """Load the grammar (from a file, includes resolved next to it), then draw one sample."""
    from nas.dsl import load_grammar
    from nas.exceptions import NasError
    from nas.sampling import Sampler
    from nas.space import SearchSpace

    path = state["dir"] / "g.pcfg"
    path.write_bytes(src)
    grammar = load_grammar(path)
    space = SearchSpace("fuzz", grammar, (3, 16, 16))
    try:
        Sampler(space, seed=0).sample()
    except NasError:
        return "ok (no sample)"
    return "ok"


def try_onnx(item: tuple[str, bytes], state: dict) -> str:
    """Read the file as ``nas rank --proxy`` does (record, shape probe and NASWOT run, both
    memory-capped), then as ``nas encode`` does; a file's notes say a run was skipped."""
    from nas.predictors.encode import graph_text
    from nas.predictors.onnxfile import DEFAULT_MAX_BYTES, as_file_error
    from nas.predictors.probe import DEFAULT_PROBE_BYTES
    from nas.predictors.rank_read import rank_record

    kind, data, _ = item
    path = state["specials"] / f"{kind}.onnx" if kind != "bytes" else state["dir"] / "m.onnx"
    if kind == "bytes":
        path.write_bytes(data)
    record, _ = as_file_error(
        path, lambda: rank_record(path, DEFAULT_MAX_BYTES, None, True, DEFAULT_PROBE_BYTES)
    )
    graph_text(path)
    return "ok (notes)" if record.notes else "ok"


def try_cli(argv: list[str], state: dict) -> str:
    """Run ``nas ARGV`` in-process: an exception escaping main() is a traceback."""
    from nas.cli import main

    out, err = io.StringIO(), io.StringIO()
    sys.argv = ["nas", *argv]
    code = 0
    with redirect_stdout(out), redirect_stderr(err):
        try:
            main()
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 1
    if code == 2 and err.getvalue().count("\n") > 1:
        raise AssertionError(f"exit 2 with {err.getvalue().count(chr(10))} stderr lines")
    return "ok" if code == 0 else f"exit {code}"


TRIES = {"arch": try_arch, "grammar": try_grammar, "onnx": try_onnx, "cli": try_cli}


def worker(family: str, conn, specials: Path) -> None:
    """Answer (outcome, detail, peak RSS in MB) for each input received."""
    import torch

    from nas.exceptions import NasError
    from nas.space import load_space

    torch.set_num_threads(1)
    soft = 8 << 30  # runaway memory becomes a MemoryError, not a swapping machine
    resource.setrlimit(resource.RLIMIT_AS, (soft, soft))
    state = {
        "spaces": {n: load_space(n) for n in ("einspace", "nb201")},
        "rng": random.Random(0),
        "dir": Path(tempfile.mkdtemp(dir=specials)),
        "specials": specials,
    }
    os.chdir(state["dir"])
    while True:
        item = conn.recv()
        if item is None:
            return
        try:
            outcome, detail = "ok", TRIES[family](item, state)
            if detail.startswith("exit"):
                outcome = "clean"
        except NasError as e:
            outcome, detail = "clean", str(e)
        except BaseException as e:
            tb = traceback.extract_tb(e.__traceback__)
            where = f"{Path(tb[-1].filename).name}:{tb[-1].lineno}" if tb else "?"
            outcome, detail = "unexpected", f"{type(e).__name__} at {where}: {str(e)[:120]}"
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        conn.send((outcome, detail, rss))


# --------------------------------------------------------------------------- generators
def arch_source(rng: random.Random):
    """Random trees, mutants of sampled architectures, hostile structures."""
    from nas.sampling import Sampler
    from nas.space import load_space

    valid = []
    for name, n in (("einspace", 150), ("nb201", 30)):
        sampler = Sampler(load_space(name), seed=rng.randrange(1000))
        valid += [str(sampler.sample()) for _ in range(n)]
    draw = arch_inputs(rng, valid)
    return lambda: draw()[1]


def grammar_source(rng: random.Random):
    """Random grammars, mutants of the shipped ones, hostile files and includes."""
    from importlib import resources

    root = resources.files("nas.grammars")
    valid = [root.joinpath(f).read_text() for f in ("einspace.pcfg", "nb201.pcfg")]
    draw = grammar_inputs(rng, valid)

    def next_input() -> bytes:
        src = draw()[1]
        if rng.random() < 0.08:
            target = rng.choice([*SPECIAL_NAMES, "../../../../dev/zero", "g.pcfg", "nope"])
            src = f'include "{target}.pcfg"\n'.encode() + src
        return src

    return next_input


def onnx_source(rng: random.Random):
    """Exported models, byte-mutated and proto-mutated, and non-regular *.onnx files."""
    import numpy as np
    import onnx

    from nas.compile import compile_arch
    from nas.export import export_onnx
    from nas.sampling import Sampler
    from nas.space import load_space

    bases = []
    with tempfile.TemporaryDirectory() as d:
        for name, n in (("einspace", 3), ("nb201", 1)):
            space = load_space(name)
            sampler = Sampler(space, seed=1)
            for i in range(n):
                model = compile_arch(sampler.sample(), space.input_shape, space.num_classes)
                path = export_onnx(model, space.input_shape, Path(d) / f"{name}{i}.onnx")
                bases.append(path.read_bytes())

    def proto_mutant() -> tuple[bytes, str]:
        m = onnx.load_from_string(rng.choice(bases))
        g = m.graph
        kind = rng.randrange(7)
        label = ["dims", "dtype", "bad UTF-8 string tensor", "op/input", "attribute", "chain"]
        label = (label + ["memory bomb"])[kind]
        if kind == 0 and g.initializer:
            t = rng.choice(g.initializer)
            t.dims[:] = [rng.choice([-1, 0, 3, 2**31, 2**40, 7]) for _ in range(rng.randint(0, 4))]
        elif kind == 1 and g.initializer:
            rng.choice(g.initializer).data_type = rng.randrange(0, 30)
        elif kind == 2:
            t = g.initializer.add()
            t.name, t.data_type = f"s{rng.randrange(99)}", onnx.TensorProto.STRING
            t.dims[:] = [2]
            t.string_data[:] = [b"\xff\xfe", b"ok"]
        elif kind == 3 and g.node:
            n = rng.choice(g.node)
            n.op_type = rng.choice(["Conv", "Gemm", "Nope", "", "Relu", "Loop"])
            if n.input and rng.random() < 0.5:
                n.input[0] = rng.choice(["", "missing", n.output[0] if n.output else "x"])
        elif kind == 4 and g.node:
            n = rng.choice(g.node)
            a = n.attribute.add()
            a.name, a.type = "bogus", rng.randrange(0, 15)
            a.s = b"\xff" * rng.randint(0, 4)
        elif kind == 6:  # a huge tensor, sized by constants or only at run time
            from onnx import TensorProto as TP
            from onnx import helper as oh
            from onnx import numpy_helper as onh

            big = rng.choice([[1 << 14, 1 << 14], [1 << 16, 1 << 16], [4096, 4096, 64]])
            if rng.random() < 0.5:
                g.initializer.append(onh.from_array(np.array(big, np.int64), "bomb_shape"))
                g.node.add().CopyFrom(oh.make_node("ConstantOfShape", ["bomb_shape"], ["bomb"]))
                label = f"memory bomb {big}"
            else:  # ceil(sigmoid(max x)) * n elements: 1 * n, unknown to shape inference
                n = float(np.prod(big))
                g.initializer.append(onh.from_array(np.array([n], np.float32), "bomb_n"))
                x = g.input[0].name
                for node in [
                    oh.make_node("ReduceMax", [x], ["bomb_m"], keepdims=0),
                    oh.make_node("Sigmoid", ["bomb_m"], ["bomb_s"]),
                    oh.make_node("Ceil", ["bomb_s"], ["bomb_c"]),
                    oh.make_node("Mul", ["bomb_c", "bomb_n"], ["bomb_f"]),
                    oh.make_node("Cast", ["bomb_f"], ["bomb_i"], to=TP.INT64),
                    oh.make_node("ConstantOfShape", ["bomb_i"], ["bomb"]),
                ]:
                    g.node.add().CopyFrom(node)
                label = f"run-time memory bomb of {int(n):,} values"
            g.output.append(oh.make_tensor_value_info("bomb", TP.FLOAT, None))
        else:  # a long chain (the canonical order must be fast)
            size = rng.choice([100, 1000, 5000])
            x = g.output[0].name
            for i in range(size):
                g.node.add(op_type="Relu", input=[x], output=[f"r{i}"])
                x = f"r{i}"
            g.output[0].name = x
            label = f"chain of {size} Relu"
        return m.SerializeToString(), f"proto: {label}"

    def next_input() -> tuple[str, bytes, str]:
        r = rng.random()
        if r < 0.05:
            name = rng.choice(SPECIAL_NAMES)
            return name, b"", f"{name}.onnx"
        if r < 0.5:
            data = bytearray(rng.choice(bases))
            for _ in range(rng.randint(1, 8)):
                if not data:  # cut to nothing already
                    break
                i = rng.randrange(len(data))
                op = rng.randrange(3)
                if op == 0:
                    data[i] ^= 1 << rng.randrange(8)
                elif op == 1:
                    del data[i:]
                else:
                    data[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
            return "bytes", bytes(data), "bytes: flips, cuts, inserts"
        return "bytes", *proto_mutant()

    return next_input


def cli_source(rng: random.Random, specials: Path):
    """`nas check/show/export/sample` on generated strings, @FILEs and grammar files."""
    archs, grammars = arch_source(rng), grammar_source(rng)
    n = [0]

    def next_input() -> list[str]:
        n[0] += 1
        cmd = rng.choice(["check", "show", "export", "sample", "check"])
        if cmd == "sample":
            f = specials / f"cli{n[0] % 50}.pcfg"
            f.write_bytes(grammars())
            if rng.random() < 0.1:
                f = specials / f"{rng.choice(SPECIAL_NAMES)}.pcfg"
            space = str(f)
            return ["sample", "--space", space, "-n", "2", "--seed", str(n[0])]
        arch = archs()
        if rng.random() < 0.15:
            f = specials / f"arch{n[0] % 50}.txt"
            f.write_bytes(mutate(rng, arch).encode("utf-8", "replace"))
            arch = "@" + str(rng.choice([f, specials / f"{rng.choice(SPECIAL_NAMES)}.txt"]))
        space = "nb201" if "cell(" in arch else "einspace"
        args = [cmd, arch, "--space", space]
        if rng.random() < 0.1:
            shape = rng.choice(["3x8x8", "0x3x3", "3x1x1", "x", "1x1", "9" * 30])
            args += ["--input-shape", shape]
        if cmd == "export":
            args += ["-o", str(specials / "out.onnx")]
        return args

    return next_input


# --------------------------------------------------------------------------------- driver
def describe(item: object) -> str:
    """A short printable form of an input (a CLI call shows the start of its files)."""
    if isinstance(item, tuple) and len(item) == 3:  # an ONNX input: its label says what
        return item[2]
    text = repr(item)[:160]
    if isinstance(item, list):
        for a in item:
            f = Path(a.lstrip("@"))
            if f.name.startswith(("cli", "arch")) and f.is_file():
                text += f"  [{f.name}: {f.read_bytes()[:300]!r}]"
    return text


def run_family(family: str, source, args, specials: Path) -> dict:
    """Feed ``source()`` inputs to a worker for ``args.seconds``; count the outcomes."""
    ctx = mp.get_context("fork")
    counts: Counter = Counter()
    examples: dict[str, list[str]] = {}
    peak = 0.0

    def start():
        parent, child = ctx.Pipe()
        p = ctx.Process(target=worker, args=(family, child, specials), daemon=True)
        p.start()
        return p, parent

    proc, conn = start()
    fresh = True
    t_end = time.monotonic() + args.seconds
    while time.monotonic() < t_end and counts["tried"] < args.max_n:
        item = source()
        conn.send(item)
        counts["tried"] += 1
        if conn.poll(args.timeout + (60 if fresh else 0)):  # a new worker imports torch first
            try:
                outcome, detail, rss = conn.recv()
            except EOFError:
                outcome, detail, rss = "unexpected", f"worker died (exit {proc.exitcode})", 0
                proc, conn = start()
            peak = max(peak, rss)
        elif not proc.is_alive():
            outcome, detail = "unexpected", f"worker died (exit {proc.exitcode})"
            proc, conn = start()
        else:
            outcome, detail = "hang", f"no answer in {args.timeout} s"
            proc.kill()
            proc.join()
            proc, conn = start()
        fresh = outcome in ("hang",) or not proc.is_alive() or detail.startswith("worker died")
        counts[outcome] += 1
        if outcome in ("unexpected", "hang"):
            kind = re.match(r"\S+ at \S+:\d+", detail)
            key = kind.group(0) if kind else detail[:90]
            examples.setdefault(key, []).append(f"{describe(item)}  -- {detail[:100]}")
    conn.send(None)
    proc.join(10)
    if proc.is_alive():
        proc.kill()
    return {"counts": counts, "examples": examples, "peak": peak}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60, help="per family")
    ap.add_argument("--families", default="arch,grammar,onnx,cli")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=10, help="seconds per input")
    ap.add_argument("--max-n", type=int, default=100_000, help="inputs per family at most")
    ap.add_argument("--examples", type=int, default=3, help="examples per failure kind")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="nas-fuzz-") as d:
        specials = Path(d)
        make_specials(specials)
        rows = []
        for family in args.families.split(","):
            rng = random.Random(f"{args.seed}-{family}")
            makers = {"arch": arch_source, "grammar": grammar_source, "onnx": onnx_source}
            source = makers[family](rng) if family in makers else cli_source(rng, specials)
            t = time.perf_counter()
            res = run_family(family, source, args, specials)
            rows.append((family, res, time.perf_counter() - t))
            c = res["counts"]
            print(
                f"{family:8s} tried {c['tried']:6d}  ok {c['ok']:6d}  clean errors "
                f"{c['clean']:6d}  unexpected {c['unexpected']:4d}  hangs {c['hang']:3d}  "
                f"peak RSS {res['peak']:,.0f} MB  ({time.perf_counter() - t:.0f} s)",
                flush=True,
            )
            for detail, items in sorted(res["examples"].items(), key=lambda kv: -len(kv[1])):
                print(f"    {len(items):4d} x {detail}")
                for it in items[: args.examples]:
                    print(f"           {it}")


if __name__ == "__main__":
    main()
