"""Sparsity measures of a code matrix and explained-variance-against-sparsity frontiers (the toy sweeps).

``z`` is (n, d): n samples (rows), d latents. Every measure is computed **per sample, then averaged** over the
samples where it is defined (``per_sample=True`` returns the per-sample values). Conventions, following Hoyer
(2004, "Non-negative matrix factorization with sparseness constraints"):

* ``L0`` = number of entries with ``|z| > eps`` (eps = 0 by default);
* ``L1`` = sum of ``|z|``;
* ``L2`` = **sum of squares** ``sum z^2``, so ``sqrt(L2)`` is the Euclidean norm and ``L1 / sqrt(L2)`` is Hoyer's
  ratio ``||z||_1 / ||z||_2``: scale-free, 1 for a one-hot vector, ``sqrt(d)`` for a constant one;
* Hoyer sparsity = ``(sqrt(d) - ||z||_1 / ||z||_2) / (sqrt(d) - 1)``: 1 for a one-hot vector, 0 for a vector with
  equal magnitudes everywhere.

A zero row has no direction: its ratio and Hoyer sparsity are NaN and left out of the means (its L0 and L1 are 0
and counted).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import torch


def _as_2d(z) -> np.ndarray:
    a = z.detach().cpu().numpy() if isinstance(z, torch.Tensor) else np.asarray(z)
    a = a.astype(np.float64)
    if a.ndim == 1:
        a = a[None]
    if a.ndim != 2:
        raise ValueError(f"expected a code matrix (n, d); got shape {a.shape}")
    return a


def _reduce(v: np.ndarray, per_sample: bool) -> float | np.ndarray:
    if per_sample:
        return v
    ok = np.isfinite(v)
    return float(v[ok].mean()) if ok.any() else float("nan")


def l0(z, eps: float = 0.0, per_sample: bool = False) -> float | np.ndarray:
    """Number of active latents (``|z| > eps``) per sample."""
    return _reduce((np.abs(_as_2d(z)) > eps).sum(axis=1).astype(np.float64), per_sample)


def l1(z, per_sample: bool = False) -> float | np.ndarray:
    """Sum of absolute values per sample."""
    return _reduce(np.abs(_as_2d(z)).sum(axis=1), per_sample)


def l1_over_sqrt_l2(z, per_sample: bool = False) -> float | np.ndarray:
    """``L1 / sqrt(L2)`` per sample with L2 = sum of squares, i.e. ``||z||_1 / ||z||_2`` in [1, sqrt(d)]."""
    a = _as_2d(z)
    norm = np.sqrt((a * a).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.where(norm > 0, np.abs(a).sum(axis=1) / np.where(norm > 0, norm, 1.0), np.nan)
    return _reduce(r, per_sample)


def hoyer(z, per_sample: bool = False) -> float | np.ndarray:
    """Hoyer sparsity ``(sqrt(d) - ||z||_1/||z||_2) / (sqrt(d) - 1)`` per sample, in [0, 1]."""
    a = _as_2d(z)
    d = a.shape[1]
    if d < 2:
        raise ValueError("Hoyer sparsity needs at least two latents")
    r = l1_over_sqrt_l2(a, per_sample=True)
    s = np.clip((np.sqrt(d) - r) / (np.sqrt(d) - 1.0), 0.0, 1.0)  # clip: rounding only
    return _reduce(s, per_sample)


def sparsity_summary(z, eps: float = 0.0) -> dict[str, float]:
    """All measures (means over samples) for one code matrix."""
    return {
        "l0": l0(z, eps),
        "l1": l1(z),
        "l1_over_sqrt_l2": l1_over_sqrt_l2(z),
        "hoyer": hoyer(z),
    }


def per_sample_torch(z: torch.Tensor, eps: float = 0.0) -> dict[str, torch.Tensor]:
    """The four measures per sample (float64), computed in torch on ``z`` as it is.

    Same definitions as :func:`l0`, :func:`l1`, :func:`l1_over_sqrt_l2` and :func:`hoyer` (the tests check they
    agree); this path skips their float64 NumPy copy, which costs ~0.3 s for one 8192 x 1024 code matrix and a
    sweep scores dozens of them.
    """
    if z.dim() != 2 or z.shape[1] < 2:
        raise ValueError(f"expected a code matrix (n, d) with d >= 2; got shape {tuple(z.shape)}")
    a = z.abs()
    norm1 = a.sum(1, dtype=torch.float64)
    norm2 = a.pow(2).sum(1, dtype=torch.float64).sqrt()
    ratio = torch.where(norm2 > 0, norm1 / norm2.clamp_min(1e-300), torch.full_like(norm2, float("nan")))
    sd = math.sqrt(z.shape[1])
    return {
        "l0": (a > eps).sum(1).to(torch.float64),
        "l1": norm1,
        "l1_over_sqrt_l2": ratio,
        "hoyer": ((sd - ratio) / (sd - 1.0)).clamp(0.0, 1.0),  # clamp keeps NaN (zero rows)
    }


def mean_per_sample(chunks: Sequence[Mapping[str, torch.Tensor]]) -> dict[str, float]:
    """Means over samples of :func:`per_sample_torch` results of several chunks, NaN (zero rows) left out."""
    return {k: _reduce(torch.cat([c[k] for c in chunks]).cpu().numpy(), False) for k in chunks[0]}


def pareto_frontier(points, lower_is_sparser: bool = True) -> np.ndarray:
    """The non-dominated points of (sparsity, explained variance) pairs, sorted by sparsity measure ascending.

    Higher explained variance is better. ``lower_is_sparser``: True for L0, L1, L1/sqrt(L2) (fewer or smaller
    activations = sparser), False for Hoyer sparsity (higher = sparser). A point is kept unless another point is
    at least as sparse and explains at least as much variance, and is strictly better in one; exact duplicates
    are kept once; points with a NaN are dropped. Returns an (m, 2) array.
    """
    p = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    p = p[np.isfinite(p).all(axis=1)]
    if p.size == 0:
        return np.zeros((0, 2))
    p = np.unique(p, axis=0)
    # Work in "smaller x is better" coordinates; sort by x ascending, then EV descending, and keep every point
    # whose EV beats all EVs seen so far (those were at least as sparse).
    x = p[:, 0] if lower_is_sparser else -p[:, 0]
    order = np.lexsort((-p[:, 1], x))
    best = -np.inf
    keep = []
    for i in order:
        if p[i, 1] > best:
            keep.append(i)
            best = p[i, 1]
    front = p[keep]
    return front[np.argsort(front[:, 0], kind="stable")]


def frontiers(by_condition: Mapping[str, Sequence], lower_is_sparser: bool = True) -> dict[str, np.ndarray]:
    """:func:`pareto_frontier` of each condition's list of (sparsity, explained variance) points."""
    return {name: pareto_frontier(pts, lower_is_sparser) for name, pts in by_condition.items()}
