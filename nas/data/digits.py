"""AddNIST and MultNIST stand-ins built from scikit-learn's bundled handwritten digits.

The suite stacks three MNIST digits as the R, G and B channels of a 28x28 image; AddNIST's
label is ``r + g + b - 1`` (only triples giving 0..19 are used), MultNIST's is
``(r * g * b) mod 10``; classes are balanced and the test split draws its digits from images
never used for train or valid. MNIST is not shipped with the project, so the 1,797 real 8x8
digits that come with scikit-learn are upscaled to a ~20x20 glyph placed like MNIST's: its centre
of mass at the image centre (give or take half a pixel), with a light random rotation and
scale so that repeats of one source image still differ, and a contrast window that gives the
sharp strokes of MNIST instead of the soft halo of a bilinear upscale (ink statistics in
docs/protocol.md, "The default protocol").
"""

from __future__ import annotations

from itertools import product

import numpy as np

VERSION = "2"  # 2: centre-of-mass placement, shift 0.5 px, contrast window
KINDS = ("addnist", "multnist")
NUM_CLASSES = {"addnist": 20, "multnist": 10}
TEST_POOL_FRACTION = 0.2  # share of each digit's source images reserved for the test split
SIDE = 28
GLYPH = 20.0  # the 8x8 source spans about 20 pixels, like MNIST's 20x20 box
MAX_ANGLE = np.deg2rad(10.0)
SCALE_RANGE = (0.9, 1.1)
MAX_SHIFT = 0.5  # MNIST centres each digit's centre of mass: its spread is ~0.3 px
INK_WINDOW = (0.25, 0.75)  # upscaled intensity mapped linearly onto 0..1 (MNIST-like strokes)
SPLITS = ("train", "valid", "test")
_CHUNK = 384  # samples per render call; small blocks stay in cache (2.5x faster than 4096)


def load_source() -> tuple[np.ndarray, np.ndarray]:
    """The 1,797 bundled digits as (N, 8, 8) floats in [0, 1] and their (N,) labels."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return (bunch.images / 16.0).astype(np.float32), bunch.target.astype(np.int64)


def label_of(kind: str, digits: np.ndarray) -> np.ndarray:
    """The suite's label for (N, 3) digit triples (r, g, b); -1 where AddNIST rejects it."""
    digits = np.asarray(digits, dtype=np.int64)
    if kind == "addnist":
        label = digits.sum(axis=1) - 1
        return np.where((label >= 0) & (label <= 19), label, -1)
    if kind == "multnist":
        return np.prod(digits, axis=1) % 10
    raise ValueError(f"unknown digit task {kind!r}")


def _triples_by_label(kind: str) -> list[np.ndarray]:
    """All 1,000 digit triples grouped by label (rejected triples dropped)."""
    triples = np.array(list(product(range(10), repeat=3)), dtype=np.int64)
    labels = label_of(kind, triples)
    return [triples[labels == c] for c in range(NUM_CLASSES[kind])]


def render(images: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """Draw (M, 8, 8) images into (M, 28, 28) with bilinear sampling of a jittered affine map.

    ``affine`` rows are (angle in radians, scale, row shift, column shift); the shift moves the
    glyph's centre of mass away from the image centre. Pure function of its inputs, so tests
    can redraw any sample from the recorded components.
    """
    m = images.shape[0]
    padded = np.zeros((m, 10, 10), dtype=np.float32)
    padded[:, 1:9, 1:9] = images
    mass = np.maximum(padded.sum(axis=(1, 2)), 1e-6)
    axis = np.arange(10, dtype=np.float32)
    com_r = (padded.sum(axis=2) @ axis / mass)[:, None, None]
    com_c = (padded.sum(axis=1) @ axis / mass)[:, None, None]
    grid = np.arange(SIDE, dtype=np.float32) - (SIDE - 1) / 2.0
    pr, pc = np.meshgrid(grid, grid, indexing="ij")
    angle, scale, tr, tc = (affine[:, i, None, None].astype(np.float32) for i in range(4))
    dr, dc = pr[None] - tr, pc[None] - tc
    cos, sin = np.cos(angle), np.sin(angle)
    step = 8.0 / (GLYPH * scale)
    # inverse map: output pixel -> source pixel (padded coordinates), centre -> centre of mass
    r = (cos * dr + sin * dc) * step + com_r
    c = (-sin * dr + cos * dc) * step + com_c
    inside = (r >= 0) & (r <= 9) & (c >= 0) & (c <= 9)
    r, c = np.clip(r, 0, 9), np.clip(c, 0, 9)
    r0, c0 = np.minimum(np.floor(r), 8).astype(np.int64), np.minimum(np.floor(c), 8)
    c0 = c0.astype(np.int64)
    fr, fc = r - r0, c - c0
    flat = padded.reshape(m, 100)
    base = r0 * 10 + c0

    def at(offset: int) -> np.ndarray:
        return np.take_along_axis(flat, (base + offset).reshape(m, -1), axis=1).reshape(base.shape)

    out = (1 - fr) * ((1 - fc) * at(0) + fc * at(1)) + fr * ((1 - fc) * at(10) + fc * at(11))
    lo, hi = INK_WINDOW
    out = np.clip((out - lo) / (hi - lo), 0.0, 1.0)
    return np.where(inside, out, 0.0).astype(np.float32)


def to_uint8(x: np.ndarray) -> np.ndarray:
    """Quantise [0, 1] floats to bytes, as stored in the cache."""
    return np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)


