"""How the positional share moves when the held-out contexts are resampled: random halves of blocks of contexts.

The binned firing-rate test (:mod:`rsae_utils.studies.critique.positional_rate`) reads, per latent, sums over
contexts: fires per position bin, fires, squared fires per context and circular pair counts. A subsample of the
contexts only reweights those sums, so the test is rerun from per-(latent, block) sums times the subsample's block
weights, without re-sorting the activations. Contexts are resampled in ``n_blocks`` contiguous blocks (each block a
unit: neighbouring windows of one document stay together), as random halves (:func:`half_sample_counts`). With all
weights 1 the sums, and so every latent's statistic and p-value, equal
:func:`~rsae_utils.studies.critique.positional_rate.rate_test`'s (a test checks this).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rsae_utils.studies.critique.positional import PositionalActs
from rsae_utils.studies.critique.positional_rate import (
    RateTest,
    bin_edges,
    is_rate_positional,
    pair_counts,
    rate_from_sums,
    sorted_fires,
)


@dataclass(frozen=True)
class BlockSums:
    """Per (latent, block of contexts): the sums the firing-rate test reads."""

    ids: np.ndarray
    counts: np.ndarray  # (L, B, n_bins) fires per position bin
    sum_sq: np.ndarray  # (L, B) sum over the block's contexts of (fires in the context)^2
    pairs: np.ndarray  # (L, B, D) circular pair counts at lags 1..D
    widths: np.ndarray  # (n_bins,) positions per bin
    ctx: int
    n_ctx: int
    block_ctx: np.ndarray  # (B,) contexts per block

    @property
    def n_blocks(self) -> int:
        return int(self.block_ctx.size)


def block_sums(pa: PositionalActs, n_bins: int = 8, n_blocks: int = 20) -> BlockSums:
    """The test's sums of every latent of ``pa`` per block of ``n_blocks`` contiguous context blocks."""
    if not 2 <= n_blocks <= pa.n_ctx:
        raise ValueError(f"n_blocks must be in [2, n_ctx={pa.n_ctx}]; got {n_blocks}")
    P, L, B = pa.ctx, pa.n_latents, int(n_blocks)
    edges = bin_edges(P, n_bins)
    widths = np.diff(edges)
    bin_of = np.repeat(np.arange(n_bins), widths)
    block_of_ctx = np.arange(pa.n_ctx) * B // pa.n_ctx
    lat, pos, grp = sorted_fires(pa)
    cell = lat * B + block_of_ctx[grp % pa.n_ctx]  # (latent, block) of every fire
    counts = np.bincount(cell * n_bins + bin_of[pos], minlength=L * B * n_bins).reshape(L, B, n_bins)
    starts = np.flatnonzero(np.r_[True, grp[1:] != grp[:-1]]) if grp.size else np.zeros(0, dtype=np.int64)
    per_group = np.diff(np.r_[starts, grp.size]).astype(float)
    sum_sq = np.bincount(cell[starts], weights=per_group**2, minlength=L * B).reshape(L, B)
    D = min(int(widths.max()) - 1, P // 2)
    # The pair counts of rate_test, with (latent, block) as the latent index: groups never cross blocks.
    pairs = pair_counts(cell, pos, grp, L * B, P, D).reshape(L, B, D)
    return BlockSums(
        ids=pa.ids,
        counts=counts.astype(float),
        sum_sq=sum_sq,
        pairs=pairs,
        widths=widths,
        ctx=P,
        n_ctx=pa.n_ctx,
        block_ctx=np.bincount(block_of_ctx, minlength=B),
    )


def weighted_test(s: BlockSums, weights: np.ndarray, min_expected: float = 2.0) -> RateTest:
    """The firing-rate test on the contexts reweighted block by block (``weights``: (B,) copies of each block;
    0/1: a subsample; all ones: the observed data)."""
    w = np.asarray(weights, dtype=float)
    if w.shape != (s.n_blocks,):
        raise ValueError(f"weights must have one entry per block ({s.n_blocks}); got shape {w.shape}")
    counts, pairs = np.einsum("lbk,b->lk", s.counts, w), np.einsum("lbd,b->ld", s.pairs, w)
    return rate_from_sums(s.ids, counts, s.sum_sq @ w, pairs, s.widths, float(w @ s.block_ctx), min_expected)


def half_sample_counts(
    s: BlockSums,
    n_reps: int,
    seed: int,
    alpha: float,
    min_tv: float,
    min_firing_rate: float = 0.0,
    min_expected: float = 2.0,
) -> np.ndarray:
    """(n_reps, 2): judged latents and positional ones (p <= alpha and tv >= min_tv, firing on at least
    ``min_firing_rate`` of the positions, as the observed table judges them) in each of ``n_reps`` random halves
    of the blocks (drawn without replacement).

    Halves, not bootstrap draws: a context drawn twice puts its fires into the same bins twice, which the test's
    null (independent contexts) does not allow, so bootstrap draws flag far more latents than the data holds.
    Drawing half of n units without replacement leaves each context once, and the variance of a share over such
    halves estimates the variance of the share on all n (the delete-d jackknife with d = n/2: its factor
    (n - d)/d is 1), with the power of half the data."""
    rng = np.random.default_rng(seed)
    half = s.n_blocks // 2
    out = np.zeros((int(n_reps), 2))
    for r in range(int(n_reps)):
        w = np.zeros(s.n_blocks)
        w[rng.choice(s.n_blocks, half, replace=False)] = 1.0
        rt = weighted_test(s, w, min_expected)
        frequent = rt.n_fires / (float(w @ s.block_ctx) * s.ctx) >= min_firing_rate
        judged = rt.judged & frequent
        out[r] = judged.sum(), (judged & is_rate_positional(rt, alpha, min_tv)).sum()
    return out
