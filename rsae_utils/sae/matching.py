"""Match the latents of two SAEs one-to-one (Paulo & Belrose 2025) and measure how many they share.

Directions: encoder directions are the *columns* of a sae-lens ``W_enc`` (d_in, d_sae), decoder directions the
*rows* of ``W_dec`` (d_sae, d_in); both are unit-normalised, so every score below is a cosine similarity.

Matching: the Hungarian assignment that maximises the summed cosine, run separately on the encoder and on the
decoder cosine matrix. A latent of A is *shared* with B when its matched decoder cosine AND its matched encoder
cosine both exceed a threshold (0.7 in the authors' code); ``same_partner`` says whether both matchings chose the
same latent of B. The max-cosine (not one-to-one) numbers come along for free.

Two solvers give the same assignment problem:

* ``dense``: the full (n_a, n_b) cosine matrix and ``scipy.optimize.linear_sum_assignment``. Exact. Memory is
  ~12 bytes per pair (float32 cosines plus scipy's float64 copy), so ~16 GB at 36,864 x 36,864, and the time
  grows roughly cubically.
* ``sparse``: a candidate graph holding, for every latent of A, its ``top_m`` most similar latents of B and, for
  every latent of B, its ``top_m`` most similar latents of A (found block by block; the full matrix never
  exists), solved with ``scipy.sparse.csgraph.min_weight_full_bipartite_matching`` on costs ``2 - cos``. That
  solver needs strictly non-zero weights (explicit zeros get lost between sparse formats) and a full matching
  in the graph; ``2 - cos`` lies in [1, 3] and, since every full matching has the same number of edges,
  minimising it maximises the summed cosine.

  *Infeasible graphs.* When the candidate graph has no full matching (a hub latent of B that is everyone's
  nearest neighbour, say), a maximum-cardinality matching of the graph (Hopcroft-Karp) is completed by pairing
  the leftover latents among themselves (Hungarian on their true cosines when the leftover block is small,
  index order otherwise); those pairs join the graph as *fallback edges*, which makes it feasible.
  ``n_fallback_edges`` counts the chosen pairs that are such edges.

  *Exactness.* The optimum of the graph need not be the optimum over all pairs (groups of near-duplicate
  latents competing for the same few partners push the right pair down the top-m lists). So, for square
  problems, the LP duals of the graph's optimum are recovered (shortest paths in the residual graph) and every
  pair is priced against them: a pair with negative reduced cost could improve the matching, is added, and the
  graph is solved again. When no pair violates, the matching is optimal over all pairs (``certified``; within
  n x 1e-5 of the exact total, the float32 round-off). Rows whose candidate lists bound every missing pair
  are skipped, so on well-separated SAEs the check costs far less than the candidate search.
  Rectangular problems get no certificate (optimal over the graph only).

Arrays returned are numpy; inputs may be torch tensors or numpy arrays.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from scipy.optimize import linear_sum_assignment
from scipy.sparse.csgraph import maximum_bipartite_matching, min_weight_full_bipartite_matching

from rsae_utils.vectors import unit_rows

DEFAULT_THRESHOLD = 0.7
METHODS = ("auto", "dense", "sparse")
# Largest SAE (latents of the bigger side) matched densely under method="auto". benchmarks/bench_matching.py at
# 9,216 latents (d_in 576, 2 cores): dense 7-48 s and +1.6 GB, sparse 6-25 s and +0.2 GB; dense memory grows
# as n^2 (~15 GB at 36,864), so larger SAEs go to the sparse graph.
DEFAULT_DENSE_MAX = 9216
DEFAULT_TOP_M = 16
# Leftover latents (sparse fallback) completed by an exact Hungarian up to this many per side.
_FALLBACK_DENSE_MAX = 4096
# A pair improves the sparse matching when its reduced cost is below -_PRICE_EPS (cosine units). float32 cosines
# carry ~1e-6 of round-off; a certified matching is within n * _PRICE_EPS of the exact optimum in total cosine.
_PRICE_EPS = 1e-5


# --------------------------------------------------------------------------------------------------------------
# Directions and cosines
# --------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Directions:
    """Unit encoder and decoder directions of one SAE, one row per latent: both (d_sae, d_in) float32."""

    enc: torch.Tensor
    dec: torch.Tensor

    @property
    def n_latents(self) -> int:
        return self.enc.shape[0]

    @property
    def d_in(self) -> int:
        return self.enc.shape[1]


def _as_tensor(x: Any, name: str) -> torch.Tensor:
    t = torch.as_tensor(x.detach() if isinstance(x, torch.Tensor) else np.asarray(x))
    if t.dim() != 2:
        raise ValueError(f"{name} must be a 2-D matrix; got shape {tuple(t.shape)}")
    return t.to(device="cpu", dtype=torch.float32)


def unit_directions(W_enc: Any, W_dec: Any) -> Directions:
    """Unit directions from sae-lens weights: the columns of ``W_enc`` (d_in, d_sae), the rows of ``W_dec``."""
    enc, dec = _as_tensor(W_enc, "W_enc"), _as_tensor(W_dec, "W_dec")
    if enc.shape[::-1] != dec.shape:
        raise ValueError(
            f"W_enc must be (d_in, d_sae) and W_dec (d_sae, d_in) of the same SAE; got W_enc {tuple(enc.shape)} "
            f"and W_dec {tuple(dec.shape)}"
        )
    return Directions(enc=unit_rows(enc.T.contiguous()), dec=unit_rows(dec.contiguous()))


def directions_from_sae(sae: Any) -> Directions:
    """Unit directions of a sae-lens SAE (anything with ``W_enc`` (d_in, d_sae) and ``W_dec`` (d_sae, d_in))."""
    return unit_directions(sae.W_enc, sae.W_dec)


def check_pair(a: Directions, b: Directions) -> None:
    """ValueError unless SAEs ``a`` and ``b`` read the same space (same d_in), so their latents can be compared."""
    if a.d_in != b.d_in:
        raise ValueError(f"SAEs a and b must have the same d_in to be compared; got a {a.d_in} and b {b.d_in}")


def check_threshold(threshold: float, name: str = "threshold") -> float:
    """``threshold`` as a float cosine in [-1, 1]; ValueError naming ``name`` otherwise (NaN included)."""
    t = float(threshold)
    if not -1.0 <= t <= 1.0:  # also rejects NaN
        raise ValueError(f"{name} must be a cosine in [-1, 1]; got {threshold!r}")
    return t


def cosine_matrices(a: Directions, b: Directions) -> tuple[np.ndarray, np.ndarray]:
    """Dense (n_a, n_b) float32 cosine matrices ``(encoder, decoder)`` between the latents of a and b."""
    check_pair(a, b)
    return (a.enc @ b.enc.T).numpy(), (a.dec @ b.dec.T).numpy()


# --------------------------------------------------------------------------------------------------------------
# One assignment on one kind of direction
# --------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Assignment:
    """One-to-one matching of a's latents to b's on one kind of direction, plus each a-latent's best b-latent."""

    partner: np.ndarray  # (n_a,) int64 index into b; -1 where unmatched (only when n_a > n_b)
    cos: np.ndarray  # (n_a,) float32 cosine with the partner; NaN where unmatched
    max_cos: np.ndarray  # (n_a,) float32 best cosine with any latent of b (not one-to-one)
    argmax: np.ndarray  # (n_a,) int64 that best latent
    method: str  # "dense" or "sparse"
    certified: bool = True  # optimal over all pairs: dense always; sparse when the pricing check passed
    n_fallback_edges: int = 0  # sparse only: chosen pairs that came from the feasibility completion
    n_priced_edges: int = 0  # sparse only: edges added by the pricing rounds (0 when the candidates sufficed)

    @property
    def total(self) -> float:
        """Summed cosine of the matched pairs (what the assignment maximises)."""
        return float(np.nansum(self.cos, dtype=np.float64))


