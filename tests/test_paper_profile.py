"""The ``paper`` profile end to end on stand-ins, offline: notebook 03 (Pythia from the hub cache, the rpj-v2-sample
layout streamed from a local mirror, train[:15%] for the SAEs and the disjoint train[25%:30%] for the held-out
cache, SAEs trained on streamed activations, metrics) and notebook 04 (token baseline, and the explainer and scorers
through the project's own OpenAI-compatible server), at tiny size. Only the sizes are overridden: model name,
revision, variants, corpora, cache dtype, training mode and LLM backend are the paper profile's own."""

from __future__ import annotations

import pytest
from _serve import serving
from _tiny_pythia import write_tiny_pythia
from test_paper_path import documents, write_mirror

from rsae_utils.nbrun import run_notebook
from rsae_utils.params import resolve
from rsae_utils.sae.cache import open_cache
from rsae_utils.sae.pipeline import trained_runs
from rsae_utils.sae.train import load_record
from rsae_utils.store import load_table
from rsae_utils.subject.hf_text import MIRROR_ENV

pytestmark = pytest.mark.slow

TINY_03 = {
    "layers": [0, 1],
    "ctx": 32,
    "n_train_windows": 48,
    "n_test_windows": 12,
    "n_spliced_windows": 6,
    "harvest_batch": 8,
    "expansion": 4,
    "k": 8,
    "train_tokens": 4096,
    "batch_size": 256,
    "lr": 3e-3,
    "device": "cpu",
    "torch_threads": 1,
}
TINY_04 = {
    "n_latents": 4,
    "min_examples": 4,
    "n_explain": 2,
    "explain_pool": 3,
    "n_bins": 2,
    "per_bin": 1,
    "n_negatives": 3,
    "explainer_max_tokens": 24,
    "llm_n_latents": 1,
    "llm_variants": ["trained"],
    "llm_layers": [0],
    "device": "cpu",
    "llm_timeout_s": 120.0,
}


def test_paper_profile_end_to_end_on_stand_ins(tmp_dirs, tmp_path, monkeypatch):
    build, figures = tmp_dirs
    docs = documents(200)
    write_tiny_pythia(tmp_path / "hub", docs)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))  # the notebook kernels inherit these
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv(MIRROR_ENV, str(write_mirror(tmp_path / "datasets", docs)))
    cfg = resolve("03_sae_training", "paper", TINY_03)
    assert (cfg.model, cfg.train_from, cfg.cache_dtype) == ("pythia-70m", "stream", "float16")
    assert cfg.corpus.endswith("rpj-v2-sample:train[:15%]") and cfg.test_corpus.endswith("train[25%:30%]")

    run_notebook("03", "paper", TINY_03, progress=False)
    work = build / "paper"
    runs = trained_runs("paper")
    assert len(runs) == 5 * 2 and set(runs.layer) == {0, 1}
    assert set(runs[runs.variant == "step0"].label) == {"Step-0"}  # Pythia's own step0 checkpoint, no stand-in
    for variant in set(runs.variant):
        cache = open_cache(runs[runs.variant == variant].cache_dir.iloc[0])
        assert list(cache.manifest["n_windows"]) == ["test"] and cache.manifest["dtype"] == "float16"
        assert cache.manifest["test_corpus_source"].endswith("train[25%:30%]")
    rec = load_record(runs.sae_dir.iloc[0])
    assert rec["source"] == "stream" and rec["tokens_trained"] == 4096
    table = load_table(work / "metrics.csv")
    assert table.value.notna().all() and {"fvu", "kl_div"} <= set(table.metric)
    assert (figures / "paper" / "fig2_sae_metrics.png").stat().st_size > 0

    with serving(tmp_path / "server.log") as url:
        run_notebook(
            "04",
            "paper",
            {**TINY_04, "endpoint_url": url, "endpoint_model": "smollm2-135m", "endpoint_structured": "guided_regex"},
            progress=False,
        )
    assert resolve("04_autointerp", "paper").llm_backends == ["openai"]
    tables = work / "autointerp" / "tables"
    lat = load_table(tables / "latents.csv")
    llm = lat[lat.backend.str.startswith("openai:")]
    assert set(llm.scorer) == {"detection", "fuzzing"} and set(llm.variant) == {"trained"} and set(llm.layer) == {0}
    assert (llm.n_scored > 0).all() and (llm.n_unparsable == 0).all() and llm.explanation.str.len().gt(0).all()
    assert (llm.auroc.notna() | (llm.n_pos == llm.n_scored)).all()  # AUROC needs windows of both labels
    baseline = lat[lat.backend == "token-baseline"]
    assert set(baseline.variant) == set(runs.variant)  # the token baseline scores every variant's SAEs
