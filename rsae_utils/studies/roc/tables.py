"""Notebook 05's tables from notebook 04's auto-interp tables: pooled ROC bands with their bootstrap and AUROC per
(model, backend, scorer, variant, layer), token entropy per SAE, the entropy-AUROC correlation per variant, and
the LLM scorer minus the token baseline on the latents both scored.

Each builder takes a tidy DataFrame and returns one (tested); :mod:`rsae_utils.plots.autointerp` draws them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from rsae_utils.autointerp import stats
from rsae_utils.autointerp.baseline import BASELINE_NAME

GROUP = ["model", "backend", "scorer", "variant", "layer"]
MIN_ABOVE_CHANCE = 0.05


def roc_tables(
    examples: pd.DataFrame, n_boot: int = 100, n_grid: int = 101, seed: int = 0
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(bands, aucs): bootstrap ROC bands and pooled AUROC with normal 95% CI per (model, backend, scorer,
    variant, layer), pooling every example-level (label, probability) pair; unparsable answers are left out."""
    band_rows, auc_rows = [], []
    ok = examples[~examples["unparsable"].astype(bool)]
    for key, g in ok.groupby(GROUP, sort=True):
        if g["label"].nunique() < 2:
            continue
        b = stats.bootstrap_roc(g["label"].to_numpy(), g["probability"].to_numpy(), n_boot, n_grid, seed)
        meta = dict(zip(GROUP, key, strict=True))
        auc_rows.append(
            {
                **meta,
                **b.summary(),
                "n_latents": g["latent"].nunique(),
                "balanced_accuracy": stats.balanced_accuracy(g["label"], g["probability"]),
            }
        )
        band_rows.append(
            pd.DataFrame({**meta, "fpr": b.fpr, "tpr": b.tpr_mean, "tpr_lo": b.tpr_lo, "tpr_hi": b.tpr_hi})
        )
    bands = pd.concat(band_rows, ignore_index=True) if band_rows else pd.DataFrame(columns=[*GROUP, "fpr", "tpr"])
    return bands, pd.DataFrame(auc_rows)


def latent_summary(latent_stats: pd.DataFrame) -> pd.DataFrame:
    """Per (model, variant, layer): mean token entropy (nats), single-token share, mean position concentration."""
    g = latent_stats.groupby(["model", "variant", "layer"], sort=True)
    out = g.agg(
        n_latents=("latent", "size"),
        entropy_mean=("entropy_nats", "mean"),
        entropy_sd=("entropy_nats", "std"),
        single_token_share=("single_token", "mean"),
        position_concentration=("position_concentration", "mean"),
    ).reset_index()
    out["entropy_ci"] = 1.96 * out["entropy_sd"].fillna(0) / np.sqrt(out["n_latents"])
    return out


def entropy_auroc_table(latents: pd.DataFrame) -> pd.DataFrame:
    """Per (backend, scorer, variant): Spearman correlation of token entropy and per-latent AUROC."""
    rows = []
    for (b, s, v), g in latents.dropna(subset=["auroc", "entropy_nats"]).groupby(["backend", "scorer", "variant"]):
        rho = g["entropy_nats"].rank().corr(g["auroc"].rank()) if len(g) > 2 else float("nan")
        rows.append({"backend": b, "scorer": s, "variant": v, "n_latents": len(g), "spearman_rho": rho})
    return pd.DataFrame(rows)


def gap_table(latents: pd.DataFrame) -> pd.DataFrame:
    """LLM scorer minus token baseline, per (LLM backend, scorer, variant), on the latents both scored.

    Paired per latent: mean AUROC of each, the mean difference with a normal 95% CI over latents, and the
    token-baseline share = (baseline - 0.5) / (LLM - 0.5) of the mean AUROCs (how much of the LLM's
    above-chance score token identity alone reaches; > 1 means the baseline does better). The share is left
    empty when the LLM's mean AUROC is less than ``MIN_ABOVE_CHANCE`` above 0.5.
    """
    keys = ["model", "variant", "layer", "latent", "scorer"]
    base = latents[latents.backend == BASELINE_NAME][[*keys, "auroc"]].rename(columns={"auroc": "auroc_baseline"})
    llm = latents[latents.backend != BASELINE_NAME][[*keys, "backend", "auroc"]].rename(columns={"auroc": "auroc_llm"})
    paired = llm.merge(base, on=keys).dropna(subset=["auroc_llm", "auroc_baseline"])
    rows = []
    for (b, s, v), g in paired.groupby(["backend", "scorer", "variant"], sort=True):
        d = g["auroc_llm"] - g["auroc_baseline"]
        se = d.std(ddof=1) / np.sqrt(len(d)) if len(d) > 1 else float("nan")
        llm_m, base_m = g["auroc_llm"].mean(), g["auroc_baseline"].mean()
        rows.append(
            {
                "backend": b,
                "scorer": s,
                "variant": v,
                "n_latents": len(g),
                "auroc_llm": llm_m,
                "auroc_baseline": base_m,
                "gap": d.mean(),
                "gap_lo": d.mean() - 1.96 * se,
                "gap_hi": d.mean() + 1.96 * se,
                # Undefined unless the LLM is clearly above chance (there is nothing to explain a share of).
                "baseline_share": (base_m - 0.5) / (llm_m - 0.5) if llm_m - 0.5 >= MIN_ABOVE_CHANCE else float("nan"),
            }
        )
    return pd.DataFrame(rows)
