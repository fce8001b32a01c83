"""The ``nas`` command: a thin typer shell over the library (see ``nas --help``)."""

from nas.cli.main import app, main

__all__ = ["app", "main"]