def _dense_assignment(x: torch.Tensor, y: torch.Tensor) -> Assignment:
    cos = (x @ y.T).numpy()
    rows, cols = linear_sum_assignment(cos, maximize=True)
    partner = np.full(x.shape[0], -1, dtype=np.int64)
    partner[rows] = cols
    matched = np.full(x.shape[0], np.nan, dtype=np.float32)
    matched[rows] = cos[rows, cols]
    argmax = cos.argmax(axis=1)
    return Assignment(partner, matched, cos[np.arange(len(argmax)), argmax], argmax.astype(np.int64), "dense")


@dataclass(frozen=True)
class Candidates:
    """Sparse candidate graph between rows of x and rows of y, plus each x-row's best y-row (exact)."""

    rows: np.ndarray  # (E,) int64, edges sorted by (row, col), no duplicates
    cols: np.ndarray  # (E,) int64
    cos: np.ndarray  # (E,) float32
    row_max: np.ndarray  # (n_x,) float32 best cosine of each x-row with any y-row
    row_argmax: np.ndarray  # (n_x,) int64
    # Upper bounds on the cosine of any pair NOT in the graph: the m-th best of the row / of the column (-inf when
    # the whole row / column is in the graph). They let the pricing check skip rows that cannot improve.
    row_kth: np.ndarray  # (n_x,) float32
    col_kth: np.ndarray  # (n_y,) float32


