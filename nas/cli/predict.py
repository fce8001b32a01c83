"""``nas encode``: the text encodings of an ONNX file (thin wrapper over nas.predictors)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from nas.cli._app import MAX_MB, MAX_SECONDS, WORKERS, Number, app, out


@app.command()
def encode(
    model: Annotated[Path, typer.Argument(help="ONNX file to encode.")],
    nodes: Annotated[
        bool, typer.Option("--nodes", help="Print one text per node instead of the graph.")
    ] = False,
    max_size: Annotated[
        int,
        typer.Option(
            "--max-size",
            help="Largest file accepted, in MB.",
            parser=Number("--max-size", 1, MAX_MB),
        ),
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


def _dims(items: list[str]) -> dict[str, int]:
    """``NAME=SIZE`` options as a dict (a one-line error otherwise)."""
    from nas.exceptions import ConfigurationError

    dims = {}
    for item in items:
        name, _, size = item.partition("=")
        if not name or not size.isdigit() or int(size) < 1:
            raise ConfigurationError(f"--dim wants NAME=SIZE with SIZE >= 1, not {item!r}.")
        dims[name] = int(size)
    return dims


RankModelOpt = Annotated[
    Path | None,
    typer.Option(
        "--model",
        help="Predictor folder (default: the bundled NB201 model, or the bundled "
        "multi-space model when most files lie outside NB201's domain).",
    ),
]


RankWorkersOpt = Annotated[
    int | None,
    typer.Option(
        "--workers",
        parser=WORKERS,
        show_default=False,
        help="Processes reading the files (used from 64 files and 32 MB on; default: up "
        "to 2, the CPUs there are).",
    ),
]


def _default_workers() -> int:
    """Up to two reader processes, never more than the CPUs this process may use."""
    import os

    return max(
        1,
        min(
            2,
            len(os.sched_getaffinity(0))
            if hasattr(os, "sched_getaffinity")
            else os.cpu_count() or 1,
        ),
    )


RankTopOpt = Annotated[
    int | None,
    typer.Option("--top", help="Show only the K best files.", parser=Number("--top", 1)),
]

RankMaxSizeOpt = Annotated[
    float,
    typer.Option(
        "--max-size",
        help="Largest file accepted, in MB.",
        parser=Number("--max-size", 0, MAX_MB, whole=False, above=True),
    ),
]

RankTimeLimitOpt = Annotated[
    float,
    typer.Option(
        "--time-limit",
        help="Seconds per file before its error row (0: no limit).",
        parser=Number("--time-limit", 0, MAX_SECONDS, whole=False),
    ),
]

RankProxyOpt = Annotated[
    bool,
    typer.Option(
        "--proxy/--no-proxy",
        help="Compute the NASWOT proxy of each file: an onnxruntime run on 8 random "
        "inputs (about 0.03 s of CPU an NB201 file); --no-proxy skips it.",
    ),
]

RankProbeMemoryOpt = Annotated[
    float,
    typer.Option(
        "--probe-memory",
        parser=Number("--probe-memory", 1, MAX_MB, whole=False),
        help="Memory cap of each onnxruntime run (the proxy, unknown shapes), in MB; "
        "a run over it is skipped with a note in the file's row.",
    ),
]

RankMaxNodesOpt = Annotated[
    int,
    typer.Option(
        "--max-nodes",
        parser=Number("--max-nodes", 1),
        help="Most nodes a file may have (subgraphs included), counted before it is "
        "parsed; a file over it is not ranked (exported networks have up to ~20,000).",
    ),
]

RankLabelsOpt = Annotated[
    Path | None,
    typer.Option(
        "--labels",
        help="CSV with the columns file,accuracy (higher is better; a path absolute or "
        "relative to the CSV's folder) for files you trained: the ranking adapts to them "
        "(few-shot). Labelled files not among FILES are read and ranked with them; every "
        "labelled file is marked in the table and in --json.",
    ),
]

RankDimOpt = Annotated[
    list[str] | None,
    typer.Option("--dim", help="Size of a symbolic input dim for FLOPs, NAME=SIZE."),
]


@app.command()
def rank(
    paths: Annotated[list[Path], typer.Argument(help="ONNX files or folders of *.onnx files.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
    top: RankTopOpt = None,
    max_size: RankMaxSizeOpt = 512,
    model: RankModelOpt = None,
    workers: RankWorkersOpt = None,
    dim: RankDimOpt = None,
    time_limit: RankTimeLimitOpt = 60,
    proxy: RankProxyOpt = True,
    probe_memory: RankProbeMemoryOpt = 256,
    max_nodes: RankMaxNodesOpt = 100_000,
    labels: RankLabelsOpt = None,
) -> None:
    """Rank ONNX files by the predictor's score (higher is better), with params, FLOPs, the
    NASWOT proxy and an out-of-distribution flag beside it; with --labels, adapted to the
    files you trained (few-shot); broken files get an error row and make the exit code 1."""
    import json

    from nas.exceptions import ConfigurationError
    from nas.predictors.labels import read_labels
    from nas.predictors.model import Predictor
    from nas.predictors.rank import bundled_transfer, load_domain, rank_set

    dims = _dims(dim or [])
    files = _onnx_files(paths)
    known = read_labels(labels) if labels is not None else None
    if not files and not known:
        raise ConfigurationError("no ONNX files to rank (a folder is searched for *.onnx).")
    predictor = Predictor.load(model)
    res = rank_set(
        files, predictor, load_domain(model), int(max_size * 2**20), dims, time_limit or None,
        proxy, int(probe_memory * 2**20), None if model else bundled_transfer(),
        workers or _default_workers(), max_nodes, known,
    )  # fmt: skip
    rows, errors = res.rows, res.errors
    shown = rows[:top] if top else rows
    if as_json:
        result = {
            "ranked": shown, "errors": errors, "score": score_meaning(len(rows)),
            "model": res.model, "mode": res.mode, "header": header_line(res.model, res.mode),
        }  # fmt: skip
        out.print(json.dumps(result, indent=1), markup=False)
    else:
        note = "" if proxy else _proxy_note(predictor, rows)
        _print_ranking(shown, errors, note, len(rows), header_line(res.model, res.mode))
    if errors:
        raise typer.Exit(1)


def mode_text(mode: dict[str, Any]) -> str:
    """The mode as the header names it: ``zero-shot``, or ``few-shot, k=16`` and how the
    labels were used."""
    if mode.get("name") != "few-shot":
        return str(mode.get("name", "zero-shot"))
    head = f"few-shot, k={mode['k']}"
    if not mode["fitted"]:
        return f"{head} ({mode['note']})"
    fit, zero = mode["pair_concordance"], mode["zero_shot_concordance"]
    return (
        f"{head} ({mode['method']}; labelled pairs in order, leave-pair-out: "
        f"{fit:+.2f} against zero-shot's {zero:+.2f})"
    )


def header_line(model: str, mode: dict[str, Any]) -> str:
    """The line above the table: the model that scored and the mode."""
    return f"model: {model or '-'}; mode: {mode_text(mode)}"


def score_meaning(n: int) -> dict[str, Any]:
    """What a score means, for the table's header line and ``--json``: the predictor scores
    a set (percentiles within it, one model for all), so a score compares files of one set
    only and the same file scores differently among other files."""
    files = "1 file" if n == 1 else f"{n:,} files"
    return {
        "meaning": f"score: predicted quality within this set of {files} (higher is "
        "better); not comparable across sets",
        "higher_is_better": True,
        "relative_to_set": True,
        "files_scored": n,
    }


def _short_names(files: list[str]) -> Callable[[str], str]:
    """File names as the table shows them: relative to the folder all of them share (the
    folder is printed once above the table when it is not the working directory)."""
    import os

    try:
        root = os.path.commonpath([os.path.dirname(os.path.abspath(f)) for f in files])
    except ValueError:  # nothing, or paths on different drives
        return lambda f: f
    if len(files) > 1 and os.path.abspath(root) != os.getcwd():
        out.print(f"files in {_safe(root)}:", markup=False)
    return lambda f: _safe(os.path.relpath(os.path.abspath(f), root))


def _safe(text: str) -> str:
    """``text`` with non-printable characters escaped as ``repr`` writes them (``\\x1b``,
    ``\\n``), so a file name or a message quoting one cannot move the cursor, colour the
    terminal or break a line of the table (``--json`` keeps the real text)."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _si(n: int) -> str:
    """A count in 3 significant digits with K/M/G/T (exact below 10,000)."""
    if n < 10_000:
        return f"{n:,}"
    for unit, size in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= size:
            v = n / size
            return f"{v:.3g}{unit}" if v < 1000 else f"{v:,.0f}{unit}"
    return str(n)  # pragma: no cover


