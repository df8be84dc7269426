"""A tiny hand-made Llama-like HookedTransformer for fast CPU tests of the cache, training and metrics."""

from __future__ import annotations

import torch
from transformer_lens import HookedTransformer, HookedTransformerConfig


def tiny_model(seed: int = 0, n_layers: int = 4, d_model: int = 32, d_vocab: int = 97) -> HookedTransformer:
    cfg = HookedTransformerConfig(
        n_layers=n_layers,
        d_model=d_model,
        n_heads=4,
        d_head=d_model // 4,
        d_mlp=2 * d_model,
        d_vocab=d_vocab,
        n_ctx=64,
        act_fn="silu",
        normalization_type="RMS",
        positional_embedding_type="rotary",
        gated_mlp=True,
        seed=seed,
        device="cpu",
    )
    with torch.random.fork_rng(devices=[]):
        model = HookedTransformer(cfg)
    return model.eval()


def tiny_windows(n_train: int = 20, n_test: int = 6, ctx: int = 16, d_vocab: int = 97, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    return {
        "train": torch.randint(0, d_vocab, (n_train, ctx), generator=gen),
        "test": torch.randint(0, d_vocab, (n_test, ctx), generator=gen),
    }
