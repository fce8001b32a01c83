"""``nas sample|show|check|export|ops|spaces``: architectures and spaces (thin wrappers)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.tree import Tree

from nas.cli._app import (
    MAX_TOLERANCE,
    ClassesOpt,
    CtxSpaceOpt,
    Number,
    OptArchArg,
    RankOpt,
    RunOpt,
    ShapeOpt,
    SpaceOpt,
    app,
    out,
    seed_opt,
    space_for,
)
from nas.exceptions import ConfigurationError
from nas.formats import resolve_arch, write_formats
from nas.ops.spec import head_params
from nas.searches.context import RunContext, run_context
from nas.tolerance import TOLERANCE, ZOO_TOLERANCE


@app.command()
def sample(
    space: SpaceOpt = "einspace",
    input_shape: ShapeOpt = None,
    num_classes: ClassesOpt = None,
    n: Annotated[
        int,
        typer.Option(
            "-n", "--num", "--n", help="How many architectures (0: none).", parser=Number("-n")
        ),
    ] = 10,
    seed: Annotated[int, seed_opt("Random seed; same seed, same output.")] = 0,
) -> None:
    """Draw architectures; one JSON object per line: arch, params (with head), depth (a
    config space: arch and its hyperparameter values)."""
    from nas.sampling import Sampler

    sp = space_for(space, input_shape, num_classes)
    sampler = Sampler(sp, seed=seed)
    for _ in range(n):
        out.print(json.dumps(_sample_record(sp, sampler.sample())), markup=False)


def _sample_record(sp: Any, arch: Any) -> dict[str, Any]:
    """A network's arch, params (with head) and depth; a config space's arch and values."""
    from nas.dsl.config import config_values, is_config

    if is_config(arch.op):  # hyperparameters, not a network: nothing to count
        space = sp.grammar.configs.get(arch.op)
        values = space.values(arch) if space is not None else config_values(arch)
        return {"arch": str(arch), "config": values}
    a = sp.check(arch)
    return {
        "arch": str(arch),
        "params": a.params + head_params(a.out[0], sp.num_classes),
        "depth": a.depth,
        **write_formats(arch, sp),
    }


@app.command()
def show(
    arch: OptArchArg = None,
    space: CtxSpaceOpt = None,
    input_shape: ShapeOpt = None,
    num_classes: ClassesOpt = None,
    run: RunOpt = None,
    rank: RankOpt = None,
) -> None:
    """Print the derivation as a tree with output shapes and parameters per module.

    With --run: in the run's space, on its input and classes; without ARCH, its best trial.
    """
    node, sp = _resolve(arch, space, input_shape, num_classes, run, rank, "show")
    a = sp.check(node)
    from nas.analysis import analyse
    from nas.dsl.vocab import create_node

    full = analyse(node, sp.input, record=True)

    def label(path: tuple[int, ...]) -> str:
        info = full.nodes[path]
        op = create_node(info.node.op, **dict(info.node.params))
        name = repr(op)
        shapes = " ".join(str(s) for s in info.out)
        return f"[bold]{name}[/bold]  -> {shapes}  [dim]{info.params:,} params[/dim]"

    def grow(tree: Tree, path: tuple[int, ...]) -> None:
        node_ = full.nodes[path].node
        for i in range(len(node_.children)):
            p = (*path, i)
            if p in full.nodes:
                grow(tree.add(label(p)), p)

    root = Tree(label(()))
    grow(root, ())
    out.print(f"input {sp.input[0]}")
    out.print(root)
    head = head_params(a.out[0], sp.num_classes)
    out.print(
        f"backbone {a.params:,} params + head {head:,} = {a.params + head:,}; "
        f"depth {a.depth}, {a.n_ops} ops, {a.flops:,} MACs, "
        f"{a.activation:,} activation elements per sample"
    )


@app.command()
def check(
    arch: OptArchArg = None,
    space: CtxSpaceOpt = None,
    input_shape: ShapeOpt = None,
    num_classes: ClassesOpt = None,
    run: RunOpt = None,
    rank: RankOpt = None,
    strict: Annotated[bool, typer.Option(help="Also require the grammar to derive it.")] = False,
) -> None:
    """Validate an architecture: parse, shape rules, budgets (and the grammar with --strict).

    With --run: in the run's space, on its input and classes; without ARCH, its best trial.
    """
    node, sp = _resolve(arch, space, input_shape, num_classes, run, rank, "check")
    a = sp.check(node, strict=strict)
    derivable = " derivable from the grammar;" if strict else ""
    out.print(
        f"ok:{derivable} output {', '.join(map(str, a.out))}, {a.params:,} backbone "
        f"params, depth {a.depth}, {a.n_ops} ops, {a.flops:,} MACs per sample"
    )


def _context(arch: str | None, run: Path | None, rank: int | None, what: str) -> RunContext | None:
    """The run context of a command's ARCH/--run/--rank (None without --run)."""
    if arch is None and run is None:
        raise ConfigurationError("give an architecture or --run RUN_DIR.")
    if run is None:
        if rank is not None:
            raise ConfigurationError("--rank needs --run RUN_DIR.")
        return None
    return run_context(run, None if arch is not None else (1 if rank is None else rank), what)


