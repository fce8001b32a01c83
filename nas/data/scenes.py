"""Procedural dense multi-task scenes: shapes at known depths, per-pixel labels and depth.

Each 32x32 RGB image shows a ground plane (its depth grows towards a random horizon) and
one to three shapes (disc, box, triangle) standing at random depths. A shape's apparent
size is inversely proportional to its depth and distant things fade into a grey haze, so
depth is visible in the image; nearer shapes occlude farther ones (painter's order). The
targets are the per-pixel class (0 background, 1 disc, 2 box, 3 triangle) and the per-pixel
depth in metres. Used by ``zoo:slimmable`` (semantic segmentation + depth, scored by mIoU
and RMSE).
"""

from __future__ import annotations

import numpy as np

VERSION = "3"
SIZE = 32
CLASSES = ("background", "disc", "box", "triangle")
SPLITS = ("train", "valid", "test")
COUNTS = {
    "small": (2_000, 500, 500),
    "medium": (8_000, 1_000, 1_000),
    "full": (30_000, 3_000, 3_000),
}
NEAR, FAR = 2.0, 10.0  # shape depths (metres)
FOCAL = 30.0  # apparent radius (pixels) = FOCAL / depth, so 3.3 .. 15 pixels
HAZE = 0.6  # share of the haze colour at depth FAR
NOISE = 0.03


def _shape_mask(cls: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Inside-test of a shape in normalised coordinates (radius 1, v pointing down)."""
    if cls == 1:
        return u**2 + v**2 <= 1.0
    if cls == 2:
        return np.maximum(np.abs(u), np.abs(v)) <= 0.85
    return (v <= 0.75) & (v >= -1.0) & (np.abs(u) <= (v + 1.0) * 0.6)  # triangle


def render(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One scene: image (3, 32, 32) float32 in [0, 1], labels (32, 32) int64, depth (32, 32)."""
    rows = np.arange(SIZE, dtype=np.float32)[:, None] * np.ones((1, SIZE), np.float32)
    cols = rows.T.copy()
    horizon = rng.uniform(-4.0, 10.0)
    near_bg = rng.uniform(4.0, 6.0)
    # Ground-plane depth: FAR at the horizon (and above), near_bg at the bottom row.
    t = np.clip((rows - horizon) / (SIZE - 1 - horizon), 0.0, 1.0)
    depth = (FAR + (near_bg - FAR) * t).astype(np.float32)
    sky, ground = rng.uniform(0.5, 1.0, 3), rng.uniform(0.0, 0.6, 3)
    img = np.where((rows < horizon)[None], sky[:, None, None], ground[:, None, None])
    img = img + rng.uniform(-0.1, 0.1) * (rows / SIZE)[None]
    labels = np.zeros((SIZE, SIZE), np.int64)
    n_shapes = int(rng.integers(1, 4))
    zs = np.sort(rng.uniform(NEAR, FAR - 1.0, n_shapes))[::-1]  # far first: near ones occlude
    for z in zs:
        cls = int(rng.integers(1, len(CLASSES)))
        radius = FOCAL / z * rng.uniform(0.9, 1.1)
        cy, cx = rng.uniform(4.0, SIZE - 4.0, 2)
        angle = rng.uniform(-0.3, 0.3)
        dy, dx = rows - cy, cols - cx
        u = (np.cos(angle) * dx + np.sin(angle) * dy) / radius
        v = (-np.sin(angle) * dx + np.cos(angle) * dy) / radius
        inside = _shape_mask(cls, u, v)
        colour = rng.uniform(0.0, 1.0, 3)
        while np.abs(colour - img[:, int(cy), int(cx)]).sum() < 0.6:
            colour = rng.uniform(0.0, 1.0, 3)
        shade = 1.0 - 0.25 * np.clip(u * 0.5 + v * 0.5, -1, 1)  # light from the top left
        img = np.where(inside[None], colour[:, None, None] * shade[None], img)
        labels[inside] = cls
        depth[inside] = z
    haze = HAZE * (depth - NEAR) / (FAR - NEAR)
    img = img * (1.0 - haze[None]) + 0.7 * haze[None]
    img = img + rng.normal(0.0, NOISE, img.shape)
    return np.clip(img, 0.0, 1.0).astype(np.float32), labels, depth


def generate(counts: tuple[int, int, int], seed: int) -> dict[str, np.ndarray]:
    """All splits: ``{split}_x`` (N, 3, 32, 32) and ``{split}_seg`` (N, 32, 32) as uint8 (the
    image in 1/255 steps), ``{split}_depth`` (N, 32, 32) float32 metres."""
    rng = np.random.default_rng([seed, 7])
    out: dict[str, np.ndarray] = {}
    for split, n in zip(SPLITS, counts, strict=True):
        scenes = [render(rng) for _ in range(n)]
        out[f"{split}_x"] = np.stack([np.round(s[0] * 255) for s in scenes]).astype(np.uint8)
        out[f"{split}_seg"] = np.stack([s[1] for s in scenes]).astype(np.uint8)
        out[f"{split}_depth"] = np.stack([s[2] for s in scenes])
    return out


def load(size: str = "small", seed: int = 0) -> dict[str, np.ndarray]:
    """The splits for ``size`` and ``seed``, generated once and then read from the cache."""
    from nas.data.cache import cached

    keys = tuple(f"{s}_{k}" for s in SPLITS for k in ("x", "seg", "depth"))
    arrays, _ = cached("scenes", size, seed, VERSION, lambda: generate(COUNTS[size], seed), keys)
    return arrays


def miou(pred: np.ndarray, target: np.ndarray, n_classes: int = len(CLASSES)) -> float:
    """Mean intersection-over-union over the classes present in ``pred`` or ``target``."""
    ious = []
    for c in range(n_classes):
        p, t = pred == c, target == c
        union = np.logical_or(p, t).sum()
        if union:
            ious.append(np.logical_and(p, t).sum() / union)
    return float(np.mean(ious))


def rmse(pred: np.ndarray, target: np.ndarray) -> float:
    """Root-mean-square depth error (metres) over all pixels."""
    return float(np.sqrt(np.mean((pred.astype(np.float64) - target) ** 2)))
