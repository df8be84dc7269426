"""Token and position statistics of one latent's activations: activation mass per token id, entropy (nats unless
``base`` is given), the heaviest token's share, the single-token test, position concentration.

Plain NumPy on (token ids, activations[, positions]) arrays; no subpackage of ours is imported, so every stage
(``autointerp``) and every study (``studies.why``, ``studies.seeds``, ``studies.critique``) can read these without
depending on one another.
"""

from __future__ import annotations

import numpy as np


def token_mass(token_ids: np.ndarray, acts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(token ids, activation mass) summed per token id over all given tokens, sorted by mass, descending.

    Tokens with zero (or negative) activation carry no mass and are left out.
    """
    t = np.asarray(token_ids).ravel()
    a = np.asarray(acts, dtype=float).ravel()
    keep = a > 0
    ids, inv = np.unique(t[keep], return_inverse=True)
    mass = np.bincount(inv, weights=a[keep], minlength=ids.size)
    order = np.lexsort((ids, -mass))  # mass descending, ties by id for determinism
    return ids[order], mass[order]


def entropy(mass: np.ndarray, base: float | None = None) -> float:
    """Shannon entropy of the distribution ``mass / mass.sum()``; nats by default (``base=2`` for bits)."""
    m = np.asarray(mass, dtype=float).ravel()
    m = m[m > 0]
    if m.size == 0:
        return float("nan")
    p = m / m.sum()
    h = float(-(p * np.log(p)).sum())
    h = max(h, 0.0)
    return h / np.log(base) if base else h


def token_entropy(token_ids: np.ndarray, acts: np.ndarray, base: float | None = None) -> float:
    """Token-distribution entropy (nats): entropy of a latent's activation mass per token id."""
    return entropy(token_mass(token_ids, acts)[1], base=base)


def top_token_share(token_ids: np.ndarray, acts: np.ndarray) -> float:
    """Share of the activation mass that the single heaviest token id holds (NaN when there is no mass)."""
    _, mass = token_mass(token_ids, acts)
    return float(mass[0] / mass.sum()) if mass.size else float("nan")


def is_single_token(token_ids: np.ndarray, acts: np.ndarray, threshold: float = 0.9) -> bool:
    """True when one token id holds at least ``threshold`` of the latent's activation mass."""
    share = top_token_share(token_ids, acts)
    return bool(np.isfinite(share) and share >= threshold)


def position_concentration(positions: np.ndarray, acts: np.ndarray, n_positions: int) -> float:
    """How concentrated a latent's activation mass is over absolute context positions, in [0, 1].

    1 - H(mass per position) / log(m), with m = min(n_positions, number of active tokens): the largest entropy
    the sample could reach, so a latent seen on few tokens is not called positional merely for lack of data.
    0 when the mass is spread evenly over as many positions as it has active tokens; 1 when it all sits on one
    position. Positional latents (firing at a fixed offset in the context) score high; token latents over
    natural text score low, since tokens occur at every position. NaN with fewer than two active tokens.
    """
    p = np.asarray(positions).ravel()
    a = np.asarray(acts, dtype=float).ravel()
    keep = a > 0
    m = min(int(n_positions), int(keep.sum()))
    if m < 2:
        return float("nan")
    mass = np.bincount(p[keep], weights=a[keep], minlength=n_positions)
    return float(min(1.0, max(0.0, 1.0 - entropy(mass) / np.log(m))))
