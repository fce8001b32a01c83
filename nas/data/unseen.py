"""The Unseen NAS suite (Geada et al., CVPR 2024): its table and a loader for the real files.

Each member is a folder holding ``{train,valid,test}_{x,y}.npy`` (x channels first) and a
``metadata`` JSON file. Arrays are memory-mapped and never unpickled; every problem a user
can fix (missing file, wrong shape, labels out of range, sizes that contradict the metadata)
raises :class:`ConfigurationError` naming the file and what was expected.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nas.data.base import Dataset, Split
from nas.exceptions import ConfigurationError

SUITE = "the Unseen NAS suite (Geada et al., CVPR 2024)"
SPLITS = ("train", "valid", "test")
NOMINAL_SIZES = (45_000, 15_000, 10_000)  # "for most" members; real files are not held to it
ENV_VAR = "NAS_DATA_DIR"


@dataclass(frozen=True)
class Member:
    """One dataset of the suite: its key, published name, input shape and class count."""

    key: str
    title: str
    input_shape: tuple[int, int, int]
    num_classes: int


MEMBERS = {
    m.key: m
    for m in (
        Member("addnist", "AddNIST", (3, 28, 28), 20),
        Member("multnist", "MultNIST", (3, 28, 28), 10),
        Member("language", "Language", (1, 24, 24), 10),
        Member("cifartile", "CIFARTile", (3, 64, 64), 4),
        Member("gutenberg", "Gutenberg", (1, 27, 18), 6),
        Member("isabella", "Isabella", (1, 64, 128), 4),
        Member("geoclassing", "GeoClassing", (3, 64, 64), 10),
        Member("chesseract", "Chesseract", (12, 8, 8), 3),
    )
}
# The default member: Language, because on a 2-core CPU at the small size a fixed small CNN
# learns it (57% test after 8 epochs, 14 s of CPU; chance 10%) while AddNIST's sum of three
# digits stays near chance at any size a CPU search can afford (docs/protocol.md, "Calibration").
DEFAULT_MEMBER = "language"
_CHUNK = 4096


def normalise(name: str) -> str:
    """Folder/dataset name without case, spaces, dashes, dots or underscores."""
    return re.sub(r"[\s_.\-]", "", name).lower()


def resolve_data_dir(data_dir: str | os.PathLike | None) -> tuple[Path | None, str]:
    """The data directory from the argument or ``$NAS_DATA_DIR``, and where it came from."""
    if data_dir is not None and str(data_dir) != "":
        origin, path = "--data-dir", Path(data_dir).expanduser()
    elif os.environ.get(ENV_VAR):
        origin, path = ENV_VAR, Path(os.environ[ENV_VAR]).expanduser()
    else:
        return None, "none given"
    if not path.is_dir():
        raise ConfigurationError(f"{path}: data directory (from {origin}) does not exist.")
    return path, origin


def find_folder(key: str, root: Path | None) -> Path | None:
    """The member's folder under ``root`` (names matched loosely), or ``root`` if it is one."""
    if root is None:
        return None
    if normalise(root.name) == key and (root / "train_x.npy").is_file():
        return root
    matches = sorted(p for p in root.iterdir() if p.is_dir() and normalise(p.name) == key)
    return matches[0] if matches else None


def missing_message(key: str, root: Path | None) -> str:
    """One line for a real-only member without files: where to get them and how to point here."""
    title = MEMBERS[key].title
    where = f"no {title} folder under {root}" if root else "no data directory given"
    return (
        f"unseen:{key} needs the real files of {SUITE}, distributed by its authors ({where}); "
        f"download the suite and pass --data-dir DIR or set {ENV_VAR}=DIR, where DIR holds one "
        f"folder per dataset (e.g. DIR/{title}/train_x.npy)."
    )


def _metadata(folder: Path) -> tuple[dict, Path | None]:
    """The parsed metadata JSON (``metadata`` or ``metadata.json``), or {} when there is none."""
    for name in ("metadata", "metadata.json"):
        path = folder / name
        if path.is_file():
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
                raise ConfigurationError(f"{path}: expected a JSON object ({err}).") from None
            if not isinstance(data, dict):
                raise ConfigurationError(f"{path}: expected a JSON object, got {type(data)}.")
            return data, path
    return {}, None


def _int(value: object, path: Path | None, field: str) -> int:
    """A positive integer metadata value, or a one-line error naming the file and field."""
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if not ok or not math.isfinite(value) or value != int(value):
        raise ConfigurationError(f"{path}: expected an integer for {field!r}, got {value!r}.")
    if int(value) < 1:
        raise ConfigurationError(f"{path}: expected a positive {field!r}, got {value!r}.")
    return int(value)


