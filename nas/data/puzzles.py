"""Offline reasoning puzzles for the zoo: Sudoku, sorting and planar convex hull.

- Sudoku (zoo:rrn): a base Latin pattern is shuffled by validity-preserving symmetries
  (digit relabelling, rows within a band, bands, columns within a stack, stacks,
  transposition), then all but ``givens`` cells are blanked; difficulty is the number of
  givens. 4x4 (``box=2``) by default, 9x9 with ``box=3``. Uniqueness is *not* enforced, so
  a prediction counts as solved when it is any valid completion of the givens
  (:func:`sudoku_valid`).
- Sorting and convex hull (zoo:ptrnet): variable-length point sets padded to a fixed
  width with a validity mask; targets are pointer sequences (sort: ``argsort``; hull: the
  ``scipy.spatial.ConvexHull`` vertices counter-clockwise from the smallest index, then an
  end-of-sequence pointer).

Everything is numpy, deterministic given the seed, and vectorised where it matters.
"""

from __future__ import annotations

import functools
import itertools

import numpy as np
from scipy.spatial import ConvexHull

__all__ = [
    "convex_polygon_area",
    "count_solutions_4x4",
    "hull_problems",
    "pointer_successors",
    "sort_problems",
    "sudoku_edges",
    "sudoku_puzzles",
    "sudoku_units",
    "sudoku_valid",
]

IGNORE = -1  # pointer target padding (ignored by the loss)


# -- Sudoku -------------------------------------------------------------------------------
def _block_perm(count: int, box: int, rng: np.random.Generator) -> np.ndarray:
    """Random permutations of ``box*box`` lines that keep bands (stacks) together."""
    bands = np.argsort(rng.random((count, box)), axis=1)
    within = np.argsort(rng.random((count, box, box)), axis=2)
    return (bands[:, :, None] * box + within).reshape(count, box * box)


@functools.cache
def _all_grids_4x4() -> np.ndarray:
    """Every valid 4x4 grid (digits 0..3), ``(288, 4, 4)``, by filtering row permutations."""
    perms = np.array(list(itertools.permutations(range(4))))
    idx = np.stack(np.meshgrid(*[np.arange(24)] * 4, indexing="ij"), -1).reshape(-1, 4)
    grids = perms[idx]
    units = sudoku_units(2)
    ok = (np.sort(grids.reshape(-1, 16)[:, units], axis=2) == np.arange(4)).all(axis=(1, 2))
    return grids[ok]


