"""Notebook 06's building blocks on known answers: variant options, their caches, the sweep grid, per-latent token
statistics, SAE training and measuring, the gap table and the answer in words."""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd
import pytest
import torch

from rsae_utils.errors import ParameterError
from rsae_utils.sae.cache import cache_key
from rsae_utils.sae.harvest import harvest
from rsae_utils.studies.why.answer import MIN_GAP, answer, architecture_sentences, budget_sentences, gap_table
from rsae_utils.studies.why.caches import neox_cache, option_cache
from rsae_utils.studies.why.seed_intervals import by_seed
from rsae_utils.studies.why.sweep import (
    NEOX,
    Cell,
    SweepSpec,
    architecture_cells,
    latent_token_stats,
    nb03_sae,
    option_sets,
    source_name,
    sweep_cells,
    train_measure,
    width_lr,
)
from rsae_utils.subject.models import load_model
from rsae_utils.subject.rerandomize import make_variant, options_tag, variant_options
from rsae_utils.subject.variants import variant_label
from tests._tiny_model import tiny_model, tiny_windows


@pytest.fixture(scope="module")
def tiny():
    return load_model("tiny-random")


def test_variant_options_name_only_what_differs():
    assert variant_options() == {} and options_tag({}) == ""
    opts = variant_options(rerandomize_norms=False, embedding_scale=16)
    assert opts == {"rerandomize_norms": False, "embedding_scale": 16.0}
    assert options_tag(opts) == "norms-kept_emb-x16"
    assert source_name("rerandomized_incl_emb", {"embedding_scale": 4.0}) == "rerandomized_incl_emb+emb-x4"
    assert source_name("trained") == "trained"


def test_embedding_scale_scales_w_e_and_keeps_the_tie(tiny):
    base, _ = make_variant(tiny, "rerandomized_incl_emb", seed=1)
    big, rec = make_variant(tiny, "rerandomized_incl_emb", seed=1, embedding_scale=4.0)
    assert torch.allclose(big.embed.W_E, 4.0 * base.embed.W_E)
    assert torch.equal(big.unembed.W_U, big.embed.W_E.T) and rec["embedding_scale"] == 4.0
    assert torch.equal(big.blocks[0].attn.W_Q, base.blocks[0].attn.W_Q)  # nothing else changes
    kept, _ = make_variant(tiny, "rerandomized_incl_emb", seed=1, rerandomize_norms=False)
    assert torch.equal(kept.blocks[0].ln1.w, tiny.model.blocks[0].ln1.w)
    for bad in (0.0, -1.0, float("nan"), True):
        with pytest.raises(ParameterError, match="embedding_scale"):
            make_variant(tiny, "trained", embedding_scale=bad)


def test_output_scale_scales_the_output_projections_only(tiny):
    base, _ = make_variant(tiny, "rerandomized_incl_emb", seed=1)
    low, rec = make_variant(tiny, "rerandomized_incl_emb", seed=1, output_scale=0.25)
    for b0, b1 in zip(base.blocks, low.blocks):
        assert torch.allclose(b1.attn.W_O, 0.25 * b0.attn.W_O) and torch.allclose(b1.mlp.W_out, 0.25 * b0.mlp.W_out)
        assert torch.equal(b1.attn.W_V, b0.attn.W_V) and torch.equal(b1.mlp.W_in, b0.mlp.W_in)
    assert rec["output_scale"] == 0.25 and options_tag(variant_options(output_scale=0.25)) == "out-x0.25"
    with pytest.raises(ParameterError, match="output_scale"):
        make_variant(tiny, "step0", output_scale=0.5)  # only the re-randomization rule has trained stds to scale
    with pytest.raises(ParameterError, match="output_scale"):
        make_variant(tiny, "rerandomized_incl_emb", output_scale=0.0)