def _space(
    ctx: RunContext | None, space: str | None, input_shape: str | None, num_classes: int | None
) -> Any:
    """The space a command works in: its flags', or the run's (flags that disagree refused)."""
    if ctx is None:
        return space_for(space or "einspace", input_shape, num_classes)
    from nas.ops.spec import parse_shape
    from nas.space import load_space

    sp = load_space(ctx.space)
    shape = ctx.input_shape if ctx.input_shape != tuple(sp.input_shape) else None
    sp = sp.with_input(shape, ctx.num_classes)
    bad = []
    if space is not None and not _same_space(space, ctx.space):
        bad.append(f"--space {space} (the run's: {ctx.space})")
    if input_shape is not None and parse_shape(input_shape) != tuple(sp.input_shape):
        bad.append(f"--input-shape {input_shape} (the run's: {_shape(sp.input_shape)})")
    if num_classes is not None and num_classes != sp.num_classes:
        bad.append(f"--num-classes {num_classes} (the run's: {sp.num_classes})")
    if bad:
        one = len(bad) == 1
        raise ConfigurationError(
            f"{', '.join(bad)} {'disagrees' if one else 'disagree'} with --run {ctx.run}, "
            f"which sets the space, input shape and classes: leave {'it' if one else 'them'} "
            "out, or drop --run."
        )
    return sp


def _same_space(given: str, recorded: str) -> bool:
    """Whether ``--space given`` names the run's space (a name, or the same file)."""
    if given == recorded:
        return True
    a, b = Path(given), Path(recorded)
    return a.is_file() and b.is_file() and a.resolve() == b.resolve()


def _shape(shape: tuple[int, ...]) -> str:
    return "x".join(map(str, shape))


def _say_context(ctx: RunContext, sp: Any, trial: bool = True) -> None:
    """One line: the run's space, input and classes (and the trial taken from it)."""
    line = (
        f"run {ctx.run}: space {ctx.space}, input {_shape(sp.input_shape)} {sp.mode}, "
        f"{sp.num_classes} classes"
    )
    if trial and ctx.arch is not None:
        line += f"; rank {ctx.rank} (trial {ctx.trial}): {ctx.arch}"
    out.print(line, markup=False)


def _resolve(
    arch: str | None,
    space: str | None,
    input_shape: str | None,
    num_classes: int | None,
    run: Path | None,
    rank: int | None,
    what: str,
) -> tuple[Any, Any]:
    """(architecture node, space) of show/check: ARCH in its flags' space, or in --run's."""
    ctx = _context(arch, run, rank, what)
    sp = _space(ctx, space, input_shape, num_classes)
    if ctx is not None:
        _say_context(ctx, sp)
        arch = arch if arch is not None else ctx.arch
    assert arch is not None
    return resolve_arch(arch, sp), sp


def _export_whole(
    ctx: RunContext, arch: str | None, output: Path, seed: int, tolerance: float | None
) -> bool:
    """Export what needs no compiling: a run's retrained best.onnx, or a zoo run's config.

    Returns False when the architecture belongs to a space (the caller compiles it).
    """
    import shutil

    from nas.space import space_scheme

    run = ctx.run
    if arch is None:
        arch = ctx.arch
        if ctx.rank == 1 and (run / "best.onnx").is_file():
            output.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(run / "best.onnx", output)
            out.print(f"wrote {output}: the retrained best model of {run} ({arch})")
            return True
        out.print(f"rank {ctx.rank} of {run}: {arch} (freshly initialised weights)")
    if space_scheme(ctx.space) != "zoo":
        return False
    from nas.cli.zoo import export_zoo_arch

    assert arch is not None
    export_zoo_arch(arch, ctx.dataset, output, seed, tolerance)
    return True


