"""``nas runs`` (list, show) and ``nas dashboard``: looking at search runs after the fact."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from nas.cli._app import Number, app, out, sub_app
from nas.exceptions import ConfigurationError, NasError

runs_app = sub_app("runs", "Look at search runs.")


@runs_app.command("list")
def runs_list(
    root: Annotated[Path, typer.Argument(help="Folder of runs.")] = Path("runs"),
    storage: Annotated[
        str | None, typer.Option(help="List the runs in this Optuna storage URL instead.")
    ] = None,
) -> None:
    """Every run under ROOT (or in --storage): trials, best value, strategy.

    A damaged run is a row "unreadable: why" (exit 1) instead of hiding the others.
    """
    from rich.text import Text

    from nas.searches.store import open_run

    if storage is not None:
        return _runs_in_storage(storage)
    if not root.is_dir():
        raise ConfigurationError(f"{root} is not a folder of runs (searches write them in runs/).")
    table = Table("run", "space", "dataset", "strategy", "trials", "best")
    damaged = 0
    for info_path in sorted(root.glob("*/run.json")):
        try:  # read-only: a listing writes nothing, whatever it finds
            info, store = open_run(info_path.parent)
            o, best = info["options"], store.best(1)
            value = f"{best[0].values[store.objectives[0]]:.4g}" if best else "-"
            done = str(len(store.completed()))
            row = [o["space"], o.get("dataset") or "-", o.get("strategy") or "-", done, value]
        except NasError as e:
            damaged += 1
            row = [f"unreadable: {getattr(e, 'why', e)}", "", "", "", ""]
        table.add_row(info_path.parent.name, *map(Text, row))
    # a run's name is what --resume takes: the column is as wide as the longest one
    table.columns[0].min_width = max(map(len, table.columns[0].cells), default=0)
    if table.row_count:
        out.print(table)
    else:
        out.print(f"no runs in {root}/")
    if damaged:
        raise typer.Exit(1)


def _runs_in_storage(storage: str) -> None:
    """``nas runs list --storage URL``: every run (study) in a shared storage."""
    from nas.searches.runinfo import list_runs, mask_text

    table = Table("run", "trials", "states", "best", "owner", title=mask_text(storage))
    for row in list_runs(storage):
        states = ", ".join(f"{k} {v}" for k, v in sorted(row["states"].items()))
        best = "-" if row["best"] is None else f"{row['best']:.4g}"
        table.add_row(row["run"], str(row["trials"]), states, best, row["owner"] or "-")
    out.print(table)


@runs_app.command("show")
def runs_show(
    run: Annotated[Path, typer.Argument(help="Run directory.")],
    top: Annotated[
        int, typer.Option("--top", help="How many of the best.", parser=Number("--top", 1))
    ] = 5,
) -> None:
    """Summary and top-k of one run."""
    from nas.searches.store import open_run

    info, store = open_run(run)
    recs = store.records()
    counts = ", ".join(f"{k} {v}" for k, v in sorted(Counter(r.status for r in recs).items()))
    command = info.get("command") or f"run {run}"
    out.print(f"{command}\n{len(recs)} trials: {counts}", markup=False)
    table = Table("rank", "trial", *store.objectives, "params")
    best = store.best(top)
    if not best:
        out.print("no successful trial yet: nothing to rank", markup=False)
        return
    for i, r in enumerate(best, 1):
        values = (f"{r.values[o]:.4g}" for o in store.objectives)
        table.add_row(str(i), str(r.number), *values, f"{r.params or 0:,}")
    out.print(table)
    for i, r in enumerate(best, 1):  # whole, on lines of their own: ready to copy
        out.print(f"{i}: {r.arch}", markup=False, soft_wrap=True)


@app.command()
def dashboard(
    run: Annotated[Path, typer.Argument(help="Search run directory.")],
    port: Annotated[
        int, typer.Option("--port", help="Port on localhost.", parser=Number("--port", 1, 65535))
    ] = 8080,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
) -> None:
    """Open optuna-dashboard on the run's storage (Ctrl-C to stop)."""
    import socket

    from nas.searches.runfiles import check_storage_file
    from nas.searches.store import mask_url, read_run_info, unmask_url

    opts = read_run_info(run)["options"]  # a masked password comes from PGPASSWORD
    url = unmask_url(opts.get("storage")) or f"sqlite:///{(run / 'study.db').resolve()}"
    check_storage_file(url, str(mask_url(url)))  # a missing or empty file: refused, not made
    try:
        from optuna_dashboard import run_server
    except ImportError:
        raise ConfigurationError(
            "nas dashboard needs optuna-dashboard: pip install 'nas[dashboard]'."
        ) from None
    try:  # a port in use is the user's to change, not a traceback from the server
        with socket.create_server((host, port)):
            pass
    except OSError as e:
        why = str(e.strerror or e).split(" (while")[0]
        raise ConfigurationError(
            f"cannot listen on {host}:{port}: {why}; choose another --port (or --host)."
        ) from None
    out.print(f"optuna-dashboard on http://{host}:{port} for {mask_url(url)}", markup=False)
    run_server(url, host=host, port=port)
