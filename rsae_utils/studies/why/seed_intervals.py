"""Intervals over SAE seeds for notebook 06's numbers (issue 22, part 6).

Every SAE-based number of notebook 06 (an SAE's explained variance, its lead over its Gaussian, its token-detector
share, and what is computed from them: the 2x2's main effects, the share of the gap a factor closes, a rank
correlation) moves when the SAE is trained again with another seed (another initialisation and batch order). The
notebook trains each SAE that feeds its answer with a few seeds; a number's interval then comes from the spread
between those seeds.

With two or three seeds per SAE, one SAE's own spread says little (one degree of freedom). The spread is pooled
instead, per measure: the within-SAE variance over seeds, averaged over every SAE with two or more seeds (weighted by
degrees of freedom), has as many degrees of freedom as there are extra seeds in all. This assumes the seed noise of
a measure is about the same for every SAE in one table; an SAE trained with one seed only (the wide R = 64 ones, the
layer-0 ones) borrows it.

The interval of any number computed from the seed-mean table comes from *draws* of that table: each draw takes a
variance from the pooled estimate's own uncertainty (df * s^2 / chi2_df, so few degrees of freedom widen the
interval as Student's t does) and moves each SAE's seed mean by a normal error with that variance over its number
of seeds. The number is recomputed on every draw; its interval is the central 95% of those values.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

SEED = "seed"
Draws = Sequence[pd.DataFrame] | None  # seed draws of a table (:func:`seed_draws`); None or empty: no intervals
# Notebook 06's tables: what makes a row (a cell of a sweep), what makes an SAE (a baseline is a row of several
# sweeps), and the SAE measures that get intervals.
ROW_KEYS = ("factor", "value", "variant", "source", "layer", "R", "k", "train_tokens", "lr")
SAE_KEYS = ("source", "layer", "R", "k", "train_tokens", "lr")
SAE_COLS = (
    "explained_variance",
    "ev_top_pcs_out",
    "cos_sim",
    "detector_share",
    "detector_cos_median",
    "gauss_explained_variance",
    "ev_minus_gauss",
)


@dataclass(frozen=True)
class PooledSD:
    """A measure's pooled within-SAE standard deviation over seeds, its degrees of freedom, and how many SAEs
    (keys) had two or more seeds."""

    sd: float
    df: int
    n_keys: int


def pooled_sd(rows: pd.DataFrame, keys: Sequence[str], col: str) -> PooledSD:
    """The pooled standard deviation over seeds of ``col`` (``rows``: one per key and seed): sum over keys of the
    squared deviations from the key's seed mean, over sum of (seeds - 1). NaN with df 0 when no key has two seeds."""
    g = rows.dropna(subset=[col]).groupby(list(keys), sort=False)[col]
    n = g.count()
    ss = g.apply(lambda v: float(((v - v.mean()) ** 2).sum()))
    df = int((n - 1).clip(lower=0).sum())
    if df == 0:
        return PooledSD(float("nan"), 0, 0)
    return PooledSD(float(np.sqrt(ss.sum() / df)), df, int((n >= 2).sum()))


def seed_means(rows: pd.DataFrame, keys: Sequence[str], seed_col: str = SEED) -> pd.DataFrame:
    """One row per key: numeric columns averaged over the key's seeds, other columns from its first row, and
    ``n_seeds``. Row order: first appearance of each key."""
    keys = list(keys)
    if seed_col not in rows:
        return rows.assign(n_seeds=1)
    num = [c for c in rows.columns if c not in keys and c != seed_col and pd.api.types.is_numeric_dtype(rows[c])]
    other = [c for c in rows.columns if c not in keys and c not in num and c != seed_col]
    g = rows.groupby(keys, sort=False, dropna=False)
    out = g[num].mean() if num else g.size().to_frame("_n").drop(columns="_n")
    if other:
        out = out.join(g[other].first())
    out["n_seeds"] = g[seed_col].nunique()
    return out.reset_index()[[*keys, *[c for c in rows.columns if c in out.columns and c not in keys], "n_seeds"]]


