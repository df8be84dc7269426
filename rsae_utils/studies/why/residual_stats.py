"""What a residual stream is made of: how much of its variance token identity and position explain, its norm, its
effective dimension (notebook 06). Tensors in, plain records out.

Variance shares are pooled over dimensions: with x_i in R^d, the total sum of squares is sum_i |x_i - mean|^2, and a
grouping g(i) (the token id, or the position in the window) explains the between-group part
sum_g n_g |mean_g - mean|^2. Its share of the total is eta^2 (1 when x is an exact function of the group, as a
layer-0 residual nearly is of the token). With G groups among N rows, groups of pure noise already explain
(G - 1) / (N - 1) on average (a token seen once "explains" its own row), so every share comes with that chance
level and with the adjusted share epsilon^2 = 1 - (SS_within / (N - G)) / (SS_total / (N - 1)), which is ~0 for
noise and 1 for an exact function. Sums are accumulated in float64, over chunks, around a shift (the first
chunk's mean), so a residual stream with a large common offset loses no precision.
"""

from __future__ import annotations

from typing import Any

import torch

_CHUNK = 16_384


def _rows(acts: torch.Tensor, mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(N, d) rows of ``acts`` (..., d) and the flat keep mask (None: keep all)."""
    x = acts.reshape(-1, acts.shape[-1])
    keep = None if mask is None else mask.reshape(-1).to(torch.bool)
    if keep is not None and keep.shape[0] != x.shape[0]:
        raise ValueError(f"mask has {keep.shape[0]} positions; acts have {x.shape[0]}")
    return x, keep


def group_share(acts: torch.Tensor, groups: torch.Tensor, mask: torch.Tensor | None = None) -> dict[str, float]:
    """Share of the variance of ``acts`` (..., d) explained by the group means (``groups``: ints, acts.shape[:-1]).

    Returns {"share" (eta^2), "share_adj" (epsilon^2), "chance" ((G-1)/(N-1)), "n", "n_groups"}; NaN shares when
    the rows have no variance or fewer than two rows remain.
    """
    x, keep = _rows(acts, mask)
    g = groups.reshape(-1).long()
    if g.shape[0] != x.shape[0]:
        raise ValueError(f"groups has {g.shape[0]} positions; acts have {x.shape[0]}")
    if keep is not None:
        x, g = x[keep], g[keep]
    n, d = x.shape
    nan = float("nan")
    if n < 2:
        return {"share": nan, "share_adj": nan, "chance": nan, "n": float(n), "n_groups": float(g.unique().numel())}
    ids, inv = torch.unique(g, return_inverse=True)
    n_groups = int(ids.numel())
    shift = x[: min(n, _CHUNK)].double().mean(0)
    sums = torch.zeros(n_groups, d, dtype=torch.float64)
    total, sq = torch.zeros(d, dtype=torch.float64), 0.0
    for lo in range(0, n, _CHUNK):
        xc = x[lo : lo + _CHUNK].double() - shift
        sums.index_add_(0, inv[lo : lo + _CHUNK], xc)
        total += xc.sum(0)
        sq += float(xc.pow(2).sum())
    counts = torch.bincount(inv, minlength=n_groups).double()
    mean_sq = float(total.pow(2).sum()) / n  # N |mean - shift|^2
    ss_total = sq - mean_sq
    ss_between = float((sums.pow(2).sum(1) / counts).sum()) - mean_sq
    chance = (n_groups - 1) / (n - 1)
    if not ss_total > 0:
        return {"share": nan, "share_adj": nan, "chance": chance, "n": float(n), "n_groups": float(n_groups)}
    share = min(max(ss_between / ss_total, 0.0), 1.0)
    within = max(ss_total - ss_between, 0.0)
    adj = 1.0 - (within / (n - n_groups)) / (ss_total / (n - 1)) if n > n_groups else nan
    return {"share": share, "share_adj": adj, "chance": chance, "n": float(n), "n_groups": float(n_groups)}


def token_share(acts: torch.Tensor, tokens: torch.Tensor, mask: torch.Tensor | None = None) -> dict[str, float]:
    """:func:`group_share` with the token id as the group: how much of the residual is a per-token lookup."""
    return group_share(acts, tokens, mask)


def position_share(acts: torch.Tensor, mask: torch.Tensor | None = None) -> dict[str, float]:
    """:func:`group_share` with the position in the window as the group; ``acts`` is (windows, ctx, d)."""
    if acts.ndim != 3:
        raise ValueError(f"acts must be (windows, ctx, d); got shape {tuple(acts.shape)}")
    pos = torch.arange(acts.shape[1]).expand(acts.shape[0], -1)
    return group_share(acts, pos, mask)


def norm_stats(acts: torch.Tensor, mask: torch.Tensor | None = None) -> dict[str, float]:
    """Median, mean, root mean square, 10th and 90th percentile of the rows' L2 norms."""
    x, keep = _rows(acts, mask)
    norms = torch.linalg.vector_norm(x.float(), dim=1).double()
    if keep is not None:
        norms = norms[keep]
    if not len(norms):
        return {k: float("nan") for k in ("norm_median", "norm_mean", "norm_rms", "norm_q10", "norm_q90")}
    q = torch.quantile(norms, torch.tensor([0.1, 0.5, 0.9], dtype=torch.float64))
    return {
        "norm_median": float(q[1]),
        "norm_mean": float(norms.mean()),
        "norm_rms": float(norms.pow(2).mean().sqrt()),
        "norm_q10": float(q[0]),
        "norm_q90": float(q[2]),
    }


def effective_dim(acts: torch.Tensor, mask: torch.Tensor | None = None) -> dict[str, float]:
    """Participation ratio (sum l)^2 / sum l^2 of the covariance eigenvalues l (1 for one direction, d for an
    isotropic cloud), and the share of the variance along the top principal direction."""
    x, keep = _rows(acts, mask)
    if keep is not None:
        x = x[keep]
    n, d = x.shape
    if n < 2:
        return {"effective_dim": float("nan"), "top_pc_share": float("nan")}
    shift = x[: min(n, _CHUNK)].double().mean(0)
    gram, total = torch.zeros(d, d, dtype=torch.float64), torch.zeros(d, dtype=torch.float64)
    for lo in range(0, n, _CHUNK):
        xc = x[lo : lo + _CHUNK].double() - shift
        gram += xc.T @ xc
        total += xc.sum(0)
    m = total / n
    cov = (gram - n * torch.outer(m, m)) / (n - 1)
    ev = torch.linalg.eigvalsh(cov).clamp(min=0)
    s = float(ev.sum())
    if not s > 0:
        return {"effective_dim": float("nan"), "top_pc_share": float("nan")}
    return {"effective_dim": s**2 / float(ev.pow(2).sum()), "top_pc_share": float(ev.max()) / s}


def residual_stats(acts: torch.Tensor, tokens: torch.Tensor, mask: torch.Tensor | None = None) -> dict[str, Any]:
    """Every statistic of this module for one (windows, ctx, d) residual stream: token and position shares (raw,
    adjusted, chance level), norm quantiles, effective dimension. A flat record, one table row."""
    tok, pos = token_share(acts, tokens, mask), position_share(acts, mask)
    return {
        "token_share": tok["share"],
        "token_share_adj": tok["share_adj"],
        "token_chance": tok["chance"],
        "position_share": pos["share"],
        "position_share_adj": pos["share_adj"],
        "position_chance": pos["chance"],
        "n_tokens": int(tok["n"]),
        "n_token_types": int(tok["n_groups"]),
        **norm_stats(acts, mask),
        **effective_dim(acts, mask),
    }
