"""The five variants keep their defining properties (on the tiny random model; a tiny Llama for the HF init)."""

from __future__ import annotations

import math

import pytest
import torch

from rsae_utils.errors import ParameterError
from rsae_utils.subject.models import LoadedModel, hooked_from_llama_hf, load_model
from rsae_utils.subject.rerandomize import SMOLLM2_INITIALIZER_RANGE, make_variant, norm_parameter_names
from rsae_utils.subject.variants import STEP0_INITIALIZER, VARIANTS

TOKENS = torch.tensor([[0, 504, 2145, 314, 253, 1115, 30, 504, 2145]])


@pytest.fixture(scope="module")
def tiny():
    return load_model("tiny-random")


def _params(model):
    return {k: v.detach().clone() for k, v in model.named_parameters()}


def test_unknown_variant_rejected_before_work():
    with pytest.raises(ParameterError, match="'variant'.*trained.*control"):
        make_variant(None, "random")  # type: ignore[arg-type]


def test_input_model_never_mutated(tiny):
    before = _params(tiny.model)
    ref = tiny.model(TOKENS)
    for v in VARIANTS:
        make_variant(tiny, v, seed=3)
    after = _params(tiny.model)
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert torch.equal(tiny.model(TOKENS), ref)  # no hook left behind by the control variant


def test_trained_is_an_equal_copy(tiny):
    model, rec = make_variant(tiny, "trained")
    assert model is not tiny.model and torch.equal(model(TOKENS), tiny.model(TOKENS))
    assert rec["variant"] == "trained" and rec["step0_source"] is None


@pytest.mark.parametrize("variant", ["rerandomized_incl_emb", "rerandomized_excl_emb"])
def test_rerandomized_keeps_per_tensor_mean_and_std(tiny, variant):
    model, rec = make_variant(tiny, variant, seed=42)
    old, new = _params(tiny.model), _params(model)
    checked = 0
    for name in rec["redrawn"]:
        a, b = old[name], new[name]
        assert not torch.allclose(a, b), name
        if a.numel() >= 64:
            n = a.numel()
            # sampling error of the mean and std of n IID draws, with a wide margin
            assert abs(b.mean() - a.mean()) < 6 * a.std() / math.sqrt(n) + 1e-7, name
            assert abs(b.std() / a.std() - 1) < 6 / math.sqrt(2 * n) + 1e-3, name
            checked += 1
    assert checked >= 20
    for name, reason in rec["kept"].items():
        if reason == "std 0":
            assert torch.equal(old[name], new[name])


def test_embeddings_kept_or_not(tiny):
    incl, rec_i = make_variant(tiny, "rerandomized_incl_emb", seed=42)
    excl, rec_e = make_variant(tiny, "rerandomized_excl_emb", seed=42)
    W_E = tiny.model.embed.W_E
    assert not torch.allclose(incl.embed.W_E, W_E) and rec_i["embeddings_rerandomized"]
    assert torch.equal(incl.unembed.W_U, incl.embed.W_E.T)  # the tie survives
    assert torch.equal(excl.embed.W_E, W_E) and torch.equal(excl.unembed.W_U, tiny.model.unembed.W_U)
    assert not rec_e["embeddings_rerandomized"]
    # everything else is redrawn in both
    assert not torch.allclose(excl.blocks[0].attn.W_Q, tiny.model.blocks[0].attn.W_Q)


def test_norm_gains_flag(tiny):
    norms = norm_parameter_names(tiny.model)
    assert "blocks.0.ln1.w" in norms and "ln_final.w" in norms
    on, rec_on = make_variant(tiny, "rerandomized_incl_emb", seed=1)
    off, rec_off = make_variant(tiny, "rerandomized_incl_emb", seed=1, rerandomize_norms=False)
    assert rec_on["layernorm_rerandomized"] and not rec_off["layernorm_rerandomized"]
    assert not torch.allclose(on.blocks[0].ln1.w, tiny.model.blocks[0].ln1.w)
    assert torch.equal(off.blocks[0].ln1.w, tiny.model.blocks[0].ln1.w)
    # the same generator stream: non-norm tensors visited before the first norm tensor are identical
    assert torch.equal(on.embed.W_E, off.embed.W_E)