@app.command()
def export(
    output: Annotated[Path, typer.Option("-o", "--output", help="ONNX file to write.")],
    arch: Annotated[
        str | None,
        typer.Argument(help="Architecture string, or @FILE holding one (optional with --run)."),
    ] = None,
    space: CtxSpaceOpt = None,
    input_shape: ShapeOpt = None,
    num_classes: ClassesOpt = None,
    run: RunOpt = None,
    rank: RankOpt = None,
    seed: Annotated[int, seed_opt("Seed of the weight initialisation.")] = 0,
    tolerance: Annotated[
        float | None,
        typer.Option(
            "--tolerance",
            help="Largest allowed max|torch - onnxruntime| / max(1, max|torch output|): "
            f"relative to the outputs' scale, absolute for outputs below 1 [{TOLERANCE:g}]. "
            f"For a zoo trial: max|torch - onnxruntime| itself [{ZOO_TOLERANCE:g}]. 0 asks "
            "for exact agreement; inf reports the difference and never fails.",
            parser=Number("--tolerance", 0, MAX_TOLERANCE, whole=False, inf="never fails"),
        ),
    ] = None,
) -> None:
    """Export to a self-contained ONNX file and check it against onnxruntime.

    With --run and no ARCH, rank 1 is the run's retrained best model (best.onnx, trained
    weights); other ranks, and an ARCH given with --run (compiled for the run's input and
    classes), are exported with freshly initialised weights.
    """
    import torch

    from nas.compile import compile_arch
    from nas.export import export_onnx, network_metadata, parity_report

    ctx = _context(arch, run, rank, "export")
    sp = _space(ctx, space, input_shape, num_classes)
    if ctx is not None:
        _say_context(ctx, sp, trial=False)
        if _export_whole(ctx, arch, output, seed, tolerance):
            return
        arch = arch if arch is not None else ctx.arch
    assert arch is not None
    node = resolve_arch(arch, sp)
    sp.check(node)
    torch.manual_seed(seed)
    model = compile_arch(node, sp.input_shape, sp.num_classes, sp.mode)
    meta = network_metadata(
        node, ctx.space if ctx else space or "einspace", sp.input_shape, sp.num_classes,
        dataset=ctx.dataset if ctx else None,
        weights=f"untrained (freshly initialised, seed {seed})",
    )  # fmt: skip
    path = export_onnx(model, sp.input_shape, output, metadata=meta)
    p = parity_report(model, path, sp.input_shape)
    out.print(
        f"wrote {path} ({path.stat().st_size:,} bytes); outputs up to {p.scale:.3g}, "
        f"relative error {p.relative:.3g}; max |torch - onnxruntime| = {p.max_abs:.3g}"
    )
    tolerance = TOLERANCE if tolerance is None else tolerance
    if not p.ok(tolerance):
        out.print(f"parity check failed: relative {p.relative:.3g} > {tolerance:g}", style="red")
        raise typer.Exit(1)


@app.command()
def ops(
    pattern: Annotated[str, typer.Argument(help="fnmatch filter.")] = "*",
    module: Annotated[
        str | None,
        typer.Option("--module", help="Import your op module first (current folder, sys.path)."),
    ] = None,
    grammar: Annotated[
        str | None,
        typer.Option("--grammar", help="Load a grammar first: its import lines register ops."),
    ] = None,
    check: Annotated[
        bool,
        typer.Option("--check", help="Run the op contract suite on each match, check by check."),
    ] = False,
) -> None:
    """List the registered ops and their parameters (--check: test each one's contract)."""
    from nas.ops import get_op, list_ops, load_op_module
    from nas.space import load_space
    from nas.testing import check_op

    if module:
        load_op_module(module)
    if grammar:
        load_space(grammar)
    names = list_ops(pattern)
    if check and not names:
        raise ConfigurationError(
            f"no registered op matches {pattern!r}; for your own op, name its module "
            "(--module mypkg.ops) or a grammar that imports it (--grammar my.pcfg)."
        )
    failed = 0
    for name in names:
        if check:
            try:
                check_op(name, grammar=grammar, echo=lambda s: out.print(s, markup=False))
            except AssertionError:
                failed += 1
            continue
        cls = get_op(name)
        params = ", ".join(cls.params) or "-"
        kind = "combinator" if cls.is_combinator else "terminal"
        out.print(f"{name:14s} {kind:10s} params: {params}  {(cls.__doc__ or '').splitlines()[0]}")
    if failed:
        out.print(f"{failed} of {len(names)} ops broke their contract", style="red")
        raise typer.Exit(1)


@app.command()
def spaces() -> None:
    """List the built-in search spaces, the zoo families' spaces included."""
    from nas.space import list_spaces, load_space

    for name in list_spaces():
        sp = load_space(name)
        shape = "x".join(map(str, sp.input_shape))
        out.print(
            f"{name:10s} input {shape} {sp.mode}, {len(sp.grammar.rules)} rules, "
            f"{len(sp.seeds)} seeds  {sp.description}"
        )
    from nas.zoo import get_family, list_families, zoo_space

    for name in list_families():
        sp = zoo_space(name)
        fam = get_family(name)
        tasks = ", ".join(t.name for t in fam.tasks)
        n_hp = len(fam.searched or fam.hyperparams)
        out.print(
            f"zoo:{name:14s} {len(sp.grammar.rules)} rules over {n_hp} hyperparameters, "
            f"tasks {tasks}"
        )