def test_output_scale_cells_hold_the_baseline():
    cells = sweep_cells(
        ["trained"], ["rerandomized_incl_emb"], [0], [4], 4, [1.0], False, [512], 512, (), (), [1.0, 0.1]
    )
    out = [c for c in cells if c.factor == "output_scale"]
    assert [c.value for c in out] == [1.0, 0.1]
    assert out[0].options == () and out[1].options == (("output_scale", 0.1),)
    assert out[1].source == "rerandomized_incl_emb+out-x0.1"


def test_cache_key_unchanged_without_options_and_changed_with_them():
    w = tiny_windows()
    meta = {"model": "m", "variant": "rerandomized_incl_emb", "seed": 42, "corpus_sha256": "c"}
    k0 = cache_key(meta, [0], w, "float32", 64)
    assert cache_key({**meta, "variant_options": {}}, [0], w, "float32", 64) == k0
    assert cache_key({**meta, "variant_options": {"embedding_scale": 4.0}}, [0], w, "float32", 64) != k0


def test_option_cache_harvests_once_on_the_base_windows(tmp_path):
    model = tiny_model()
    base = harvest(
        model,
        tiny_windows(),
        [0, 1],
        tmp_path / "base",
        {"model": "tiny", "variant": "rerandomized_incl_emb", "seed": 0, "corpus_sha256": "c"},
    )
    calls = []

    def make():
        calls.append(1)
        with torch.no_grad():
            m = tiny_model()
            m.embed.W_E.mul_(4.0)
        return m, {"variant": "rerandomized_incl_emb", "embedding_scale": 4.0}

    out = option_cache(base, {"embedding_scale": 4.0}, [0], tmp_path / "x4", make)
    assert calls == [1] and out.layers == [0] and out.manifest["variant_options"] == {"embedding_scale": 4.0}
    for split in ("train", "test"):
        assert torch.equal(out.tokens(split), base.tokens(split))
    assert not torch.allclose(out.acts(0, "test"), base.acts(0, "test"))
    again = option_cache(base, {"embedding_scale": 4.0}, [0], tmp_path / "x4", make)
    assert calls == [1] and again.manifest["key"] == out.manifest["key"]


def test_sweep_cells_one_factor_at_a_time():
    cells = sweep_cells(
        ["trained", "rerandomized_incl_emb"],
        ["rerandomized_incl_emb"],
        [0, 9],
        [4, 16, 64],
        4,
        [1.0, 4.0, 16.0],
        True,
        [61_440],
        61_440,
    )
    assert len(cells) == 2 * (2 * 3 + 2 + 3)
    assert {c.factor for c in cells} == {"width", "norm_gains", "embedding_scale"}  # one budget: no token sweep
    assert all(c.expansion == 4 and c.n_tokens == 61_440 for c in cells if c.factor != "width")
    assert option_sets(cells) == [
        ("trained", ()),
        ("rerandomized_incl_emb", ()),
        ("rerandomized_incl_emb", (("rerandomize_norms", False),)),
        ("rerandomized_incl_emb", (("embedding_scale", 4.0),)),
        ("rerandomized_incl_emb", (("embedding_scale", 16.0),)),
    ]
    more = sweep_cells(["trained"], [], [0], [4], 4, [1.0], False, [100, 200], 100)
    assert [(c.factor, c.value) for c in more] == [("width", 4), ("train_tokens", 100), ("train_tokens", 200)]
    assert width_lr(2e-3, 4, 64) == pytest.approx(5e-4) and width_lr(2e-3, 4, 4) == 2e-3


def test_latent_token_stats_on_known_latents():
    tokens = torch.tensor([5, 1, 2, 3, 4, 5, 1, 2, 3, 4])
    z = torch.zeros(10, 3)
    z[tokens == 5, 0] = 2.0  # latent 0: only ever token 5 -> single-token, entropy 0
    z[tokens != 5, 1] = 1.0  # latent 1: tokens 1-4 evenly -> entropy log 4; latent 2 never fires
    out = latent_token_stats(lambda x: x, z, tokens, top_n=10, chunk=3)  # chunks merge their top-n
    assert out["dead_fraction_tok"] == pytest.approx(1 / 3)
    assert out["single_token_share"] == pytest.approx(0.5)
    assert out["token_entropy"] == pytest.approx(np.median([0.0, math.log(4)]))


