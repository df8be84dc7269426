"""Notebook 08's tables, from the per-latent results of :mod:`rsae_utils.studies.critique.run`, and the findings its
closing cell prints (sentences computed from the tables, so they hold for whatever profile ran).

* :func:`positional_summary`: per (variant, layer, boundary view) the share of judged latents the binned
  firing-rate test calls positional, on the data and on the position-shuffled control, the earlier eta^2 rule's
  shares beside them, and the share of boundary latents;
* :func:`top_positional`: each variant's most position-dependent latents (flagged after the false-discovery
  correction, largest departure from a uniform firing profile first);
* :func:`scorer_summary`: per (variant, layer, scorer) the mean per-latent AUROC with a two-stage bootstrap
  interval (latents, then examples) and the paired gap to the token baseline's scorer it is compared with;
* :func:`single_token_summary`, :func:`diagnostics_table`, :func:`findings`.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from rsae_utils.autointerp.stats import hierarchical_ci
from rsae_utils.studies.critique.run import BASELINES, SCORERS, SERIES
from rsae_utils.subject.variants import order_variants

KEYS = ["model", "variant", "layer"]
DIAGNOSTICS = ("max_dec_cos_mean", "duplicate_share", "enc_dec_cos_mean", "rel_recon_bias", "l2_ratio")
TOP_COLUMNS = [
    "variant",
    "layer",
    "latent",
    "positional",
    "positional_fdr",
    "boundary_latent",
    "n_fires",
    "rate_p",
    "rate_tv",
    "rate_peak_ratio",
    "rate_dispersion",
    "positional_eta2",
    "eta2",
    "eta2_null",
    "eta2_excess",
    "eta2_p",
    "boundary_share",
    "firing_rate",
    "autocorr_1",
    "peak_position",
    "top_token",
    "top_token_mass_share",
]


def _variant_order(df: pd.DataFrame) -> pd.DataFrame:
    order = {v: i for i, v in enumerate(order_variants(df["variant"]))}
    return df.assign(_o=df["variant"].map(order)).sort_values(["_o", "layer"], kind="stable").drop(columns="_o")


def window_spread(halves: pd.DataFrame) -> pd.DataFrame:
    """Per (model, variant, layer, boundary): the sd over random halves of the contexts of the positional share
    (``positional_share_window_sd``) and of the share beyond the shuffled control (``excess_window_sd``; each half
    pairs the observed and the control activations on the same contexts). By the delete-half jackknife, the sd over
    halves estimates the sd of the share on all the contexts."""
    cols = [*KEYS, "boundary", "positional_share_window_sd", "excess_window_sd", "n_halves"]
    if halves is None or halves.empty:
        return pd.DataFrame(columns=cols)
    h = halves.assign(
        share=halves.n_positional / halves.n_judged.where(halves.n_judged > 0), control=halves.control.astype(bool)
    )
    key = [*KEYS, "boundary", "half"]
    obs = h[~h.control].set_index(key).share
    ctl = h[h.control].set_index(key).share.reindex(obs.index)
    wide = pd.DataFrame({"obs": obs, "excess": obs - ctl}).reset_index()
    # A half where no latent was judged has no share: the sd is over the halves that have one (NaN with < 2).
    out = (
        wide.groupby([*KEYS, "boundary"])
        .agg(
            positional_share_window_sd=("obs", "std"),
            excess_window_sd=("excess", "std"),
            n_halves=("half", "nunique"),
        )
        .reset_index()
    )
    return out[cols]


def positional_summary(pos: pd.DataFrame, halves: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per (model, variant, layer, boundary), for the binned firing-rate test
    (:mod:`rsae_utils.studies.critique.positional_rate`): live and judged latents; ``positional_share`` (positional
    / judged: p <= alpha per latent and the effect floor); ``control_share``, the same rule on position-shuffled
    activations (its false-positive rate, what "beyond the control" subtracts); ``control_test_share``, the share
    of control latents with p <= alpha alone (the test's false-positive rate: about alpha when it is calibrated);
    ``n_positional_fdr`` (Benjamini-Hochberg over the judged latents, and the floor) and its control count;
    ``boundary_latent_share`` and ``positional_not_boundary_share`` (positional, with < the boundary share threshold
    of their mass at position 0). The earlier eta^2 rule, for comparison: ``n_judged_eta2``,
    ``positional_share_eta2``, ``control_share_eta2``, ``eta2_excess_median``. With ``halves`` (the test on random
    halves of the contexts), :func:`window_spread`'s columns: how much the shares move with the contexts read."""
    if pos.empty:
        return pd.DataFrame()
    d = pos.assign(pos_nb=pos.positional & ~pos.boundary_latent)
    s = (
        d.groupby(KEYS + ["boundary", "control"])
        .agg(
            n_live=("latent", "size"),
            n_judged=("judged", "sum"),
            n_significant=("significant", "sum"),
            n_positional=("positional", "sum"),
            n_positional_fdr=("positional_fdr", "sum"),
            n_boundary=("boundary_latent", "sum"),
            n_pos_nb=("pos_nb", "sum"),
            n_judged_eta2=("judged_eta2", "sum"),
            n_positional_eta2=("positional_eta2", "sum"),
            eta2_excess_median=("eta2_excess", "median"),
        )
        .reset_index()
    )
    judged = s.n_judged.where(s.n_judged > 0)
    s["share"] = s.n_positional / judged
    s["test_share"] = s.n_significant / judged
    s["share_eta2"] = s.n_positional_eta2 / s.n_judged_eta2.where(s.n_judged_eta2 > 0)
    s["boundary_latent_share"] = s.n_boundary / s.n_live.where(s.n_live > 0)
    s["positional_not_boundary_share"] = s.n_pos_nb / judged
    obs = s[~s.control.astype(bool)].drop(columns="control")
    ctl = s[s.control.astype(bool)][
        KEYS + ["boundary", "share", "n_positional", "test_share", "n_positional_fdr", "share_eta2"]
    ]
    out = obs.merge(
        ctl.rename(
            columns={
                "share": "control_share",
                "n_positional": "n_positional_control",
                "test_share": "control_test_share",
                "n_positional_fdr": "n_positional_fdr_control",
                "share_eta2": "control_share_eta2",
            }
        ),
        on=KEYS + ["boundary"],
        how="left",
    )
    out = out.rename(columns={"share": "positional_share", "share_eta2": "positional_share_eta2"})
    cols = KEYS + [
        "boundary",
        "n_live",
        "n_judged",
        "n_positional",
        "positional_share",
        "n_positional_control",
        "control_share",
        "control_test_share",
        "n_positional_fdr",
        "n_positional_fdr_control",
        "boundary_latent_share",
        "positional_not_boundary_share",
        "n_judged_eta2",
        "positional_share_eta2",
        "control_share_eta2",
        "eta2_excess_median",
    ]
    out = out[cols]
    if halves is not None and not halves.empty:
        out = out.merge(window_spread(halves), on=[*KEYS, "boundary"], how="left")
    return _variant_order(out).reset_index(drop=True)


