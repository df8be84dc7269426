"""Smoke runs of notebooks 04 and 05 (after notebook 03's smoke run), with assertions on what they write."""

import json

import numpy as np
import pandas as pd
import pytest

from rsae_utils.store import load_table


@pytest.mark.slow
def test_notebooks_04_and_05_smoke(smoke_run, smoke_env):
    build, figures = smoke_env
    smoke_run("03")
    smoke_run("04")
    tables = build / "smoke" / "autointerp" / "tables"
    ex = load_table(tables / "examples.csv")
    lat = load_table(tables / "latents.csv")
    unp = load_table(tables / "unparsable.csv")
    stats = load_table(tables / "latent_stats.csv")
    runs = load_table(build / "smoke" / "sae_runs.csv")

    # the token baseline scored every SAE of notebook 03; the local LLM the sampled trained latents at layer 0
    base = lat[lat.backend == "token-baseline"]
    assert set(zip(base.variant, base.layer)) == set(zip(runs.variant, runs.layer))
    llm = lat[lat.backend != "token-baseline"]
    assert set(llm.backend) == {"local:SmolLM2-135M-Instruct"}
    assert set(zip(llm.variant, llm.layer)) == {("trained", 0)}
    assert set(llm.scorer) == {"detection", "fuzzing"}
    assert llm["explanation"].str.len().gt(0).all()

    # every answered probability is a probability; unparsable ones are empty and counted
    ok = ex[~ex.unparsable.astype(bool)]
    assert ok["probability"].between(0, 1).all()
    assert ex[ex.unparsable.astype(bool)]["probability"].isna().all()
    assert unp["n_answers"].sum() == len(ex) and unp["n_unparsable"].sum() == int(ex.unparsable.sum())
    assert set(ex.label) <= {0, 1}
    finite = lat["auroc"].dropna()
    assert len(finite) > 0 and finite.between(0, 1).all()

    # per-latent token statistics
    assert np.all(stats["entropy_nats"].dropna() >= 0)
    assert stats["single_token"].isin([True, False]).all()

    smoke_run("05")
    figs = figures / "smoke"
    for name in (
        "roc_token_baseline",
        "roc_llm_local",
        "auroc_vs_layer",
        "entropy_vs_layer",
        "entropy_vs_auroc",
        "llm_minus_token_baseline",
    ):
        assert (figs / f"{name}.png").exists() and (figs / f"{name}.pdf").exists(), name
        man = json.loads((figs / f"{name}.manifest.json").read_text())
        assert man["profile"] == "smoke" and man["notebook"] == "05_roc_entropy"
    assert (figs / "entropy_vs_auroc.html").exists()
    auc = pd.read_csv(figs / "auroc_vs_layer.csv")
    assert ((auc.auroc_lo <= auc.auroc + 1e-12) & (auc.auroc <= auc.auroc_hi + 1e-12)).all()
    page = (figs / "latent_browser.html").read_text()
    assert "https://" not in page and "<script src" not in page
    assert '"variant": "trained"' in page
