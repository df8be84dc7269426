"""Scores: AUROC, ROC points, balanced accuracy, bootstrap ROC bands, the two-stage (latents, then examples)
bootstrap of a mean per-latent AUROC.

Everything here is plain NumPy (no scikit-learn). AUROC is the Mann-Whitney statistic computed from average
ranks, so tied scores count one half, exactly like the area under the step ROC curve with ties drawn as
diagonal segments. A latent's token and position statistics (entropy, single-token share) are in
:mod:`rsae_utils.tokenstats`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np


def _clean(labels: Sequence, scores: Sequence) -> tuple[np.ndarray, np.ndarray]:
    """Labels as bool and scores as float, dropping pairs whose score is missing (None or NaN)."""
    y = np.asarray(labels).astype(bool).ravel()
    s = np.asarray(scores)
    # Only an object array (a list holding None) needs the element loop; a bootstrap calls this thousands of times.
    s = np.asarray([np.nan if v is None else v for v in s.ravel()], dtype=float) if s.dtype == object else s
    s = s.astype(float, copy=False).ravel()
    if y.shape != s.shape:
        raise ValueError(f"labels ({y.size}) and scores ({s.size}) differ in length")
    keep = np.isfinite(s)
    return y[keep], s[keep]


def _average_ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks of ``x`` with ties given the mean of the ranks they span."""
    order = np.argsort(x, kind="mergesort")
    xs = x[order]
    ranks = np.empty(x.size, dtype=float)
    # Start and end index of each run of equal values in sorted order.
    edges = np.flatnonzero(np.diff(xs)) + 1
    starts = np.concatenate(([0], edges))
    ends = np.concatenate((edges, [x.size]))
    mean_rank = (starts + ends + 1) / 2.0  # mean of (start+1 .. end)
    ranks[order] = np.repeat(mean_rank, ends - starts)
    return ranks


