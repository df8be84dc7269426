"""Weight-level and reconstruction diagnostics of an SAE that need no auto-interpretability: tensors in, tensors out.

Layouts follow sae-lens: ``W_enc`` is (d_in, d_sae) (latent i's encoder direction is column i), ``W_dec`` is
(d_sae, d_in) (its decoder direction is row i). An unembedding ``W_U`` is (d_in, vocab) as in TransformerLens; a
Hugging Face ``lm_head.weight`` (vocab, d_in) is accepted too and transposed when the shapes make that unambiguous.

* :func:`max_decoder_cosine`: each latent's largest cosine with any *other* decoder row (1 = a duplicate), computed
  in row blocks so that 37k x 37k is never materialised;
* :func:`encoder_decoder_cosine`: cosine of each latent's encoder column with its decoder row (1 = tied weights;
  SAEs trained on real data often keep them close, a sign the latent reads what it writes);
* :func:`relative_reconstruction_bias`: ``gamma = argmin_g E||g x_hat - x||^2 = E[x_hat . x] / E[x_hat . x_hat]``
  over all samples; 1 = unbiased, > 1 = the reconstruction is too short (shrinkage, typical of L1 SAEs), < 1 =
  too long. (Some papers report the reciprocal, the gamma of ``x_hat / gamma``, so that shrinkage reads < 1.)
* :func:`l2_ratio`: ``||x_hat|| / ||x||`` per sample (mean by default), another shrinkage check;
* :func:`decoder_top_tokens`: the vocabulary tokens each decoder direction promotes most through the
  unembedding (``W_dec @ W_U``, no final layer norm: a direction-level logit lens).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from rsae_utils.vectors import unit_rows


def _tensor(x) -> torch.Tensor:
    t = torch.as_tensor(x).detach()
    return t if t.is_floating_point() and t.dtype != torch.float16 and t.dtype != torch.bfloat16 else t.float()


def _enc_columns_as_rows(W_enc: torch.Tensor, d_sae: int, d_in: int) -> torch.Tensor:
    """W_enc as (d_sae, d_in): sae-lens's (d_in, d_sae) is transposed; (d_sae, d_in) is kept. A square W_enc
    (d_sae == d_in) is read in sae-lens's layout."""
    if W_enc.shape == (d_in, d_sae):
        return W_enc.T
    if W_enc.shape == (d_sae, d_in):
        return W_enc
    raise ValueError(f"W_enc shape {tuple(W_enc.shape)} matches neither (d_in, d_sae) = {(d_in, d_sae)} nor its T")


def max_decoder_cosine(W_dec, block: int = 1024, absolute: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """(max cosine, index of that latent) per latent, against every other decoder row.

    ``absolute=True`` takes |cosine| (an anti-parallel pair counts as redundant too). Memory: a (block, d_sae)
    similarity matrix at a time.
    """
    W = _tensor(W_dec)
    n = W.shape[0]
    if n < 2:
        raise ValueError("need at least two latents")
    unit = unit_rows(W, torch.finfo(W.dtype).tiny)
    best = torch.empty(n, dtype=unit.dtype, device=unit.device)
    arg = torch.empty(n, dtype=torch.long, device=unit.device)
    for lo in range(0, n, block):
        hi = min(lo + block, n)
        cos = unit[lo:hi] @ unit.T
        if absolute:
            cos = cos.abs()
        cos[torch.arange(hi - lo), torch.arange(lo, hi)] = -torch.inf  # a latent is not its own duplicate
        best[lo:hi], arg[lo:hi] = cos.max(dim=1)
    return best, arg


def encoder_decoder_cosine(W_enc, W_dec) -> torch.Tensor:
    """Cosine of latent i's encoder direction (column i of sae-lens's ``W_enc``) with its decoder row, per latent."""
    D = _tensor(W_dec)
    E = _enc_columns_as_rows(_tensor(W_enc).to(D.dtype), *D.shape)
    return (unit_rows(E, torch.finfo(E.dtype).tiny) * unit_rows(D, torch.finfo(D.dtype).tiny)).sum(dim=1)


def relative_reconstruction_bias(x, x_hat) -> float:
    """``E[x_hat . x] / E[x_hat . x_hat]`` over all samples (rows): the scale that best maps x_hat onto x.

    NaN when x_hat is zero everywhere. ``x`` and ``x_hat`` are (n, d) or any shape whose last axis is d_in.
    """
    x, x_hat = _tensor(x).double(), _tensor(x_hat).double()
    den = (x_hat * x_hat).sum()
    return float((x_hat * x).sum() / den) if den > 0 else float("nan")


def l2_ratio(x, x_hat, per_sample: bool = False) -> float | torch.Tensor:
    """``||x_hat|| / ||x||`` per sample (last axis), averaged unless ``per_sample``; samples with ``x = 0`` are
    NaN and left out of the mean."""
    x, x_hat = _tensor(x).double(), _tensor(x_hat).double()
    nx = x.norm(dim=-1)
    r = torch.where(nx > 0, x_hat.norm(dim=-1) / nx.clamp_min(torch.finfo(nx.dtype).tiny), torch.nan)
    return r if per_sample else float(torch.nanmean(r))


def _unembed(W_U: torch.Tensor, d_in: int) -> torch.Tensor:
    """W_U as (d_in, vocab)."""
    if W_U.shape[0] == d_in:
        return W_U
    if W_U.shape[1] == d_in:
        return W_U.T
    raise ValueError(f"W_U shape {tuple(W_U.shape)} has no axis of size d_in = {d_in}")


def decoder_top_tokens(
    W_dec,
    W_U,
    k: int = 10,
    latents: Sequence[int] | None = None,
    block: int = 1024,
    largest: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(token ids, logits), each (n, k): the ``k`` tokens each decoder row promotes most (``largest=False``:
    suppresses most) through ``W_U``, for ``latents`` (all by default), in blocks of ``block`` latents.

    A latent whose top tokens hold its explainer examples' tokens writes what it reads: a token latent at the
    output side.
    """
    D = _tensor(W_dec)
    U = _unembed(_tensor(W_U).to(D.dtype), D.shape[1])
    rows = torch.arange(D.shape[0]) if latents is None else torch.as_tensor(np.asarray(latents, dtype=np.int64))
    ids, vals = [], []
    for lo in range(0, rows.numel(), block):
        logits = D[rows[lo : lo + block].to(D.device)] @ U
        v, i = torch.topk(logits, min(k, U.shape[1]), dim=1, largest=largest)
        ids.append(i)
        vals.append(v)
    return torch.cat(ids), torch.cat(vals)


def weight_summary(W_enc, W_dec, duplicate_threshold: float = 0.9) -> dict[str, float]:
    """Scalar summary for a table: mean/median max decoder cosine, share of latents with a near-duplicate
    (max cosine >= ``duplicate_threshold``), mean encoder-decoder cosine."""
    mc, _ = max_decoder_cosine(W_dec)
    ed = encoder_decoder_cosine(W_enc, W_dec)
    return {
        "max_dec_cos_mean": float(mc.mean()),
        "max_dec_cos_median": float(mc.median()),
        "duplicate_share": float((mc >= duplicate_threshold).double().mean()),
        "enc_dec_cos_mean": float(ed.mean()),
    }
