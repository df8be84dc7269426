"""Reading a training-budget curve: has a measure settled, does the trained-minus-random gap grow or shrink, and
where would it go (only where the trend is clear).

A curve is a measure's values at token budgets that grow by a constant factor (4 in the study). The rules:

* **settled**: the change over the last factor (the last budget against the one before) is within ``tol``;
* **trend of the gap** (trained minus a random variant): "grows" / "shrinks" when the gap's absolute value moved
  by more than ``tol`` over the last factor, else "holds";
* **limit**: when the last two per-factor changes have the same sign and shrink by a ratio ``r`` below
  ``max_ratio``, the changes are read as a geometric series and the limit is ``last + change * r / (1 - r)``
  (the fit: a power law in tokens, ``a - b * tokens^-c``, whose per-factor changes shrink by ``factor^-c``);
  otherwise no limit is given.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from rsae_utils.errors import ParameterError

# Tolerance per measure for "settled over the last 4x" (absolute, in the measure's own units): about the spread
# between SAE seeds at one budget measured in the study, rounded up.
SETTLE_TOL = {
    "explained_variance": 0.01,
    "ev_top_pcs_out": 0.01,
    "cos_sim": 0.01,
    "median_token_fvu": 0.01,
    "dead_fraction": 0.01,
    "token_entropy": 0.1,
    "single_token_share": 0.03,
    "detection_auroc": 0.02,
    "fuzzing_auroc": 0.02,
    "seed_shared": 0.02,
}
MAX_RATIO = 0.8  # a slower decay than this is no clear trend: no extrapolation


def _curve(budgets: Sequence[float], values: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    b, v = np.asarray(budgets, dtype=float), np.asarray(values, dtype=float)
    if b.shape != v.shape or b.ndim != 1:
        raise ParameterError(f"parameters 'budgets' and 'values' must be 1-D of one length; got {b.shape}, {v.shape}")
    order = np.argsort(b)
    b, v = b[order], v[order]
    keep = np.isfinite(v)
    return b[keep], v[keep]


def last_change(budgets: Sequence[float], values: Sequence[float]) -> float:
    """Value at the largest budget minus the value at the one before it (NaN with fewer than two points)."""
    _, v = _curve(budgets, values)
    return float(v[-1] - v[-2]) if v.size >= 2 else float("nan")


def is_settled(budgets: Sequence[float], values: Sequence[float], tol: float) -> bool | None:
    """Whether the last change is within ``tol`` (None with fewer than two points)."""
    d = last_change(budgets, values)
    return None if np.isnan(d) else bool(abs(d) <= tol)


def geometric_limit(budgets: Sequence[float], values: Sequence[float], max_ratio: float = MAX_RATIO) -> float | None:
    """The limit of the curve when its last two per-step changes shrink geometrically (module docstring)."""
    _, v = _curve(budgets, values)
    if v.size < 3:
        return None
    d1, d2 = v[-2] - v[-3], v[-1] - v[-2]
    if d1 == 0 or np.sign(d1) != np.sign(d2):
        return None
    r = d2 / d1
    if not 0 < r < max_ratio:
        return None
    return float(v[-1] + d2 * r / (1 - r))


def gap_trend(budgets: Sequence[float], gaps: Sequence[float], tol: float) -> str:
    """ "grows", "shrinks" or "holds": how the gap's size moved over the last step (module docstring)."""
    _, g = _curve(budgets, gaps)
    if g.size < 2:
        return "unknown"
    d = abs(g[-1]) - abs(g[-2])
    if np.sign(g[-1]) != np.sign(g[-2]) and min(abs(g[-1]), abs(g[-2])) > tol:  # both clearly away from 0
        return "changes sign"
    return "grows" if d > tol else "shrinks" if d < -tol else "holds"


def curve_summary(
    table: pd.DataFrame, measures: Sequence[str], by: Sequence[str] = ("variant", "layer")
) -> pd.DataFrame:
    """One row per (``by``..., measure): the value at the largest budget, the change over the last step, settled,
    the limit where the trend is clear. ``table`` has a ``tokens`` column and one column per measure."""
    rows = []
    for key, g in table.groupby(list(by), sort=True):
        key = key if isinstance(key, tuple) else (key,)
        for m in measures:
            if m not in g or g[m].isna().all():
                continue
            b, v = g["tokens"].to_numpy(), g[m].to_numpy()
            tol = SETTLE_TOL.get(m, 0.01)
            bs, vs = _curve(b, v)
            rows.append(
                {
                    **dict(zip(by, key)),
                    "measure": m,
                    "tokens_last": int(bs[-1]),
                    "value_last": float(vs[-1]),
                    "change_last_step": last_change(b, v),
                    "tol": tol,
                    "settled": is_settled(b, v, tol),
                    "limit": geometric_limit(b, v),
                }
            )
    return pd.DataFrame(rows)


def gap_summary(
    table: pd.DataFrame, measures: Sequence[str], reference: str = "trained", by: str = "layer"
) -> pd.DataFrame:
    """One row per (layer, measure, other variant): the gap ``reference - variant`` at the smallest and largest
    budget both have, its change over the last step and its trend (:func:`gap_trend`)."""
    rows = []
    for layer, g in table.groupby(by, sort=True):
        ref = g[g["variant"] == reference].set_index("tokens")
        for variant, o in g[g["variant"] != reference].groupby("variant", sort=True):
            o = o.set_index("tokens")
            common = ref.index.intersection(o.index).sort_values()
            for m in measures:
                if m not in o or len(common) < 2:
                    continue
                gap = (ref.loc[common, m] - o.loc[common, m]).astype(float).dropna()
                if len(gap) < 2:
                    continue
                tol = SETTLE_TOL.get(m, 0.01)
                rows.append(
                    {
                        by: layer,
                        "measure": m,
                        "variant": variant,
                        "gap_first": float(gap.iloc[0]),
                        "gap_last": float(gap.iloc[-1]),
                        "tokens_first": int(gap.index[0]),
                        "tokens_last": int(gap.index[-1]),
                        "gap_change_last_step": last_change(gap.index, gap.to_numpy()),
                        "tol": tol,
                        "trend": gap_trend(gap.index, gap.to_numpy(), tol),
                    }
                )
    return pd.DataFrame(rows)