def auroc(labels: Sequence, scores: Sequence) -> float:
    """Area under the ROC curve; NaN when either class is empty. Missing scores (None/NaN) are dropped."""
    y, s = _clean(labels, scores)
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    r = _average_ranks(s)
    return float((r[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def roc_points(labels: Sequence, scores: Sequence) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fpr, tpr, thresholds) of the ROC curve, from (0, 0) at threshold +inf to (1, 1).

    One point per distinct score: a window is called positive when its score is ``>= threshold``; tied scores
    move both rates at once. Trapezoidal area under these points equals :func:`auroc`.
    """
    y, s = _clean(labels, scores)
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ValueError("ROC needs at least one positive and one negative example")
    order = np.argsort(-s, kind="mergesort")
    s_sorted, y_sorted = s[order], y[order]
    last_of_run = np.r_[np.flatnonzero(np.diff(s_sorted)), s_sorted.size - 1]
    tp = np.cumsum(y_sorted)[last_of_run]
    fp = np.cumsum(~y_sorted)[last_of_run]
    fpr = np.r_[0.0, fp / n_neg]
    tpr = np.r_[0.0, tp / n_pos]
    thresholds = np.r_[np.inf, s_sorted[last_of_run]]
    return fpr, tpr, thresholds


def balanced_accuracy(labels: Sequence, scores: Sequence, threshold: float = 0.5) -> float:
    """Mean of the true-positive and true-negative rates when ``score >= threshold`` predicts 1."""
    y, s = _clean(labels, scores)
    if y.all() or not y.any():
        return float("nan")
    pred = s >= threshold
    return float(0.5 * (pred[y].mean() + (~pred[~y]).mean()))


@dataclass
class BootstrapROC:
    """Bootstrap of a ROC curve onto a fixed FPR grid; ``auc`` is the full-sample point estimate."""

    fpr: np.ndarray  # the grid, 0..1
    tpr_mean: np.ndarray
    tpr_lo: np.ndarray  # mean - 1.96 sd, clipped to [0, 1]
    tpr_hi: np.ndarray
    auc: float
    auc_sd: float
    auc_lo: float  # auc -+ 1.96 sd of the bootstrap AUCs (normal interval)
    auc_hi: float
    n_pos: int
    n_neg: int
    n_boot: int

    def summary(self) -> dict:
        return {
            "auroc": self.auc,
            "auroc_lo": self.auc_lo,
            "auroc_hi": self.auc_hi,
            "auroc_sd": self.auc_sd,
            "n_pos": self.n_pos,
            "n_neg": self.n_neg,
            "n_boot": self.n_boot,
        }


def tpr_on_grid(fpr: np.ndarray, tpr: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """TPR of a ROC curve at each grid FPR by linear interpolation (the upper value at vertical steps)."""
    # np.interp needs increasing x; ROC fpr is non-decreasing. For repeated fpr values take the last (highest)
    # tpr so a vertical step at fpr = 0 is read at its top.
    keep = np.r_[np.diff(fpr) > 0, True]
    return np.interp(grid, fpr[keep], tpr[keep])


def bootstrap_roc(
    labels: Sequence,
    scores: Sequence,
    n_boot: int = 100,
    n_grid: int = 101,
    seed: int = 0,
) -> BootstrapROC:
    """Resample (label, score) pairs with replacement ``n_boot`` times; band = mean +- 1.96 sd per grid FPR.

    Resamples that lose a class are redrawn (at most 10 x ``n_boot`` tries in all).
    """
    y, s = _clean(labels, scores)
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ValueError("bootstrap ROC needs at least one positive and one negative example")
    grid = np.linspace(0.0, 1.0, n_grid)
    rng = np.random.default_rng(seed)
    curves, aucs = [], []
    tries = 0
    while len(aucs) < n_boot and tries < 10 * n_boot:
        tries += 1
        idx = rng.integers(0, y.size, y.size)
        yb, sb = y[idx], s[idx]
        if yb.all() or not yb.any():
            continue
        f, t, _ = roc_points(yb, sb)
        curves.append(tpr_on_grid(f, t, grid))
        aucs.append(auroc(yb, sb))
    curves_a = np.asarray(curves)
    mean = curves_a.mean(axis=0)
    sd = curves_a.std(axis=0, ddof=1) if len(curves) > 1 else np.zeros_like(mean)
    auc = auroc(y, s)
    auc_sd = float(np.std(aucs, ddof=1)) if len(aucs) > 1 else 0.0
    return BootstrapROC(
        fpr=grid,
        tpr_mean=mean,
        tpr_lo=np.clip(mean - 1.96 * sd, 0.0, 1.0),
        tpr_hi=np.clip(mean + 1.96 * sd, 0.0, 1.0),
        auc=auc,
        auc_sd=auc_sd,
        auc_lo=max(0.0, auc - 1.96 * auc_sd),
        auc_hi=min(1.0, auc + 1.96 * auc_sd),
        n_pos=n_pos,
        n_neg=n_neg,
        n_boot=len(aucs),
    )


# --------------------------------------------------------------------------------------------------------------
# Two-stage (latents, then examples) bootstrap of a mean per-latent AUROC
# --------------------------------------------------------------------------------------------------------------
def auroc_replicates(labels: Sequence, scores: Sequence, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """AUROC of ``n_boot`` bootstrap resamples of one latent's (label, score) pairs, shape (n_boot,).

    A resample is a multinomial draw of the pairs; its AUROC is the weighted Mann-Whitney statistic (ties count
    one half), computed for all resamples at once from the comparison matrix of the distinct positive and negative
    scores (pairs with equal label and score are drawn as one group: the same distribution, far fewer columns).
    NaN where a resample lost a class, and everywhere when the latent has no positive or no negative.
    """
    y, s = _clean(labels, scores)
    if y.all() or not y.any() or n_boot < 1:
        return np.full(max(int(n_boot), 0), np.nan)
    groups, counts = np.unique(np.stack([y.astype(float), s], axis=1), axis=0, return_counts=True)
    is_pos = groups[:, 0] == 1.0
    pos, neg = groups[is_pos, 1], groups[~is_pos, 1]
    wins = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
    w = rng.multinomial(y.size, counts / y.size, size=n_boot).astype(float)
    wp, wn = w[:, is_pos], w[:, ~is_pos]
    num = ((wp @ wins) * wn).sum(axis=1)
    den = wp.sum(axis=1) * wn.sum(axis=1)
    out = np.full(n_boot, np.nan)
    np.divide(num, den, out=out, where=den > 0)
    return out


@dataclass
class LatentCI:
    """Mean of a per-latent statistic with a two-stage bootstrap interval (see :func:`hierarchical_ci`)."""

    estimate: float
    sd: float
    lo: float
    hi: float
    n_latents: int
    n_boot: int

    def summary(self, prefix: str = "auroc") -> dict:
        return {
            prefix: self.estimate,
            f"{prefix}_lo": self.lo,
            f"{prefix}_hi": self.hi,
            f"{prefix}_sd": self.sd,
            "n_latents": self.n_latents,
        }


def hierarchical_ci(
    point: Sequence[float],
    replicates: np.ndarray,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    bounds: tuple[float, float] = (0.0, 1.0),
) -> LatentCI:
    """Mean over latents of a per-latent statistic (``point``, e.g. AUROC) with a bootstrap over latents, then over
    examples: each bootstrap draw resamples the latents with replacement and gives every drawn latent one of its
    example-level resamples (``replicates[j]``, e.g. from :func:`auroc_replicates`), picked at random, so a latent
    drawn twice gets two independent resamples of its examples.

    Latents whose point value is NaN are left out. The interval is the normal one, estimate +- z x sd of the
    bootstrap means, clipped to ``bounds`` (as :func:`bootstrap_roc` and the paper's AUC intervals): it always
    contains the estimate.
    """
    point = np.asarray(point, dtype=float)
    reps = np.asarray(replicates, dtype=float).reshape(point.size, -1)
    keep = np.isfinite(point)
    point, reps = point[keep], reps[keep]
    n = point.size
    if n == 0:
        return LatentCI(float("nan"), float("nan"), float("nan"), float("nan"), 0, 0)
    est = float(point.mean())
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, (n_boot, n))
    if reps.shape[1]:
        drawn = reps[idx, rng.integers(0, reps.shape[1], (n_boot, n))]
        drawn = np.where(np.isfinite(drawn), drawn, point[idx])  # a resample that lost a class: the latent's value
    else:
        drawn = point[idx]
    means = drawn.mean(axis=1)
    sd = float(np.std(means, ddof=1)) if n_boot > 1 else 0.0
    z = NormalDist().inv_cdf(0.5 + level / 2)
    lo, hi = max(bounds[0], est - z * sd), min(bounds[1], est + z * sd)
    return LatentCI(est, sd, lo, hi, n, int(n_boot))
