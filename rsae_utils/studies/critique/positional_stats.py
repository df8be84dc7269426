"""Positional latents, per latent and in bulk: eta^2 and mutual information against a shuffled-position control,
lag autocorrelation, and the rules that call a latent positional or a boundary latent. The measures themselves
live in :mod:`rsae_utils.studies.critique.positional`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from rsae_utils.studies.critique.positional import (
    PositionalActs,
    activation_levels,
    as_positional,
    eta_squared,
    lag_autocorrelation,
    position_mutual_information,
    safe_div,
    shuffle_within_contexts,
)


# --------------------------------------------------------------------------------------------------------------
# All statistics with the shuffled control, over many latents
# --------------------------------------------------------------------------------------------------------------
@dataclass
class PositionalStats:
    """Per-latent positional statistics; every array has one entry (row) per latent in ``ids``."""

    ids: np.ndarray  # SAE latent ids
    include_boundary: bool
    n_perm: int
    n_levels: int
    firing_rate: np.ndarray  # share of (context, position) cells where the latent is non-zero
    boundary_share: np.ndarray  # share of the activation mass at position 0 (always measured on the full context)
    eta2: np.ndarray
    eta2_null: np.ndarray  # mean of the shuffled control
    eta2_p: np.ndarray  # one-sided permutation p-value
    mi: np.ndarray  # nats
    mi_null: np.ndarray
    mi_p: np.ndarray
    mi_norm: np.ndarray  # MI / H(level), in [0, 1]
    autocorr: np.ndarray  # (n_latents, max_lag), lags 1..max_lag
    autocorr_mode: str

    @property
    def eta2_excess(self) -> np.ndarray:
        return self.eta2 - self.eta2_null

    def rows(self, meta: dict | None = None) -> list[dict]:
        """One tidy dict per latent (autocorrelation as columns ``autocorr_1..``), for a table."""
        meta = dict(meta or {})
        out = []
        for i, lat in enumerate(self.ids):
            row = {
                **meta,
                "latent": int(lat),
                "include_boundary": self.include_boundary,
                "firing_rate": float(self.firing_rate[i]),
                "boundary_share": float(self.boundary_share[i]),
                "eta2": float(self.eta2[i]),
                "eta2_null": float(self.eta2_null[i]),
                "eta2_p": float(self.eta2_p[i]),
                "mi": float(self.mi[i]),
                "mi_null": float(self.mi_null[i]),
                "mi_p": float(self.mi_p[i]),
                "mi_norm": float(self.mi_norm[i]),
            }
            row.update({f"autocorr_{k + 1}": float(v) for k, v in enumerate(self.autocorr[i])})
            out.append(row)
        return out


def _block_stats(
    pa: PositionalActs,
    n_perm: int,
    n_levels: int,
    max_lag: int,
    mode: str,
    rng: np.random.Generator,
    mi_null: bool = True,
) -> dict[str, np.ndarray]:
    eta2 = eta_squared(pa)
    levels = activation_levels(pa, n_levels)
    mi, h = position_mutual_information(pa, n_levels, levels)
    e_null = np.zeros((n_perm, pa.n_latents))
    m_null = np.zeros((n_perm, pa.n_latents)) if mi_null else np.full((n_perm, pa.n_latents), np.nan)
    for i in range(n_perm):
        sh = shuffle_within_contexts(pa, rng)
        e_null[i] = eta_squared(sh)
        if mi_null:
            m_null[i], _ = position_mutual_information(sh, n_levels, levels)
    # Small tolerance: a permutation that reproduces the observed value up to rounding counts as >= it.
    tol_e = 1e-12 + 1e-9 * np.abs(eta2)
    tol_m = 1e-12 + 1e-9 * np.abs(mi)
    with np.errstate(invalid="ignore"):
        p_e = (1 + (e_null >= eta2 - tol_e).sum(axis=0)) / (1 + n_perm)
        p_m = (1 + (m_null >= mi - tol_m).sum(axis=0)) / (1 + n_perm)
        e_mean = e_null.mean(axis=0) if n_perm else np.full(pa.n_latents, np.nan)
        m_mean = m_null.mean(axis=0) if n_perm else np.full(pa.n_latents, np.nan)
    p_e = np.where(np.isfinite(eta2), p_e, np.nan) if n_perm else np.full(pa.n_latents, np.nan)
    p_m = p_m if n_perm and mi_null else np.full(pa.n_latents, np.nan)
    return {
        "eta2": eta2,
        "eta2_null": e_mean,
        "eta2_p": p_e,
        "mi": mi,
        "mi_null": m_mean,
        "mi_p": p_m,
        "mi_norm": safe_div(mi, h, rel_tol=0.0, scale=np.ones_like(h)),
        "autocorr": lag_autocorrelation(pa, max_lag, mode),
    }


def positional_stats(
    acts,
    include_boundary: bool = True,
    n_perm: int = 100,
    n_levels: int = 2,
    max_lag: int = 8,
    autocorr_mode: str = "pooled",
    latents: Sequence[int] | None = None,
    seed: int = 0,
    block_cells: int = 1 << 22,
    mi_null: bool = True,
) -> PositionalStats:
    """All positional statistics of every latent in ``acts``, with the within-context shuffled control.

    ``acts``: a dense (n_ctx, ctx) or (n_latents, n_ctx, ctx) array or tensor, a :class:`SparseActs` (``latents``
    picks a subset) or a :class:`PositionalActs`. Latents are processed in blocks of ``block_cells // ctx`` so the
    (block, ctx, n_levels) count tables stay small. Deterministic given ``seed``. ``mi_null=False`` skips the mutual
    information's shuffled control (``mi_null`` and ``mi_p`` are then NaN; ``mi`` is still measured): it costs ~3x
    the eta^2 control, and :func:`is_positional` reads eta^2 only.
    """
    pa = as_positional(acts, latents)
    if pa.ctx < 2:
        raise ValueError("need at least two positions per context")
    # Boundary share on the full context, before position 0 is (optionally) dropped.
    total = np.bincount(pa.latent, weights=pa.value, minlength=pa.n_latents)
    at0 = np.bincount(pa.latent[pa.pos == 0], weights=pa.value[pa.pos == 0], minlength=pa.n_latents)
    boundary = safe_div(at0, total, rel_tol=0.0, scale=np.ones_like(total))
    work = pa if include_boundary else pa.without_boundary()
    firing = np.bincount(work.latent, minlength=work.n_latents) / (work.n_ctx * work.ctx)
    rng = np.random.default_rng(seed)
    step = max(1, block_cells // (work.ctx * max(n_levels - 1, 1)))
    parts = [
        _block_stats(
            work.block(lo, min(lo + step, work.n_latents)), n_perm, n_levels, max_lag, autocorr_mode, rng, mi_null
        )
        for lo in range(0, work.n_latents, step)
    ]
    cat = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]} if parts else {}
    return PositionalStats(
        ids=pa.ids,
        include_boundary=include_boundary,
        n_perm=n_perm,
        n_levels=n_levels,
        firing_rate=firing,
        boundary_share=boundary,
        autocorr_mode=autocorr_mode,
        **cat,
    )


def is_positional(
    st: PositionalStats, min_excess: float = 0.1, alpha: float = 0.01, min_firing_rate: float = 0.0
) -> np.ndarray:
    """Latents whose activation depends on position: significant AND large enough to matter.

    * ``eta2_p <= alpha`` (0.01; needs ``n_perm >= 99`` to be reachable): the observed eta^2 beats the
      within-context shuffled control;
    * ``eta2 - eta2_null >= min_excess`` (0.1): position explains at least 10% of the activation variance beyond
      what chance alone gives. The effect-size floor matters because on large caches tiny, real position effects
      (a token that is a bit more common early in documents) are significant yet do not make a positional latent;
    * ``firing_rate >= min_firing_rate`` (0 by default): optionally ignore latents too rare to judge.

    With ``include_boundary=True`` a latent that fires only on the boundary token at position 0 passes; use
    :func:`is_boundary` to tell those apart.
    """
    with np.errstate(invalid="ignore"):
        ok = (st.eta2_p <= alpha) & (st.eta2_excess >= min_excess) & (st.firing_rate >= min_firing_rate)
    return np.asarray(ok & np.isfinite(st.eta2), dtype=bool)


def is_boundary(st: PositionalStats, min_share: float = 0.9) -> np.ndarray:
    """Latents with at least ``min_share`` (0.9) of their activation mass on position 0 (the boundary token)."""
    with np.errstate(invalid="ignore"):
        return np.asarray(st.boundary_share >= min_share, dtype=bool)
