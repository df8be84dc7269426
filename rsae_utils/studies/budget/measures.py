"""What the training-budget study measures on one SAE, all on held-out tokens.

* reconstruction: explained variance and cosine (notebook 03's :func:`reconstruction_metrics`), the dead fraction
  on held-out tokens, the median per-token FVU ``|x - x_hat|^2 / |x - mean|^2`` (every token weighs the same; a
  few massive-activation tokens cannot decide it), and the explained variance with the top principal directions
  of the *training* activations projected out of input and reconstruction alike (how much of the EV is carried by
  a few massive-activation directions);
* latents: notebook 04's sampling of latents and windows, scored by the offline token-identity baseline
  (detection and fuzzing, pooled AUROC over the sampled latents), and the median token entropy and single-token
  share of their explainer windows (notebook 05's and 08's definitions, :mod:`rsae_utils.tokenstats`);
* seeds: the share of latents of one seed whose nearest latent of another seed (max cosine) exceeds a threshold in
  both the decoder and the encoder direction. The max-cosine count (not notebook 07's one-to-one matching) keeps a
  9,216 x 9,216 comparison under a second; it is an upper bound of the one-to-one share.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from rsae_utils.autointerp.baseline import score_baseline
from rsae_utils.autointerp.examples import encode_sparse, explain_token_stats, sample_latents
from rsae_utils.autointerp.stats import auroc
from rsae_utils.sae.matching import directions_from_sae, nearest
from rsae_utils.sae.metrics import reconstruction_metrics
from rsae_utils.tokenstats import is_single_token, token_entropy

SAMPLING_KEYS = ("window_len", "n_latents", "min_examples", "n_explain", "explain_pool", "n_bins", "per_bin")


@torch.no_grad()
def reconstruction_measures(
    sae: Any, x: torch.Tensor, dirs: torch.Tensor, mask: torch.Tensor | None = None, codes: Any = None
) -> dict[str, float]:
    """Explained variance, the EV with the unit rows ``dirs`` projected out, median per-token FVU, cosine and dead
    fraction of ``sae`` on ``x`` (..., d) where ``mask`` holds: notebook 03's :func:`reconstruction_metrics`
    (``codes``: the SAE's codes on ``x``, read instead of encoding again)."""
    m = reconstruction_metrics(sae, x, mask=mask, codes=codes, dirs=dirs)
    keys = ("explained_variance", "ev_top_pcs_out", "median_token_fvu", "cos_sim", "dead_fraction")
    return {k: m[k] for k in keys}


def latent_measures(
    sae: Any, acts: torch.Tensor, tokens: torch.Tensor, p: Mapping[str, Any], codes: Any = None
) -> dict[str, float]:
    """Token-baseline detection and fuzzing AUROC (pooled over the sampled latents' rows), median token entropy
    and single-token share of ``sae``'s latents sampled as notebook 04 samples them from held-out ``acts``
    (n_seq, ctx, d) with ``tokens`` (n_seq, ctx); ``p`` holds :data:`SAMPLING_KEYS`, ``mark_frac``,
    ``top_k_tokens``, ``single_token_threshold`` and ``seed``; ``codes``: the SAE's codes on ``acts``."""
    sp = encode_sparse(sae, acts, tokens, window_len=int(p["window_len"]), chunk_tokens=2048, codes=codes)
    counts = {k: int(p[k]) for k in ("n_explain", "explain_pool", "n_bins", "per_bin")}
    recs = sample_latents(sp, int(p["n_latents"]), int(p["min_examples"]), seed=int(p["seed"]), **counts)
    out: dict[str, float] = {"n_latents_scored": float(len(recs))}
    for scorer in ("detection", "fuzzing"):
        y, s = [], []
        for rec in recs:
            for r in score_baseline(
                rec, scorer, top_k=int(p["top_k_tokens"]), seed=int(p["seed"]), mark_frac=float(p["mark_frac"])
            ):
                y.append(r["label"])
                s.append(r["probability"])
        out[f"{scorer}_auroc"] = auroc(y, s) if len(set(y)) == 2 else float("nan")
    ent, single = [], []
    for rec in recs:
        tok, val, _ = explain_token_stats(rec)
        ent.append(token_entropy(tok, val))
        single.append(is_single_token(tok, val, float(p["single_token_threshold"])))
    out["token_entropy"] = float(np.median(ent)) if ent else float("nan")
    out["single_token_share"] = float(np.mean(single)) if single else float("nan")
    return out


@torch.no_grad()
def seed_shared(sae_a: Any, sae_b: Any, threshold: float = 0.7) -> float:
    """Share of ``sae_a``'s latents whose nearest latent of ``sae_b`` exceeds ``threshold`` in cosine, in the
    decoder and the encoder direction both (module docstring: an upper bound of the one-to-one share)."""
    a, b = directions_from_sae(sae_a), directions_from_sae(sae_b)
    dec, _ = nearest(a.dec, b.dec)
    enc, _ = nearest(a.enc, b.enc)
    return float(np.mean((dec > threshold) & (enc > threshold)))