def top_m_candidates(x: torch.Tensor, y: torch.Tensor, top_m: int, block: int = 2048) -> Candidates:
    """Each x-row's top_m most similar y-rows and each y-row's top_m most similar x-rows, as one edge set.

    Block by block over x: a (block, n_y) slab of cosines at a time gives the row top-m directly and a column
    top-m that is merged into a running one, so memory stays O(block * n_y + top_m * (n_x + n_y)) and the full
    (n_x, n_y) matrix never exists. Taking both directions makes the graph symmetric in a and b and much more
    likely to hold a full matching than the x-side lists alone (a hub y-row cannot absorb every x-row's list).
    """
    n_x, n_y = x.shape[0], y.shape[0]
    m_r, m_c = min(top_m, n_y), min(top_m, n_x)
    row_val = torch.empty(n_x, m_r)
    row_idx = torch.empty(n_x, m_r, dtype=torch.long)
    col_val = torch.full((m_c, n_y), -torch.inf)
    col_idx = torch.zeros(m_c, n_y, dtype=torch.long)
    yt = y.T.contiguous()
    for s in range(0, n_x, block):
        slab = x[s : s + block] @ yt
        row_val[s : s + len(slab)], row_idx[s : s + len(slab)] = slab.topk(m_r, dim=1)
        v, i = slab.topk(min(m_c, len(slab)), dim=0)
        v, i = torch.cat([col_val, v]), torch.cat([col_idx, i + s])
        col_val, pos = v.topk(m_c, dim=0)
        col_idx = i.gather(0, pos)
    rows = np.concatenate([np.repeat(np.arange(n_x), m_r), col_idx.numpy().ravel()])
    cols = np.concatenate([row_idx.numpy().ravel(), np.tile(np.arange(n_y), m_c)])
    vals = np.concatenate([row_val.numpy().ravel(), col_val.numpy().ravel()])
    # The same pair found from both sides has the same value (one slab entry), so keeping either copy is exact.
    _, keep = np.unique(rows.astype(np.int64) * n_y + cols, return_index=True)
    return Candidates(
        rows=rows[keep].astype(np.int64),
        cols=cols[keep].astype(np.int64),
        cos=vals[keep],
        row_max=row_val[:, 0].numpy().copy(),
        row_argmax=row_idx[:, 0].numpy().astype(np.int64),
        row_kth=row_val[:, -1].numpy().copy() if m_r < n_y else np.full(n_x, -np.inf, np.float32),
        col_kth=col_val[-1].numpy().copy() if m_c < n_x else np.full(n_y, -np.inf, np.float32),
    )


