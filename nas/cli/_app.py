"""The ``nas`` typer app, its console and the option types the command modules share.

Command modules import this module and the library; nothing imports the command modules
but ``nas.cli.main``, so the CLI has no import cycles.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console

from nas.exceptions import ConfigurationError, NasError

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
MAX_TOLERANCE = 1e6  # the largest a flag may give (inf: report, never fail)


# Ranges of numeric options (see Number): whole numbers fit 32 bits, as a grammar's do.
INT_MAX = 2**31 - 1
MAX_SECONDS = 1e8  # a time option: about three years (inf, where it means no cap)
MAX_MB = float(2**20)  # a size in MB: 1 TiB
MAX_WORKERS = 1024  # processes of one command
MAX_LR = 100.0  # a learning rate
MAX_CPUS = 4096.0  # CPUs or GPUs per trial


class OptionError(NasError):
    """A number outside its option's range: not a ValueError, so typer passes it on whole."""


@dataclass(frozen=True)
class Number:
    """A numeric option's ``parser``: checks the range as the command line is read, so a
    bad value is one line (exit 2) before any work; nan never passes, inf where it means."""

    name: str  # the flag the message names
    low: float = 0  # the least value (with ``above``: the value to exceed)
    high: float = INT_MAX
    whole: bool = True
    above: bool = False
    inf: str = ""  # what inf means, where it is accepted ("no cap")

    def __call__(self, value: object) -> int | float:
        """``value`` (the command line's text, or the default) as a checked number."""
        text = str(value).strip()
        try:
            x: int | float = int(text) if self.whole else float(text)
        except ValueError:
            kind = "a whole number" if self.whole else "a number"
            low, top = _num(self.low), _num(self.high)
            self._refuse(
                f"{kind} above {low}, at most {top}"
                if self.above
                else f"{kind} from {low} to {top}",
                text,
            )
        if x == math.inf and self.inf:
            return x
        if not (x > self.low if self.above else x >= self.low):  # nan too
            self._refuse(self._least(), text)
        if not x <= self.high:
            self._refuse(f"at most {_num(self.high)}", text)
        return x

    def _least(self) -> str:
        """The lower bound in words."""
        if self.above:
            return "positive" if self.low == 0 else f"above {_num(self.low)}"
        return f"at least {_num(self.low)}"

    def _refuse(self, want: str, text: str) -> NoReturn:
        """Raise the one-line error; the value shown printable and at most 40 characters."""
        hint = f" (or inf: {self.inf})" if self.inf else ""
        shown = text if text.isprintable() else ascii(text)
        shown = shown if len(shown) <= 40 else shown[:37] + "..."
        raise OptionError(f"{self.name} must be {want}{hint}, but got {shown}.")


def _num(x: float) -> str:
    """A bound as people read it: 2,147,483,647, 0.5."""
    return f"{int(x):,}" if float(x).is_integer() else f"{x:g}"


def seconds(name: str, inf: str = "") -> Number:
    """A positive time in seconds, at most MAX_SECONDS (inf: ``inf``, where it means something)."""
    return Number(name, 0, MAX_SECONDS, whole=False, above=True, inf=inf)


WORKERS = Number("--workers", 1, MAX_WORKERS)  # processes a command starts


def seed_opt(help: str) -> Any:
    """The ``--seed`` option: a whole number from 0 to INT_MAX."""
    return typer.Option("--seed", help=help, parser=Number("--seed"))


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
    int | None,
    typer.Option(
        "--num-classes",
        help="Classes of the classification head.",
        parser=Number("--num-classes", 1),
    ),
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
        "--rank",
        help="With --run and no ARCH: 1 = the best trial [1]. A given ARCH wins.",
        parser=Number("--rank", 1),
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
