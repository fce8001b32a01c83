"""Shape-tile stand-in for CIFARTile: CIFARTile's label rule over procedurally drawn shapes.

CIFARTile puts four 32x32 CIFAR-10 images in a 2x2 grid (3x64x64); the label is the number
of distinct classes among them minus one. The grid holds 1 class four times, 2 classes twice
each, 3 classes as 2+1+1, or 4 classes once each, in random positions, with the four label
values equally likely. CIFAR-10 is not available offline, so each tile here is one of ten
shapes drawn with numpy, with random position, size, rotation, shape and background colours
and a background gradient; the class is the shape.
"""

from __future__ import annotations

import numpy as np

VERSION = "1"
SHAPES = (
    "circle",
    "square",
    "triangle",
    "diamond",
    "ring",
    "plus",
    "cross",
    "ellipse",
    "star",
    "frame",
)
NUM_CLASSES = 4
TILE = 32
# Grid patterns per label: which of the sample's distinct classes fills each of 4 slots.
PATTERNS = np.array([[0, 0, 0, 0], [0, 0, 1, 1], [0, 0, 1, 2], [0, 1, 2, 3]])
MAX_SHIFT = 5.0
RADIUS_RANGE = (7.0, 13.0)
MAX_ANGLE = np.deg2rad(15.0)  # well under 45 degrees, so square/diamond and plus/cross differ
MIN_CONTRAST = 0.5  # Euclidean RGB distance between shape and background colour
MAX_GRADIENT = 0.15
N_PARAMS = 12  # (dy, dx, radius, angle, fg r g b, bg r g b, gradient dy, dx)
SPLITS = ("train", "valid", "test")
_CHUNK = 1024


def label_of(classes: np.ndarray) -> np.ndarray:
    """CIFARTile's label for (N, 4) tile classes: number of distinct classes minus one."""
    s = np.sort(np.asarray(classes), axis=1)
    return (s[:, 1:] != s[:, :-1]).sum(axis=1).astype(np.int64)


