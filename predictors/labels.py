"""The user's own labels for ``nas rank --labels``: a CSV of trained files and accuracies.

The CSV has a header naming the columns ``file`` and ``accuracy`` (others are ignored);
each row names one ONNX file (absolute, or relative to the CSV's folder) and the accuracy
the user measured for it (any number where higher is better). A file listed more than
once keeps the mean of its rows. Every mistake (no such CSV, a missing column, a value
that is not a finite number, a file that does not exist) is one
:class:`~nas.exceptions.ConfigurationError` line naming the CSV line.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

from nas.exceptions import ConfigurationError

COLUMNS = ("file", "accuracy")


def _key(path: str | Path) -> Path:
    """The absolute, resolved path two spellings of one file share."""
    return Path(path).expanduser().resolve()


def _number(text: str, where: str) -> float:
    """``text`` as a finite float, or a one-line error naming ``where``."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise ConfigurationError(f"{where}: accuracy must be a finite number, not {text!r}.")
    return value


def _rows(path: Path) -> list[dict[str, str]]:
    """The CSV's rows as dicts keyed by lower-case column names (header checked)."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            names = [(n or "").strip().lower() for n in reader.fieldnames or []]
            missing = [c for c in COLUMNS if c not in names]
            if missing:
                raise ConfigurationError(
                    f"{path}: the labels CSV needs a header with the columns file,accuracy "
                    f"(missing: {', '.join(missing)})."
                )
            reader.fieldnames = names
            return [{k: (v or "").strip() for k, v in row.items() if k} for row in reader]
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise ConfigurationError(f"cannot read the labels CSV {path}: {e}".strip()) from None


def read_labels(path: str | Path) -> dict[Path, float]:
    """{resolved file path: accuracy} from a labels CSV (see the module docstring).

    Raises:
        ConfigurationError: the CSV cannot be read, lacks a column, names a file that does
            not exist, has a value that is not a finite number, or labels no file.
    """
    path = Path(path)
    sums: dict[Path, list[float]] = {}
    for line, row in enumerate(_rows(path), 2):
        name, acc = row.get("file", ""), row.get("accuracy", "")
        if not name and not acc:
            continue  # a blank line
        where = f"{path} line {line}"
        if not name:
            raise ConfigurationError(f"{where}: the file column is empty.")
        value = _number(acc, where)
        f = Path(name).expanduser()
        f = _key(f if f.is_absolute() else path.parent / f)
        if not f.is_file():
            raise ConfigurationError(f"{where}: no such file {name!r} (looked for {f}).")
        sums.setdefault(f, []).append(value)
    if not sums:
        raise ConfigurationError(f"{path}: the labels CSV lists no file.")
    return {f: sum(v) / len(v) for f, v in sums.items()}


def with_labelled(files: Sequence[Path], labels: Mapping[Path, float]) -> list[Path]:
    """``files`` plus each labelled file not among them (compared as resolved paths), so
    the labelled files are read, scored and ranked with the set."""
    seen = {_key(f) for f in files}
    return [*files, *(f for f in labels if _key(f) not in seen)]


def label_of(files: Sequence[Path], labels: Mapping[Path, float]) -> list[float | None]:
    """Each file's label (None for a file without one)."""
    keyed = {_key(f): v for f, v in labels.items()}
    return [keyed.get(_key(f)) for f in files]
