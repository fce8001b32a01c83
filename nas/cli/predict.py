"""``nas encode``: the text encodings of an ONNX file (thin wrapper over nas.predictors)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from nas.cli._app import app, out


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


def _onnx_files(paths: list[Path]) -> list[Path]:
    """Files as given; a directory stands for its ``*.onnx`` files (sorted)."""
    files: list[Path] = []
    for p in paths:
        files.extend(sorted(p.glob("*.onnx")) if p.is_dir() else [p])
    return files


@app.command()
def rank(
    paths: Annotated[list[Path], typer.Argument(help="ONNX files or folders of *.onnx files.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
    top: Annotated[
        int | None, typer.Option("--top", min=1, help="Show only the K best files.")
    ] = None,
    max_size: Annotated[
        float, typer.Option("--max-size", help="Largest file accepted, in MB.")
    ] = 512,
    model: Annotated[
        Path | None, typer.Option("--model", help="Predictor folder (default: bundled).")
    ] = None,
) -> None:
    """Rank ONNX files by the predictor's score (higher is better); broken files get an
    error row and make the exit code 1."""
    import json

    from nas.exceptions import ConfigurationError, NasError
    from nas.predictors.bench import file_record
    from nas.predictors.model import Predictor

    files = _onnx_files(paths)
    if not files:
        raise ConfigurationError("no ONNX files to rank (a folder is searched for *.onnx).")
    predictor = Predictor.load(model)
    good, records, errors = [], [], []
    for f in files:
        try:
            records.append(file_record(f, max_bytes=int(max_size * 2**20)))
            good.append(f)
        except NasError as e:
            reason = str(e).removeprefix(f"{f}: ")
            errors.append({"file": str(f), "error": reason})
    scores = predictor.score_records(records) if records else []
    rows = sorted(
        (
            {"file": str(f), "score": float(s), "params": r.params, "flops": r.flops}
            for f, s, r in zip(good, scores, records, strict=True)
        ),
        key=lambda row: -row["score"],
    )
    for k, row in enumerate(rows, 1):
        row["rank"] = k
    shown = rows[:top] if top else rows
    if as_json:
        out.print(json.dumps({"ranked": shown, "errors": errors}, indent=1), markup=False)
    else:
        from rich.table import Table

        table = Table("rank", "file", "score", "params", "FLOPs", "error")
        for row in shown:
            table.add_row(
                str(row["rank"]), row["file"], f"{row['score']:.3f}", f"{row['params']:,}",
                f"{row['flops']:,}", "",
            )  # fmt: skip
        for e in errors:
            table.add_row("-", e["file"], "", "", "", e["error"])
        out.print(table)
    if errors:
        raise typer.Exit(1)