def test_train_measure_is_cached_and_sane(tmp_path):
    model = tiny_model()
    cache = harvest(
        model,
        tiny_windows(n_train=40),
        [1],
        tmp_path / "c",
        {"model": "tiny", "variant": "trained", "seed": 0, "corpus_sha256": "c"},
    )
    spec = SweepSpec(expansion=2, k=4, n_tokens=1280, batch_size=128, lr=3e-3)
    rec = train_measure(cache, 1, spec, tmp_path / "sae", exclude_tokens=(0,), top_n=5)
    assert 0 < rec["explained_variance"] <= 1 and 0 < rec["cos_sim"] <= 1 and rec["l0"] <= 4 + 1e-9
    assert rec["steps"] == 10 and rec["d_sae"] == 64 and 0 <= rec["single_token_share"] <= 1
    assert rec["dead_fraction"] == pytest.approx(rec["dead_fraction_tok"])
    mtime = (tmp_path / "sae" / "metrics.json").stat().st_mtime_ns
    assert train_measure(cache, 1, spec, tmp_path / "sae", exclude_tokens=(0,), top_n=5) == rec
    assert (tmp_path / "sae" / "metrics.json").stat().st_mtime_ns == mtime


def test_a_cell_that_is_notebook_03s_sae_reads_it_and_measures_the_same(tmp_path):
    """Notebook 03's fast trainer and the sweep's trainer give the same SAE from the same spec, cache and seed, so
    a sweep cell that asks for notebook 03's SAE reads it (no training) and measures exactly what training gave."""
    from dataclasses import replace
    from types import SimpleNamespace

    from rsae_utils.sae.train import SAESpec, train_sae

    cache = harvest(
        tiny_model(),
        tiny_windows(n_train=40),
        [1],
        tmp_path / "c",
        {"model": "tiny", "variant": "trained", "seed": 0, "corpus_sha256": "c"},
    )
    spec = SweepSpec(expansion=2, k=4, n_tokens=5120, batch_size=128, lr=3e-3, seed=1)
    s03 = SAESpec(trainer="fast", expansion=2, k=4, n_tokens=5120, batch_size=128, lr=3e-3, seed=1, exclude_tokens=(0,))
    folder = train_sae(cache, 1, s03, tmp_path / "nb03" / "L01")
    nb03 = SimpleNamespace(
        spec=s03, cfg=SimpleNamespace(variants=["trained"], layers=[1]), sae_dir=lambda variant, layer: folder
    )
    cell = Cell("width", 2, "trained", (), 1, 2, 5120)
    assert nb03_sae(nb03, cell, spec) == folder
    assert nb03_sae(nb03, Cell("width", 2, "trained", (("embedding_scale", 16.0),), 1, 2, 5120), spec) is None
    assert nb03_sae(nb03, cell, SweepSpec(4, 4, 5120, 128, 3e-3, 1)) is None  # another width
    assert nb03_sae(nb03, Cell("width", 2, "trained", (), 0, 2, 5120), spec) is None  # a layer 03 did not train
    # another encoder-product dtype or dead-latent window is another SAE
    assert nb03_sae(nb03, cell, replace(spec, matmul_dtype="bfloat16")) is None
    assert nb03_sae(nb03, cell, replace(spec, dead_feature_window=3)) is None
    fresh = train_measure(cache, 1, spec, tmp_path / "fresh", exclude_tokens=(0,), top_n=5)
    read = train_measure(cache, 1, spec, tmp_path / "read", exclude_tokens=(0,), top_n=5, trained=folder)
    for key in (
        "explained_variance",
        "cos_sim",
        "l0",
        "dead_fraction",
        "token_entropy",
        "single_token_share",
        "train_fvu_end",
        "steps",
        "train_tokens_seen",
        "d_sae",
    ):
        assert read[key] == pytest.approx(fresh[key], rel=1e-6, abs=1e-7), key