def _model_line(name: str) -> str:
    """Which model scored the set, and why when it is the transfer model."""
    from nas.predictors.model import DEFAULT_MODEL, TRANSFER_MODEL

    if name == TRANSFER_MODEL:
        return (
            f"{name}: most files lie outside {DEFAULT_MODEL}'s NB201 domain, so the model "
            "trained on several spaces ranks them"
        )
    return name


def _proxy_note(predictor: Any, rows: list[dict]) -> str:
    """The line that says so when the model that scored reads the NASWOT proxy that
    --no-proxy skipped ("" otherwise)."""
    from nas.predictors.model import Predictor, bundled_dir

    name = rows[0]["model"] if rows else predictor.name
    used = predictor if name == predictor.name else Predictor.load(bundled_dir(name))
    if "nwot" not in used.model.config.signals:
        return ""
    return (
        f"note: {name} reads the NASWOT proxy, which --no-proxy skips: each file was "
        "scored as if its proxy were the set's median"
    )


def _print_ranking(
    shown: list[dict],
    errors: list[dict[str, str]],
    note: str = "",
    scored: int = 0,
    header: str = "",
) -> None:
    """The rank table under ``header`` (model and mode) and the line saying its scores
    compare the ``scored`` files only (files named relative to their common folder, sizes
    in K/M/G: the exact values are in --json; a ``label`` column with the user's accuracy
    when some file is labelled), then a line per failed file, per out-of-distribution flag
    and per note, and ``note`` about the whole set."""
    from rich.table import Table
    from rich.text import Text

    name = _short_names([r["file"] for r in shown] + [e["file"] for e in errors])
    labelled = any(r.get("labelled") for r in shown)
    table = Table("rank", "file", "score", "params", "FLOPs", "nwot", "OOD")
    if labelled:
        table.add_column("label")
    table.columns[1].overflow = "fold"  # a file name is never cut short
    for row in shown:
        nwot = "-" if row["nwot"] is None else f"{row['nwot']:.1f}"
        cells = [
            str(row["rank"]), Text(name(row["file"])), f"{row['score']:.3f}",
            _si(row["params"]), _si(row["flops"]), nwot, "yes" if row["ood"] else "",
        ]  # fmt: skip
        if labelled:
            cells.append(f"{row['accuracy']:.4g}" if row.get("labelled") else "")
        table.add_row(*cells)
    if shown:
        if header:
            out.print(header, markup=False)
        out.print(score_meaning(scored or len(shown))["meaning"], markup=False)
        out.print(table)
        out.print(f"scored by {_model_line(shown[0]['model'])}", markup=False)
        if labelled:
            out.print("label: your accuracy of a labelled file (--labels)", markup=False)
    for e in errors:  # messages may quote names from inside the file: escaped as well
        out.print(f"not ranked {name(e['file'])}: {_safe(e['error'])}", markup=False)
    for row in shown:
        if row["ood"]:
            out.print(f"OOD {name(row['file'])}: {_safe(row['ood_reason'])}", markup=False)
        for line in row["notes"]:
            out.print(f"note {name(row['file'])}: {_safe(line)}", markup=False)
    if note:
        out.print(note, markup=False)
