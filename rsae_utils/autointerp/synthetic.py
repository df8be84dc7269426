"""Synthetic latents with known answers, for tests and for the sanity panel of notebook 05.

:func:`synthetic_sparse_acts` builds a :class:`SparseActs` over random tokens where

* latents ``0 .. n_token_latents-1`` are *single-token*: latent i fires (value 1..2) exactly on token id i;
* latents after that fire at *random* positions with probability ``random_rate`` (value 1..2);
* the last latent is *positional*: it fires on every position ``0`` of a context.

:class:`ToySAE` with :func:`toy_cache_acts` gives the same kind of latents through a real ``encode`` call.
"""

from __future__ import annotations

import numpy as np
import torch

from rsae_utils.autointerp.examples import SparseActs


def synthetic_sparse_acts(
    n_seq: int = 64,
    ctx: int = 128,
    vocab: int = 100,
    n_token_latents: int = 4,
    n_random_latents: int = 4,
    random_rate: float = 0.01,
    window_len: int = 32,
    seed: int = 0,
) -> SparseActs:
    rng = np.random.default_rng(seed)
    tokens = rng.integers(0, vocab, size=(n_seq, ctx))
    flat_tok = tokens.ravel()
    flats, lats, vals = [], [], []
    for lat in range(n_token_latents):
        hit = np.flatnonzero(flat_tok == lat)
        flats.append(hit)
        lats.append(np.full(hit.size, lat))
        vals.append(rng.uniform(1, 2, hit.size))
    for j in range(n_random_latents):
        lat = n_token_latents + j
        hit = np.flatnonzero(rng.random(flat_tok.size) < random_rate)
        flats.append(hit)
        lats.append(np.full(hit.size, lat))
        vals.append(rng.uniform(1, 2, hit.size))
    pos_lat = n_token_latents + n_random_latents
    hit = np.arange(n_seq) * ctx
    flats.append(hit)
    lats.append(np.full(hit.size, pos_lat))
    vals.append(rng.uniform(1, 2, hit.size))
    return SparseActs(
        tokens=tokens,
        window_len=window_len,
        n_latents=pos_lat + 1,
        flat=np.concatenate(flats).astype(np.int64),
        latent=np.concatenate(lats).astype(np.int64),
        value=np.concatenate(vals).astype(np.float32),
    )


class ToySAE(torch.nn.Module):
    """``encode(x) = relu(x @ W - 0.5)`` with unit columns: a stand-in SAE for tests (no sae_lens needed)."""

    def __init__(self, directions: torch.Tensor):
        super().__init__()
        self.W = torch.nn.Parameter(directions / directions.norm(dim=0, keepdim=True), requires_grad=False)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x @ self.W - 0.5)


def toy_cache_acts(
    n_seq: int = 32, ctx: int = 64, vocab: int = 50, d_model: int = 64, n_latents: int = 24, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor, ToySAE]:
    """(tokens, acts, sae): acts = embedding of the token + small noise; the SAE's first latents point along
    the embeddings of tokens 0, 1, ... (token latents), the rest along random directions."""
    g = torch.Generator().manual_seed(seed)
    emb = torch.randn(vocab, d_model, generator=g)
    emb = emb / emb.norm(dim=1, keepdim=True)
    tokens = torch.randint(0, vocab, (n_seq, ctx), generator=g)
    acts = emb[tokens] + 0.05 * torch.randn(n_seq, ctx, d_model, generator=g)
    n_tok = n_latents // 2
    directions = torch.cat([emb[:n_tok].T, torch.randn(d_model, n_latents - n_tok, generator=g)], dim=1)
    return tokens, acts, ToySAE(directions)
