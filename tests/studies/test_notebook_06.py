"""Notebook 06 end to end under the smoke profile (after notebook 03): residual statistics, the one-factor sweeps,
the figures, the answer, and the refusal to run without notebook 03's caches."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

from rsae_utils.errors import ParameterError, StageError
from rsae_utils.params import resolve
from rsae_utils.sae.cache import require_caches
from rsae_utils.sae.pipeline import SAEPipeline

pytestmark = pytest.mark.slow


def test_smoke_run_measures_the_residual_stream_and_the_factors(smoke_run, smoke_env):
    build, figures = smoke_env
    smoke_run("03")
    smoke_run("06")
    cfg = resolve("06_why_default_differs", "smoke")
    stats = pd.read_csv(figures / "smoke" / "06_residual_stats.csv")
    for col in ("token_share", "position_share", "token_chance"):
        assert stats[col].between(0, 1).all(), col
    assert (stats.norm_median > 0).all() and (stats.effective_dim >= 1).all()
    s = stats.set_index(["source", "layer"])
    # the control's embedding is fresh noise: its residual stream carries no token identity at any layer
    assert s.loc["control"].token_share_adj.abs().max() < 0.05
    # at layer 0 the (tiny) trained model's residual is largely a lookup of the token, far above the control's
    assert s.loc[("trained", 0), "token_share_adj"] > s.loc[("control", 0), "token_share_adj"] + 0.1
    # a rotary model has no position embedding: position explains little
    assert (stats[stats.source != "control"].position_share_adj < 0.2).all()
    # a 4x larger embedding makes layer 0 more of a token lookup, and larger
    x4 = "rerandomized_incl_emb+emb-x4"
    assert s.loc[(x4, 0), "token_share"] > s.loc[("rerandomized_incl_emb", 0), "token_share"]
    assert s.loc[(x4, 0), "norm_median"] > s.loc[("rerandomized_incl_emb", 0), "norm_median"]
    assert set(s.loc["rerandomized_incl_emb+norms-kept"].index) == set(cfg.layers)
    # the second architecture: its own cache on the same windows, measured at every harvested layer
    assert set(s.loc["neox_init"].index) == set(cfg.neox_layers)
    assert (s.loc["neox_init"].n_tokens == s.loc[("trained", 0), "n_tokens"]).all()
    assert s.loc[("neox_init", 0), "token_share_adj"] > s.loc[("control", 0), "token_share_adj"] + 0.1

    table = pd.read_csv(figures / "smoke" / "06_why_factors.csv")
    assert set(table.factor) == {"width", "norm_gains", "embedding_scale", "output_scale", "train_tokens"}
    # a re-randomized model whose output projections are drawn smaller keeps more of the token at the last layer
    s_out = f"rerandomized_incl_emb+out-x{cfg.output_scales[-1]:g}"
    last = max(cfg.layers)
    assert s.loc[(s_out, last), "token_share"] > s.loc[("rerandomized_incl_emb", last), "token_share"]
    assert set(table[table.factor == "width"].R) == set(cfg.expansions)
    assert set(table.layer) == set(cfg.layers) and set(table.variant) == set(cfg.variants)
    # the budget sweep trains on the stated tokens (whole batches in smoke) at the base width
    budgets = table[table.factor == "train_tokens"]
    assert set(budgets.train_tokens) == set(cfg.token_budgets) and set(budgets.R) == {cfg.base_expansion}
    assert (table.train_tokens_seen == table.train_tokens).all()
    assert table.test_tokens.nunique() == 1  # every SAE measured on the same held-out tokens
    assert table.explained_variance.between(0, 1).all() and table.cos_sim.between(0, 1).all()
    for col in ("dead_fraction", "single_token_share"):
        assert table[col].between(0, 1).all(), col
    assert (table.l0 <= cfg.k + 1e-9).all()
    # the baseline is one SAE, shared by every sweep
    rr = table[table.variant == "rerandomized_incl_emb"]
    for layer in cfg.layers:
        base = rr[
            (rr.layer == layer)
            & (rr.source == "rerandomized_incl_emb")
            & (rr["R"] == cfg.base_expansion)
            & (rr.train_tokens == cfg.train_tokens)
        ].explained_variance
        assert len(base) == 5 and np.ptp(base.to_numpy()) == 0  # width, norm gains, embedding, outputs, tokens

    arch = pd.read_csv(figures / "smoke" / "06_architecture.csv")
    neox = arch[arch.variant == "neox_init"]
    assert set(neox.layer) == set(cfg.neox_sae_layers) and set(neox.R) == {cfg.base_expansion}
    assert neox.explained_variance.between(0, 1).all() and (neox.test_tokens == table.test_tokens.iloc[0]).all()
    assert {"trained", "step0"} <= set(arch.variant)

    gaps = pd.read_csv(build / "smoke" / "why_default" / "gaps.csv")
    assert (gaps[gaps.is_baseline].gap_closed.dropna() == 0).all()
    for name in ("06_residual_stats", "06_why_factors", "06_architecture"):
        for ext in ("png", "pdf", "csv", "manifest.json"):
            assert (figures / "smoke" / f"{name}.{ext}").stat().st_size > 0
    nb = json.loads((build / "smoke" / "executed" / "06_why_default_differs.ipynb").read_text())
    shown = [
        o["data"]["text/markdown"]
        for c in nb["cells"]
        for o in c.get("outputs", [])
        if "text/markdown" in o.get("data", {})
    ]
    assert any("Answer:" in "".join(t) for t in shown)
    text = "".join("".join(t) for t in shown)
    assert "Architecture: " in text and "Pythia-shaped GPT-NeoX at initialization" in text
    assert f"Training on {max(cfg.token_budgets):,} instead of {min(cfg.token_budgets):,} tokens" in text

    # the controlled comparisons: every cell at its matched layers, its SAEs, the prediction and the Gaussian control
    cells = pd.read_csv(figures / "smoke" / "06_init_cells.csv")
    assert set(cells.source) == set(cfg.init_cells)
    stats_rows = cells[cells.token_share.notna()]
    assert stats_rows.depth_fraction.between(0, 1).all() and stats_rows.token_share_adj.between(-0.1, 1).all()
    sae_rows = cells[cells.explained_variance.notna()]
    assert set(sae_rows.source) == set(cfg.init_cells) and (sae_rows.train_tokens_seen == cfg.cell_train_tokens).all()
    pred = pd.read_csv(figures / "smoke" / "06_prediction.csv")
    assert set(cfg.init_cells) <= set(pred.source) and "trained" not in set(pred.source)
    # random draws follow their weights: the predicted rms within 15% of the measured one at every layer
    assert (pred.pred_rms / pred.norm_rms).between(0.85, 1.15).all()
    gauss = pd.read_csv(figures / "smoke" / "06_gaussian.csv")
    assert {(v, x) for v in cfg.variants for x in cfg.gauss_layers} <= set(zip(gauss.source, gauss.layer))
    assert gauss.gauss_explained_variance.between(-0.5, 1).all()
    assert np.allclose(gauss.ev_minus_gauss, gauss.explained_variance - gauss.gauss_explained_variance)
    for col in ("detector_share", "detector_control", "detector_cos_median", "detector_cos_median_control"):
        assert table[col].between(0, 1).all(), col
    assert (table.ev_top_pcs_out <= 1).all()
    assert "the architecture (GPT-NeoX minus Llama) moves it by" in text and "trained on a Gaussian" in text

    # intervals over SAE seeds: every SAE the answer reads is trained at each seed; the tables hold their means
    seeds = pd.read_csv(figures / "smoke" / "06_seed_rows.csv")
    all_seeds = {cfg.seed, *cfg.extra_seeds}
    for part, keys in (("sweep", ["factor", "value", "source", "layer", "R"]), ("cells", ["source", "layer"])):
        rows = seeds[seeds.part == part]
        base = rows[rows.layer.isin(cfg.seed_layers) & (rows["R"] == cfg.base_expansion)] if part == "sweep" else rows
        assert (base.groupby(keys).seed.apply(set) == [all_seeds] * base.groupby(keys).ngroups).all()
        assert rows[~rows.index.isin(base.index)].seed.eq(cfg.seed).all()  # the rest: one seed
    # the seed mean in the figure's table is the mean of the per-seed rows
    sweep = seeds[seeds.part == "sweep"]
    src, layer = "trained", cfg.seed_layers[0]
    one = sweep[(sweep.source == src) & (sweep.layer == layer) & (sweep.factor == "width")]
    one = one[one["R"] == cfg.base_expansion]
    got = table[(table.source == src) & (table.layer == layer) & (table.factor == "width")]
    got = got[got["R"] == cfg.base_expansion]
    assert got.n_seeds.iloc[0] == len(all_seeds) and got.explained_variance.iloc[0] == pytest.approx(
        one.explained_variance.mean()
    )
    assert one.explained_variance.nunique() == len(all_seeds)  # another seed is another SAE
    g = seeds[seeds.part == "gaussian"]
    assert set(g[g.layer.isin(cfg.seed_layers)].seed) == all_seeds and np.allclose(
        g.ev_minus_gauss, g.explained_variance - g.gauss_explained_variance
    )
    # the answer's SAE numbers carry intervals: "0.41 [0.40, 0.42]"
    assert "Brackets: 95% intervals over SAE seeds" in text
    assert re.search(r"The SAEs' explained variance: -?\d\.\d\d \[-?\d\.\d\d, -?\d\.\d\d\]", text)
    if "of the gap on average" in text:  # smoke may have no gap to close
        assert re.search(r"closes -?\d+ \[-?\d+, -?\d+\]% of the gap", text)


def test_missing_caches_name_notebook_03(tmp_dirs):
    exp = SAEPipeline(resolve("03_sae_training", "smoke"))
    with pytest.raises(StageError, match="03_sae_training"):
        require_caches(exp, ["trained"], [0], "smoke", "06", plain=True)


def test_bad_parameters_fail_before_work():
    for overrides, name in [
        ({"base_expansion": 8}, "base_expansion"),
        ({"embedding_scales": [2.0]}, "embedding_scales"),
        ({"token_budgets": [6144]}, "token_budgets"),
        ({"variants": ["step0"]}, "variants"),
        ({"factor_variants": ["trained"]}, "factor_variants"),
        ({"token_budgets": [3072, 100]}, "token_budgets"),
        ({"wide_variants": ["step0"]}, "wide_variants"),
        ({"wide_layers": [9]}, "wide_layers"),
        ({"neox_sae_layers": [0, 3]}, "neox_sae_layers"),
        ({"extra_seeds": [0]}, "extra_seeds"),
        ({"seed_layers": [7]}, "seed_layers"),
    ]:
        with pytest.raises(ParameterError, match=name):
            resolve("06_why_default_differs", "smoke", overrides)
