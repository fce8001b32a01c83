"""``nas encode``: the text encodings of an ONNX file (thin wrapper over nas.predictors)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from nas.cli import app, out


@app.command()
def encode(
    model: Annotated[Path, typer.Argument(help="ONNX file to encode.")],
    nodes: Annotated[
        bool, typer.Option("--nodes", help="Print one text per node instead of the graph.")
    ] = False,
    max_size: Annotated[
        int, typer.Option("--max-size", help="Largest file accepted, in MB.")
    ] = 512,
) -> None:
    """Print the whole-graph text of MODEL (ONNX-Bench style, exact references)."""
    from nas.predictors.encode import graph_lines, node_texts
    from nas.predictors.graph import load_graph

    graph = load_graph(model, max_bytes=max_size * 2**20)
    lines = [f"%{k} {t}" for k, t in enumerate(node_texts(graph))] if nodes else graph_lines(graph)
    for line in lines:
        out.print(line, markup=False)