def _mask(shape: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Inside-test of one shape in normalised coordinates (radius 1, v pointing down)."""
    au, av = np.abs(u), np.abs(v)
    r = np.hypot(u, v)
    name = SHAPES[shape]
    if name == "circle":
        return r <= 1.0
    if name == "square":
        return np.maximum(au, av) <= 0.8
    if name == "triangle":
        return (v <= 0.7) & (au <= (v + 0.8) * 0.6)
    if name == "diamond":
        return au + av <= 1.0
    if name == "ring":
        return (r >= 0.55) & (r <= 1.0)
    if name in ("plus", "cross"):
        if name == "cross":
            au, av = np.abs(u + v) / np.sqrt(2), np.abs(u - v) / np.sqrt(2)
        return ((au <= 0.28) & (av <= 0.95)) | ((av <= 0.28) & (au <= 0.95))
    if name == "ellipse":
        return u**2 + (v / 0.45) ** 2 <= 1.0
    if name == "star":
        return r <= 0.55 + 0.4 * np.cos(5 * np.arctan2(u, -v))
    return (np.maximum(au, av) >= 0.5) & (np.maximum(au, av) <= 0.85)  # frame


def render_tiles(classes: np.ndarray, params: np.ndarray) -> np.ndarray:
    """Draw (M,) shape classes with (M, 12) parameters into (M, 3, 32, 32) floats in [0, 1].

    Pure function of its inputs, so tests can redraw any tile from the recorded components.
    """
    m = classes.shape[0]
    grid = np.arange(TILE, dtype=np.float32) - (TILE - 1) / 2.0
    py, px = np.meshgrid(grid, grid, indexing="ij")
    p = params.astype(np.float32)
    dy, dx = py[None] - p[:, 0, None, None], px[None] - p[:, 1, None, None]
    cos, sin = np.cos(p[:, 3, None, None]), np.sin(p[:, 3, None, None])
    radius = p[:, 2, None, None]
    u = (cos * dx + sin * dy) / radius
    v = (-sin * dx + cos * dy) / radius
    inside = np.zeros((m, TILE, TILE), dtype=bool)
    for shape in np.unique(classes):
        sel = classes == shape
        inside[sel] = _mask(int(shape), u[sel], v[sel])
    ramp = (p[:, 10, None, None] * py[None] + p[:, 11, None, None] * px[None]) / (TILE / 2)
    bg = p[:, 7:10, None, None] + ramp[:, None]
    img = np.where(inside[:, None], p[:, 4:7, None, None], bg)
    return np.clip(img, 0.0, 1.0).astype(np.float32)


def _draw_params(n: int, rng: np.random.Generator) -> np.ndarray:
    """Random (n, 12) tile parameters with enough shape/background contrast."""
    fg, bg = rng.random((n, 3)), rng.random((n, 3))
    low = np.linalg.norm(fg - bg, axis=1) < MIN_CONTRAST
    while low.any():
        fg[low], bg[low] = rng.random((low.sum(), 3)), rng.random((low.sum(), 3))
        low = np.linalg.norm(fg - bg, axis=1) < MIN_CONTRAST
    return np.concatenate(
        [
            rng.uniform(-MAX_SHIFT, MAX_SHIFT, (n, 2)),
            rng.uniform(*RADIUS_RANGE, (n, 1)),
            rng.uniform(-MAX_ANGLE, MAX_ANGLE, (n, 1)),
            fg,
            bg,
            rng.uniform(-MAX_GRADIENT, MAX_GRADIENT, (n, 2)),
        ],
        axis=1,
    ).astype(np.float32)


def assemble(tiles: np.ndarray) -> np.ndarray:
    """(N, 4, 3, 32, 32) tiles into (N, 3, 64, 64) grids: top-left, top-right, bottom-left, ..."""
    n = tiles.shape[0]
    grid = tiles.reshape(n, 2, 2, 3, TILE, TILE).transpose(0, 3, 1, 4, 2, 5)
    return grid.reshape(n, 3, 2 * TILE, 2 * TILE)


def generate(counts: tuple[int, int, int], seed: int) -> dict[str, np.ndarray]:
    """Generate all splits.

    Returns ``{split}_x`` (uint8, N x 3 x 64 x 64), ``{split}_y``, and the components:
    ``{split}_classes`` (N, 4; shape class per quadrant) and ``{split}_params`` (N, 4, 12;
    see :func:`render_tiles`).
    """
    rng = np.random.default_rng([seed, 11])
    out: dict[str, np.ndarray] = {}
    for split, n in zip(SPLITS, counts, strict=True):
        labels = rng.permutation(np.arange(n) % NUM_CLASSES).astype(np.int64)
        distinct = np.argsort(rng.random((n, len(SHAPES))), axis=1)[:, :4]
        slots = np.take_along_axis(distinct, PATTERNS[labels], axis=1)
        order = np.argsort(rng.random((n, 4)), axis=1)
        classes = np.take_along_axis(slots, order, axis=1)
        params = _draw_params(n * 4, rng).reshape(n, 4, N_PARAMS)
        x = np.empty((n, 3, 2 * TILE, 2 * TILE), dtype=np.uint8)
        for start in range(0, n, _CHUNK):
            sl = slice(start, start + _CHUNK)
            k = classes[sl].shape[0]
            drawn = render_tiles(classes[sl].reshape(-1), params[sl].reshape(-1, N_PARAMS))
            grid = assemble(drawn.reshape(k, 4, 3, TILE, TILE))
            x[sl] = np.clip(np.rint(grid * 255.0), 0, 255).astype(np.uint8)
        out[f"{split}_x"] = x
        out[f"{split}_y"] = labels
        out[f"{split}_classes"] = classes.astype(np.int8)
        out[f"{split}_params"] = params
    return out


def describe() -> str:
    """One line on how the stand-in was made, for ``Dataset.meta``."""
    return (
        f"2x2 grid of 32x32 tiles, each one of {len(SHAPES)} numpy-drawn shapes "
        f"({', '.join(SHAPES)}) with random position, size, rotation, colours and background "
        "gradient; label = distinct shapes - 1 (CIFARTile's rule and 1/2+2/2+1+1/1+1+1+1 "
        "grid patterns); balanced labels"
    )
