"""A GPT-NeoX of Pythia-70m's shape at initialization, built offline from its config (notebook 06's second
architecture).

Pythia-70m: 6 layers, d_model 512, 8 heads, MLP 2048, rotary on a quarter of each head (rotary_pct 0.25),
parallel residual (attention and MLP read the same input), LayerNorm with biases, untied unembedding. The model
is made by transformers' ``GPTNeoXForCausalLM`` from a ``GPTNeoXConfig`` with that shape (no network, no
checkpoint), then its weights are redrawn under a fixed seed with the initializer Pythia's step-0 checkpoint was
trained from in the GPT-NeoX library (``init="pythia"``: "small_init" N(0, sqrt(2 / (5 d))) for every matrix and
embedding, "wang_init" N(0, 2 / (n_layers sqrt(d))) for the two output projections of each block, biases 0,
LayerNorm gains 1), or left with transformers' own initializer (``init="hf"``: N(0, 0.02)). The vocabulary is the
caller's (notebook 06 uses SmolLM2's, so the same token windows run through both architectures).

It stands for "this architecture at initialization", not for Pythia's actual step-0 weights (another draw, and
Pythia's tokenizer), nor for a trained Pythia, nor for Pythia re-randomized from its trained tensors' statistics.
It is wrapped as a transformer-lens ``HookedTransformer`` (weights converted, no processing), so the harvest code
that reads ``blocks.L.hook_resid_post`` works on it unchanged.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from transformer_lens import HookedTransformer, HookedTransformerConfig
from transformer_lens.pretrained.weight_conversions import convert_neox_weights
from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

PYTHIA_70M_SHAPE = {"num_hidden_layers": 6, "hidden_size": 512, "num_attention_heads": 8, "intermediate_size": 2048}
INITS = ("pythia", "hf")
NEOX_NAME = "pythia70m-shape-gpt-neox-init"  # the "model" name its cache records
OUTPUT_PROJECTIONS = ("attention.dense.weight", "mlp.dense_4h_to_h.weight")  # wang_init in the GPT-NeoX library


def pythia_shape_config(
    vocab_size: int, n_ctx: int = 2048, shape: dict[str, int] | None = None, initializer_range: float = 0.02
) -> GPTNeoXConfig:
    """A ``GPTNeoXConfig`` with Pythia-70m's shape (or ``shape``'s overrides) and ``vocab_size``; transformers'
    own initializer draws every matrix from N(0, ``initializer_range``)."""
    cfg = GPTNeoXConfig(
        **{**PYTHIA_70M_SHAPE, **(shape or {})},
        vocab_size=int(vocab_size),
        max_position_embeddings=max(2048, n_ctx),
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "partial_rotary_factor": 0.25},
        use_parallel_residual=True,
        tie_word_embeddings=False,
        layer_norm_eps=1e-5,
        hidden_act="gelu",
        attention_bias=True,
        initializer_range=float(initializer_range),
    )
    cfg.architectures = ["GPTNeoXForCausalLM"]
    return cfg


@torch.no_grad()
def _pythia_init_(model: GPTNeoXForCausalLM, gen: torch.Generator) -> None:
    d, n_layers = model.config.hidden_size, model.config.num_hidden_layers
    small, wang = math.sqrt(2.0 / (5 * d)), 2.0 / (n_layers * math.sqrt(d))
    for name, p in model.named_parameters():
        if "layernorm" in name or "layer_norm" in name:
            p.fill_(1.0 if name.endswith("weight") else 0.0)
        elif name.endswith("bias"):
            p.zero_()
        else:
            std = wang if name.endswith(OUTPUT_PROJECTIONS) else small
            p.copy_(torch.randn(p.shape, generator=gen) * std)


def build_neox_hf(
    vocab_size: int,
    seed: int = 0,
    init: str = "pythia",
    n_ctx: int = 2048,
    shape: dict[str, int] | None = None,
    initializer_range: float = 0.02,
) -> GPTNeoXForCausalLM:
    """The transformers model of :func:`pythia_shape_config` initialised under ``seed`` (the caller's global RNG
    is left as it was); the same seed gives the same weights."""
    if init not in INITS:
        raise ValueError(f"init must be one of {INITS}; got {init!r}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))  # transformers' initializer draws from the global RNG
        model = GPTNeoXForCausalLM(pythia_shape_config(vocab_size, n_ctx, shape, initializer_range))
    if init == "pythia":
        _pythia_init_(model, torch.Generator().manual_seed(int(seed)))
    return model.float().eval()


def rope_of(hf_config: GPTNeoXConfig) -> dict[str, float]:
    """Rotary share and base of a config: transformers 5 keeps them in ``rope_parameters``, 4 as attributes."""
    rope = getattr(hf_config, "rope_parameters", None) or {}
    return {
        "partial_rotary_factor": float(rope.get("partial_rotary_factor", getattr(hf_config, "rotary_pct", 0.25))),
        "rope_theta": float(rope.get("rope_theta", getattr(hf_config, "rotary_emb_base", 10000))),
    }


def neox_tl_config(hf_config: GPTNeoXConfig, n_ctx: int = 2048, device: str = "cpu") -> HookedTransformerConfig:
    """The HookedTransformerConfig of a GPT-NeoX config, built by hand (transformer-lens's own lookup needs the
    hub): parallel attention and MLP, rotary on ``rotary_pct`` of each head, LayerNorm, GELU."""
    d_head = hf_config.hidden_size // hf_config.num_attention_heads
    rope = rope_of(hf_config)
    return HookedTransformerConfig(
        d_model=hf_config.hidden_size,
        d_head=d_head,
        n_heads=hf_config.num_attention_heads,
        d_mlp=hf_config.intermediate_size,
        n_layers=hf_config.num_hidden_layers,
        n_ctx=min(int(n_ctx), hf_config.max_position_embeddings),
        d_vocab=hf_config.vocab_size,
        act_fn=hf_config.hidden_act,
        normalization_type="LN",
        eps=hf_config.layer_norm_eps,
        positional_embedding_type="rotary",
        rotary_dim=int(d_head * rope["partial_rotary_factor"]),
        rotary_base=int(rope["rope_theta"]),
        rotary_adjacent_pairs=False,
        parallel_attn_mlp=True,
        original_architecture="GPTNeoXForCausalLM",
        tokenizer_name=None,
        init_weights=False,
        device=device,
        dtype=torch.float32,
    )


def hooked_from_neox_hf(hf_model: GPTNeoXForCausalLM, n_ctx: int = 2048, device: str = "cpu") -> HookedTransformer:
    """An equivalent HookedTransformer of a transformers GPT-NeoX model (weights converted, no processing)."""
    cfg = neox_tl_config(hf_model.config, n_ctx=n_ctx, device="cpu")
    model = HookedTransformer(cfg)
    model.load_and_process_state_dict(
        convert_neox_weights(hf_model, cfg),
        fold_ln=False,
        center_writing_weights=False,
        center_unembed=False,
        fold_value_biases=False,
    )
    return model.to(device, print_details=False).eval()


def neox_at_init(
    vocab_size: int,
    seed: int = 0,
    init: str = "pythia",
    n_ctx: int = 2048,
    device: str = "cpu",
    shape: dict[str, int] | None = None,
    initializer_range: float = 0.02,
) -> tuple[HookedTransformer, dict[str, Any]]:
    """(HookedTransformer, record) of the Pythia-shaped GPT-NeoX at initialization: what ``harvest`` takes."""
    hf = build_neox_hf(vocab_size, seed, init, n_ctx, shape, initializer_range)
    model = hooked_from_neox_hf(hf, n_ctx, device)
    c = hf.config
    record = {
        "architecture": "GPTNeoXForCausalLM",
        "init": init,
        "initializer_range": float(c.initializer_range),
        "seed": int(seed),
        "vocab_size": int(vocab_size),
        "n_layers": c.num_hidden_layers,
        "d_model": c.hidden_size,
        "n_heads": c.num_attention_heads,
        "d_mlp": c.intermediate_size,
        "rotary_pct": rope_of(c)["partial_rotary_factor"],
        "parallel_residual": c.use_parallel_residual,
        "n_params": sum(p.numel() for p in hf.parameters()),
    }
    return model, record
