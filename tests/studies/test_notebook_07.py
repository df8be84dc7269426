"""Notebook 07 end to end under the smoke profile (after notebook 03): the tidy table, figures, and the refusal to
run without notebook 03's caches."""

from __future__ import annotations

import pandas as pd
import pytest

from rsae_utils.errors import ParameterError, StageError
from rsae_utils.params import resolve
from rsae_utils.sae.cache import require_caches
from rsae_utils.sae.pipeline import SAEPipeline

pytestmark = pytest.mark.slow


def test_smoke_run_writes_the_seed_table(smoke_run, smoke_env):
    build, figures = smoke_env
    smoke_run("03")
    smoke_run("04")  # its records and scores of notebook 03's SAEs are what the own-seed replicate reads
    smoke_run("07")
    cfg = resolve("07_seed_stability", "smoke")
    table = pd.read_csv(figures / "smoke" / "07_seed_stability.csv")
    assert {
        "variant",
        "layer",
        "architecture",
        "R",
        "k",
        "seed_pair",
        "threshold",
        "shared_fraction",
        "same_partner_fraction",
        "l0",
        "target_l0",
    } <= set(table.columns)
    assert set(table.variant) == set(cfg.variants) and set(table.architecture) == {"topk", "relu"}
    assert set(table.layer) == {cfg.layer}
    assert len(set(table.seed_a) | set(table.seed_b)) == 3 and table.seed_pair.nunique() == 3
    for col in ("shared_fraction", "same_partner_fraction", "enc_pc1_removed_fraction", "enc_pc1_share"):
        assert table[col].between(0, 1).all()
    assert (table.same_partner_fraction <= table.shared_fraction + 1e-12).all()
    # counted of live latents (NaN only where a seed has none) and with the same partner required
    live = table.dropna(subset=["shared_live_fraction"])
    assert len(live) > 0 and live.shared_live_fraction.between(0, 1).all()
    assert (live.same_partner_live_fraction <= live.shared_live_fraction + 1e-12).all()
    assert (figures / "smoke" / "07_seed_counts.png").stat().st_size > 0
    assert set(table[table.architecture == "topk"].R) == set(cfg.expansions)
    assert set(table[table.architecture == "topk"].k) == set(cfg.ks)
    topk = table[table.architecture == "topk"]
    # TopK keeps k latents, but one whose pre-activation is <= 0 is zeroed by the ReLU: L0 <= k, and close to it.
    assert (topk.l0 <= topk.k + 1e-9).all() and (topk.l0 >= 0.95 * topk.k).all()
    # shared fraction falls as the threshold rises, for every group and pair
    for _, g in table.groupby(["variant", "architecture", "R", "k", "seed_pair"]):
        assert g.sort_values("threshold").shared_fraction.diff().dropna().le(1e-12).all()
    for name in ("07_seed_stability", "07_seed_latents", "07_seed_toy"):
        for ext in ("png", "pdf", "csv", "manifest.json"):
            assert (figures / "smoke" / f"{name}.{ext}").stat().st_size > 0
    assert (figures / "smoke" / "07_seed_stability.html").stat().st_size > 0
    # Seed replicates of notebook 03's SAEs: every variant x seed x metric; the seed that is notebook 03's own SAE
    # reproduces notebook 03's held-out numbers exactly (it is reused, and measured the same way).
    reps = pd.read_csv(figures / "smoke" / "07_seed_replicates.csv")
    metrics = {"explained_variance", "cos_sim", "token-baseline detection", "token-baseline fuzzing"}
    assert set(reps.metric) == metrics and set(reps.variant) == set(cfg.replicate_variants)
    assert len(reps) == len(cfg.replicate_variants) * len(cfg.replicate_seeds) * len(metrics)
    assert reps[reps.metric.str.startswith("token")].value.between(0, 1).all()
    m03 = pd.read_csv(figures / "smoke" / "fig2_sae_metrics.csv").set_index(["variant", "layer"])
    own = reps[(reps.seed == resolve("03_sae_training", "smoke").sae_seed) & (reps.metric == "explained_variance")]
    for _, row in own.iterrows():
        assert row.value == pytest.approx(m03.loc[(row.variant, cfg.layer), "explained_variance"], abs=1e-6)
    # ... and its token-baseline AUROCs are notebook 04's, from notebook 04's records (none sampled again here)
    nb04 = pd.read_csv(build / "smoke" / "autointerp" / "tables" / "latents.csv")
    nb04 = nb04[(nb04.backend == "token-baseline") & (nb04.layer == cfg.layer)].groupby(["variant", "scorer"]).auroc
    own_auc = reps[(reps.seed == resolve("03_sae_training", "smoke").sae_seed) & reps.metric.str.startswith("token")]
    assert len(own_auc) == 2 * len(cfg.replicate_variants)
    for _, row in own_auc.iterrows():
        assert row.value == pytest.approx(nb04.mean()[(row.variant, row.metric.split()[-1])], abs=1e-12)
    replicates = build / "smoke" / "seed_stability" / "replicates"
    assert not (replicates / "seed0" / "records").exists() and (replicates / "seed1" / "records").is_dir()
    assert (replicates / "seed0" / "tables" / "latents.csv").exists()
    # other seeds train other SAEs: their numbers differ
    ev = reps[reps.metric == "explained_variance"].pivot_table(index="variant", columns="seed", values="value")
    assert (ev.std(axis=1) > 0).all()


def test_missing_caches_name_notebook_03(tmp_dirs):
    exp = SAEPipeline(resolve("03_sae_training", "smoke"))
    with pytest.raises(StageError, match="03_sae_training"):
        require_caches(exp, ["trained"], [1], "smoke", "07")


def test_bad_parameters_fail_before_work():
    for overrides, name in [
        ({"seeds": [0, 1]}, "seeds"),
        ({"threshold": 0.33}, "threshold"),
        ({"calib_tokens": 10**9}, "calib_tokens"),
        ({"relu_cells": "x"}, "relu_cells"),
    ]:
        with pytest.raises(ParameterError, match=name):
            resolve("07_seed_stability", "smoke", overrides)
