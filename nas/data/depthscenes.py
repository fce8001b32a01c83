"""Procedurally rendered depth scenes: an RGB image and a metric depth map with holes.

Each scene is seen by one pinhole camera ``CAM_HEIGHT`` metres above a ground plane. The
horizon row varies; below it the ground's depth is ``FOCAL * CAM_HEIGHT / (row - horizon)``
and its checker texture shrinks with distance; above it lies the sky (beyond the sensor's
range), unless a back wall at a known depth closes the view. Two to five shapes (discs,
boxes, triangles) stand on the ground at known depths: their pixel size is
``FOCAL * size / depth`` and their base sits on the ground row of that depth, so an image
holds the cues a depth net learns (height in the image, apparent size, texture gradient,
atmospheric fading, occlusion). They are painted far to near, so nearer shapes occlude.

The depth map is what a real sensor returns: 0 marks an invalid pixel, as in NYU-Depth v2
and KITTI. Invalid are the sky and everything beyond ``MAX_DEPTH``, the far side of
occlusion edges (the "shadow" a structured-light sensor leaves), a few dropout blobs
(specular surfaces) and scattered single pixels. Metrics are computed on valid pixels only.
The hole-free true depth is kept too (a tokenizer target; never used for scoring).
Generation is vectorised over scenes (about 1 s for 3,000 scenes at 32x32).
"""

from __future__ import annotations

import numpy as np

VERSION = "2"
SIDE = 32
MAX_DEPTH = 10.0
MIN_DEPTH = 1.0
FOCAL = 20.0  # pixels per metre at 1 m (for a 32-pixel image)
CAM_HEIGHT = 1.5
MAX_SHAPES = 5
FOG_RANGE = 9.0  # metres over which colours fade to the fog colour by 1/e
NOISE = 0.03
DROPOUT = 0.02  # scattered invalid pixels
SHADOW_P = 0.7  # chance that a far-side occlusion-edge pixel is invalid
SPLITS = ("train", "valid", "test")


def _fade(colour: np.ndarray, depth: np.ndarray, fog: np.ndarray) -> np.ndarray:
    """Atmospheric fading: (N, 3) colours at (N, H, W) depths -> (N, 3, H, W)."""
    a = np.exp(-depth / FOG_RANGE)[:, None]
    return colour[:, :, None, None] * a + fog[:, :, None, None] * (1 - a)


