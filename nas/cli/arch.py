"""``nas sample|show|check|export|ops|spaces``: architectures and spaces (thin wrappers)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.tree import Tree

from nas.cli._app import (
    TOLERANCE,
    ZOO_TOLERANCE,
    ArchArg,
    ClassesOpt,
    ShapeOpt,
    SpaceOpt,
    app,
    out,
    space_for,
)
from nas.exceptions import ConfigurationError
from nas.formats import resolve_arch, write_formats
from nas.ops.spec import head_params


@app.command()
def sample(
    space: SpaceOpt = "einspace",
    input_shape: ShapeOpt = None,
    num_classes: ClassesOpt = None,
    n: Annotated[int, typer.Option("-n", "--num", "--n", help="How many architectures.")] = 10,
    seed: Annotated[int, typer.Option(help="Random seed; same seed, same output.")] = 0,
) -> None:
    """Draw architectures; one JSON object per line: arch, params (with head), depth (a
    config space: arch and its hyperparameter values)."""
    from nas.sampling import Sampler

    if n < 0:
        raise ConfigurationError(f"-n must be at least 0, but got {n}.")
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
    arch: ArchArg,
    space: SpaceOpt = "einspace",
    input_shape: ShapeOpt = None,
    num_classes: ClassesOpt = None,
) -> None:
    """Print the derivation as a tree with output shapes and parameters per module."""
    sp = space_for(space, input_shape, num_classes)
    node = resolve_arch(arch, sp)
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
    arch: ArchArg,
    space: SpaceOpt = "einspace",
    input_shape: ShapeOpt = None,
    num_classes: ClassesOpt = None,
    strict: Annotated[bool, typer.Option(help="Also require the grammar to derive it.")] = False,
) -> None:
    """Validate an architecture: parse, shape rules, budgets (and the grammar with --strict)."""
    sp = space_for(space, input_shape, num_classes)
    a = sp.check(resolve_arch(arch, sp), strict=strict)
    derivable = " derivable from the grammar;" if strict else ""
    out.print(
        f"ok:{derivable} output {', '.join(map(str, a.out))}, {a.params:,} backbone "
        f"params, depth {a.depth}, {a.n_ops} ops, {a.flops:,} MACs per sample"
    )


def _from_run(run: Path, rank: int) -> tuple[str, dict[str, Any]]:
    """(architecture, run options) of the rank-th best trial of a search run."""
    from nas.searches.store import open_run

    info, store = open_run(run)
    ranked = store.best(None)  # every successful trial, read once
    if not 1 <= rank <= len(ranked):
        if not ranked:
            raise ConfigurationError(f"{run} has no successful trial to export.")
        raise ConfigurationError(f"--rank must be between 1 and {len(ranked)} for {run}.")
    return ranked[rank - 1].arch, info["options"]


def _export_whole(
    arch: str,
    opts: dict[str, Any],
    run: Path,
    rank: int,
    output: Path,
    seed: int,
    tolerance: float | None,
) -> bool:
    """Export a run's trial that needs no space: its retrained best.onnx, or a zoo config.

    Returns False when the trial is an architecture of a space (the caller compiles it).
    """
    import shutil

    from nas.space import space_scheme

    if rank == 1 and (run / "best.onnx").is_file():
        output.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(run / "best.onnx", output)
        out.print(f"wrote {output}: the retrained best model of {run} ({arch})")
        return True
    out.print(f"rank {rank} of {run}: {arch} (freshly initialised weights)")
    if space_scheme(opts["space"]) != "zoo":
        return False
    from nas.cli.zoo import export_zoo_arch

    export_zoo_arch(arch, opts["dataset"], output, seed, tolerance)
    return True


@app.command()
def export(
    output: Annotated[Path, typer.Option("-o", "--output", help="ONNX file to write.")],
    arch: Annotated[
        str | None, typer.Argument(help="Architecture string, or @FILE holding one.")
    ] = None,
    space: SpaceOpt = "einspace",
    input_shape: ShapeOpt = None,
    num_classes: ClassesOpt = None,
    run: Annotated[
        Path | None, typer.Option(help="Export from this search run instead of ARCH.")
    ] = None,
    rank: Annotated[int, typer.Option(help="With --run: 1 = the best trial.")] = 1,
    seed: Annotated[int, typer.Option(help="Seed of the weight initialisation.")] = 0,
    tolerance: Annotated[
        float | None,
        typer.Option(
            help="Largest allowed max|torch - onnxruntime| / max(1, max|torch output|): "
            f"relative to the outputs' scale, absolute for outputs below 1 [{TOLERANCE:g}]. "
            f"For a zoo trial: max|torch - onnxruntime| itself [{ZOO_TOLERANCE:g}]."
        ),
    ] = None,
) -> None:
    """Export to a self-contained ONNX file and check it against onnxruntime.

    With --run, rank 1 is the run's retrained best model (best.onnx, trained weights);
    other ranks are exported with freshly initialised weights.
    """
    import torch

    from nas.compile import compile_arch
    from nas.export import export_onnx, parity_report

    if (arch is None) == (run is None):
        raise ConfigurationError("give either an architecture or --run RUN_DIR.")
    if tolerance is not None and not tolerance >= 0:  # NaN too
        raise ConfigurationError(f"--tolerance must be at least 0, but got {tolerance}.")
    if run is not None:
        from nas.data import resolve_dataset

        arch, opts = _from_run(run, rank)
        if _export_whole(arch, opts, run, rank, output, seed, tolerance):
            return
        data = resolve_dataset(opts["dataset"])
        space, num_classes = opts["space"], data.num_classes
        input_shape = "x".join(map(str, data.input_shape))
    assert arch is not None
    sp = space_for(space, input_shape, num_classes)
    node = resolve_arch(arch, sp)
    sp.check(node)
    torch.manual_seed(seed)
    model = compile_arch(node, sp.input_shape, sp.num_classes, sp.mode)
    path = export_onnx(model, sp.input_shape, output)
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
def ops(pattern: Annotated[str, typer.Argument(help="fnmatch filter.")] = "*") -> None:
    """List the registered ops and their parameters."""
    from nas.ops import get_op, list_ops

    for name in list_ops(pattern):
        cls = get_op(name)
        params = ", ".join(cls.params) or "-"
        kind = "combinator" if cls.is_combinator else "terminal"
        out.print(f"{name:14s} {kind:10s} params: {params}  {(cls.__doc__ or '').splitlines()[0]}")


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