def _draw(keep: np.ndarray, box: int, rng: np.random.Generator):
    """Random solved grids and puzzles keeping ``keep[k]`` givens of grid ``k``."""
    n, count = box * box, len(keep)
    if box == 2:  # all 288 Shidoku grids, drawn uniformly (the shuffles reach only 192)
        grid = _all_grids_4x4()[rng.integers(0, 288, size=count)]
    else:
        r = np.arange(n)
        base = (box * (r[:, None] % box) + r[:, None] // box + r[None, :]) % n
        rows, cols = _block_perm(count, box, rng), _block_perm(count, box, rng)
        grid = base[rows[:, :, None], cols[:, None, :]]
    flip = rng.random(count) < 0.5
    grid = np.where(flip[:, None, None], grid.transpose(0, 2, 1), grid)
    digits = np.argsort(rng.random((count, n)), axis=1)
    sol = np.take_along_axis(digits, grid.reshape(count, n * n), axis=1) + 1
    rank = np.argsort(np.argsort(rng.random((count, n * n)), axis=1), axis=1)
    return np.where(rank < keep[:, None], sol, 0).astype(np.int64), sol.astype(np.int64)


def count_solutions_4x4(puzzle: np.ndarray) -> np.ndarray:
    """Number of valid completions of each 4x4 puzzle (exhaustive over the 288 grids)."""
    grids = _all_grids_4x4().reshape(1, 288, 16) + 1
    puzzle = np.asarray(puzzle)
    out = [
        ((p[:, None] == 0) | (p[:, None] == grids)).all(axis=2).sum(axis=1)
        for p in np.array_split(puzzle, max(1, len(puzzle) // 2048))
    ]
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)


def sudoku_puzzles(
    count: int,
    box: int = 2,
    givens: tuple[int, int] = (6, 10),
    seed: int = 0,
    unique: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """``count`` puzzles and the solutions they were cut from, each ``(count, n*n)`` int64.

    ``n = box*box``; digits are 1..n and 0 marks a blank. Each puzzle keeps a number of
    givens drawn uniformly from the inclusive range ``givens``. ``unique=True`` (4x4 only)
    redraws every puzzle with several solutions, keeping its number of givens.
    """
    n = box * box
    lo, hi = givens
    if not 0 <= lo <= hi <= n * n:
        raise ValueError(f"givens must satisfy 0 <= min <= max <= {n * n}, got {givens}.")
    if unique and (box != 2 or lo < 4):
        raise ValueError("unique puzzles need box=2 (4x4) and at least 4 givens.")
    rng = np.random.default_rng(seed)
    keep = rng.integers(lo, hi + 1, size=count)
    puzzle, sol = _draw(keep, box, rng)
    bad = count_solutions_4x4(puzzle) != 1 if unique else np.zeros(count, dtype=bool)
    while bad.any():
        puzzle[bad], sol[bad] = _draw(keep[bad], box, rng)
        bad[bad] = count_solutions_4x4(puzzle[bad]) != 1
    return puzzle, sol


def sudoku_units(box: int) -> np.ndarray:
    """The ``3n`` units (rows, columns, boxes) as ``(3n, n)`` cell indices."""
    n = box * box
    idx = np.arange(n * n).reshape(n, n)
    boxes = idx.reshape(box, box, box, box).transpose(0, 2, 1, 3).reshape(n, n)
    return np.concatenate([idx, idx.T, boxes])


def sudoku_edges(box: int) -> np.ndarray:
    """Directed constraint-graph edges ``(2, E)`` (source, target): cells sharing a unit."""
    n = box * box
    adj = np.zeros((n * n, n * n), dtype=bool)
    for unit in sudoku_units(box):
        adj[np.ix_(unit, unit)] = True
    np.fill_diagonal(adj, False)
    src, dst = np.nonzero(adj)
    return np.stack([src, dst]).astype(np.int64)


def sudoku_valid(pred: np.ndarray, puzzle: np.ndarray, box: int) -> np.ndarray:
    """Per puzzle: is ``pred`` a valid completion (every unit a permutation, givens kept)?"""
    pred, puzzle = np.asarray(pred), np.asarray(puzzle)
    n = box * box
    kept = ((puzzle == 0) | (pred == puzzle)).all(axis=1)
    units = np.sort(pred[:, sudoku_units(box)], axis=2)
    return kept & (units == np.arange(1, n + 1)).all(axis=(1, 2))


# -- pointer tasks ------------------------------------------------------------------------
def _pad(count: int, width: int, lengths: np.ndarray, d: int, rng: np.random.Generator):
    x = rng.random((count, width, d))
    mask = np.arange(width)[None, :] < lengths[:, None]
    return np.where(mask[:, :, None], x, 0.0).astype(np.float32), mask


def sort_problems(
    count: int, lengths: tuple[int, int], width: int | None = None, seed: int = 0
) -> dict[str, np.ndarray]:
    """Sorting ``n`` numbers from U(0, 1), ``n`` uniform in the inclusive range ``lengths``.

    Returns ``x`` (count, width, 1), ``mask`` (count, width), ``n`` and ``target``
    (count, width): the positions in increasing order of value, then ``IGNORE``.
    """
    rng = np.random.default_rng(seed)
    width = width or lengths[1]
    n = rng.integers(lengths[0], lengths[1] + 1, size=count)
    x, mask = _pad(count, width, n, 1, rng)
    key = np.where(mask, x[:, :, 0], np.inf)
    target = np.where(mask, np.argsort(key, axis=1, kind="stable"), IGNORE)
    return {"x": x, "mask": mask, "n": n.astype(np.int64), "target": target.astype(np.int64)}


def hull_problems(
    count: int, lengths: tuple[int, int], width: int | None = None, seed: int = 0
) -> dict[str, np.ndarray]:
    """Planar convex hull of ``n`` points from U([0, 1]^2), ``n`` uniform in ``lengths``.

    Returns ``x`` (count, width, 2), ``mask``, ``n``, ``area`` (the hull's area) and
    ``target`` (count, width + 1) in pointer positions: 0 is end-of-sequence and point
    ``i`` is position ``i + 1``; the hull vertices run counter-clockwise from the
    smallest index, then 0, then ``IGNORE``.
    """
    rng = np.random.default_rng(seed)
    width = width or lengths[1]
    n = rng.integers(max(3, lengths[0]), lengths[1] + 1, size=count)
    x, mask = _pad(count, width, n, 2, rng)
    target = np.full((count, width + 1), IGNORE, dtype=np.int64)
    area = np.zeros(count)
    for k in range(count):
        hull = ConvexHull(x[k, : n[k]].astype(np.float64))
        v = np.roll(hull.vertices, -int(np.argmin(hull.vertices)))
        target[k, : len(v)] = v + 1
        target[k, len(v)] = 0
        area[k] = hull.volume
    return {"x": x, "mask": mask, "n": n.astype(np.int64), "target": target, "area": area}


def pointer_successors(target: np.ndarray, n: np.ndarray, width: int, eos: bool) -> np.ndarray:
    """Auxiliary (task-hint) targets: each item's successor in the output, in pointer space.

    Sort: the next larger number's position (``IGNORE`` for the largest). Hull: the next
    hull vertex counter-clockwise (cyclic); points inside the hull point to the
    end-of-sequence position 0. Returned as ``(count, width)`` per input item; padding
    items get ``IGNORE``.
    """
    count = len(target)
    succ = np.full((count, width), IGNORE, dtype=np.int64)
    nxt = np.concatenate([target[:, 1:], np.full((count, 1), IGNORE)], axis=1)
    if eos:
        succ[np.arange(width)[None, :] < np.asarray(n)[:, None]] = 0
        nxt = np.where(nxt > 0, nxt, target[:, :1])  # cyclic: the last vertex -> the first
    rows, cols = np.nonzero(target > 0 if eos else target >= 0)
    succ[rows, target[rows, cols] - (1 if eos else 0)] = nxt[rows, cols]
    return succ


def convex_polygon_area(points: np.ndarray) -> float:
    """Area of ``points`` (k, 2) read as a polygon if it is convex, simple and
    counter-clockwise (every turn left, winding once), else 0."""
    k = len(points)
    if k < 3:
        return 0.0
    e = np.roll(points, -1, axis=0) - points
    cross = e[:, 0] * np.roll(e, -1, axis=0)[:, 1] - e[:, 1] * np.roll(e, -1, axis=0)[:, 0]
    if (cross <= 0).any():
        return 0.0
    ang = np.arctan2(e[:, 1], e[:, 0])
    turn = np.mod(np.roll(ang, -1) - ang, 2 * np.pi)
    if abs(turn.sum() - 2 * np.pi) > 1e-6:
        return 0.0
    x, y = points[:, 0], points[:, 1]
    return float(0.5 * (x * np.roll(y, -1) - np.roll(x, -1) * y).sum())