def top_positional(pos: pd.DataFrame, n: int, boundary: str) -> pd.DataFrame:
    """Each variant's ``n`` most position-dependent latents (over all layers) in the ``boundary`` view, measured on
    the data (not the control), judged latents only: those the test flags after the false-discovery correction
    first, then by the share of their fires off a uniform profile (``rate_tv``)."""
    if pos.empty:
        return pd.DataFrame(columns=TOP_COLUMNS)
    d = pos[(pos.boundary == boundary) & ~pos.control.astype(bool) & pos.judged.astype(bool)]
    d = d.sort_values(
        ["positional_fdr", "rate_tv", "layer", "latent"], ascending=[False, False, True, True], kind="stable"
    )
    top = d.groupby("variant", sort=False).head(n)
    return _variant_order(top)[TOP_COLUMNS].reset_index(drop=True)


def _aligned(lat: pd.DataFrame, ids: np.ndarray, series: str) -> np.ndarray:
    """The per-latent AUROC of ``series`` in the order of ``ids`` (NaN where a latent has none)."""
    d = lat[lat.scorer == series].set_index("latent")["auroc"]
    return d.reindex(ids).to_numpy(dtype=float)


def scorer_summary(
    lat: pd.DataFrame,
    replicates: Mapping[tuple[str, int], tuple[np.ndarray, Mapping[str, np.ndarray]]],
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> pd.DataFrame:
    """One row per (model, variant, layer, scorer): mean per-latent AUROC with its interval (``auroc_lo``,
    ``auroc_hi``), and for the six scorers the ``reference`` token-baseline series and the paired ``gap`` (scorer
    minus reference, over the latents where both are defined) with its interval. The token baseline's own two
    series are rows too (no gap)."""
    rows = []
    if lat.empty:
        return pd.DataFrame()
    for (model, variant, layer), g in lat.groupby(KEYS, sort=False):
        ids, reps = replicates[(variant, int(layer))]
        for k, series in enumerate(SERIES):
            point = _aligned(g, ids, series)
            ci = hierarchical_ci(point, reps[series], n_boot, seed=seed + k, level=level)
            row = {"model": model, "variant": variant, "layer": int(layer), "scorer": series, **ci.summary("auroc")}
            extra = g[g.scorer == series]
            for col in ("intruder_accuracy", "precision", "recall", "n_hard_negatives"):
                if col in extra and extra[col].notna().any():
                    row[col] = float(extra[col].mean())
            ref = BASELINES.get(SCORERS.get(series, ""), "")
            if ref:
                ref_point = _aligned(g, ids, ref)
                gap = hierarchical_ci(
                    point - ref_point,
                    reps[series] - reps[ref],
                    n_boot,
                    seed=seed + 100 + k,
                    level=level,
                    bounds=(-1.0, 1.0),
                )
                row.update(
                    {
                        "reference": ref,
                        "gap": gap.estimate,
                        "gap_lo": gap.lo,
                        "gap_hi": gap.hi,
                        "gap_latents": gap.n_latents,
                    }
                )
            rows.append(row)
    return _variant_order(pd.DataFrame(rows)).reset_index(drop=True)


def single_token_summary(lat: pd.DataFrame) -> pd.DataFrame:
    """Per (variant, layer): sampled latents, their mean top-token mass share and the share of single-token ones."""
    if lat.empty:
        return pd.DataFrame()
    d = lat.drop_duplicates(KEYS + ["latent"])
    s = (
        d.groupby(KEYS)
        .agg(
            sampled=("latent", "size"),
            top_token_share=("top_token_share", "mean"),
            single_token_share=("single_token", "mean"),
        )
        .reset_index()
    )
    return _variant_order(s).reset_index(drop=True)


def diagnostics_table(diag: pd.DataFrame) -> pd.DataFrame:
    """The weight and reconstruction diagnostics, one row per SAE, in variant order."""
    cols = (
        KEYS
        + list(DIAGNOSTICS)
        + ["max_dec_cos_median", "n_live", "n_latents_total", "n_eligible", "n_sampled", "n_tokens"]
    )
    return _variant_order(diag[[c for c in cols if c in diag]]).reset_index(drop=True)


def _fmt_range(s: pd.Series, fmt: str = ".2f") -> str:
    lo, hi = format(s.min(), fmt), format(s.max(), fmt)
    return lo if lo == hi else f"{lo} to {hi}"


def _positional_findings(pos_sum: pd.DataFrame, lab, boundary: str, alpha: float | None) -> list[str]:
    p = pos_sum[pos_sum.boundary == boundary]
    excess = p.assign(x=p.positional_share - p.control_share).groupby("variant", sort=False).x.mean()
    best, worst = excess.idxmax(), excess.idxmin()
    test_fpr = p.control_test_share.mean()
    level = f" (nominal {alpha:g})" if alpha is not None else ""
    out = [
        f"Positional latents (binned firing-rate test, boundary token {boundary}d), share of judged latents beyond "
        f"the position-shuffled control, mean over layers: {lab(best)} the largest ({excess[best]:.1%}), "
        f"{lab(worst)} the smallest ({excess[worst]:.1%}). On the shuffled control the test alone flags "
        f"{test_fpr:.1%} of latents{level} and the rule with its effect floor {p.control_share.mean():.1%}.",
    ]
    if "trained" in excess and len(excess) > 1:
        rest = excess.drop("trained")
        more = excess["trained"] > rest.max()
        out.append(
            f"The trained model has {'more' if more else 'not more'} positional latents beyond the control than "
            f"every random variant ({excess['trained']:.1%} against {_fmt_range(rest, '.1%')}); the earlier eta^2 "
            f"rule called {p.positional_share_eta2.mean():.1%} of latents positional (control "
            f"{p.control_share_eta2.mean():.1%})."
        )
    other = pos_sum[pos_sum.boundary != boundary]
    if len(other):
        out.append(
            f"With the boundary token {other.boundary.iloc[0]}d the positional share is "
            f"{other.positional_share.mean():.1%} on average (against {p.positional_share.mean():.1%}); "
            f"{other.boundary_latent_share.mean():.1%} of live latents put >= the threshold share of "
            f"their mass on position 0."
        )
    return out


def findings(
    pos_sum: pd.DataFrame,
    scores: pd.DataFrame,
    single: pd.DataFrame,
    diag: pd.DataFrame,
    labels: Mapping[str, str],
    boundary: str,
    alpha: float | None = None,
) -> list[str]:
    """What the tables say, one sentence per measure, for the notebook's closing cell (``alpha``: the positional
    test's per-latent level, quoted beside its false-positive rate on the control)."""
    lab = lambda v: labels.get(v, v)  # noqa: E731
    out = _positional_findings(pos_sum, lab, boundary, alpha) if len(pos_sum) else []
    if len(single):
        st = single.groupby("variant", sort=False).single_token_share.mean()
        out.append(
            "Single-token latents among the sampled ones (mean over layers): "
            + ", ".join(f"{lab(v)} {s:.0%}" for v, s in st.items())
            + "."
        )
    if len(scores):
        base = scores[scores.scorer == BASELINES["detection"]].groupby("variant", sort=False).auroc.mean()
        out.append(
            "Token-baseline detection AUROC (mean over layers): "
            + ", ".join(f"{lab(v)} {a:.2f}" for v, a in base.items())
            + "."
        )
        for series in ("single-token detection", "hard-negative detection", "intruder"):
            s = scores[scores.scorer == series]
            if s.empty:
                continue
            gap = s.groupby("variant", sort=False).gap.mean()
            sig = s[(s.gap_hi < 0) | (s.gap_lo > 0)]
            out.append(
                f"{series}: gap to the token baseline {_fmt_range(gap)} across variants; its 95% interval "
                f"excludes 0 for {len(sig)} of {len(s)} SAEs."
            )
    if len(diag):
        d = diag.groupby("variant", sort=False)[["max_dec_cos_mean", "enc_dec_cos_mean", "rel_recon_bias"]].mean()
        out.append(
            "Diagnostics (mean over layers): "
            + "; ".join(
                f"{lab(v)} max dec cos {r.max_dec_cos_mean:.2f}, enc-dec cos {r.enc_dec_cos_mean:.2f}, "
                f"recon bias {r.rel_recon_bias:.2f}"
                for v, r in d.iterrows()
            )
            + "."
        )
    return out