def _table(rr_ev, trained_ev=0.8):
    """A sweep table: width R 4 / 64 for trained and rr; embedding scale 1 / 16 for rr, at layers 0 and 9."""
    rows = []
    for layer in (0, 9):
        for v, ev in (("trained", trained_ev), ("rerandomized_incl_emb", rr_ev)):
            rows.append(
                {
                    "factor": "width",
                    "value": 4,
                    "variant": v,
                    "source": v,
                    "layer": layer,
                    "R": 4,
                    "train_tokens": 100,
                    "explained_variance": ev,
                }
            )
            rows.append(
                {
                    "factor": "width",
                    "value": 64,
                    "variant": v,
                    "source": v,
                    "layer": layer,
                    "R": 64,
                    "train_tokens": 100,
                    "explained_variance": ev + 0.05,
                }
            )
        rows.append(
            {
                "factor": "embedding_scale",
                "value": 1.0,
                "variant": "rerandomized_incl_emb",
                "source": "rerandomized_incl_emb",
                "layer": layer,
                "R": 4,
                "train_tokens": 100,
                "explained_variance": rr_ev,
            }
        )
        rows.append(
            {
                "factor": "embedding_scale",
                "value": 16.0,
                "variant": "rerandomized_incl_emb",
                "source": "rerandomized_incl_emb+emb-x16",
                "layer": layer,
                "R": 4,
                "train_tokens": 100,
                "explained_variance": rr_ev + 0.6 * (trained_ev - rr_ev),
            }
        )
    return pd.DataFrame(rows)


def _stats():
    return pd.DataFrame(
        [
            {"source": v, "variant": v, "layer": x, "token_share_adj": s, "norm_median": n, "effective_dim": 10.0 * n}
            for v, x, s, n in (
                ("trained", 0, 0.9, 1.0),
                ("trained", 9, 0.7, 3.0),
                ("rerandomized_incl_emb", 0, 0.9, 1.0),
                ("rerandomized_incl_emb", 9, 0.2, 20.0),
            )
        ]
    )


BASE = {"width": 4, "embedding_scale": 1.0, "train_tokens": 100}


def test_gap_table_and_the_answer_name_the_factor_that_closes_the_gap():
    table = _table(rr_ev=0.3)
    gaps = gap_table(table, BASE)
    at9 = gaps[gaps.layer == 9].set_index(["factor", "value"])
    assert at9.loc[("width", 4), "gap"] == pytest.approx(0.5) and at9.loc[("width", 4), "gap_closed"] == 0
    # widening helps both models equally: the gap at the same width does not move
    assert at9.loc[("width", 64), "gap_closed"] == pytest.approx(0.0, abs=1e-12)
    assert at9.loc[("embedding_scale", 16.0), "gap_closed"] == pytest.approx(0.6)
    text = " ".join(answer(gaps, _stats(), table, BASE, [9]))
    assert "Answer: scaling the token embedding up closes most of the gap (60%" in text
    assert "0.70 of the trained" in text and "grows 3.0x (Trained), 20.0x" in text
    assert "effective 30 dimensions against Re-randomized (incl. emb.) 200" in text
    # the link sentence ranks the four (cache, layer) pairs at the base width: EV 0.8, 0.3, 0.8, 0.3 against token
    # shares 0.9, 0.9, 0.7, 0.2 (Spearman 0.24) and the other statistics' reverse order
    assert (
        "Across the 4 (cache, layer) pairs at the base width, the SAE's explained variance has Spearman "
        "correlation 0.24 with the residual stream's token-identity share, -0.24" in text
    )


