"""A positional test with power: does a latent's *firing rate* change over the context?

eta^2 (:mod:`rsae_utils.studies.critique.positional`) measures how much of a latent's activation *variance*
position explains; for a sparse latent that share is bounded by its firing rate (a latent firing 4% of the time,
only in the second half of the context, has eta^2 ~ 0.02), so only near-deterministic positional latents pass an
eta^2 floor. This test asks instead whether the latent fires more often in some parts of the context than in others:

* **statistic**: the context positions are cut into ``n_bins`` equal bins; ``f_b`` = the latent's fires (non-zero
  activations) in bin b over all contexts, ``F`` their total; Pearson's ``Q = sum_b (f_b - F w_b/P)^2 / (F w_b/P)``
  (``w_b`` positions in bin b, ``P`` per context). Pearson rather than the G statistic (``G = 2 N MI``, its
  likelihood-ratio twin, asymptotically the same) because its chi-square approximation holds down to smaller
  expected counts; the plug-in mutual information is reported beside it as an effect size.
* **null**: every context's positions rotated by an independent uniform offset (a circular shift). It keeps what a
  latent does *within* a context, bursts of consecutive tokens included, and only breaks the alignment with absolute
  position. A within-context permutation (or the iid chi-square) would treat a burst of ten adjacent fires as ten
  independent ones and call a bursty latent (a code block, a quote) positional: the burst lands in one bin.
* **p-value**: the mean of Q under that null is exact and cheap (it needs the latent's circular pair counts at lags
  below the bin width, see :func:`null_mean`); ``Q / dispersion`` is referred to chi-square with ``n_bins - 1``
  degrees of freedom, ``dispersion = E_null[Q] / (n_bins - 1)`` (first-moment matching, as a quasi-likelihood
  deviance is scaled: 1 for a latent firing at most once per context, > 1 for bursty ones). Asymptotic rather than
  permutation p-values because they resolve the p < alpha / n_latents that a correction over thousands of latents
  needs; a latent is judged only where every bin expects at least ``min_expected`` fires (Pearson's statistic with
  the dispersion keeps its false-positive rate at alpha down to ~2 expected fires per bin, which the tests check).
* **effect**: ``tv`` = total variation distance between the latent's fires over the bins and the bins' widths, i.e.
  the share of its fires that would have to move for it to fire uniformly over position (0.5 for a latent firing
  only in the second half, 1 - 1/n_bins at one position); ``peak_ratio`` = its busiest bin's rate over its overall
  rate. :func:`is_rate_positional` asks for ``p <= alpha`` and ``tv >= min_tv``, so that a tiny deviation on a
  frequent latent is not a positional latent.

Multiple testing: :func:`benjamini_hochberg` controls the false discovery rate over an SAE's judged latents, for
naming individual positional latents; the *share* of latents flagged at the per-latent ``alpha`` is compared with
the same share on position-shuffled activations (the critique's control), whose expectation is the test's
false-positive rate (about ``alpha`` before the effect floor): their difference estimates the share of latents that
are positional.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import chi2

from rsae_utils.studies.critique.positional import PositionalActs


def bin_edges(ctx: int, n_bins: int) -> np.ndarray:
    """``n_bins + 1`` edges cutting positions 0..ctx-1 into contiguous bins whose widths differ by at most one."""
    if not 2 <= n_bins <= ctx:
        raise ValueError(f"n_bins must be in [2, ctx={ctx}] (each bin needs a position); got {n_bins}")
    return np.round(np.linspace(0, ctx, n_bins + 1)).astype(np.int64)


def sorted_fires(pa: PositionalActs) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(latent, pos, group) of the fires (non-zero entries), sorted by (latent, context, position); group =
    latent * n_ctx + context."""
    fire = pa.value != 0
    lat, pos = pa.latent[fire], pa.pos[fire]
    grp = lat * pa.n_ctx + pa.context[fire]
    key = grp * pa.ctx + pos
    if key.size and not (np.diff(key) >= 0).all():  # e.g. PositionalActs.with_positions leaves entries unsorted
        order = np.argsort(key, kind="stable")
        lat, pos, grp = lat[order], pos[order], grp[order]
    return lat, pos, grp


def circular_pair_counts(pa: PositionalActs, max_lag: int) -> np.ndarray:
    """(n_latents, max_lag): A[l, d-1] = fires of latent l whose position + d (mod ctx) in the same context also
    fires, d = 1..max_lag <= ctx / 2; A(d) = A(ctx - d), so these lags describe every pair up to that distance."""
    if not 0 <= max_lag <= pa.ctx // 2:
        raise ValueError(f"max_lag must be in [0, ctx // 2 = {pa.ctx // 2}]; got {max_lag}")
    return pair_counts(*sorted_fires(pa), pa.n_latents, pa.ctx, max_lag)


