"""Notebook 07's steps, one call each, every folder from ``paths``: the seed grid on notebook 03's caches, the
correlations of the shared latents at the base cell, and the toy experiment."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from rsae_utils import paths
from rsae_utils.sae.cache import ActivationCache
from rsae_utils.sae.train import SAESpec
from rsae_utils.studies.seeds.grid import SeedGrid
from rsae_utils.studies.seeds.toy import toy_from_params


def seed_grid(nb03: Any, caches: Mapping[str, ActivationCache], cfg: Any) -> SeedGrid:
    """Notebook 07's grid (``cfg``) on ``caches`` (notebook 03's, at ``cfg.layer``): SAEs under
    ``paths.seed_sae_dir`` beside notebook 03's model and variant seed, analyses under ``paths.seed_stability_dir``;
    every SAE shares notebook 03's boundary tokens left out."""
    m3 = nb03.cfg
    base = SAESpec(
        n_tokens=cfg.train_tokens,
        batch_size=cfg.batch_size,
        lr=cfg.lr,
        l1_coefficient=cfg.l1_start,
        exclude_tokens=nb03.exclude_tokens,
    )

    def sae_dir(variant: str, name: str) -> Path:
        return paths.seed_sae_dir(nb03.profile, m3.model, m3.revision, variant, m3.variant_seed, name)

    return SeedGrid(
        dict(caches),
        cfg.layer,
        base,
        cfg.seeds,
        cfg.data_seed,
        sae_dir=sae_dir,
        analysis_root=paths.seed_stability_dir(nb03.profile),
        thresholds=cfg.thresholds,
        threshold=cfg.threshold,
        calib_tokens=cfg.calib_tokens,
        calib_tol=cfg.calib_tol,
        calib_max_iter=cfg.calib_max_iter,
        top_n=cfg.top_n,
        topk_trainer=cfg.topk_trainer,
    )


def latent_correlations(latents: pd.DataFrame, base_expansion: int, base_k: int, n_seeds: int) -> pd.DataFrame:
    """Per (variant, architecture), the reference seed's live latents at the base cell (R = ``base_expansion``,
    k = ``base_k``): how many there are, the share every other seed shares, and the Spearman correlation of their
    alignment with log firing frequency and with token entropy."""
    base = latents[latents.R.eq(base_expansion) & latents.k.eq(base_k) & (latents.freq > 0)]

    def summary(d: pd.DataFrame) -> pd.Series:
        return pd.Series(
            {
                "latents": len(d),
                "shared_by_all": float((d.n_sharing == n_seeds - 1).mean()),
                "spearman_align_logfreq": d.align_mean.corr(np.log10(d.freq), method="spearman"),
                "spearman_align_entropy": d.align_mean.corr(d.token_entropy, method="spearman"),
            }
        )

    return base.groupby(["variant", "architecture"]).apply(summary, include_groups=False).reset_index()


def toy_params(cfg: Any) -> dict[str, Any]:
    """The toy experiment of notebook 07's ``cfg``: notebook 02's kind of synthetic world (5 active features on
    average, decay 0.99, world seed 0), raw and through a random MLP, one data stream for all seeds."""
    return {
        "n_features": cfg.toy_n_features,
        "d_model": cfg.toy_d_model,
        "mean_active": 5.0,
        "decay": 0.99,
        "world_seed": 0,
        "conditions": ["raw", "mlp"],
        "dict_size": cfg.toy_dict_size,
        "l1": cfg.toy_l1,
        "seeds": list(cfg.seeds),
        "data_seed": cfg.data_seed,
        "steps": cfg.toy_steps,
        "lr": cfg.toy_lr,
        "batch": cfg.toy_batch,
        "threshold": cfg.threshold,
    }


def toy_experiment(cfg: Any) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(latents, seeds) of the toy experiment of ``cfg`` (:func:`toy_params`), stored under ``paths.seed_toy_dir``."""
    return toy_from_params(toy_params(cfg), paths.seed_toy_dir(cfg.profile), cfg.threads or None)