def read_expectations(member: Member, meta: dict, path: Path | None) -> tuple[dict, list[str]]:
    """Shape, class count and split sizes expected from the metadata, falling back to the table.

    Returns the expectations and notes on what came from where. Field names vary between
    releases, so several spellings are accepted.
    """
    notes: list[str] = []
    exp: dict = {"input_shape": member.input_shape, "num_classes": member.num_classes}
    for field in ("num_classes", "n_classes", "number_of_classes", "num_labels", "classes"):
        if field in meta:
            value = meta[field]
            exp["num_classes"] = (
                len(value) if isinstance(value, list) else _int(value, path, field)
            )
            break
    else:
        notes.append("num_classes from the suite table")
    for field in ("input_shape", "shape", "image_shape", "input_size", "x_shape"):
        if field in meta:
            value = meta[field]
            if not isinstance(value, list) or not value:
                raise ConfigurationError(f"{path}: expected a list for {field!r}, got {value!r}.")
            dims = tuple(_int(v, path, field) for v in value)
            if len(dims) == 4:  # the suite writes [N, C, H, W]; N is informational only
                notes.append(f"metadata {field} leading dim {dims[0]} not checked")
                dims = dims[1:]
            elif len(dims) == 2:
                dims = (1, *dims)
            if len(dims) != 3:
                raise ConfigurationError(
                    f"{path}: expected {field!r} as [C, H, W] or [N, C, H, W], got {value!r}."
                )
            exp["input_shape"] = dims
            break
    else:
        notes.append("input_shape from the suite table")
    splits = meta.get("splits") if isinstance(meta.get("splits"), dict) else {}
    for split in SPLITS:
        names = [f"{split}_size", f"n_{split}", f"num_{split}", f"{split}_samples"]
        if split == "valid":
            names += ["val_size", "n_val", "num_val", "validation_size"]
        for field in names:
            if field in meta:
                exp[split] = _int(meta[field], path, field)
                break
        for field in (split, "val", "validation") if split == "valid" else (split,):
            if field in splits and split not in exp:
                exp[split] = _int(splits[field], path, f"splits.{field}")
    return exp, notes


def _load(path: Path) -> np.ndarray:
    """Memory-map one .npy file without unpickling; one-line error naming it otherwise."""
    if not path.is_file():
        alt = path.with_name(path.name.replace("valid_", "val_"))
        if alt != path and alt.is_file():
            path = alt
        else:
            raise ConfigurationError(f"{path}: missing; expected a .npy array for this split.")
    try:
        with path.open("rb") as f:
            magic = f.read(6)
        if magic != b"\x93NUMPY":  # numpy would call any other file "pickled data"
            raise ValueError("it does not start with the .npy magic bytes; not saved by np.save")
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, EOFError) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ConfigurationError(f"{path}: not a readable .npy array ({reason}).") from None


def _as_float32(x: np.ndarray) -> np.ndarray:
    """float32 inputs: the memory map itself when already float32, else converted in chunks."""
    if x.dtype == np.float32:
        return x
    out = np.empty(x.shape, dtype=np.float32)
    for start in range(0, x.shape[0], _CHUNK):
        out[start : start + _CHUNK] = x[start : start + _CHUNK]
    return out


def _labels(y: np.ndarray, path: Path, n: int, num_classes: int) -> np.ndarray:
    """Validated int64 labels: shape (n,), integral values in [0, num_classes)."""
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1 or y.shape[0] != n:
        raise ConfigurationError(f"{path}: expected labels of shape ({n},), got {y.shape}.")
    if not (np.issubdtype(y.dtype, np.integer) or np.issubdtype(y.dtype, np.floating)):
        raise ConfigurationError(f"{path}: expected integer labels, got dtype {y.dtype}.")
    labels = np.asarray(y)
    if np.issubdtype(labels.dtype, np.floating) and not np.all(labels == np.round(labels)):
        raise ConfigurationError(f"{path}: expected integer labels, got non-integral floats.")
    labels = labels.astype(np.int64)
    if n and (labels.min() < 0 or labels.max() >= num_classes):
        raise ConfigurationError(
            f"{path}: expected labels in 0..{num_classes - 1}, got {labels.min()}..{labels.max()}."
        )
    return labels


def load_real(key: str, folder: Path) -> Dataset:
    """Load and validate one member's real files from ``folder``."""
    member = MEMBERS[key]
    meta_json, meta_path = _metadata(folder)
    exp, notes = read_expectations(member, meta_json, meta_path)
    shape, num_classes = tuple(exp["input_shape"]), int(exp["num_classes"])
    if meta_path is None:
        notes.append("no metadata file; checked against the suite table")
    splits: dict[str, Split] = {}
    for split in SPLITS:
        x_path, y_path = folder / f"{split}_x.npy", folder / f"{split}_y.npy"
        x, y = _load(x_path), _load(y_path)
        if x.ndim == 3 and shape[0] == 1:
            x = x[:, None]
        if x.ndim != 4 or tuple(x.shape[1:]) != shape:
            want = "(N, " + ", ".join(map(str, shape)) + ")"
            raise ConfigurationError(f"{x_path}: expected shape {want}, got {x.shape}.")
        if not (np.issubdtype(x.dtype, np.number) or x.dtype == np.bool_):
            raise ConfigurationError(f"{x_path}: expected a numeric array, got dtype {x.dtype}.")
        n = int(x.shape[0])
        if split in exp and n != exp[split]:
            raise ConfigurationError(
                f"{x_path}: expected {exp[split]} samples as the metadata says, got {n}."
            )
        labels = _labels(y, y_path, n, num_classes)
        splits[split] = Split(_as_float32(x), labels)
    sizes = tuple(len(splits[s]) for s in SPLITS)
    if sizes != NOMINAL_SIZES:
        notes.append(f"split sizes {sizes} differ from the usual {NOMINAL_SIZES}")
    return Dataset(
        name=f"unseen:{key}",
        input_shape=shape,
        num_classes=num_classes,
        train=splits["train"],
        valid=splits["valid"],
        test=splits["test"],
        source=f"real files in {folder}",
        meta={
            "suite": SUITE,
            "member": member.title,
            "kind": "real",
            "folder": str(folder),
            "metadata_file": str(meta_path) if meta_path else None,
            "metadata": {k: v for k, v in meta_json.items() if isinstance(v, str | int | float)},
            "split_sizes": dict(zip(SPLITS, sizes, strict=True)),
            "notes": notes,
        },
    )
