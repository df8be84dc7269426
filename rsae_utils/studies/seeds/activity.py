"""Per-latent activity of an SAE on an activation cache's held-out split: firing frequency, token entropy of the
strongest activations, L0 and dead fraction (notebook 07's matching tables and L1 calibration).

A plain TopK SAE is read through its (tokens, k) codes (:func:`encode_test_topk`), any other through the dense
(tokens, d_sae) latent tensor (:func:`encode_test`); both give the same numbers (tests/studies/test_seeds.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from rsae_utils.sae.cache import ActivationCache, token_mask
from rsae_utils.sae.codes import encode_codes
from rsae_utils.sae.train import load_sae
from rsae_utils.tokenstats import token_entropy


# --------------------------------------------------------------------------------------------------------------
@torch.no_grad()
def encode_test(sae: Any, cache: ActivationCache, layer: int, exclude_tokens: Sequence[int] = ()) -> tuple:
    """(latent activations (N, d_sae), token ids (N,)) on the cache's held-out split, excluded tokens left out."""
    keep = token_mask(cache.tokens("test"), exclude_tokens).reshape(-1)
    x = cache.acts(layer, "test").reshape(-1, cache.d_model)[keep]
    z = torch.cat([sae.encode(chunk) for chunk in x.split(4096)]) if len(x) else torch.empty(0, sae.cfg.d_sae)
    return z, cache.tokens("test").reshape(-1)[keep]


def encode_test_topk(
    sae: Any, cache: ActivationCache, layer: int, exclude_tokens: Sequence[int] = (), matmul_dtype: str = "auto"
) -> tuple | None:
    """:func:`encode_test` of a plain TopK SAE without the dense latent tensor: (activations (N, k), latent ids
    (N, k), token ids (N,)); None for any other SAE. The (N, d_sae) tensor that encode_test fills is mostly zeros
    and costs more to build and scan than the encoder product itself. ``matmul_dtype``: how the k latents are chosen
    (:func:`rsae_utils.sae.codes.encode_codes`; "float32": exactly encode_test's)."""
    codes = encode_codes(sae, cache.acts(layer, "test"), matmul_dtype=matmul_dtype)
    if codes is None:
        return None
    keep = token_mask(cache.tokens("test"), exclude_tokens)
    return (*codes.rows(keep), cache.tokens("test")[keep])


def _stats_frame(freq: np.ndarray, ent: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({"latent": np.arange(len(freq)), "freq": freq, "token_entropy": ent})


def latent_stats(z: torch.Tensor, tokens: torch.Tensor, top_n: int = 20) -> pd.DataFrame:
    """Per latent: firing frequency and the token entropy of its ``top_n`` strongest activations (nats; NaN for a
    latent that never fires): the critique's measure, low for single-token latents."""
    freq = (z > 0).float().mean(0).numpy() if len(z) else np.zeros(z.shape[1])
    n = min(int(top_n), len(z))
    ent = np.full(z.shape[1], np.nan)
    if n:
        vals, idx = z.topk(n, dim=0)
        ids, vals = tokens[idx].numpy(), vals.numpy()
        for j in np.flatnonzero(freq > 0):
            ent[j] = token_entropy(ids[:, j], np.clip(vals[:, j], 0, None))
    return _stats_frame(freq, ent)


def latent_stats_topk(
    vals: torch.Tensor, idx: torch.Tensor, tokens: torch.Tensor, d_sae: int, top_n: int = 20
) -> pd.DataFrame:
    """:func:`latent_stats` from (N, k) TopK codes (:func:`encode_test_topk`); the same numbers: a latent's top
    ``top_n`` are its largest positive activations (zeros carry no token mass in either)."""
    pos = vals > 0
    lat, v = idx[pos], vals[pos]
    tok = tokens.unsqueeze(1).expand_as(idx)[pos]
    counts = torch.bincount(lat, minlength=d_sae)
    freq = (counts.float() / len(tokens)).numpy() if len(tokens) else np.zeros(d_sae, dtype=np.float32)
    ent = np.full(d_sae, np.nan)
    if len(lat) and top_n > 0:
        by_val = torch.argsort(v, descending=True, stable=True)
        order = by_val[torch.argsort(lat[by_val], stable=True)]  # grouped by latent, strongest first
        starts = torch.cumsum(counts, 0) - counts
        rank = torch.arange(len(order)) - starts.repeat_interleave(counts)
        top = order[rank < int(top_n)]
        lat_top, ids, acts = lat[top].numpy(), tok[top].numpy(), v[top].numpy()
        bounds = np.searchsorted(lat_top, np.arange(d_sae + 1))
        for j in np.flatnonzero(counts.numpy() > 0):
            ent[j] = token_entropy(ids[bounds[j] : bounds[j + 1]], acts[bounds[j] : bounds[j + 1]])
    return _stats_frame(freq, ent)


def activity(active_per_token: torch.Tensor, fired: torch.Tensor) -> dict[str, float]:
    """L0 (mean active latents per token, from the per-token counts) and dead fraction (latents never fired)."""
    return {"l0": float(active_per_token.float().mean()), "dead_fraction": float((~fired).float().mean())}


def heldout_activity(
    sae: Any, cache: ActivationCache, layer: int, exclude_tokens: Sequence[int] = (), top_n: int | None = None
) -> tuple[dict[str, float], pd.DataFrame | None]:
    """(:func:`activity` of the SAE on the held-out split, and its :func:`latent_stats` over ``top_n`` strongest
    activations, None when ``top_n`` is None): from the TopK codes when the SAE is plain TopK, else dense."""
    return heldout_live(sae, cache, layer, exclude_tokens, top_n)[:2]


def heldout_live(
    sae: Any, cache: ActivationCache, layer: int, exclude_tokens: Sequence[int] = (), top_n: int | None = None
) -> tuple[dict[str, float], pd.DataFrame | None, np.ndarray]:
    """:func:`heldout_activity` plus the (d_sae,) bool mask of the latents that fire at least once on the held-out
    split (live; its complement is what ``dead_fraction`` counts)."""
    codes = encode_test_topk(sae, cache, layer, exclude_tokens)
    if codes is not None:
        vals, idx, tok = codes
        pos = vals > 0
        fired = torch.bincount(idx[pos], minlength=sae.cfg.d_sae) > 0
        stats = None if top_n is None else latent_stats_topk(vals, idx, tok, sae.cfg.d_sae, top_n)
        return activity(pos.sum(1), fired), stats, fired.numpy()
    z, tok = encode_test(sae, cache, layer, exclude_tokens)
    active = z > 0
    fired = active.any(0)
    return activity(active.sum(1), fired), None if top_n is None else latent_stats(z, tok, top_n), fired.numpy()


def measure_l0(path: Path, cache: ActivationCache, layer: int, exclude_tokens: Sequence[int] = ()) -> float:
    """Mean active latents per held-out token of the SAE in ``path``."""
    return heldout_activity(load_sae(path), cache, layer, exclude_tokens)[0]["l0"]
