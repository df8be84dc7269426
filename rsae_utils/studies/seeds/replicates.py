"""Seed replicates of notebook 03's SAEs: how far the headline numbers move when only the SAE's seed changes.

Notebooks 03-05 train one SAE per (variant, layer) and put intervals over examples (and latents) on what they
measure. A rerun on another CPU, or with another ``sae_seed``, trains a different SAE, and another sample of its
latents gets scored; that spread is larger than the example-level intervals (a fresh clone on an Intel host moved
8 of 40 token-baseline AUROCs by more than their 95% half-width). Here, at one layer, notebook 03's SAE of every
variant is trained again with other seeds (same cache, spec, token budget; the seed sets initialisation and batch
order) and each replicate goes through the same measurements: held-out explained variance and cosine (notebook
03's ``reconstruction_metrics``, boundary token left out) and the mean token-baseline AUROC of each scorer over a
fresh sample of its latents (notebook 04's pipeline and protocol). The standard deviation across seeds, per
(variant, metric), is the between-seed component that notebook 10 adds to the intervals of the claims; a cell at
another layer is assumed to vary as much as this layer's (the one assumption, stated wherever it is used).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from rsae_utils import paths
from rsae_utils.autointerp.baseline import BASELINE_NAME as BASELINE
from rsae_utils.autointerp.pipeline import SAMPLING_KEYS, pick_params, run_autointerp
from rsae_utils.autointerp.records import records_ready
from rsae_utils.sae.cache import token_mask
from rsae_utils.sae.codes import load_codes
from rsae_utils.sae.metrics import reconstruction_metrics
from rsae_utils.sae.pipeline import SAEPipeline
from rsae_utils.sae.train import load_sae, sae_name, train_sae

METRICS = ("explained_variance", "cos_sim")  # notebook 03's reconstruction metrics kept per replicate


def auroc_metric(scorer: str) -> str:
    """The metric name of a token-baseline scorer's mean AUROC in the replicate table."""
    return f"{BASELINE} {scorer}"


def replicate_table(
    nb03: SAEPipeline,
    cfg04: Mapping[str, Any],
    layer: int,
    seeds: Sequence[int],
    variants: Sequence[str] | None = None,
    out_dir: Path | None = None,
    progress: bool = True,
    reuse_nb04: bool = True,
) -> pd.DataFrame:
    """Tidy (variant, layer, seed, metric, value, n_latents) rows: for each variant and seed, notebook 03's SAE spec
    trained with that seed at ``layer`` (reused when it exists, so notebook 03's own ``sae_seed`` costs nothing),
    its held-out metrics and its mean token-baseline AUROC per scorer over ``cfg04``'s latent sample.
    ``reuse_nb04``: notebook 03's own seed reads notebook 04's records (and scores) of the same SAEs when notebook
    04 made them with ``cfg04``'s sampling; otherwise, or when False, every seed is sampled and scored apart."""
    c3 = nb03.cfg
    variants = list(variants if variants is not None else c3.variants)
    out_dir = Path(out_dir) if out_dir is not None else paths.seed_replicates_dir(nb03.profile)
    nb04_dir = paths.autointerp_dir(nb03.profile)
    rows: list[dict[str, Any]] = []
    runs: list[dict[str, Any]] = []
    for variant in variants:
        cache = nb03.cache(variant)
        acts = cache.acts(layer, "test")
        mask = token_mask(cache.tokens("test"), nb03.exclude_tokens)
        for seed in seeds:
            spec = replace(nb03.spec, seed=int(seed))
            name = sae_name(layer, spec)
            sae_dir = paths.sae_dir(nb03.profile, c3.model, c3.revision, variant, c3.variant_seed, name)
            train_sae(cache, layer, spec, sae_dir)
            sae = load_sae(sae_dir)  # its codes are stored for the records below (notebook 03's: already there)
            m = reconstruction_metrics(sae, acts, mask=mask, codes=load_codes(sae, sae_dir, cache, layer))
            rows += [
                {
                    "variant": variant,
                    "layer": int(layer),
                    "seed": int(seed),
                    "metric": k,
                    "value": float(m[k]),
                    "n_latents": np.nan,
                }
                for k in METRICS
            ]
            runs.append(
                {
                    "model": c3.model,
                    "variant": variant,
                    "layer": int(layer),
                    "seed": int(seed),
                    "sae_dir": str(sae_dir),
                    "cache_dir": str(nb03.cache_dir(variant)),
                }
            )
    runs_df = pd.DataFrame(runs)
    sampling = pick_params(cfg04, SAMPLING_KEYS)
    for seed, group in runs_df.groupby("seed", sort=True):
        group = group.drop(columns="seed").reset_index(drop=True)
        # Notebook 03's own seed: notebook 04 sampled and scored these very SAEs; when it did so with these sampling
        # parameters its records and units are read, and only the tables are this replicate's.
        own = (
            reuse_nb04
            and int(seed) == int(c3.sae_seed)
            and all(records_ready(run, sampling, nb04_dir) for _, run in group.iterrows())
        )
        mine = paths.seed_replicate_dir(out_dir, seed)
        work = nb04_dir if own else mine
        res = run_autointerp(cfg04, group, (), work, progress=progress, tables_dir=paths.autointerp_tables_dir(mine))
        lat = res.latents[res.latents.backend == BASELINE]
        for (variant, scorer), g in lat.groupby(["variant", "scorer"], sort=True):
            rows.append(
                {
                    "variant": variant,
                    "layer": int(layer),
                    "seed": int(seed),
                    "metric": auroc_metric(scorer),
                    "value": float(g.auroc.mean()),
                    "n_latents": int(g.auroc.notna().sum()),
                }
            )
    return pd.DataFrame(rows)


def seed_spread(table: pd.DataFrame) -> pd.DataFrame:
    """Per (variant, layer, metric): mean, sample SD across seeds (ddof 1; NaN with one seed), min, max, seeds."""
    g = table.dropna(subset=["value"]).groupby(["variant", "layer", "metric"], sort=True)["value"]
    out = g.agg(
        mean="mean", sd=lambda v: float(np.std(v, ddof=1)) if len(v) > 1 else np.nan, lo="min", hi="max", n_seeds="size"
    )
    return out.reset_index()