def render(
    n: int, rng: np.random.Generator, side: int = SIDE
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Render ``n`` scenes: images (n, 3, side, side) in [0, 1], sensor and true depths.

    The sensor depth (n, 1, side, side) is in metres with 0 on invalid pixels; the true
    depth has no holes (sky and beyond-range pixels read ``MAX_DEPTH``). ``side`` scales
    the camera with it.
    """
    f = FOCAL * side / SIDE
    rows = np.arange(side, dtype=np.float64)[None, :, None]
    cols = np.arange(side, dtype=np.float64)[None, None, :]
    horizon = rng.uniform(0.22, 0.42, (n, 1, 1)) * side
    below = rows - horizon
    ground = np.where(below > 0.5, f * CAM_HEIGHT / np.maximum(below, 0.5), np.inf)
    ground = np.broadcast_to(ground, (n, side, side)).copy()
    # Back wall: with probability 0.5 a fronto-parallel wall closes the view at depth w.
    wall = np.where(rng.random((n, 1, 1)) < 0.5, rng.uniform(5.0, 9.5, (n, 1, 1)), np.inf)
    depth = np.minimum(ground, wall)
    fog = rng.uniform(0.55, 0.9, (n, 3)) * np.array([0.9, 0.95, 1.0])
    # Ground: a checker texture on the plane (world x, z), so its frequency falls with depth.
    gx = (cols - side / 2) * np.minimum(ground, MAX_DEPTH * 3) / f
    checker = ((np.floor(gx / 0.8) + np.floor(np.minimum(ground, 40) / 0.8)) % 2)[:, None]
    g_col = rng.uniform(0.15, 0.75, (n, 3))
    ground_rgb = _fade(g_col, ground.clip(max=40), fog) * (0.75 + 0.35 * checker)
    w_col = rng.uniform(0.2, 0.8, (n, 3))
    wall_rgb = _fade(w_col, np.broadcast_to(wall, (n, side, side)).clip(max=40), fog)
    sky_rgb = fog[:, :, None, None] * (1.05 - 0.25 * rows[:, None] / side)
    image = np.where(np.isfinite(wall)[:, None] & (wall < ground)[:, None], wall_rgb, ground_rgb)
    image = np.where(np.isinf(depth)[:, None], sky_rgb, image)
    # Shapes: sorted far to near so that painting order is z-order.
    count = rng.integers(2, MAX_SHAPES + 1, n)
    z = np.sort(rng.uniform(1.5, 8.5, (n, MAX_SHAPES)), axis=1)[:, ::-1]
    kind = rng.integers(0, 3, (n, MAX_SHAPES))
    size = rng.uniform(0.5, 1.8, (n, MAX_SHAPES))
    aspect = rng.uniform(0.6, 1.6, (n, MAX_SHAPES))
    centre_x = rng.uniform(0.05, 0.95, (n, MAX_SHAPES)) * side
    colour = rng.uniform(0.0, 1.0, (n, MAX_SHAPES, 3))
    for k in range(MAX_SHAPES):
        active = (k >= MAX_SHAPES - count)[:, None, None]  # the nearest `count` shapes
        d = z[:, k, None, None]
        half_w = f * size[:, k, None, None] / d / 2
        height = 2 * half_w * aspect[:, k, None, None]
        base = horizon + f * CAM_HEIGHT / d
        u = (cols - centre_x[:, k, None, None]) / half_w  # -1..1 across the shape
        v = (base - rows) / height  # 0 at the base, 1 at the top
        box = (np.abs(u) <= 1) & (v >= 0) & (v <= 1)
        disc = (u**2 + ((v - 0.5) * 2) ** 2) <= 1
        tri = box & (np.abs(u) <= 1 - v)
        kk = kind[:, k, None, None]
        inside = active & np.where(kk == 0, disc, np.where(kk == 1, box, tri)) & (d < depth)
        shade = 0.8 + 0.2 * np.clip(1 - np.abs(u), 0, 1)  # a hint of roundness
        rgb = _fade(colour[:, k], np.broadcast_to(d, (n, side, side)), fog) * shade[:, None]
        image = np.where(inside[:, None], rgb, image)
        depth = np.where(inside, d, depth)
    image = np.clip(image + rng.normal(0, NOISE, image.shape), 0, 1).astype(np.float32)
    valid = np.isfinite(depth) & (depth <= MAX_DEPTH)
    # Occlusion shadow: the far-side pixel of a depth jump (to the left, as for a
    # projector beside the camera) is often unmeasured.
    finite = np.where(np.isfinite(depth), depth, 1e3)
    right = np.concatenate([finite[:, :, 1:], finite[:, :, -1:]], axis=2)
    edge = (finite < 1e3) & (finite - right > 0.5)
    valid &= ~(edge & (rng.random(depth.shape) < SHADOW_P))
    # Dropout blobs (specular patches) and scattered pixels.
    blobs = rng.integers(0, 3, n)
    for b in range(2):
        cy, cx = rng.uniform(0, side, (2, n, 1, 1))
        ry, rx = rng.uniform(1.0, 0.12 * side, (2, n, 1, 1))
        hole = ((rows - cy) / ry) ** 2 + ((cols - cx) / rx) ** 2 <= 1
        valid &= ~(hole & (b < blobs)[:, None, None])
    valid &= rng.random(depth.shape) >= DROPOUT
    true = np.clip(np.where(np.isfinite(depth), depth, MAX_DEPTH), MIN_DEPTH, MAX_DEPTH)
    out = np.where(valid, true, 0.0).astype(np.float32)
    return image, out[:, None], true.astype(np.float32)[:, None]


def generate(sizes: tuple[int, int, int], seed: int = 0) -> dict[str, np.ndarray]:
    """The splits as arrays ``{split}_image``, ``{split}_depth`` (sensor) and ``{split}_true``."""
    rng = np.random.default_rng([seed, 8_0023])
    arrays: dict[str, np.ndarray] = {}
    for split, n in zip(SPLITS, sizes, strict=True):
        image, depth, true = render(n, rng)
        arrays[f"{split}_image"], arrays[f"{split}_depth"], arrays[f"{split}_true"] = (
            image,
            depth,
            true,
        )
    return arrays