def _balanced_labels(n: int, num_classes: int, rng: np.random.Generator) -> np.ndarray:
    """n labels with every class count within one of the others, in random order."""
    return rng.permutation(np.arange(n) % num_classes).astype(np.int64)


def split_pools(targets: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Per-digit split of source image indices into a train/valid pool and a test pool."""
    train, test = [], []
    for d in range(10):
        idx = rng.permutation(np.flatnonzero(targets == d))
        k = round(len(idx) * TEST_POOL_FRACTION)
        test.append(idx[:k])
        train.append(idx[k:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def draw_split(
    kind: str, n: int, pool: np.ndarray, targets: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Balanced labels, digit triples and source images (from ``pool``) for ``n`` samples.

    Shared by :func:`generate` and by any other digit source (``bench/calibrate_digits.py``
    builds the same recipe from real MNIST digits with it), so the sampling cannot drift.
    """
    labels = _balanced_labels(n, NUM_CLASSES[kind], rng)
    digits = np.zeros((n, 3), dtype=np.int64)
    for c, group in enumerate(_triples_by_label(kind)):
        where = np.flatnonzero(labels == c)
        digits[where] = group[rng.integers(0, len(group), size=where.size)]
    chosen = np.zeros((n, 3), dtype=np.int64)
    for d in range(10):
        candidates = pool[targets[pool] == d]
        mask = digits == d
        chosen[mask] = rng.choice(candidates, size=int(mask.sum()))
    return labels, digits, chosen


def generate(kind: str, counts: tuple[int, int, int], seed: int) -> dict[str, np.ndarray]:
    """Generate all splits of a digit task.

    Returns ``{split}_x`` (uint8, N x 3 x 28 x 28), ``{split}_y`` and the components each
    sample was drawn from: ``{split}_digits`` (N, 3), ``{split}_images`` (N, 3; indices into
    ``load_digits()``) and ``{split}_affine`` (N, 3, 4; see :func:`render`).
    """
    if kind not in KINDS:
        raise ValueError(f"unknown digit task {kind!r}")
    rng = np.random.default_rng([seed, KINDS.index(kind)])
    images, targets = load_source()
    pools = dict(zip(("train", "test"), split_pools(targets, rng), strict=True))
    out: dict[str, np.ndarray] = {}
    for split, n in zip(SPLITS, counts, strict=True):
        pool = pools["test" if split == "test" else "train"]
        labels, digits, chosen = draw_split(kind, n, pool, targets, rng)
        affine = np.stack(
            [
                rng.uniform(-MAX_ANGLE, MAX_ANGLE, (n, 3)),
                rng.uniform(*SCALE_RANGE, (n, 3)),
                rng.uniform(-MAX_SHIFT, MAX_SHIFT, (n, 3)),
                rng.uniform(-MAX_SHIFT, MAX_SHIFT, (n, 3)),
            ],
            axis=-1,
        ).astype(np.float32)
        x = np.empty((n, 3, SIDE, SIDE), dtype=np.uint8)
        for start in range(0, n, _CHUNK):
            sl = slice(start, start + _CHUNK)
            flat_idx = chosen[sl].reshape(-1)
            drawn = render(images[flat_idx], affine[sl].reshape(-1, 4))
            x[sl] = to_uint8(drawn).reshape(-1, 3, SIDE, SIDE)
        out[f"{split}_x"] = x
        out[f"{split}_y"] = labels
        out[f"{split}_digits"] = digits.astype(np.int8)
        out[f"{split}_images"] = chosen.astype(np.int32)
        out[f"{split}_affine"] = affine
    return out


def describe(kind: str) -> str:
    """One line on how the stand-in was made, for ``Dataset.meta``."""
    rule = "r+g+b-1 (triples giving 0..19 only)" if kind == "addnist" else "(r*g*b) mod 10"
    return (
        "three of scikit-learn's 1,797 real 8x8 handwritten digits upscaled to 28x28, centred "
        f"by centre of mass as in MNIST, with light affine jitter, stacked as R,G,B; label "
        f"{rule}; balanced classes; test digits drawn from a {TEST_POOL_FRACTION:.0%} hold-out "
        "of the source images"
    )