def test_the_answer_says_none_or_no_gap_when_that_is_what_the_numbers_show():
    weak = _table(rr_ev=0.3)
    weak.loc[weak.source.str.contains("emb-x16"), "explained_variance"] = 0.32
    text = " ".join(answer(gap_table(weak, BASE), _stats(), weak, BASE, [9]))
    assert "Answer: none of these factors" in text
    same = _table(rr_ev=0.8 - MIN_GAP / 2)
    text = " ".join(answer(gap_table(same, BASE), _stats(), same, BASE, [9]))
    assert "there is no gap for a factor to close" in text


def test_the_answer_words_a_factor_whose_values_are_words():
    """The norm-gains sweep's values are "redrawn" / "kept": the answer names them without reading them as numbers."""
    table = _table(rr_ev=0.3)
    extra = [
        {
            "factor": "norm_gains",
            "value": val,
            "variant": "rerandomized_incl_emb",
            "source": src,
            "layer": layer,
            "R": 4,
            "train_tokens": 100,
            "explained_variance": ev,
        }
        for layer in (0, 9)
        for val, src, ev in (("redrawn", "rerandomized_incl_emb", 0.3), ("kept", "rr+gains-kept", 0.55))
    ]
    table = pd.concat([table, pd.DataFrame(extra)], ignore_index=True)
    base = {**BASE, "norm_gains": "redrawn"}
    gaps = gap_table(table, base)
    kept = gaps[(gaps.factor == "norm_gains") & (gaps.value == "kept") & (gaps.layer == 9)]
    assert kept.gap_closed.iloc[0] == pytest.approx(0.5)
    text = " ".join(answer(gaps, _stats(), table, base, [9]))
    assert "(gains redrawn -> gains kept)" in text and "closes 50% of the gap" in text


def test_the_answer_keeps_a_factors_capitals():
    table = _table(rr_ev=0.3)
    wide_rr = (table.factor == "width") & (table["R"] == 64) & (table.variant == "rerandomized_incl_emb")
    table.loc[wide_rr, "explained_variance"] = 0.7  # trained at R = 64: 0.85, so the gap goes 0.5 -> 0.15
    text = " ".join(answer(gap_table(table, BASE), _stats(), table, BASE, [9]))
    assert "Widening the SAE (R) (R = 4 -> R = 64)" in text and "closes 70% of the gap" in text


def test_wide_widths_only_at_the_chosen_layers_and_variants():
    cells = sweep_cells(
        ["trained", "rerandomized_incl_emb", "step0"],
        [],
        [0, 4, 9],
        [4, 16, 64],
        16,
        [1.0],
        False,
        [15_360, 61_440],
        61_440,
        wide_layers=[4, 9],
        wide_variants=["trained", "rerandomized_incl_emb"],
    )
    wide = {(c.variant, c.layer) for c in cells if c.factor == "width" and c.expansion == 64}
    assert wide == {(v, x) for v in ("trained", "rerandomized_incl_emb") for x in (4, 9)}
    # every variant and layer keeps its widths up to the base, and both budgets at the base width
    assert sum(c.factor == "width" and c.expansion <= 16 for c in cells) == 3 * 3 * 2
    budgets = [c for c in cells if c.factor == "train_tokens"]
    assert len(budgets) == 3 * 3 * 2 and {c.n_tokens for c in budgets} == {15_360, 61_440}
    assert all(c.expansion == 16 for c in budgets)
    arch = architecture_cells([0, 2, 4], 16, 61_440)
    assert [(c.variant, c.layer, c.expansion, c.n_tokens) for c in arch] == [(NEOX, x, 16, 61_440) for x in (0, 2, 4)]


