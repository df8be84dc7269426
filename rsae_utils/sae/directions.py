"""The training split's top principal directions without loading the split: for caches larger than memory allows.

:func:`rsae_utils.sae.metrics.training_directions` loads a layer's whole training split (and a masked copy); at the
``long`` study's 4.2M tokens that is 9.7 GB twice, on a 23 GB machine. :func:`split_directions` gives the same
directions from two passes over the shards (the mean in float64, then the centred (d, d) product per shard, summed
in float64), and hands splits that fit ``max_bytes`` to the in-memory function unchanged, so the default's numbers
do not move. Kept out of ``metrics`` because its source is part of many artifacts' keys.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from rsae_utils.sae.metrics import training_directions

__all__ = ["split_directions"]

MAX_BYTES = 2**31  # float32 bytes of a split loaded at once; above it, the shards stream


def split_directions(
    cache: object,
    layer: int,
    mask_of: Callable[[torch.Tensor], torch.Tensor],
    n: int,
    max_bytes: int = MAX_BYTES,
) -> torch.Tensor | None:
    """Top ``n`` principal directions (n, d), unit rows, of ``cache``'s training activations at ``layer`` where
    ``mask_of(tokens)`` holds; None when the cache has no training split."""
    n_tok = int(cache.manifest["n_windows"].get("train") or 0) * cache.ctx
    if n_tok * cache.d_model * 4 <= max_bytes:
        return training_directions(cache, layer, mask_of, n)
    keep = mask_of(cache.tokens("train")).reshape(-1)
    shards = range(cache.n_shards("train"))
    total, count = torch.zeros(cache.d_model, dtype=torch.float64), 0
    for i in shards:
        x = cache.shard_rows(layer, "train", [i], keep)
        total += x.double().sum(0)
        count += x.shape[0]
    mean = (total / max(count, 1)).float()
    gram = torch.zeros(cache.d_model, cache.d_model, dtype=torch.float64)
    for i in shards:
        xc = cache.shard_rows(layer, "train", [i], keep) - mean
        gram += (xc.T @ xc).double()
    _, vecs = torch.linalg.eigh(gram)  # ascending eigenvalues
    return vecs[:, vecs.shape[1] - n :].flip(1).T.contiguous().float()
