"""Notebook 09 end to end under the smoke profile: its tables hold every snapshot at every budget with measures
in range, the repetition run sees a quarter of the windows at the same budget, and the summaries agree with the
table they summarise."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from rsae_utils.params import resolve
from rsae_utils.sae.snapshots import geometric_budgets
from rsae_utils.studies.budget.curves import last_change

pytestmark = pytest.mark.slow


def test_smoke_run_tables_and_invariants(smoke_run, smoke_env):
    _, figures = smoke_env
    smoke_run("09")
    cfg = resolve("09_training_budget", "smoke")
    t = pd.read_csv(figures / "smoke" / "09_training_budget.csv")
    budgets = geometric_budgets(cfg.budget_start, cfg.budget_stop, cfg.budget_factor)
    main0 = t[(t.run == "main") & (t.seed == 0)]
    for (v, layer), g in main0.groupby(["variant", "layer"]):
        assert sorted(g.tokens) == budgets, (v, layer)
        assert (g.steps == g.tokens // cfg.batch_size).all()
    assert set(main0.variant) == set(cfg.variants) and set(main0.layer) == set(cfg.layers)
    seed1 = t[(t.run == "main") & (t.seed == cfg.seeds[1])]
    assert set(seed1.tokens) == {b for b in budgets if b <= cfg.seed_budget_max}
    assert set(seed1.variant) == set(cfg.seed_variants)
    for col in ("explained_variance", "ev_top_pcs_out", "cos_sim"):
        assert (t[col] <= 1 + 1e-6).all(), col
    for col in ("dead_fraction", "single_token_share", "detection_auroc", "fuzzing_auroc", "seed_shared"):
        assert t[col].dropna().between(0, 1).all(), col
    assert (t.median_token_fvu >= 0).all()
    # latent measures for seed 0 only; the seed-shared share on seed 0's rows where seed 1 has the budget
    assert seed1.detection_auroc.isna().all() and main0.detection_auroc.notna().any()
    seeded = main0[(main0.tokens <= cfg.seed_budget_max) & main0.variant.isin(cfg.seed_variants)]
    assert seeded.seed_shared.notna().all()
    # the repetition run: same budget, a quarter of the windows, ~4x the epochs
    rep = t[t.run == "repeat"]
    assert set(rep.variant) == set(cfg.repeat_variants) and (rep.tokens == cfg.repeat_budget).all()
    assert (rep.unique_tokens * cfg.repeat_factor == cfg.n_train_windows * cfg.ctx).all()
    assert rep.train_fvu_repeat_windows.notna().all()

    curves = pd.read_csv(figures / "smoke" / "09_budget_curves.csv")
    for r in curves[curves.measure == "explained_variance"].itertuples():
        g = main0[(main0.variant == r.variant) & (main0.layer == r.layer)]
        assert r.change_last_step == pytest.approx(last_change(g.tokens, g.explained_variance))
        assert r.settled == (abs(r.change_last_step) <= r.tol)
    gaps = pd.read_csv(figures / "smoke" / "09_budget_gaps.csv")
    assert set(gaps.variant) == set(cfg.variants) - {cfg.variants[0]}
    assert set(gaps.trend) <= {"grows", "shrinks", "holds", "changes sign"}
    ref = main0[(main0.variant == cfg.variants[0])].set_index(["layer", "tokens"]).explained_variance
    for r in gaps[gaps.measure == "explained_variance"].itertuples():
        other = main0[main0.variant == r.variant].set_index(["layer", "tokens"]).explained_variance
        want = ref[(r.layer, r.tokens_last)] - other[(r.layer, r.tokens_last)]
        assert np.isclose(r.gap_last, want)
