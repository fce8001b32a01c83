"""Entry point of the ``nas`` command: registers every command module and runs the app."""

from __future__ import annotations

import sys

from nas.cli import (  # noqa: F401  (register commands)
    arch,
    bench,
    predict,
    predictor_cmds,
    search,
    train,
    zoo,
)
from nas.cli._app import app
from nas.exceptions import NasError

__all__ = ["app", "main"]


def main() -> None:
    """Run the app, turning user mistakes into one-line errors (exit 2)."""
    from nas.runtime import configure

    configure()
    try:
        app()  # standalone: click reports usage errors itself (exit 2)
    except NasError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