def test_budget_sweep_trains_on_the_stated_tokens_and_metrics_on_the_capped_test_windows(tmp_path):
    cache = harvest(
        tiny_model(),
        tiny_windows(n_train=40, n_test=6),
        [1],
        tmp_path / "c",
        {"model": "tiny", "variant": "trained", "seed": 0, "corpus_sha256": "c"},
    )
    for n_tokens in (512, 1280):  # more than the cache's 640 training tokens: the trainer cycles over them
        spec = SweepSpec(expansion=2, k=4, n_tokens=n_tokens, batch_size=128, lr=3e-3)
        rec = train_measure(cache, 1, spec, tmp_path / f"sae{n_tokens}", top_n=5, test_windows=4)
        assert rec["train_tokens_seen"] == n_tokens and rec["steps"] == n_tokens // 128
        assert rec["test_tokens"] == 4 * 16  # the first 4 of the 6 held-out windows of 16 tokens
    full = train_measure(cache, 1, spec, tmp_path / "full", top_n=5)
    assert full["test_tokens"] == 6 * 16


def test_neox_cache_on_the_base_windows_and_keyed_by_its_init(tmp_path):
    from rsae_utils.subject.neox_init import neox_at_init

    base = harvest(
        tiny_model(),
        tiny_windows(),
        [0],
        tmp_path / "base",
        {"model": "tiny", "variant": "trained", "seed": 0, "corpus_sha256": "c"},
    )
    shape = {"num_hidden_layers": 2, "hidden_size": 32, "num_attention_heads": 4, "intermediate_size": 64}
    calls = []

    def make(init="pythia"):
        calls.append(init)
        return neox_at_init(97, seed=0, init=init, n_ctx=16, shape=shape)

    out = neox_cache(base, [0, 1], tmp_path / "neox", make, seed=0, init="pythia", test_windows=2)
    assert out.variant == NEOX and out.layers == [0, 1] and out.d_model == 32
    assert torch.equal(out.tokens("train"), base.tokens("train"))
    assert torch.equal(out.tokens("test"), base.tokens("test")[:2])
    assert neox_cache(base, [0, 1], tmp_path / "neox", make, seed=0, init="pythia", test_windows=2).manifest[
        "key"
    ] == out.manifest["key"] and calls == ["pythia"]
    other = neox_cache(base, [0, 1], tmp_path / "neox-hf", lambda: make("hf"), seed=0, init="hf", test_windows=2)
    assert other.manifest["key"] != out.manifest["key"] and calls == ["pythia", "hf"]


def test_budget_and_architecture_sentences_from_the_numbers():
    rows = [
        {
            "factor": "train_tokens",
            "value": t,
            "variant": v,
            "source": v,
            "layer": 9,
            "R": 4,
            "train_tokens": t,
            "explained_variance": ev,
        }
        for v, t, ev in (("trained", 100, 0.6), ("trained", 400, 0.8), ("step0", 100, 0.2), ("step0", 400, 0.3))
    ]
    text = " ".join(budget_sentences(pd.DataFrame(rows), [100, 400], 4, [9]))
    assert "Training on 400 instead of 100 tokens (4x)" in text and "Trained 0.60 -> 0.80" in text
    assert f"The gap to the trained model goes {variant_label('step0')} 0.40 -> 0.50." in text
    assert budget_sentences(pd.DataFrame(rows), [400], 4, [9]) == []
    stats = pd.DataFrame(
        [
            {"source": v, "variant": v, "layer": x, "token_share_adj": s, "norm_median": n}
            for v, x, s, n in (
                (NEOX, 0, 0.9, 1.0),
                (NEOX, 4, 0.6, 2.0),
                (NEOX, 5, 0.5, 2.5),
                ("step0", 0, 0.95, 1.0),
                ("step0", 4, 0.3, 8.0),
                ("step0", 9, 0.1, 20.0),
            )
        ]
    )
    saes = pd.DataFrame(
        [{"source": v, "variant": v, "layer": 4, "explained_variance": ev} for v, ev in ((NEOX, 0.7), ("step0", 0.4))]
    )
    text = " ".join(
        architecture_sentences(stats, saes, NEOX, "step0", labels={NEOX: "NeoX"}, blocks={NEOX: 6, "step0": 30})
    )
    assert "layer 4 is block 5 of 6 in the NeoX, of 30 in Step-0" in text
    assert "layer 0: 0.90 vs 0.95; layer 4: 0.60 vs 0.30" in text
    assert "grows 2.0x (NeoX) against 8.0x" in text
    assert "more token identity survives in the NeoX" in text and "layer 4: 0.70 vs 0.40" in text
    stats.loc[(stats.variant == NEOX) & (stats.layer == 4), "token_share_adj"] = 0.35
    assert "about as much token identity" in " ".join(architecture_sentences(stats, saes, NEOX, "step0"))


