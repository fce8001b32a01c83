"""The ``nas`` typer app, its console and the option types the command modules share.

Command modules import this module and the library; nothing imports the command modules
but ``nas.cli.main``, so the CLI has no import cycles.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from nas.exceptions import ConfigurationError

app = typer.Typer(
    name="nas",
    help="Neural architecture search over grammar-defined spaces.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # help texts show [defaults] literally, never as markup
)
out = Console(highlight=False, soft_wrap=True)

# the ONNX parity check of `nas export`: max |torch - onnxruntime| over max(1, output scale)
# for a space's architectures, the absolute max |torch - onnxruntime| for a zoo config
TOLERANCE, ZOO_TOLERANCE = 1e-4, 1e-3


def _print_version(value: bool) -> None:
    if value:
        import platform

        from nas._version import __version__

        out.print(f"nas {__version__} (Python {platform.python_version()})", markup=False)
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Neural architecture search over grammar-defined spaces."""


SpaceOpt = Annotated[
    str, typer.Option("--space", help="Built-in space name, or a .toml/.pcfg file.")
]
ShapeOpt = Annotated[
    str | None, typer.Option("--input-shape", help="Input shape without batch, e.g. 3x28x28.")
]
ClassesOpt = Annotated[
    int | None, typer.Option("--num-classes", help="Classes of the classification head.")
]
ArchArg = Annotated[
    str,
    typer.Argument(help="Architecture string, @FILE holding one, an NB201 cell or seed:NAME."),
]

# `nas show|check|export`: an architecture in the context of a search run
RunOpt = Annotated[
    Path | None,
    typer.Option(
        "--run",
        help="A search run folder: apply the architecture to the run's space, input shape "
        "and classes; without ARCH, take the run's --rank-th best trial. --space, "
        "--input-shape or --num-classes that disagree with the run are refused.",
    ),
]
RankOpt = Annotated[
    int | None,
    typer.Option(
        "--rank", help="With --run and no ARCH: 1 = the best trial [1]. A given ARCH wins."
    ),
]
CtxSpaceOpt = Annotated[
    str | None,
    typer.Option(
        "--space",
        help="Built-in space name, or a .toml/.pcfg file [einspace; with --run: the run's].",
    ),
]
OptArchArg = Annotated[
    str | None,
    typer.Argument(
        help="Architecture string, @FILE holding one, an NB201 cell or seed:NAME "
        "(optional with --run)."
    ),
]


def space_for(name: str, shape: str | None, num_classes: int | None):
    """The space ``name`` applied to ``--input-shape`` and ``--num-classes``."""
    from nas.ops.spec import parse_shape
    from nas.space import load_space

    sp = load_space(name)
    if num_classes is not None and num_classes < 1:
        raise ConfigurationError(f"--num-classes must be at least 1, but got {num_classes}.")
    return sp.with_input(parse_shape(shape) if shape else None, num_classes)


def sub_app(name: str, help: str) -> typer.Typer:
    """A command group (``nas runs ...``) added to the app."""
    group = typer.Typer(help=help, no_args_is_help=True, rich_markup_mode=None)
    app.add_typer(group, name=name)
    return group


def writable(path: Path) -> Path:
    """``path`` with its folder created."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


@contextmanager
def progress(total: int, what: str) -> Iterator[Callable[[int], None]]:
    """A rich progress bar on the console; yields ``update(done)``."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    with Progress(
        TextColumn(what),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=out,
        transient=False,
    ) as bar:
        task = bar.add_task(what, total=total)
        yield lambda done: bar.update(task, completed=done)
