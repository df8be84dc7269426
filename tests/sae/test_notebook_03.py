"""Notebook 03 end to end under the smoke profile: metrics table, figure, index, and reuse on rerun."""

from __future__ import annotations

import json
import re

import pytest

from rsae_utils.errors import ParameterError, StageError
from rsae_utils.params import resolve
from rsae_utils.sae.cache import open_cache
from rsae_utils.sae.pipeline import SAEPipeline
from rsae_utils.sae.train import load_record

pytestmark = pytest.mark.slow

VARIANTS = {"trained", "rerandomized_incl_emb", "rerandomized_excl_emb", "step0", "control"}


def _artifacts(build):
    work = build / "smoke"
    files = sorted(work.glob("saes/**/sae_weights.safetensors")) + sorted(work.glob("caches/**/shard-*.safetensors"))
    files += sorted(work.glob("saes/**/training_record.json")) + sorted(work.glob("metrics/**/metrics.csv"))
    return {str(p): p.stat().st_mtime_ns for p in files}


def test_smoke_run_metrics_and_reuse(smoke_run, smoke_env):
    from rsae_utils.sae.metrics import wide
    from rsae_utils.sae.pipeline import trained_runs
    from rsae_utils.sae.train import load_sae
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
    # tiny-random has no step-0 checkpoint: the index (and every figure from it) labels the stand-in as such
    assert set(runs[runs.variant == "step0"].label) == {"Step-0 (architecture init)"}
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
    for overrides, name in [
        ({"layers": [0, 4]}, "layers"),
        ({"k": 1000}, "k"),
        ({"variants": ["random"]}, "variants"),
        ({"model": "no-such-model"}, "model"),
        ({"corpus": "nowhere"}, "corpus"),
        ({"n_spliced_windows": 99}, "n_spliced_windows"),
    ]:
        with pytest.raises(ParameterError, match=name):
            resolve("03_sae_training", "smoke", overrides)


def test_streamed_training_caches_only_the_test_split(tmp_dirs):
    """train_from='stream' (the paper profile's mode): SAEs train on activations made on the fly."""
    cfg = resolve(
        "03_sae_training",
        "smoke",
        {
            "train_from": "stream",
            "trainer": "sae-lens",
            "variants": ["trained", "control"],
            "layers": [0, 3],
            "train_tokens": 4096,
        },
    )
    exp = SAEPipeline(cfg)
    for variant in cfg.variants:
        exp.build_cache(variant)
        exp.train(variant)
    table = exp.measure_all()
    assert set(zip(table.variant, table.layer)) == {(v, x) for v in ("trained", "control") for x in (0, 3)}
    for variant in ("trained", "control"):
        cache = open_cache(exp.cache_dir(variant))
        assert list(cache.manifest["n_windows"]) == ["test"]  # no training split on disk
        for layer in (0, 3):
            rec = load_record(exp.sae_dir(variant, layer))
            assert rec["source"] == "stream" and rec["tokens_trained"] == 4096
            assert rec["layers_trained_together"] == [0, 3]
    fvu = table[(table.metric == "fvu") & (table.variant == "trained")].value
    assert (fvu < 1.0).all()


def test_stages_never_start_an_earlier_stage(tmp_dirs):
    """Asking for SAEs before their cache, or metrics before their SAEs, names the call to make first."""
    cfg = resolve("03_sae_training", "smoke", {"variants": ["trained"], "layers": [0], "train_tokens": 1024})
    exp = SAEPipeline(cfg)
    with pytest.raises(StageError, match=r"build_cache\('trained'\) first"):
        exp.train("trained")
    assert not exp.cache_dir("trained").exists() and exp._loaded is None  # nothing was harvested, nothing loaded
    exp.build_cache("trained")
    with pytest.raises(StageError, match=r"train\('trained'\) first"):
        exp.measure("trained")
    exp.train("trained")
    assert set(exp.measure("trained").layer) == {0}


def test_caches_that_cannot_fit_on_disk_are_refused_before_any_work(monkeypatch, tmp_dirs):
    from rsae_utils.params import budget

    monkeypatch.setattr(budget, "free_disk_bytes", lambda path: 10**6)  # 1 MB free
    with pytest.raises(ParameterError, match="train_from='stream'") as info:
        resolve("03_sae_training", "smoke")
    # sizes in a unit that fits: the smoke caches are megabytes, not "0.0 GB"
    msg = str(info.value)
    assert re.search(r"would take [0-9.]+ MB .* but 1\.0 MB is free", msg) and "0.0 GB" not in msg
    # streaming caches only the held-out windows: a small test split fits
    monkeypatch.setattr(budget, "free_disk_bytes", lambda path: 10**7)
    assert resolve("03_sae_training", "smoke", {"train_from": "stream", "trainer": "sae-lens"}).train_from == "stream"
    with pytest.raises(ParameterError, match="'trainer' 'fast' trains from the cache only"):
        resolve("03_sae_training", "smoke", {"train_from": "stream"})