def test_a_smaller_budget_or_width_is_no_cure_even_when_it_narrows_the_gap():
    """Fewer tokens can "close" the gap by making the trained model's SAE worse: only larger values are candidates."""
    rows = [
        {
            "factor": "train_tokens",
            "value": t,
            "variant": v,
            "source": v,
            "layer": 9,
            "R": 4,
            "train_tokens": t,
            "explained_variance": ev,
        }
        for v, t, ev in (
            ("trained", 100, 0.8),
            ("trained", 25, 0.5),
            ("rerandomized_incl_emb", 100, 0.3),
            ("rerandomized_incl_emb", 25, 0.3),
        )
    ]
    table = pd.concat([_table(rr_ev=0.3), pd.DataFrame(rows)], ignore_index=True)
    gaps = gap_table(table, BASE)
    small = gaps[(gaps.factor == "train_tokens") & (gaps.value == 25)]
    assert small.gap_closed.iloc[0] == pytest.approx(0.6)  # the table still shows it
    text = " ".join(answer(gaps, _stats(), table, BASE, [9]))
    assert "training budget" not in text.split("Answer:")[1].split(".")[0]
    assert "Answer: scaling the token embedding up closes most of the gap (60%" in text


def test_the_answer_puts_seed_intervals_on_its_sae_numbers():
    """Two seeds per SAE (the second moved by small noise, the same for an SAE listed under two factors): the answer
    prints the seed means with 95% intervals that hold the noiseless values, and the closed share's interval is
    narrow next to the 60% it brackets."""
    table = _table(rr_ev=0.3)
    rng = np.random.default_rng(0)
    sae = ["source", "layer", "R", "train_tokens"]
    noise = {k: rng.normal(0, 0.004) for k in table.groupby(sae).groups}
    second = table.copy()
    second["explained_variance"] += [noise[tuple(r)] for r in table[sae].itertuples(index=False)]
    rows = pd.concat([table.assign(seed=0), second.assign(seed=1)], ignore_index=True)
    means, draws = by_seed(rows, n_draws=300)
    assert len(draws) == 300 and (means.n_seeds == 2).all()
    text = " ".join(answer(gap_table(means, BASE), _stats(), means, BASE, [9], draws=draws))
    m = re.search(r"closes (\d+) \[(\d+), (\d+)\]% of the gap", text)
    assert m, text
    est, lo, hi = map(int, m.groups())
    assert lo <= 60 <= hi and hi - lo < 15 and abs(est - 60) <= 3
    emb = text[text.index("Scaling the token embedding") :]
    m = re.search(r"layer 9: (0\.\d\d) \[(0\.\d\d), (0\.\d\d)\] -> (0\.\d\d) \[(0\.\d\d), (0\.\d\d)\]", emb)
    assert m, text
    b, blo, bhi, a, alo, ahi = map(float, m.groups())
    assert blo <= 0.30 <= bhi and alo <= 0.60 <= ahi
    assert "Brackets: 95% intervals over SAE seeds" in text
    # one seed: the same sentences, no brackets
    text1 = " ".join(answer(gap_table(table, BASE), _stats(), table, BASE, [9], draws=[]))
    assert "closes 60% of the gap" in text1 and "Brackets" not in text1 and "] ->" not in text1
