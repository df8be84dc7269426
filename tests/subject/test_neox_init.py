"""The Pythia-shaped GPT-NeoX of notebook 06: the configured shape, deterministic weights per seed, the
initializer's scales, and a HookedTransformer that computes what the transformers model computes."""

from __future__ import annotations

import math

import pytest
import torch

from rsae_utils.subject.neox_init import (
    PYTHIA_70M_SHAPE,
    build_neox_hf,
    hooked_from_neox_hf,
    neox_at_init,
    pythia_shape_config,
    rope_of,
)

TINY = {"num_hidden_layers": 2, "hidden_size": 64, "num_attention_heads": 4, "intermediate_size": 256}


def test_config_has_pythia_70m_shape():
    c = pythia_shape_config(49152)
    assert (c.num_hidden_layers, c.hidden_size, c.num_attention_heads, c.intermediate_size) == (6, 512, 8, 2048)
    assert c.use_parallel_residual and not c.tie_word_embeddings and c.vocab_size == 49152
    assert rope_of(c) == {"partial_rotary_factor": 0.25, "rope_theta": 10000.0}
    assert PYTHIA_70M_SHAPE["hidden_size"] == 512


def test_same_seed_same_weights_other_seed_other_weights_and_global_rng_untouched():
    torch.manual_seed(123)
    before = torch.rand(3)
    torch.manual_seed(123)
    a, b, c = (build_neox_hf(300, seed=s, shape=TINY).state_dict() for s in (0, 0, 1))
    assert torch.equal(torch.rand(3), before)  # the builder forks the RNG
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["gpt_neox.embed_in.weight"], c["gpt_neox.embed_in.weight"])


def test_pythia_initializer_scales():
    m = build_neox_hf(2000, seed=0, shape=TINY)
    d, n = TINY["hidden_size"], TINY["num_hidden_layers"]
    sd = dict(m.named_parameters())
    assert sd["gpt_neox.embed_in.weight"].std().item() == pytest.approx(math.sqrt(2 / (5 * d)), rel=0.05)
    out = torch.cat([sd[f"gpt_neox.layers.{i}.mlp.dense_4h_to_h.weight"].flatten() for i in range(n)])
    assert out.std().item() == pytest.approx(2 / (n * math.sqrt(d)), rel=0.05)
    assert torch.equal(sd["gpt_neox.layers.0.input_layernorm.weight"], torch.ones(d))
    assert not sd["gpt_neox.layers.0.attention.query_key_value.bias"].any()
    hf = build_neox_hf(2000, seed=0, init="hf", shape=TINY)
    assert hf.gpt_neox.embed_in.weight.std().item() == pytest.approx(0.02, rel=0.05)
    with pytest.raises(ValueError, match="init"):
        build_neox_hf(10, init="xavier", shape=TINY)


def test_hooked_model_matches_the_transformers_model():
    hf = build_neox_hf(300, seed=2, shape=TINY)
    tl = hooked_from_neox_hf(hf, n_ctx=64)
    assert tl.cfg.parallel_attn_mlp and tl.cfg.rotary_dim == 4 and tl.cfg.normalization_type == "LN"
    x = torch.randint(0, 300, (2, 16), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        hs = hf(x, output_hidden_states=True).hidden_states
        logits, cache = tl.run_with_cache(x)
    # hidden_states[i + 1] is block i's output, except the last, which transformers returns after the final norm
    torch.testing.assert_close(cache["blocks.0.hook_resid_post"], hs[1], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(cache["ln_final.hook_normalized"], hs[-1], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(logits, hf(x).logits, atol=1e-4, rtol=1e-4)


def test_neox_at_init_record():
    model, rec = neox_at_init(300, seed=3, shape=TINY, n_ctx=32)
    assert rec["n_layers"] == 2 and rec["d_model"] == 64 and rec["init"] == "pythia" and rec["seed"] == 3
    assert model.cfg.n_layers == 2 and model.cfg.d_vocab == 300 and not model.training