def _complete_matching(graph: sp.csr_array, x: torch.Tensor, y: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Pairs (rows, cols) that, added to ``graph``, make a full matching exist (n_x <= n_y); empty if one does.

    Maximum-cardinality matching of the graph (Hopcroft-Karp), then the unmatched x-rows are paired with unmatched
    y-rows: by an exact Hungarian on their true cosines when that block is small, else in index order.
    """
    n_y = graph.shape[1]
    match = maximum_bipartite_matching(graph, perm_type="column")
    free_x = np.flatnonzero(match < 0)
    if len(free_x) == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    used = np.zeros(n_y, dtype=bool)
    used[match[match >= 0]] = True
    free_y = np.flatnonzero(~used)
    if len(free_y) <= _FALLBACK_DENSE_MAX:
        cos = (x[torch.as_tensor(free_x)] @ y[torch.as_tensor(free_y)].T).numpy()
        r, c = linear_sum_assignment(cos, maximize=True)
        return free_x[r], free_y[c]
    return free_x, free_y[: len(free_x)]


def _dual_potentials(
    rows: np.ndarray, cols: np.ndarray, cost: np.ndarray, partner: np.ndarray, max_iter: int
) -> tuple[np.ndarray, np.ndarray] | None:
    """LP duals (u, v) of an optimal perfect matching on a sparse graph: u_i + v_j <= cost_ij, equality on it.

    With v the shortest-path distances (virtual source at 0 to every column) in the graph with an arc
    partner[i] -> j of weight cost_ij - cost_{i, partner[i]} per non-matching edge, and u_i = cost_{i,partner[i]} -
    v_{partner[i]}, every edge has non-negative reduced cost; optimality means there is no negative cycle. The
    Bellman-Ford iterations are vectorised over edges and stop at the first pass without change (the number of
    passes is the longest shortest path in arcs, small in practice); None when ``max_iter`` passes do not settle.
    """
    n = len(partner)
    on = partner[rows] == cols
    matched_cost = np.empty(n)
    matched_cost[rows[on]] = cost[on]
    off = ~on
    src, dst = partner[rows[off]], cols[off]
    w = cost[off] - matched_cost[rows[off]]
    order = np.argsort(dst, kind="stable")
    src, dst, w = src[order], dst[order], w[order]
    starts = np.flatnonzero(np.r_[True, dst[1:] != dst[:-1]]) if len(dst) else np.empty(0, np.int64)
    heads = dst[starts]
    v = np.zeros(n)
    for _ in range(max_iter):
        if len(dst) == 0:
            break
        best = np.minimum.reduceat(v[src] + w, starts)
        better = best < v[heads] - 1e-12  # tolerance: float round-off must not cycle forever
        if not better.any():
            break
        v[heads[better]] = best[better]
    else:
        return None
    return matched_cost - v[partner], v


def _price(
    x: torch.Tensor,
    y: torch.Tensor,
    u: np.ndarray,
    v: np.ndarray,
    cand: Candidates,
    per_row: int,
    block: int,
    eps: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairs (rows, cols, cos) outside the graph with reduced cost < -eps, at most ``per_row`` per row.

    Reduced cost of (i, j) is (2 - cos_ij) - u_i - v_j, so a pair violates when cos_ij + v_j - (2 - u_i) > eps.
    A pair outside the graph has cos_ij <= min(row_kth_i, col_kth_j), so row i can only hold a violation when
    min(row_kth_i + max v, max_j(col_kth_j + v_j)) + u_i - 2 > eps; only those rows are scanned (blockwise, like
    the candidate search). Usually few or none are left, so the check costs little; none found proves the
    matching optimal over all pairs.
    """
    bound = np.minimum(cand.row_kth + v.max(), np.max(cand.col_kth + v)) + u - 2.0
    check = np.flatnonzero(bound > eps)
    t = torch.as_tensor(2.0 - u[check], dtype=torch.float32)
    vv = torch.as_tensor(v, dtype=torch.float32)
    yt = y.T.contiguous() if len(check) else y.T
    out_r, out_c, out_v = [], [], []
    k = min(per_row, y.shape[0])
    for s in range(0, len(check), block):
        rows = torch.as_tensor(check[s : s + block])
        slab = x[rows] @ yt
        viol = slab + vv - t[s : s + len(slab), None]
        top, j = viol.topk(k, dim=1)
        hit = top > eps
        if hit.any():
            local = torch.arange(len(slab))[:, None].expand_as(j)[hit]
            out_r.append(rows[local].numpy())
            out_c.append(j[hit].numpy())
            out_v.append(slab[local, j[hit]].numpy())
    if not out_r:
        return np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.float32)
    return np.concatenate(out_r).astype(np.int64), np.concatenate(out_c).astype(np.int64), np.concatenate(out_v)


