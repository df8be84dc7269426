"""Notebook 03 end to end under the smoke profile: metrics table, figure, index, and reuse on rerun."""

from __future__ import annotations

import json

import pytest

from rsae_utils.profiles import ParameterError, resolve

pytestmark = pytest.mark.slow

VARIANTS = {"trained", "rerandomized_incl_emb", "rerandomized_excl_emb", "step0", "control"}


def _artifacts(build):
    work = build / "smoke"
    files = sorted(work.glob("saes/**/sae_weights.safetensors")) + sorted(work.glob("caches/**/shard-*.safetensors"))
    files += sorted(work.glob("saes/**/training_record.json")) + sorted(work.glob("metrics/**/metrics.csv"))
    return {str(p): p.stat().st_mtime_ns for p in files}


def test_smoke_run_metrics_and_reuse(smoke_run, smoke_env):
    from rsae_utils.experiment import load_sae, open_cache, trained_runs
    from rsae_utils.metrics import wide
    from rsae_utils.store import load_table

    build, figures = smoke_env
    smoke_run("03")
    cfg = resolve("03_sae_training", "smoke")
    layers = set(cfg.layers)

    table = load_table(build / "smoke" / "metrics.csv")
    w = wide(table).set_index(["variant", "layer"])
    assert {(v, layer) for v in VARIANTS for layer in layers} == set(w.index)
    assert w.notna().all().all()
    assert ((w.explained_variance <= 1.0) & (w.fvu >= 0)).all()
    assert ((w.cos_sim > 0) & (w.cos_sim <= 1.0 + 1e-6)).all()
    assert (w.l0 - cfg.k).abs().max() < 1e-6  # TopK: exactly k active latents per token
    assert ((w.dead_fraction >= 0) & (w.dead_fraction <= 1)).all()
    assert (w.kl_div >= 0).all() and (w.l1 > 0).all()
    assert (w.loc["trained"].fvu < 1.0).all()  # the SAEs learned something

    for ext in ("png", "pdf", "html", "csv", "manifest.json"):
        assert (figures / "smoke" / f"fig2_sae_metrics.{ext}").stat().st_size > 0
    manifest = json.loads((figures / "smoke" / "fig2_sae_metrics.manifest.json").read_text())
    assert manifest["profile"] == "smoke" and "timings_s" in manifest

    # the index notebook 04 reads
    runs = trained_runs("smoke")
    assert len(runs) == len(VARIANTS) * len(layers)
    row = runs.iloc[0]
    sae = load_sae(row.sae_dir)
    cache = open_cache(row.cache_dir)
    assert sae.cfg.d_in == cache.d_model and cache.tokens("test").shape[1] == cfg.ctx
    assert cache.acts(int(row.layer), "test").shape == (cfg.n_test_windows, cfg.ctx, cache.d_model)

    # a second run reuses every cache, SAE and metric: nothing is rewritten
    before = _artifacts(build)
    assert len(before) > 0
    smoke_run("03", force=True)
    assert _artifacts(build) == before
    runs2 = trained_runs("smoke")
    assert list(runs2.runtime_s) == list(runs.runtime_s)


def test_bad_parameters_fail_before_loading():
    for overrides, name in [({"layers": [0, 4]}, "layers"), ({"k": 1000}, "k"), ({"variants": ["random"]}, "variants"),
                            ({"model": "no-such-model"}, "model"), ({"corpus": "nowhere"}, "corpus"),
                            ({"n_spliced_windows": 99}, "n_spliced_windows")]:
        with pytest.raises(ParameterError, match=name):
            resolve("03_sae_training", "smoke", overrides)
