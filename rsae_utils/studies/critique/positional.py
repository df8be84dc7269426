"""Positional latents: how much of a latent's activation is explained by its position in the context.

The critique of Heap et al. holds that trained transformers have latents that random ones lack, positional ones
among them. This module measures position dependence directly, for one latent or for all latents of an SAE at
once, from activations laid out as contexts x positions (position 0 = the document-boundary token that starts
every context of this project's caches, see ``rsae_utils.corpus.tokenize_windows``):

* **eta^2** (correlation ratio): the share of the activation variance explained by position,
  ``SS_between_positions / SS_total``; 1 when the activation is a function of position alone, 0 when every
  position has the same mean. Under "position does not matter" its expectation is not 0 but about
  ``(P - 1) / (N - 1)`` (P positions, N cells), hence the shuffled control below.
* **mutual information** (nats) between position and the activation quantised into ``n_levels`` levels: level 0
  = inactive (activation exactly 0), levels 1.. = equal-count quantile bins of the latent's non-zero values
  (``n_levels = 2`` binarises: active or not). Plug-in estimate, so it is biased upward by roughly
  ``(P - 1)(n_levels - 1) / (2N)``; the shuffled control carries the same bias. ``mi_norm = MI / H(level)`` is
  the share of the level's entropy that position explains (1 for a latent whose level is fixed by position).
* **shuffled-position control**: positions are permuted independently *within each context* and both statistics
  recomputed, ``n_perm`` times. Within-context permutation is the exact null of "position carries no
  information": it keeps every context's multiset of activations, so context-level effects (a latent tied to a
  document's topic fires in some contexts and not in others) stay in the null and are not mistaken for position.
  Permuting contexts within a position instead would keep each position's distribution, i.e. keep exactly what
  is being tested. Reported: the control's mean and a one-sided permutation p-value
  ``(1 + #{control >= observed}) / (1 + n_perm)``.
* **lag autocorrelation** along the context, lags 1..max_lag: how persistent the activation is (``"pooled"``:
  the Pearson correlation of all (x_t, x_t+lag) pairs of all contexts around their common means, so a latent
  constant within each context has 1; ``"within"``: per-context Pearson correlations averaged over the contexts
  where both segments vary, constant contexts skipped as they carry no within-context information; on short
  contexts this estimate leans negative by about 1 / (ctx - lag), as any per-sample autocorrelation does).

``include_boundary`` decides whether position 0 takes part. It matters because delphi-style pipelines drop the
first token, which hides every latent that fires there (attention-sink / boundary latents); but position 0 always
holds the same token, so including it confounds position with token identity for those latents. Both views are
useful; ``boundary_share`` (the share of the activation mass at position 0) is reported either way, so boundary
latents can be told apart from latents that depend on position elsewhere.

All statistics are computed from the non-zero entries only (SAE codes are sparse), vectorised over latents, in
latent blocks so that ``block * ctx`` stays bounded; a dense array is converted to the same sparse form.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from rsae_utils.autointerp.examples import SparseActs

AUTOCORR_MODES = ("pooled", "within")


# --------------------------------------------------------------------------------------------------------------
# Input: non-zero activations as (latent, context, position, value)
# --------------------------------------------------------------------------------------------------------------
@dataclass
class PositionalActs:
    """Non-zero activations of ``n_latents`` latents over ``n_ctx`` contexts of ``ctx`` positions.

    Entries are sorted by (latent, context, position); ``ids`` maps the local latent index 0..n_latents-1 back to
    the SAE's latent id.
    """

    latent: np.ndarray  # (nnz,) int64, local latent index
    context: np.ndarray  # (nnz,) int64
    pos: np.ndarray  # (nnz,) int64
    value: np.ndarray  # (nnz,) float64
    n_latents: int
    n_ctx: int
    ctx: int
    ids: np.ndarray  # (n_latents,) int64

    def __post_init__(self) -> None:
        self.latent = np.asarray(self.latent, dtype=np.int64)
        self.context = np.asarray(self.context, dtype=np.int64)
        self.pos = np.asarray(self.pos, dtype=np.int64)
        self.value = np.asarray(self.value, dtype=np.float64)
        self.ids = np.asarray(self.ids, dtype=np.int64)
        # Sort by one int64 key, and only when needed: inputs from SparseActs and latent blocks come sorted.
        key = (self.latent * self.n_ctx + self.context) * self.ctx + self.pos
        if key.size and not (np.diff(key) >= 0).all():
            order = np.argsort(key, kind="stable")
            self.latent, self.context, self.pos, self.value = (
                self.latent[order],
                self.context[order],
                self.pos[order],
                self.value[order],
            )
        self.offsets = np.searchsorted(self.latent, np.arange(self.n_latents + 1))

    def block(self, lo: int, hi: int) -> PositionalActs:
        """Latents lo..hi-1 only (re-indexed from 0)."""
        a, b = self.offsets[lo], self.offsets[hi]
        return PositionalActs(
            self.latent[a:b] - lo,
            self.context[a:b],
            self.pos[a:b],
            self.value[a:b],
            hi - lo,
            self.n_ctx,
            self.ctx,
            self.ids[lo:hi],
        )

    def without_boundary(self) -> PositionalActs:
        """Position 0 dropped and the rest re-indexed 1.. -> 0.., so a context has ``ctx - 1`` positions."""
        keep = self.pos > 0
        return PositionalActs(
            self.latent[keep],
            self.context[keep],
            self.pos[keep] - 1,
            self.value[keep],
            self.n_latents,
            self.n_ctx,
            self.ctx - 1,
            self.ids,
        )

    def with_positions(self, pos: np.ndarray) -> PositionalActs:
        """The same entries at new positions, *not* re-sorted (a copy without ``__post_init__``): the latent order
        and offsets stay valid, which is all eta^2 and MI need; do not pass the result to lag_autocorrelation."""
        out = copy.copy(self)
        out.pos = np.asarray(pos, dtype=np.int64)
        return out


def _as_numpy(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def from_dense(acts, ids: Sequence[int] | None = None) -> PositionalActs:
    """From a dense (n_ctx, ctx) array of one latent or (n_latents, n_ctx, ctx) of several (numpy or torch)."""
    a = _as_numpy(acts).astype(np.float64)
    if a.ndim == 2:
        a = a[None]
    if a.ndim != 3:
        raise ValueError(f"expected (n_ctx, ctx) or (n_latents, n_ctx, ctx) activations; got shape {a.shape}")
    lat, c, p = np.nonzero(a)
    return PositionalActs(
        lat,
        c,
        p,
        a[lat, c, p],
        n_latents=a.shape[0],
        n_ctx=a.shape[1],
        ctx=a.shape[2],
        ids=np.arange(a.shape[0]) if ids is None else np.asarray(ids),
    )


def from_sparse(sp: SparseActs, latents: Sequence[int] | None = None) -> PositionalActs:
    """From a :class:`SparseActs` cache: contexts are its sequences, positions the token index within them.

    Only the part of each context covered by full windows is used (the part ``encode_sparse`` encoded).
    """
    ids = np.arange(sp.n_latents) if latents is None else np.asarray(latents, dtype=np.int64)
    used = sp.windows_per_seq * sp.window_len
    local = np.full(sp.n_latents, -1, dtype=np.int64)
    local[ids] = np.arange(ids.size)
    sel = local[sp.latent] >= 0
    seq, pos = np.divmod(sp.flat[sel], sp.ctx)
    return PositionalActs(
        local[sp.latent[sel]], seq, pos, sp.value[sel], n_latents=ids.size, n_ctx=sp.n_seq, ctx=used, ids=ids
    )


def as_positional(acts, latents: Sequence[int] | None = None) -> PositionalActs:
    """Any supported input (dense array/tensor, :class:`SparseActs`, :class:`PositionalActs`) as PositionalActs."""
    if isinstance(acts, PositionalActs):
        return acts
    if isinstance(acts, SparseActs):
        return from_sparse(acts, latents)
    return from_dense(acts, latents)


# --------------------------------------------------------------------------------------------------------------
# Statistics on one block of latents
# --------------------------------------------------------------------------------------------------------------
def safe_div(num: np.ndarray, den: np.ndarray, rel_tol: float = 1e-12, scale: np.ndarray | None = None) -> np.ndarray:
    """num / den, NaN where den is zero up to rounding (den <= rel_tol * scale)."""
    scale = np.abs(den) if scale is None else scale
    ok = den > rel_tol * np.maximum(scale, np.finfo(float).tiny)
    out = np.full(np.broadcast(num, den).shape, np.nan)
    np.divide(num, den, out=out, where=ok)
    return out


def eta_squared(pa: PositionalActs) -> np.ndarray:
    """Correlation ratio of activation against position, per latent; NaN for a latent constant everywhere."""
    n, P, L = pa.n_ctx, pa.ctx, pa.n_latents
    N = n * P
    total = np.bincount(pa.latent, weights=pa.value, minlength=L)
    sumsq = np.bincount(pa.latent, weights=pa.value**2, minlength=L)
    by_pos = np.bincount(pa.latent * P + pa.pos, weights=pa.value, minlength=L * P).reshape(L, P)
    ss_total = sumsq - total**2 / N
    ss_between = (by_pos**2).sum(axis=1) / n - total**2 / N
    # Relative tolerance: a latent equal to one constant everywhere has ss_total ~ rounding, not variance.
    return np.clip(safe_div(ss_between, ss_total, rel_tol=1e-10, scale=sumsq), 0.0, 1.0)


def activation_levels(pa: PositionalActs, n_levels: int = 2) -> np.ndarray:
    """Level 1..n_levels-1 of every non-zero entry: equal-count quantile bins of its latent's non-zero values.

    Ties share a level (the bin of their lowest rank), so a latent that takes few distinct values is not split
    arbitrarily. Level 0 (inactive) is implicit: every cell without an entry.
    """
    if n_levels < 2:
        raise ValueError("n_levels must be >= 2 (level 0 = inactive, at least one active level)")
    if n_levels == 2 or pa.value.size == 0:
        return np.ones(pa.value.size, dtype=np.int64)
    order = np.lexsort((pa.value, pa.latent))
    lat, val = pa.latent[order], pa.value[order]
    rank = np.arange(val.size) - pa.offsets[lat]
    # Lowest rank of each run of equal (latent, value): carry the run's first rank forward.
    new_run = np.r_[True, (np.diff(lat) != 0) | (np.diff(val) != 0)]
    first = np.maximum.accumulate(np.where(new_run, np.arange(val.size), 0))
    min_rank = rank[first]
    count = np.diff(pa.offsets)[lat]
    levels = np.empty(val.size, dtype=np.int64)
    levels[order] = 1 + (min_rank * (n_levels - 1)) // count
    return levels


def position_mutual_information(
    pa: PositionalActs, n_levels: int = 2, levels: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(MI(position; level), H(level)) per latent, in nats; positions are uniform (every context has all)."""
    n, P, L, K = pa.n_ctx, pa.ctx, pa.n_latents, n_levels
    N = n * P
    lev = activation_levels(pa, K) if levels is None else levels
    counts = np.bincount((pa.latent * P + pa.pos) * (K - 1) + lev - 1, minlength=L * P * (K - 1))
    counts = counts.reshape(L, P, K - 1).astype(np.float64)
    table = np.concatenate([n - counts.sum(axis=2, keepdims=True), counts], axis=2)  # level 0 = inactive
    n_level = table.sum(axis=1)  # (L, K)
    # MI = sum_{p,q} C/N log(C N / (n_p n_q)) with n_p = n, i.e. log(C P / n_q); empty cells contribute 0.
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = table * P / n_level[:, None, :]
        mi = np.where(table > 0, table / N * np.log(np.where(table > 0, ratio, 1.0)), 0.0).sum(axis=(1, 2))
        p_level = n_level / N
        h_level = -np.where(p_level > 0, p_level * np.log(np.where(p_level > 0, p_level, 1.0)), 0.0).sum(axis=1)
    return np.maximum(mi, 0.0), h_level