def test_same_seed_same_weights_different_seed_different(tiny):
    a, _ = make_variant(tiny, "rerandomized_incl_emb", seed=7)
    b, _ = make_variant(tiny, "rerandomized_incl_emb", seed=7)
    c, _ = make_variant(tiny, "rerandomized_incl_emb", seed=8)
    pa, pb, pc = _params(a), _params(b), _params(c)
    assert all(torch.equal(pa[k], pb[k]) for k in pa)
    assert not torch.allclose(pa["blocks.1.mlp.W_in"], pc["blocks.1.mlp.W_in"])
    s1, _ = make_variant(tiny, "step0", seed=7)
    s2, _ = make_variant(tiny, "step0", seed=7)
    s3, _ = make_variant(tiny, "step0", seed=8)
    assert torch.equal(s1.blocks[0].attn.W_Q, s2.blocks[0].attn.W_Q)
    assert not torch.allclose(s1.blocks[0].attn.W_Q, s3.blocks[0].attn.W_Q)


def test_step0_without_checkpoint_uses_architecture_initializer(tiny):
    model, rec = make_variant(tiny, "step0", seed=42)
    assert rec["step0_source"] == STEP0_INITIALIZER == "architecture initializer (no step0 checkpoint)"
    assert "architecture init" in rec["label"] and "transformer-lens" in rec["initializer"]
    assert torch.all(model.blocks[0].ln1.w == 1) and torch.all(model.blocks[0].attn.b_Q == 0)
    assert torch.equal(model.unembed.W_U, model.embed.W_E.T)
    assert not torch.allclose(model.blocks[0].attn.W_Q, tiny.model.blocks[0].attn.W_Q)


def test_step0_for_a_llama_uses_the_transformers_initializer():
    """The SmolLM2 path (family llama-gguf), on a tiny Llama config so it runs in a second."""
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(
        vocab_size=300,
        hidden_size=48,
        intermediate_size=96,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
        tie_word_embeddings=True,
    )
    torch.manual_seed(0)
    trained = hooked_from_llama_hf(LlamaForCausalLM(cfg))
    loaded = LoadedModel(
        model=trained,
        tokenizer=None,
        name="tiny-llama",
        source="test",
        n_layers=2,
        d_model=48,
        has_step0_checkpoint=False,
        tied_embeddings=True,
        family="llama-gguf",
        hf_config=cfg,
    )
    model, rec = make_variant(loaded, "step0", seed=5)
    assert rec["step0_source"] == STEP0_INITIALIZER and "transformers" in rec["initializer"]
    w = model.blocks[1].mlp.W_in
    assert abs(w.std().item() / SMOLLM2_INITIALIZER_RANGE - 1) < 0.1
    assert torch.all(model.blocks[0].ln1.w == 1) and torch.equal(model.unembed.W_U, model.embed.W_E.T)
    again, _ = make_variant(loaded, "step0", seed=5)
    assert torch.equal(again.blocks[1].mlp.W_in, w)


def test_control_noise_fresh_every_forward_and_reproducible(tiny):
    ref = tiny.model(TOKENS)
    ctl, rec = make_variant(tiny, "control", seed=11)
    out1, out2 = ctl(TOKENS), ctl(TOKENS)
    assert not torch.allclose(out1, out2)
    assert torch.equal(tiny.model(TOKENS), ref)  # the trained model is untouched
    _, cache = ctl.run_with_cache(TOKENS, names_filter="hook_embed")
    emb = cache["hook_embed"]
    assert abs(emb.mean().item()) < 0.2 and abs(emb.std().item() - 1) < 0.2
    # the same token (id 504 at positions 1 and 7) gets different embeddings
    assert not torch.allclose(emb[0, 1], emb[0, 7])
    twin, _ = make_variant(tiny, "control", seed=11)
    assert torch.equal(twin(TOKENS), out1)  # same seed, same sequence of noises
    ctl.rsae_embedding_noise.reset()
    assert torch.equal(ctl(TOKENS), out1)
    assert rec["variant"] == "control" and "N(0, 1" in rec["noise"]
