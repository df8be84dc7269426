"""A plain TopK SAE's codes on a cache split, computed once and shared by every notebook that reads them.

Notebook 03's metrics, notebook 04's latent records, notebook 07's seed replicates and notebook 08's diagnostics
all encode the same held-out tokens with the same SAE; at R = 16 each encoding is one dense (51k x 576 x 9,216)
product, ~5 s here, and was paid four times per SAE. The codes are each token's k latent ids and activations
(``metrics.topk_encode``: the top k of the pre-activations, ReLU; where the CPU or GPU has native bf16 the k are
chosen from a bf16 product, as the fast trainer chooses them, and their activations computed exactly in fp32:
1.6-1.8x faster here), for every position of the split, stored as an
artifact beside the SAE (``<sae folder>.codes-<split>``) keyed by the SAE's and the cache's contents, the layer
and this code; a damaged or stale copy is rebuilt, never read. SAEs that are not plain TopK have no codes (None)
and are encoded by their readers as before.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rsae_utils.sae.metrics import plain_topk, topk_decode, topk_encode
from rsae_utils.sae.topk import resolve_matmul_dtype
from rsae_utils.store import cached_artifact, content_hash

CODE = ("rsae_utils.sae.codes", "rsae_utils.sae.metrics", "rsae_utils.sae.topk")


@dataclass
class TopKCodes:
    """Per position of a split (n_seq, ctx): the k latent ids (int64) and activations (float32, ReLU'd; zeros
    where fewer than k latents are positive), in the order the top-k returned them."""

    idx: torch.Tensor  # (n_seq, ctx, k)
    vals: torch.Tensor  # (n_seq, ctx, k)

    def rows(self, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(vals, idx) as (tokens, k) rows, only the positions where ``mask`` (n_seq, ctx) is True."""
        k = self.idx.shape[-1]
        vals, idx = self.vals.reshape(-1, k), self.idx.reshape(-1, k)
        if mask is not None:
            keep = mask.reshape(-1)
            vals, idx = vals[keep], idx[keep]
        return vals, idx


@torch.no_grad()
def reconstruct_from_codes(
    sae: Any, codes: TopKCodes, mask: torch.Tensor | None = None, batch_tokens: int = 4096
) -> torch.Tensor:
    """The SAE's reconstruction (tokens, d) float32 of the positions where ``mask`` is True, from its codes."""
    parts = plain_topk(sae)
    if parts is None:
        raise ValueError("codes are given for an SAE that is not plain TopK")
    vals, idx = codes.rows(mask)
    out = [
        topk_decode(parts, vals[i : i + batch_tokens].to(parts[2]), idx[i : i + batch_tokens].to(parts[2].device))
        for i in range(0, vals.shape[0], batch_tokens)
    ]
    return torch.cat(out).float().cpu() if out else torch.empty(0, parts[2].shape[1])


def codes_dir(sae_dir: str | Path, split: str) -> Path:
    """Where the codes of the SAE in ``sae_dir`` on ``split`` are kept: a sibling folder (the SAE folder's contents,
    and so its content hash, stay as notebook 03 wrote them)."""
    sae_dir = Path(sae_dir)
    return sae_dir.with_name(f"{sae_dir.name}.codes-{split}")


def select_dtype(sae: Any, matmul_dtype: str = "auto") -> str:
    """The product the codes' top-k is chosen from: ``matmul_dtype`` resolved on the SAE's device ("auto": bfloat16
    where it runs natively, as the fast trainer chooses its latents, else float32)."""
    W_enc = sae.W_enc
    return resolve_matmul_dtype(matmul_dtype, W_enc.device, W_enc.dtype)


@torch.no_grad()
def encode_codes(sae: Any, acts: Any, batch_tokens: int = 4096, matmul_dtype: str = "auto") -> TopKCodes | None:
    """The codes of ``sae`` on ``acts`` (n_seq, ctx, d); None when the SAE is not plain TopK. ``matmul_dtype``: see
    :func:`select_dtype` and :func:`rsae_utils.sae.metrics.topk_encode`."""
    parts = plain_topk(sae)
    if parts is None:
        return None
    select = select_dtype(sae, matmul_dtype)
    w_bf16 = parts[0].bfloat16() if select == "bfloat16" else None  # converted once, not per batch
    n_seq, ctx, d = acts.shape
    k = parts[4]
    idx = torch.empty(n_seq * ctx, k, dtype=torch.int64)
    vals = torch.empty(n_seq * ctx, k, dtype=torch.float32)
    seqs = max(1, batch_tokens // ctx)
    for s0 in range(0, n_seq, seqs):
        x = torch.as_tensor(acts[s0 : s0 + seqs]).reshape(-1, d).float()
        a, i = topk_encode(parts, x, select, w_bf16)
        lo = s0 * ctx
        vals[lo : lo + x.shape[0]] = a.float().cpu()
        idx[lo : lo + x.shape[0]] = i.cpu()
    return TopKCodes(idx.view(n_seq, ctx, k), vals.view(n_seq, ctx, k))


def load_codes(sae: Any, sae_dir: str | Path, cache: Any, layer: int, split: str = "test") -> TopKCodes | None:
    """The codes of ``sae`` (loaded from ``sae_dir``) on ``cache``'s ``split`` at ``layer``: read from their artifact
    when it matches the SAE's and the cache's contents, else computed and stored. None when not plain TopK."""
    if plain_topk(sae) is None:
        return None
    params = {
        "sae": content_hash(sae_dir),
        "cache": cache.content_id(),
        "layer": int(layer),
        "split": split,
        "select_dtype": select_dtype(sae),  # bf16-chosen codes differ from fp32's at near-ties: never mixed up
    }

    def build(tmp: Path) -> None:
        codes = encode_codes(sae, cache.acts(layer, split))
        np.save(tmp / "idx.npy", codes.idx.numpy().astype(np.int32))  # ids < 2**31: half the bytes of int64
        np.save(tmp / "vals.npy", codes.vals.numpy())

    path = cached_artifact(codes_dir(sae_dir, split), params, build, code=CODE)
    idx = torch.from_numpy(np.load(path / "idx.npy").astype(np.int64))
    return TopKCodes(idx, torch.from_numpy(np.load(path / "vals.npy")))
