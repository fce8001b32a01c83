"""Entry point of the ``nas`` command: registers every command module and runs the app."""

from __future__ import annotations

import sys

from nas.cli import (  # noqa: F401  (register commands)
    arch,
    bench,
    predict,
    predictor_cmds,
    runs,
    search,
    train,
    zoo,
)
from nas.cli._app import app, out
from nas.exceptions import NasError

__all__ = ["app", "main"]

PIPE_WIDTH = 200  # columns of output to a file or another program (a terminal: its own)


def main() -> None:
    """Run the app, turning user mistakes into one-line errors (exit 2)."""
    from nas.runtime import configure

    configure()
    if not sys.stdout.isatty():  # a pipe or a log: tables whole, not cut to 80 columns
        out.width = PIPE_WIDTH
    try:
        app()  # standalone: click reports usage errors itself (exit 2)
    except NasError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except SystemExit as e:
        if e.code == 130 and _interrupted_silently(e):
            print(f"interrupted: {_command_name()} stopped before it finished.", file=sys.stderr)
        raise


def _command_name() -> str:
    """``nas`` and the (sub)command names that lead the command line, e.g. ``nas bench build``."""
    import typer

    words, group = ["nas"], typer.main.get_command(app)
    for arg in sys.argv[1:]:
        sub = getattr(group, "commands", {}).get(arg)
        if sub is None:
            break
        words.append(arg)
        group = sub
    return " ".join(words)


def _interrupted_silently(e: SystemExit) -> bool:
    """Whether exit 130 is typer's silent conversion of Ctrl-C (a command that says what
    an interruption keeps, such as ``nas search``, exits 130 itself, without the cause)."""
    inner = e.__context__
    return inner is not None and isinstance(inner.__cause__, KeyboardInterrupt)