def seed_draws(
    rows: pd.DataFrame,
    keys: Sequence[str],
    cols: Sequence[str],
    n_draws: int = 200,
    seed: int = 0,
    seed_col: str = SEED,
    sae_keys: Sequence[str] | None = None,
) -> list[pd.DataFrame]:
    """``n_draws`` copies of the seed-mean table (:func:`seed_means` over ``keys``) with each of ``cols`` moved by
    its seed noise (see the module's docstring). ``sae_keys``: what makes one SAE (default ``keys``); rows that
    share an SAE (a baseline listed under several factors) move together, and the SAE counts once in the pooled
    spread. A column whose pooled SD is unknown (no SAE with two seeds) is left as it is; none known: no draws
    (so no interval is printed)."""
    sae_keys = list(sae_keys or keys)
    means = seed_means(rows, keys, seed_col)
    saes = rows.drop_duplicates([*sae_keys, seed_col]) if seed_col in rows else rows
    group = means.groupby(sae_keys, sort=False, dropna=False).ngroup().to_numpy()
    n = means.groupby(group).n_seeds.first().to_numpy(float)
    rng = np.random.default_rng(seed)
    moves = {}
    for c in cols:
        if c not in rows:
            continue
        p = pooled_sd(saes, sae_keys, c)
        if p.df == 0 or not np.isfinite(p.sd):
            continue
        var = p.df * p.sd**2 / rng.chisquare(p.df, size=n_draws)  # the pooled variance's own uncertainty
        moves[c] = (rng.standard_normal((n_draws, len(n))) * np.sqrt(var[:, None] / n[None, :]))[:, group]
    if not moves:
        return []
    out = []
    for d in range(n_draws):
        m = means.copy()
        for c, mv in moves.items():
            m[c] = means[c].to_numpy(float) + mv[d]
        out.append(m)
    return out


def by_seed(rows: pd.DataFrame, n_draws: int = 200, seed: int = 0) -> tuple[pd.DataFrame, list[pd.DataFrame]]:
    """(seed means, seed draws) of one of notebook 06's per-seed tables (the sweep's, the cells', the Gaussian
    control's), keyed by whichever of ``ROW_KEYS`` / ``SAE_KEYS`` it has."""
    keys = [k for k in ROW_KEYS if k in rows]
    sae = [k for k in SAE_KEYS if k in rows]
    return seed_means(rows, keys), seed_draws(rows, keys, SAE_COLS, n_draws, seed, sae_keys=sae)


def interval(draws: Draws, stat: Callable[[pd.DataFrame], float], level: float = 0.95) -> tuple[float, float]:
    """The central ``level`` interval of ``stat`` over the draws (NaNs dropped); (nan, nan) without draws."""
    if not draws:
        return float("nan"), float("nan")
    vals = np.array([stat(d) for d in draws], dtype=float)
    vals = vals[np.isfinite(vals)]
    if not len(vals):
        return float("nan"), float("nan")
    q = (1.0 - level) / 2
    return float(np.quantile(vals, q)), float(np.quantile(vals, 1 - q))


def fmt(
    value: float,
    draws: Draws,
    stat: Callable[[pd.DataFrame], float],
    spec: str,
    clip: tuple[float, float] | None = None,
) -> str:
    """``value`` formatted with ``spec`` and, when draws give one, its interval: "0.41 [0.40, 0.42]"; ``clip``: the
    measure's range (a share's interval stops at 0)."""
    return show(value, *interval(draws, stat), spec, clip)


def show(value: float, lo: float, hi: float, spec: str, clip: tuple[float, float] | None = None) -> str:
    """:func:`fmt` for an interval already computed ((nan, nan): the value alone)."""
    if clip is not None:
        lo, hi = min(max(lo, clip[0]), clip[1]), min(max(hi, clip[0]), clip[1])
    text = format(value, spec)
    return f"{text} [{lo:{spec}}, {hi:{spec}}]" if np.isfinite(lo) and np.isfinite(hi) else text


def pooled_note(rows: pd.DataFrame, sae_keys: Sequence[str], cols: Sequence[str], seed_col: str = SEED) -> str:
    """What the intervals rest on, in words: seeds, and each measure's pooled SD over SAEs (``sae_keys``) with its
    degrees of freedom."""
    if seed_col not in rows:
        return "one seed per SAE: no interval over seeds"
    rows = rows.drop_duplicates([*sae_keys, seed_col])
    seeds = sorted(int(s) for s in rows[seed_col].dropna().unique())
    parts = []
    for c in cols:
        if c in rows:
            p = pooled_sd(rows, sae_keys, c)
            if p.df:
                parts.append(f"{c.replace('_', ' ')} sd {p.sd:.4f} (df {p.df})")
    return f"SAE seeds {seeds}; pooled within-SAE spread: " + (", ".join(parts) if parts else "none")


def parts_note(parts: dict[str, pd.DataFrame], cols: Sequence[str] = ("explained_variance",)) -> str:
    """:func:`pooled_note` of each of notebook 06's per-seed tables, by name ("sweep: ...; cells: ...")."""
    return "; ".join(
        f"{name}: {pooled_note(d, [k for k in SAE_KEYS if k in d], cols)}" for name, d in parts.items() if len(d)
    )