def shuffle_within_contexts(pa: PositionalActs, rng: np.random.Generator) -> PositionalActs:
    """The same activations with positions permuted independently within every context (one permutation per
    context, shared by all latents: each latent's own null is still exact)."""
    perm = np.argsort(rng.random((pa.n_ctx, pa.ctx)), axis=1)
    return pa.with_positions(perm[pa.context, pa.pos])


def lag_autocorrelation(pa: PositionalActs, max_lag: int = 8, mode: str = "pooled") -> np.ndarray:
    """(n_latents, max_lag) autocorrelation of the activation along the context at lags 1..max_lag.

    ``pooled``: Pearson correlation over all (x_t, x_t+lag) pairs of all contexts (lead and lag segment each around
    its own grand mean); NaN only if a segment is constant over the whole data. ``within``: Pearson correlation
    per context, averaged over the contexts where both segments vary (NaN if there are none). Lags >= ctx: NaN.
    """
    if mode not in AUTOCORR_MODES:
        raise ValueError(f"unknown mode {mode!r}; allowed: {', '.join(AUTOCORR_MODES)}")
    n, P, L = pa.n_ctx, pa.ctx, pa.n_latents
    out = np.full((L, max_lag), np.nan)
    key = (pa.latent * n + pa.context) * P + pa.pos
    if key.size and not (np.diff(key) >= 0).all():  # e.g. a shuffled copy: the partner lookup needs sorted keys
        pa = PositionalActs(pa.latent, pa.context, pa.pos, pa.value, L, n, P, pa.ids)
        key = (pa.latent * n + pa.context) * P + pa.pos
    if mode == "within":
        groups, gidx = np.unique(pa.latent * n + pa.context, return_inverse=True)
        g_lat = groups // n
    for lag in range(1, min(max_lag, P - 1) + 1):
        lead = pa.pos < P - lag
        trail = pa.pos >= lag
        # Partner x_{t+lag} of every lead entry, found by key lookup (0 when that cell is not active).
        j = np.searchsorted(key, key + lag)
        j_ok = np.minimum(j, key.size - 1)
        hit = lead & (j < key.size) & (key[j_ok] == key + lag)
        prod = np.where(hit, pa.value * pa.value[j_ok], 0.0)
        if mode == "pooled":
            idx, M = pa.latent, n * (P - lag)
            size = L
        else:
            idx, M = gidx, P - lag
            size = groups.size
        s_a = np.bincount(idx, weights=pa.value * lead, minlength=size)
        q_a = np.bincount(idx, weights=pa.value**2 * lead, minlength=size)
        s_b = np.bincount(idx, weights=pa.value * trail, minlength=size)
        q_b = np.bincount(idx, weights=pa.value**2 * trail, minlength=size)
        cross = np.bincount(idx, weights=prod, minlength=size)
        var_a = q_a / M - (s_a / M) ** 2
        var_b = q_b / M - (s_b / M) ** 2
        cov = cross / M - (s_a / M) * (s_b / M)
        # A segment is constant when its variance is rounding-level relative to its mean square.
        den = var_a * var_b
        scale = (q_a / M) * (q_b / M)
        r = np.clip(safe_div(cov, np.sqrt(np.maximum(den, 0.0)), rel_tol=1e-6, scale=np.sqrt(scale)), -1.0, 1.0)
        if mode == "pooled":
            out[:, lag - 1] = r
        else:
            ok = np.isfinite(r)
            tot = np.bincount(g_lat[ok], weights=r[ok], minlength=L)
            cnt = np.bincount(g_lat[ok], minlength=L)
            out[:, lag - 1] = safe_div(tot, cnt.astype(float), rel_tol=0.0, scale=np.ones(L))
    return out
