"""Token and position statistics of one latent's activations: activation mass per token id, entropy (nats unless
``base`` is given), the heaviest token's share, the single-token test, position concentration, and how the entropy
and the single-token test move when the latent's windows are resampled.

Plain NumPy on (token ids, activations[, positions]) arrays; no subpackage of ours is imported, so every stage
(``autointerp``) and every study (``studies.why``, ``studies.seeds``, ``studies.critique``) can read these without
depending on one another.
"""

from __future__ import annotations

from collections.abc import Sequence

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


def window_resampled(
    windows: Sequence[tuple[np.ndarray, np.ndarray]], threshold: float = 0.9, n_draws: int = 200, seed: int = 0
) -> tuple[float, float]:
    """How a latent's token entropy and single-token flag move when its windows are resampled: ``(sd of the entropy
    in nats, share of draws with one token holding >= threshold of the mass)`` over ``n_draws`` bootstrap draws of
    ``windows`` ((token ids, activations) per window, with replacement, as many as given). A window drawn k times
    counts k times. NaN, NaN when no window carries mass. The variance of a per-latent statistic over the examples
    it was read from, which a bootstrap over latents alone leaves out."""
    if not len(windows):
        return float("nan"), float("nan")
    win = np.concatenate([np.full(len(np.asarray(t).ravel()), i) for i, (t, _) in enumerate(windows)])
    toks = np.concatenate([np.asarray(t).ravel() for t, _ in windows])
    acts = np.concatenate([np.asarray(a, dtype=float).ravel() for _, a in windows])
    keep = acts > 0
    if not keep.any():
        return float("nan"), float("nan")
    ids, inv = np.unique(toks[keep], return_inverse=True)
    per_window = np.zeros((len(windows), ids.size))
    np.add.at(per_window, (win[keep], inv), acts[keep])
    n = len(windows)
    draws = np.random.default_rng(seed).multinomial(n, np.full(n, 1.0 / n), size=n_draws).astype(float)
    mass = draws @ per_window
    total = mass.sum(axis=1)
    mass, total = mass[total > 0], total[total > 0]
    if not total.size:
        return float("nan"), float("nan")
    p = mass / total[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -np.where(p > 0, p * np.log(p), 0.0).sum(axis=1)
    sd = float(np.std(np.maximum(h, 0.0), ddof=1)) if h.size > 1 else 0.0
    return sd, float((p.max(axis=1) >= threshold).mean())