def _forward_pairs(lat: np.ndarray, pos: np.ndarray, grp: np.ndarray, L: int, D: int, keep=None) -> np.ndarray:
    """(L, D + 1) counts of ordered pairs (i, j), same group, pos_j - pos_i = d in 1..D, entries sorted within groups
    by position; ``keep(i_mask, j_mask)`` optionally filters pairs. Positions in a group are distinct, so a partner d
    ahead is at most d entries ahead: D shifted comparisons find them all."""
    out = np.zeros(L * (D + 1))
    for j in range(1, min(D, max(pos.size - 1, 0)) + 1):
        dpos = pos[j:] - pos[:-j]
        m = (grp[j:] == grp[:-j]) & (dpos <= D)
        if keep is not None:
            m &= keep(slice(None, -j), slice(j, None))
        out += np.bincount(lat[:-j][m] * (D + 1) + dpos[m], minlength=L * (D + 1))
    return out.reshape(L, D + 1)


def pair_counts(lat: np.ndarray, pos: np.ndarray, grp: np.ndarray, L: int, P: int, D: int) -> np.ndarray:
    if D == 0 or lat.size == 0:
        return np.zeros((L, D))
    direct = _forward_pairs(lat, pos, grp, L, D)
    # Pairs across the end of the context: the last D positions moved to -D..-1 before the first D ones.
    end, start = pos >= P - D, pos < D
    sel = np.r_[np.flatnonzero(end), np.flatnonzero(start)]
    w_pos = np.r_[pos[end] - P, pos[start]]
    order = np.lexsort((w_pos, grp[sel]))
    sel, w_pos = sel[order], w_pos[order]
    moved = w_pos < 0
    wrap = _forward_pairs(lat[sel], w_pos, grp[sel], L, D, keep=lambda i, j: moved[i] & ~moved[j])
    return (direct + wrap)[:, 1:]


def null_mean(n_fires: np.ndarray, sum_sq: np.ndarray, pairs: np.ndarray, widths: np.ndarray, ctx: int) -> np.ndarray:
    """Exact mean of Pearson's Q when every context is rotated by an independent uniform offset.

    ``n_fires`` F and ``sum_sq`` = sum over contexts of (fires in the context)^2, per latent; ``pairs`` the
    circular pair counts at lags 1..D (D >= the widest bin - 1, capped at ctx // 2). With g_b(d) = the offsets that
    put two fires d apart both into bin b = max(0, w_b - d) + max(0, d - ctx + w_b):
    ``E[Q] = n_bins + (1/F) sum_{d=1}^{ctx-1} A(d) sum_b g_b(d) / w_b - sum_sq / F``
    (n_bins - 1 when no context holds two fires; 0 for a latent firing everywhere).
    """
    D = pairs.shape[1]
    d = np.arange(1, D + 1)
    g = np.maximum(0, widths[:, None] - d) + np.maximum(0, d - ctx + widths[:, None])  # (n_bins, D)
    h = (g / widths[:, None]).sum(axis=0)
    weight = np.where(2 * d == ctx, 1.0, 2.0)  # lag d and ctx - d are the same pairs seen from either end
    with np.errstate(divide="ignore", invalid="ignore"):
        return widths.size + (pairs @ (weight * h) - sum_sq) / n_fires


@dataclass
class RateTest:
    """Per-latent result of :func:`rate_test`; every array has one entry per latent in ``ids``."""

    ids: np.ndarray
    n_bins: int
    n_fires: np.ndarray  # F
    counts: np.ndarray  # (n_latents, n_bins) fires per bin
    chi2: np.ndarray  # Pearson's Q
    dispersion: np.ndarray  # E_null[Q] / (n_bins - 1)
    p: np.ndarray  # chi2.sf(Q / dispersion, n_bins - 1); NaN where not judged
    tv: np.ndarray  # total variation distance to uniform over position
    peak_ratio: np.ndarray  # busiest bin's rate / overall rate
    mi: np.ndarray  # plug-in MI(fired; bin), nats
    judged: np.ndarray  # every bin expects >= min_expected fires and the latent does not fire everywhere


def bin_mutual_information(counts: np.ndarray, widths: np.ndarray, n_ctx: int) -> np.ndarray:
    """Plug-in MI (nats) between "fired" and position bin from the fire counts per bin."""
    cells = n_ctx * widths.astype(float)  # positions per bin, all contexts
    N = cells.sum()
    F = counts.sum(axis=1, keepdims=True)
    table = np.stack([counts, cells - counts], axis=2)  # (L, B, 2)
    marg = np.concatenate([F, N - F], axis=1)[:, None, :]  # (L, 1, 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = table * N / (cells[None, :, None] * marg)
        terms = np.where(table > 0, table / N * np.log(np.where(table > 0, ratio, 1.0)), 0.0)
    return np.maximum(terms.sum(axis=(1, 2)), 0.0)