def _sparse_assignment(
    x: torch.Tensor, y: torch.Tensor, top_m: int, block: int, verify: bool, max_rounds: int
) -> Assignment:
    n_x, n_y = x.shape[0], y.shape[0]
    if n_x > n_y:
        # The completion step is written for the smaller side as rows: solve y -> x and invert.
        t = _sparse_assignment(y, x, top_m, block, verify, max_rounds)
        partner = np.full(n_x, -1, dtype=np.int64)
        partner[t.partner] = np.arange(n_y)
        cos = np.full(n_x, np.nan, dtype=np.float32)
        cos[t.partner] = t.cos
        max_cos, argmax = _row_max(x, y, block)
        return Assignment(partner, cos, max_cos, argmax, "sparse", False, t.n_fallback_edges, t.n_priced_edges)
    cand = top_m_candidates(x, y, top_m, block)
    rows, cols, vals = cand.rows, cand.cols, cand.cos
    graph = sp.csr_array((np.ones(len(rows), dtype=np.int8), (rows, cols)), shape=(n_x, n_y))
    fx, fy = _complete_matching(graph, x, y)
    fallback = np.zeros(len(rows), dtype=bool)
    if len(fx):
        # No edge joins two vertices left free by a maximum matching, so these pairs are new edges.
        fv = (x[torch.as_tensor(fx)] * y[torch.as_tensor(fy)]).sum(1).numpy()
        rows, cols, vals = np.concatenate([rows, fx]), np.concatenate([cols, fy]), np.concatenate([vals, fv])
        fallback = np.concatenate([fallback, np.ones(len(fx), dtype=bool)])
    n_priced, certified = 0, False
    for round_ in range(max_rounds + 1):
        # Costs in [1, 3]: strictly positive, so no weight is an explicit zero (see the module docstring).
        cost = 2.0 - vals.astype(np.float64)
        r, c = min_weight_full_bipartite_matching(sp.csr_array((cost, (rows, cols)), shape=(n_x, n_y)))
        partner = np.full(n_x, -1, dtype=np.int64)
        partner[r] = c
        # Certificates only for square problems: rectangular duals need v_j = 0 on the unmatched columns.
        if not verify or n_x != n_y:
            break
        duals = _dual_potentials(rows, cols, cost, partner, max_iter=max(n_x, 100))
        if duals is None:
            break
        pr, pc, pv = _price(x, y, *duals, cand, per_row=top_m, block=block, eps=_PRICE_EPS)
        if len(pr) == 0:
            certified = True
            break
        if round_ == max_rounds:  # out of re-solves: the last matching stays, uncertified
            break
        n_priced += len(pr)
        rows, cols, vals = np.concatenate([rows, pr]), np.concatenate([cols, pc]), np.concatenate([vals, pv])
        fallback = np.concatenate([fallback, np.zeros(len(pr), dtype=bool)])
    keys = rows * n_y + cols
    order = np.argsort(keys)
    at = order[np.searchsorted(keys, r.astype(np.int64) * n_y + c, sorter=order)]
    cos = np.full(n_x, np.nan, dtype=np.float32)
    cos[r] = vals[at]
    return Assignment(
        partner, cos, cand.row_max, cand.row_argmax, "sparse", certified, int(fallback[at].sum()), n_priced
    )


def nearest(x: torch.Tensor, y: torch.Tensor, block: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """(max cosine, argmax) over the unit rows of ``y`` for every unit row of ``x``, ``block`` rows at a time (the
    full matrix never exists): the not-one-to-one match."""
    return _row_max(x.float(), y.float(), block)


def _row_max(x: torch.Tensor, y: torch.Tensor, block: int) -> tuple[np.ndarray, np.ndarray]:
    vals, idx = [], []
    for s in range(0, x.shape[0], block):
        v, i = (x[s : s + block] @ y.T).max(dim=1)
        vals.append(v)
        idx.append(i)
    return torch.cat(vals).numpy(), torch.cat(idx).numpy().astype(np.int64)


def assign(
    x: torch.Tensor,
    y: torch.Tensor,
    method: str = "auto",
    dense_max: int = DEFAULT_DENSE_MAX,
    top_m: int = DEFAULT_TOP_M,
    block: int = 2048,
    verify: bool = True,
    max_rounds: int = 10,
) -> Assignment:
    """Max-total-cosine one-to-one matching of unit rows ``x`` (n_x, d) to unit rows ``y`` (n_y, d).

    ``method``: "dense" (exact), "sparse" (top-m candidate graph) or "auto" (dense when max(n_x, n_y) <=
    ``dense_max``). Sparse with ``verify`` prices every pair against the LP duals of the sparse optimum and
    re-solves with the violating pairs added (at most ``max_rounds`` re-solves), which makes it exact up to float
    round-off and sets ``certified``; without it, or for rectangular problems, it is optimal over the graph only.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}; got {method!r}")
    if int(top_m) < 1:
        raise ValueError(f"top_m must be an integer >= 1; got {top_m!r}")
    if int(max_rounds) < 0:
        raise ValueError(f"max_rounds must be an integer >= 0; got {max_rounds!r}")
    if int(block) < 1:
        raise ValueError(f"block must be an integer >= 1; got {block!r}")
    if x.dim() != 2 or y.dim() != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"x and y must be 2-D with the same number of columns; got {tuple(x.shape)}, {tuple(y.shape)}")
    if method == "auto":
        method = "dense" if max(x.shape[0], y.shape[0]) <= dense_max else "sparse"
    x, y = x.float().contiguous(), y.float().contiguous()
    if method == "dense":
        out = _dense_assignment(x, y)
    else:
        out = _sparse_assignment(x, y, int(top_m), int(block), bool(verify), int(max_rounds))
    # float32 round-off puts identical directions at 1 + 1e-7; clip so that "cos > 1" is never true.
    return replace(out, cos=np.clip(out.cos, -1.0, 1.0), max_cos=np.clip(out.max_cos, -1.0, 1.0))
