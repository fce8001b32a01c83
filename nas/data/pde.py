"""Offline PDE data for the operator-learning zoo families (numpy/scipy solvers only).

- Fisher reaction-diffusion in 1-D, ``u_t = D u_xx + R(u)`` with zero-flux ends, where the
  source term ``R(u) = sum_j c_j u^j`` (j = 1..4) comes from several functional families
  (Fisher-KPP, Newell-Whitehead-Segel, a quartic one); explicit finite differences.
- Darcy flow in 2-D, ``-div(a grad u) = f`` with piecewise-constant ``a`` (a thresholded
  Gaussian random field taking two values), ``u = 0`` on the boundary of the domain: cell-centred
  finite volumes with harmonic face coefficients (a scipy.sparse matrix, solved by banded
  Cholesky). The domain is the unit square or a parameterised geometry given by a binary mask
  (square, circle, triangle, L-shape).

Everything is deterministic given the seed; see zoo/deeponet.py and zoo/mgno.py for the tasks.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.linalg import solveh_banded

from nas.exceptions import ConfigurationError

__all__ = [
    "FISHER_FAMILIES",
    "GEOMETRIES",
    "darcy_dataset",
    "darcy_matrix",
    "darcy_solve",
    "fisher_dataset",
    "fisher_solve",
    "geometry_masks",
    "grf_1d",
    "piecewise_coefficient",
    "size_scale",
]

# Source-term families: name -> coefficient vector of (u, u^2, u^3, u^4) for rate a, shape b.
FISHER_FAMILIES = ("kpp", "nw", "quartic")
GEOMETRIES = ("square", "circle", "triangle", "lshape")
_SCALES = {"small": 1, "medium": 3, "full": 10}


def size_scale(size: str) -> int:
    """How many times the "small" sample counts a size name asks for.

    Raises:
        ConfigurationError: an unknown size name.
    """
    if size not in _SCALES:
        raise ConfigurationError(
            f"size must be one of {', '.join(_SCALES)}, but got size={size!r}."
        )
    return _SCALES[size]


def source_coefficients(family: str, a: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """Coefficients (n, 4) of ``R(u) = c1 u + c2 u^2 + c3 u^3 + c4 u^4`` for a source family."""
    one, zero = np.ones_like(a), np.zeros_like(a)
    if family == "kpp":  # a u (1 - u)
        c = [one, -one, zero, zero]
    elif family == "nw":  # a u (1 - u^2)
        c = [one, zero, -one, zero]
    elif family == "quartic":  # a u (1 - u)(1 + beta u^2)
        c = [one, -one, beta, -beta]
    else:
        raise ConfigurationError(
            f"source family must be one of {', '.join(FISHER_FAMILIES)}, but got {family!r}."
        )
    return a[:, None] * np.stack(c, axis=1)


def grf_1d(
    n: int, x: np.ndarray, length: float, rng: np.random.Generator, sigma: float = 1.0
) -> np.ndarray:
    """``n`` draws (n, len(x)) of a zero-mean Gaussian process with an RBF kernel."""
    d = x[:, None] - x[None, :]
    cov = sigma**2 * np.exp(-0.5 * (d / length) ** 2) + 1e-6 * np.eye(len(x))
    chol = np.linalg.cholesky(cov)
    return rng.standard_normal((n, len(x))) @ chol.T


def fisher_solve(
    u0: np.ndarray,
    coeffs: np.ndarray,
    times: np.ndarray,
    diffusion: float = 0.01,
    dt: float = 0.005,
) -> np.ndarray:
    """Solve ``u_t = D u_xx + R(u)`` on [0, 1] with zero-flux ends for a batch of problems.

    ``u0`` (n, nx) holds the initial conditions on a uniform node grid, ``coeffs`` (n, 4) the
    source polynomial; returns u (n, len(times), nx) at ``times`` (multiples of ``dt``).
    """
    nx = u0.shape[1]
    dx = 1.0 / (nx - 1)
    if diffusion * dt / dx**2 > 0.45:
        raise ConfigurationError(f"explicit Fisher step dt={dt} is unstable for nx={nx}.")
    steps = np.rint(np.asarray(times) / dt).astype(int)
    out = np.empty((u0.shape[0], len(steps), nx), dtype=np.float64)
    u = u0.astype(np.float64).copy()
    c1, c2, c3, c4 = (coeffs[:, j : j + 1] for j in range(4))
    k = 0
    for step in range(int(steps.max()) + 1):
        while k < len(steps) and steps[k] == step:
            out[:, k] = u
            k += 1
        padded = np.concatenate([u[:, 1:2], u, u[:, -2:-1]], axis=1)  # reflecting ghosts
        lap = (padded[:, 2:] - 2 * u + padded[:, :-2]) / dx**2
        react = u * (c1 + u * (c2 + u * (c3 + u * c4)))
        u = u + dt * (diffusion * lap + react)
    return out


def fisher_dataset(
    n_per_family: int,
    seed: int,
    families: tuple[str, ...] = FISHER_FAMILIES,
    nx: int = 64,
    nt: int = 20,
    t_end: float = 2.0,
) -> dict[str, np.ndarray]:
    """Fisher problems: branch inputs [coefficients (4) + initial condition (nx)] and solutions.

    Returns ``branch`` (n, 4 + nx), ``u`` (n, nt, nx) at ``t = t_end * (j+1)/nt``, ``family``
    (n,) the index into ``families``, and the coordinate axes ``t`` and ``x``.
    """
    rng = np.random.default_rng(seed)
    x = np.linspace(0.0, 1.0, nx)
    times = t_end * np.arange(1, nt + 1) / nt
    branches, sols, fam = [], [], []
    for i, name in enumerate(families):
        a = rng.uniform(0.1, 1.0, n_per_family)
        beta = rng.uniform(0.5, 2.0, n_per_family)
        coeffs = source_coefficients(name, a, beta)
        u0 = 1.0 / (1.0 + np.exp(-grf_1d(n_per_family, x, 0.2, rng, sigma=2.0)))
        sols.append(fisher_solve(u0, coeffs, times))
        branches.append(np.concatenate([coeffs, u0], axis=1))
        fam.append(np.full(n_per_family, i))
    order = rng.permutation(n_per_family * len(families))
    return {
        "branch": np.concatenate(branches)[order].astype(np.float32),
        "u": np.concatenate(sols)[order].astype(np.float32),
        "family": np.concatenate(fam)[order].astype(np.int64),
        "t": times.astype(np.float32),
        "x": x.astype(np.float32),
    }


def piecewise_coefficient(
    n: int,
    size: int,
    rng: np.random.Generator,
    values: tuple[float, float] = (3.0, 12.0),
    alpha: float = 2.0,
    tau: float = 3.0,
    modes: int = 16,
) -> np.ndarray:
    """``n`` piecewise-constant fields (n, size, size): a thresholded Gaussian random field.

    The field is a cosine series with the spectrum ``(pi^2 |k|^2 + tau^2)^(-alpha/2)`` truncated
    at ``modes`` per axis, evaluated at the cell centres, so grids of different sizes sample the
    same distribution of functions (what a resolution-transfer test needs).
    """
    k = np.arange(modes)
    centres = (np.arange(size) + 0.5) / size
    basis = np.cos(np.pi * centres[:, None] * k[None, :])  # (size, modes)
    spec = (np.pi**2 * (k[:, None] ** 2 + k[None, :] ** 2) + tau**2) ** (-alpha / 2)
    spec[0, 0] = 0.0  # zero mean, so both values occur
    xi = rng.standard_normal((n, modes, modes)) * np.sqrt(spec)
    field = np.einsum("ik,nkl,jl->nij", basis, xi, basis)
    return np.where(field >= 0, values[1], values[0])


def darcy_matrix(a: np.ndarray, mask: np.ndarray | None = None) -> sp.dia_matrix:
    """The 5-point finite-volume matrix of ``-div(a grad .)`` on the unit square's N x N cells.

    Cells are numbered ``i * N + j`` (i along x). Faces use the harmonic mean of the two cell
    coefficients; the Dirichlet condition u = 0 holds at the square's walls (half a cell away)
    and in the cells outside ``mask`` (True = inside), whose rows are the identity. Symmetric.
    """
    n = a.shape[0]
    inside = np.ones_like(a, dtype=bool) if mask is None else mask.astype(bool)
    cx = 2 * a[:-1] * a[1:] / (a[:-1] + a[1:])  # faces between cells i and i+1
    cy = 2 * a[:, :-1] * a[:, 1:] / (a[:, :-1] + a[:, 1:])  # faces between j and j+1
    diag = np.zeros((n, n))
    diag[:-1] += cx
    diag[1:] += cx
    diag[:, :-1] += cy
    diag[:, 1:] += cy
    diag[0] += 2 * a[0]
    diag[-1] += 2 * a[-1]
    diag[:, 0] += 2 * a[:, 0]
    diag[:, -1] += 2 * a[:, -1]
    diag = np.where(inside, diag * n**2, 1.0)
    off_y = np.zeros((n, n))  # coupling of cell (i, j) and (i, j+1): offset 1
    off_y[:, :-1] = np.where(inside[:, :-1] & inside[:, 1:], -cy * n**2, 0.0)
    off_x = np.zeros((n, n))  # coupling of cell (i, j) and (i+1, j): offset n
    off_x[:-1] = np.where(inside[:-1] & inside[1:], -cx * n**2, 0.0)
    m = n * n
    data = [diag.ravel(), off_y.ravel(), off_x.ravel()]
    lower = sp.dia_matrix((np.stack([data[1], data[2]]), [-1, -n]), shape=(m, m))
    upper = sp.dia_matrix(
        (np.stack([np.roll(data[1], 1), np.roll(data[2], n)]), [1, n]), shape=(m, m)
    )
    return sp.dia_matrix((data[0][None], [0]), shape=(m, m)) + lower + upper


def darcy_solve(a: np.ndarray, mask: np.ndarray | None = None, f: float = 1.0) -> np.ndarray:
    """Solve ``-div(a grad u) = f`` in the cells inside ``mask`` (u = 0 elsewhere), N x N.

    The matrix of :func:`darcy_matrix` is banded (half-bandwidth N) and symmetric positive
    definite, so a banded Cholesky solve is exact and several times faster than SuperLU.
    """
    n = a.shape[0]
    inside = np.ones_like(a, dtype=bool) if mask is None else mask.astype(bool)
    mat = darcy_matrix(a, inside).todia()
    bands = np.zeros((n + 1, n * n))  # lower form: bands[k, i] = A[i + k, i]
    for k in (0, 1, n):
        bands[k, : n * n - k] = mat.diagonal(-k)
    rhs = np.where(inside, f, 0.0).ravel()
    return solveh_banded(bands, rhs, lower=True).reshape(n, n)


def geometry_masks(kind: str, n: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` random binary masks (n, size, size) of one parameterised geometry family."""
    c = (np.arange(size) + 0.5) / size
    x, y = np.meshgrid(c, c, indexing="ij")
    out = np.zeros((n, size, size), dtype=bool)
    for i in range(n):
        cx, cy = rng.uniform(0.45, 0.55, 2)
        if kind == "square":
            half = rng.uniform(0.3, 0.45)
            out[i] = (np.abs(x - cx) < half) & (np.abs(y - cy) < half)
        elif kind == "circle":
            out[i] = (x - cx) ** 2 + (y - cy) ** 2 < rng.uniform(0.32, 0.45) ** 2
        elif kind == "triangle":  # equilateral, apex up (+y), centroid at (cx, cy)
            side = rng.uniform(0.75, 0.95)
            height = side * np.sqrt(3) / 2
            base = cy - height / 3
            rel = (y - base) / height  # 0 at the base, 1 at the apex
            out[i] = (rel > 0) & (rel < 1) & (np.abs(x - cx) < side / 2 * (1 - rel))
        elif kind == "lshape":  # a square with one random quadrant cut away
            half = rng.uniform(0.35, 0.45)
            sq = (np.abs(x - cx) < half) & (np.abs(y - cy) < half)
            sx, sy = rng.choice([-1, 1], 2)
            out[i] = sq & ~((sx * (x - cx) > 0) & (sy * (y - cy) > 0))
        else:
            raise ConfigurationError(
                f"geometry must be one of {', '.join(GEOMETRIES)}, but got {kind!r}."
            )
    return out


def darcy_dataset(
    n: int, size: int, seed: int, geometry: str | None = None
) -> dict[str, np.ndarray]:
    """``n`` Darcy problems at ``size`` x ``size``: coefficient ``a``, ``mask`` and solution ``u``.

    ``geometry`` None means the whole unit square (mask all ones); f = 1 inside.
    """
    rng = np.random.default_rng(seed)
    a = piecewise_coefficient(n, size, rng)
    if geometry is None:
        mask = np.ones((n, size, size), dtype=bool)
    else:
        mask = geometry_masks(geometry, n, size, rng)
    u = np.stack([darcy_solve(a[i], mask[i]) for i in range(n)])
    return {
        "a": a.astype(np.float32),
        "mask": mask.astype(np.float32),
        "u": u.astype(np.float32),
    }