def rate_test(pa: PositionalActs, n_bins: int = 8, min_expected: float = 2.0) -> RateTest:
    """The binned firing-rate test of every latent in ``pa`` (see the module docstring), vectorised over latents."""
    if min_expected <= 0:
        raise ValueError(f"min_expected must be > 0; got {min_expected}")
    P, L = pa.ctx, pa.n_latents
    edges = bin_edges(P, n_bins)
    widths = np.diff(edges)
    bin_of = np.repeat(np.arange(n_bins), widths)
    lat, pos, grp = sorted_fires(pa)
    counts = np.bincount(lat * n_bins + bin_of[pos], minlength=L * n_bins).reshape(L, n_bins).astype(float)
    # Fires per (latent, context): run lengths of the sorted groups.
    starts = np.flatnonzero(np.r_[True, grp[1:] != grp[:-1]]) if grp.size else np.zeros(0, dtype=np.int64)
    per_group = np.diff(np.r_[starts, grp.size]).astype(float)
    sum_sq = np.bincount(grp[starts] // pa.n_ctx, weights=per_group**2, minlength=L)
    pairs = pair_counts(lat, pos, grp, L, P, min(int(widths.max()) - 1, P // 2))
    return rate_from_sums(pa.ids, counts, sum_sq, pairs, widths, pa.n_ctx, min_expected)


def rate_from_sums(
    ids: np.ndarray,
    counts: np.ndarray,
    sum_sq: np.ndarray,
    pairs: np.ndarray,
    widths: np.ndarray,
    n_ctx: float,
    min_expected: float = 2.0,
) -> RateTest:
    """The test from its per-latent sums over contexts (fires per bin, squared fires per context, circular pair
    counts) over ``n_ctx`` contexts of ``widths.sum()`` positions: what :func:`rate_test` reads from the activations,
    and what a reweighting of the contexts changes (:mod:`rsae_utils.studies.critique.positional_windows`)."""
    n_bins, P = widths.size, int(widths.sum())
    n_fire = counts.sum(axis=1)
    expected = n_fire[:, None] * widths / P
    with np.errstate(divide="ignore", invalid="ignore"):
        q = ((counts - expected) ** 2 / expected).sum(axis=1)
        disp = null_mean(n_fire, sum_sq, pairs, widths, P) / (n_bins - 1)
        share = counts / n_fire[:, None]
        peak = (share * P / widths).max(axis=1)
    # A latent firing everywhere (or nearly) has no room to vary over position: dispersion ~ 0 up to rounding.
    judged = (expected.min(axis=1) >= min_expected) & (disp > 1e-9) & (n_fire < n_ctx * P)
    p = np.full(n_fire.size, np.nan)
    p[judged] = chi2.sf(q[judged] / disp[judged], n_bins - 1)
    return RateTest(
        ids=ids,
        n_bins=n_bins,
        n_fires=n_fire,
        counts=counts,
        chi2=q,
        dispersion=disp,
        p=p,
        tv=0.5 * np.abs(share - widths / P).sum(axis=1),
        peak_ratio=peak,
        mi=bin_mutual_information(counts, widths, int(round(n_ctx))),
        judged=judged,
    )


def benjamini_hochberg(p: np.ndarray, q: float) -> np.ndarray:
    """Discoveries of the Benjamini-Hochberg step-up procedure at false discovery rate ``q`` over the finite
    p-values (NaN ones take no part and are never discoveries)."""
    if not 0.0 < q < 1.0:
        raise ValueError(f"q must be in (0, 1); got {q}")
    p = np.asarray(p, dtype=float)
    ok = np.flatnonzero(np.isfinite(p))
    out = np.zeros(p.shape, dtype=bool)
    if ok.size == 0:
        return out
    order = ok[np.argsort(p[ok], kind="stable")]
    below = p[order] <= q * np.arange(1, ok.size + 1) / ok.size
    if below.any():
        out[order[: np.flatnonzero(below).max() + 1]] = True
    return out


def rate_columns(
    rt: RateTest, eligible: np.ndarray, alpha: float, min_tv: float, fdr_q: float
) -> dict[str, np.ndarray]:
    """The per-latent table columns of a test: ``judged`` (judged by the test and ``eligible``, e.g. frequent
    enough), ``significant`` (judged, p <= alpha), ``positional`` (:func:`is_rate_positional`), ``positional_fdr``
    (Benjamini-Hochberg at ``fdr_q`` over the judged latents, and the effect floor) and the statistics."""
    judged = rt.judged & np.asarray(eligible, dtype=bool)
    p = np.where(judged, rt.p, np.nan)
    with np.errstate(invalid="ignore"):
        return {
            "n_fires": rt.n_fires.astype(np.int64),
            "rate_chi2": rt.chi2,
            "rate_dispersion": rt.dispersion,
            "rate_p": p,
            "rate_tv": rt.tv,
            "rate_peak_ratio": rt.peak_ratio,
            "rate_mi": rt.mi,
            "judged": judged,
            "significant": judged & (p <= alpha),
            "positional": judged & is_rate_positional(rt, alpha, min_tv),
            "positional_fdr": benjamini_hochberg(p, fdr_q) & (rt.tv >= min_tv),
        }


def is_rate_positional(rt: RateTest, alpha: float = 0.01, min_tv: float = 0.1) -> np.ndarray:
    """Judged latents with ``p <= alpha`` and ``tv >= min_tv``. ``alpha`` is per latent: among latents whose firing
    does not depend on position about ``alpha`` of them pass before the effect floor, which is what the
    position-shuffled control measures."""
    with np.errstate(invalid="ignore"):
        ok = rt.judged & (rt.p <= alpha) & (rt.tv >= min_tv)
    return np.asarray(ok, dtype=bool)
