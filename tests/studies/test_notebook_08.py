"""Notebook 08 end to end under the smoke profile (after notebook 03): its tables, figures and invariants, the reuse
of finished SAEs, and the refusal to run without notebook 03."""

from __future__ import annotations

import warnings

import pandas as pd
import pytest

from rsae_utils import paths
from rsae_utils.errors import StageError
from rsae_utils.params import resolve
from rsae_utils.sae.pipeline import SAEPipeline
from rsae_utils.store import load_table
from rsae_utils.studies.critique.run import SCORERS, SERIES, critique_sae, select_runs

pytestmark = pytest.mark.slow


def test_smoke_run_tables_figures_and_invariants(smoke_run, smoke_env):
    build, figures = smoke_env
    smoke_run("03")
    smoke_run("08")
    cfg = resolve("08_critique", "smoke")
    runs = select_runs("smoke", cfg.variants, cfg.layers)
    saes = {(v, int(x)) for v, x in zip(runs.variant, runs.layer, strict=True)}
    tables = paths.critique_tables_dir("smoke")

    scores = load_table(tables / "scorers.csv")
    assert set(scores.scorer) == set(SERIES) and set(zip(scores.variant, scores.layer)) == saes
    ok = scores.auroc.notna()
    assert ok.mean() > 0.9, "nearly every (SAE, scorer) has latents with both classes"
    s = scores[ok]
    assert s.auroc.between(0, 1).all() and s.auroc_lo.between(0, 1).all() and s.auroc_hi.between(0, 1).all()
    assert ((s.auroc_lo <= s.auroc + 1e-12) & (s.auroc <= s.auroc_hi + 1e-12)).all()
    assert (s.n_latents <= cfg.n_latents).all()
    gaps = scores[scores.scorer.isin(SCORERS) & scores.gap.notna()]
    assert gaps.gap.between(-1, 1).all()
    assert ((gaps.gap_lo <= gaps.gap + 1e-12) & (gaps.gap <= gaps.gap_hi + 1e-12)).all()
    assert scores[~scores.scorer.isin(SCORERS)].reference.isna().all()

    pos = load_table(tables / "positional_summary.csv")
    assert set(pos.boundary) == {"exclude", "include"} and set(zip(pos.variant, pos.layer)) == saes
    for col in ("positional_share", "control_share", "boundary_latent_share", "positional_not_boundary_share"):
        assert pos[col].dropna().between(0, 1).all(), col
    assert ((pos.n_positional <= pos.n_judged) & (pos.n_judged <= pos.n_live)).all()
    assert (pos.positional_not_boundary_share <= pos.positional_share + 1e-12).all()
    # every SAE and view was retested on cfg.window_halves random halves of its contexts
    assert (pos.n_halves == cfg.window_halves).all()
    assert (pos.positional_share_window_sd.dropna() >= 0).all() and (pos.excess_window_sd.dropna() <= 1).all()
    top = load_table(tables / "top_positional.csv")
    assert (top.groupby("variant").size() <= cfg.top_n).all() and top.eta2.between(0, 1).all()

    diag = load_table(tables / "diagnostics.csv")
    assert set(zip(diag.variant, diag.layer)) == saes
    assert diag.max_dec_cos_mean.between(-1, 1).all() and diag.enc_dec_cos_mean.between(-1, 1).all()
    assert (diag.rel_recon_bias > 0).all() and (diag.l2_ratio > 0).all() and diag.duplicate_share.between(0, 1).all()
    assert (diag.n_sampled <= cfg.n_latents).all() and (diag.n_live <= diag.n_latents_total).all()

    single = load_table(tables / "single_token.csv")
    assert single.single_token_share.between(0, 1).all()
    for name in ("08_positional", "08_scorers", "08_diagnostics"):
        for ext in ("png", "pdf", "csv", "manifest.json"):
            assert (figures / "smoke" / f"{name}.{ext}").stat().st_size > 0
    assert len(pd.read_csv(figures / "smoke" / "08_scorers.csv")) == len(scores)

    # the notebook's artifacts are reused, not remeasured
    run, exclude = runs.iloc[0], SAEPipeline(resolve("03_sae_training", "smoke")).exclude_tokens
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # cached_artifact warns when it rebuilds
        first = critique_sae(run, cfg, paths.critique_dir("smoke"), exclude)
        stamp = (first.path / "manifest.json").stat().st_mtime_ns
        again = critique_sae(run, cfg, paths.critique_dir("smoke"), exclude)
    assert (again.path / "manifest.json").stat().st_mtime_ns == stamp
    assert again.latents.equals(first.latents)
    halves = first.halves
    assert set(halves.control) == {False, True} and set(halves.half) == set(range(cfg.window_halves))
    assert (halves.n_positional <= halves.n_judged).all() and halves.equals(again.halves)


def test_missing_sae_index_names_notebook_03(tmp_dirs):
    with pytest.raises(StageError, match="03_sae_training"):
        select_runs("smoke", ["trained"])
