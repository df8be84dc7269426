"""SAE quality metrics on held-out windows (paper Figure 2), one tidy table per run.

Reconstruction metrics read the cached test activations only: explained variance and FVU (sae-lens's
``ExplainedVarianceCalculator``: 1 - mean ||x - x_hat||^2 / total variance), cosine similarity of input and
reconstruction, L0 and L1 of the latents, and the fraction of latents that never fire on the held-out tokens.

Spliced metrics put the reconstruction back into the model. They are hand-written rather than sae-lens's
``get_recons_loss`` for two reasons: (1) that function re-runs the whole model three times per SAE, while here the
forward resumes from the cached residual stream (``start_at_layer = layer + 1``), so each SAE costs only the layers
above it, and the clean pass is shared by every layer of a variant; (2) for the control variant a fresh forward
draws fresh embedding noise, so clean, spliced and ablated passes would see different inputs; resuming from the
cache gives all three the same noise. Definitions match sae-lens's:
CE-loss score = (CE_zero_abl - CE_sae) / (CE_zero_abl - CE_clean), KL = KL(clean || spliced) per token, averaged.
The zero-ablated pass feeds an all-zero residual, which is the same for every window, so it runs on one window
and is broadcast.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pandas as pd
import torch
import torch.nn.functional as F
from sae_lens.evals import ExplainedVarianceCalculator

from rsae_utils.sae import fastfwd
from rsae_utils.sae.cache import token_mask
from rsae_utils.sae.spec import TOPK
from rsae_utils.sae.topk import pair_dots, topk_select

# Order and meaning of the rows of the figure and table.
METRICS = {
    "explained_variance": "explained variance (1 - FVU)",
    "fvu": "fraction of variance unexplained",
    "cos_sim": "cosine similarity (input, reconstruction)",
    "l0": "L0 (active latents per token)",
    "l1": "L1 norm of latents",
    "dead_fraction": "dead latents (never fire on held-out tokens)",
    "ev_top_pcs_out": "explained variance with the top 3 principal directions of the training activations "
    "projected out of input and reconstruction (what a few massive-activation directions do not carry)",
    "median_token_fvu": "median over tokens of |x - x_hat|^2 / |x - mean|^2 (every token weighs the same)",
    "ce_loss_score": "CE-loss score",
    "kl_div": "KL(clean || SAE spliced), nats/token",
    "ce_clean": "CE clean",
    "ce_sae": "CE with SAE",
    "ce_zero_abl": "CE with layer zero-ablated",
}


def _as_rows(x: torch.Tensor) -> torch.Tensor:
    return x.reshape(-1, x.shape[-1]).float()


def plain_topk(sae: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, int] | None:
    """(W_enc (d_in, d_sae), b_enc, W_dec, b_dec, k) of a sae-lens TopK SAE whose encode/decode are
    ``topk(relu)((x - b_dec) W_enc + b_enc) W_dec + b_dec`` (no input normalisation): then :func:`topk_encode`
    computes the same thing without a dense (tokens, d_sae) latent tensor. None otherwise.

    An SAE that rescales its pre-activations by the decoder row norms (``rescale_acts_by_decoder_norm``: sae-lens's
    trainer saves its TopK SAEs so) is returned with the norms folded in: W_enc and b_enc times the norms, W_dec
    over them. Its activations and reconstructions are then sae-lens's up to float rounding."""
    cfg = getattr(sae, "cfg", None)
    try:
        ok = (
            cfg.architecture() == TOPK  # sae-lens names its TopK SAEs as our registry does
            and getattr(cfg, "normalize_activations", "none") == "none"
            and getattr(cfg, "apply_b_dec_to_input", True)
        )
    except AttributeError:
        return None
    if not ok or getattr(sae, "use_error_term", False):
        return None
    W_enc, b_enc, W_dec, b_dec = (t.detach() for t in (sae.W_enc, sae.b_enc, sae.W_dec, sae.b_dec))
    if getattr(cfg, "rescale_acts_by_decoder_norm", False):
        norms = W_dec.norm(dim=-1)
        W_enc, b_enc, W_dec = W_enc * norms, b_enc * norms, W_dec / norms.unsqueeze(1)
    return W_enc, b_enc, W_dec, b_dec, int(cfg.k)


def topk_encode(
    parts: tuple, x: torch.Tensor, matmul_dtype: str = "float32", w_bf16: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(activations, latent ids), each (tokens, k), of :func:`plain_topk`'s SAE on ``x``: one dense encoder product,
    the grouped top-k of :mod:`rsae_utils.sae.topk`, ReLU. At R = 16 the dense encode + decode of sae-lens costs
    ~3x this (and the same again in passes over a dense latent tensor).

    ``matmul_dtype`` "bfloat16" (a resolved value, see :func:`rsae_utils.sae.topk.resolve_matmul_dtype`): the fast
    trainer's rule, the k latents chosen from a bf16 product and their activations recomputed exactly in fp32
    (1.6-1.8x faster here at R = 16; a latent within bf16 rounding of the k-th may be swapped: 0.6-0.9% of the
    entries of notebook 03's codes).
    ``w_bf16``: W_enc already in bf16, so a caller encoding many batches converts it once."""
    W_enc, b_enc, _, b_dec, k = parts
    xc = x.to(W_enc) - b_dec
    if matmul_dtype != "bfloat16" or W_enc.dtype != torch.float32:
        vals, idx = topk_select(torch.addmm(b_enc, xc, W_enc), k)
        return vals.relu_(), idx
    w = W_enc.bfloat16() if w_bf16 is None else w_bf16
    _, idx = topk_select(torch.addmm(b_enc.bfloat16(), xc.bfloat16(), w), k)
    vals = pair_dots(xc, W_enc.t(), idx) + b_enc[idx]  # bf16 only chose the latents: their exact values
    return vals.relu_(), idx


def topk_decode(parts: tuple, acts: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """The reconstruction from :func:`topk_encode`'s output: a sum of k decoder rows per token, plus b_dec."""
    return F.embedding_bag(idx, parts[2], per_sample_weights=acts, mode="sum") + parts[3]


@torch.no_grad()
def reconstruct(sae: Any, x: torch.Tensor, batch_tokens: int = 4096) -> torch.Tensor:
    """The SAE's reconstruction of ``x`` (tokens, d) in float32, ``batch_tokens`` rows at a time; a plain TopK SAE
    through :func:`topk_encode` / :func:`topk_decode` (no dense latent tensor), any other through sae-lens."""
    parts = plain_topk(sae)
    param = next(iter(sae.parameters()))
    out = []
    for chunk in x.split(batch_tokens):
        chunk = chunk.to(device=param.device, dtype=param.dtype)
        if parts is not None:
            out.append(topk_decode(parts, *topk_encode(parts, chunk)).float().cpu())
            continue
        z = sae.encode(chunk)
        out.append(sae.decode(z.to_dense() if z.is_sparse else z).float().cpu())
    return torch.cat(out) if out else torch.empty(0, x.shape[-1])


N_TOP_PCS = 3  # principal directions projected out for "ev_top_pcs_out"


def top_directions(x: torch.Tensor, n: int = N_TOP_PCS) -> torch.Tensor:
    """The top ``n`` principal directions (n, d), unit rows, of rows ``x`` (..., d) around their mean (float64)."""
    x = _as_rows(x).float()
    xc = x - x.double().mean(0).float()
    # The (d, d) product in float32 (a 250k-row float64 one takes ~10 s here), its eigenvectors in float64.
    _, vecs = torch.linalg.eigh((xc.T @ xc).double())  # ascending eigenvalues
    return vecs[:, vecs.shape[1] - n :].flip(1).T.contiguous().float()


def project_out(x: torch.Tensor, dirs: torch.Tensor) -> torch.Tensor:
    """``x`` without its components along the orthonormal rows ``dirs``."""
    return x - (x @ dirs.T) @ dirs if dirs.shape[0] else x


@torch.no_grad()
def reconstruction_metrics(
    sae: Any,
    acts: torch.Tensor,
    batch_tokens: int = 4096,
    mask: torch.Tensor | None = None,
    codes: Any = None,
    dirs: torch.Tensor | None = None,
) -> dict[str, float]:
    """FVU, explained variance, cosine similarity, L0, L1, dead fraction and median per-token FVU of ``sae`` on
    ``acts`` (..., d); with ``dirs`` (orthonormal rows, e.g. :func:`top_directions` of the training activations)
    also ``ev_top_pcs_out``, the explained variance with those directions projected out of input and
    reconstruction alike.

    ``mask`` (acts.shape[:-1], bool) keeps only the positions where it is True. ``codes``: the SAE's
    :class:`rsae_utils.sae.codes.TopKCodes` on ``acts`` (a plain TopK SAE), read instead of encoding again.
    """
    rows = _as_rows(acts)
    if mask is not None:
        rows = rows[mask.reshape(-1)]
    mean = rows.mean(0)
    extra = _Extra(mean, dirs)
    ev = ExplainedVarianceCalculator()
    cos_sum = l0_sum = l1_sum = 0.0
    fired = None
    parts = plain_topk(sae)
    if codes is not None and parts is None:
        raise ValueError("codes are given for an SAE that is not plain TopK")
    code_vals, code_idx = codes.rows(mask) if codes is not None else (None, None)
    for start in range(0, rows.shape[0], batch_tokens):
        x = rows[start : start + batch_tokens]
        if parts is not None:  # same numbers (up to float rounding), no dense latent tensor
            if code_vals is not None:
                acts, idx = code_vals[start : start + batch_tokens], code_idx[start : start + batch_tokens]
            else:
                acts, idx = topk_encode(parts, x)
            x_hat = topk_decode(parts, acts, idx)
            ev.add_batch(sae_output=x_hat, hidden_acts=x)
            extra.add(x, x_hat)
            cos_sum += F.cosine_similarity(x, x_hat, dim=-1, eps=1e-8).double().sum().item()
            active = acts > 0
            l0_sum += active.sum().item()
            l1_sum += acts.double().sum().item()
            if fired is None:
                fired = torch.zeros(parts[0].shape[1], dtype=torch.bool, device=idx.device)
            fired[idx[active]] = True
            continue
        z = sae.encode(x)
        if z.is_sparse:
            z = z.to_dense()
        x_hat = sae.decode(z)
        ev.add_batch(sae_output=x_hat.float(), hidden_acts=x)
        extra.add(x, x_hat.float())
        cos_sum += torch.nn.functional.cosine_similarity(x, x_hat.float(), dim=-1, eps=1e-8).double().sum().item()
        active = z != 0
        l0_sum += active.sum().item()
        l1_sum += z.abs().double().sum().item()
        hit = active.any(0)
        fired = hit if fired is None else fired | hit
    n = rows.shape[0]
    explained = ev.compute()
    return {
        "explained_variance": explained,
        "fvu": 1.0 - explained,
        "cos_sim": cos_sum / n,
        "l0": l0_sum / n,
        "l1": l1_sum / n,
        "dead_fraction": 1.0 - fired.float().mean().item() if fired is not None else float("nan"),
        "n_tokens": float(n),
        **extra.result(),
    }


class _Extra:
    """The per-token FVU and the EV with ``dirs`` projected out, accumulated batch by batch."""

    def __init__(self, mean: torch.Tensor, dirs: torch.Tensor | None):
        self.mean, self.dirs = mean, dirs
        self.per_token: list[torch.Tensor] = []
        self.err_out = self.var_out = 0.0

    def add(self, x: torch.Tensor, x_hat: torch.Tensor) -> None:
        e, c = x - x_hat, x - self.mean
        self.per_token.append(e.pow(2).sum(1) / c.pow(2).sum(1).clamp_min(1e-12))
        if self.dirs is not None:
            self.err_out += project_out(e, self.dirs).double().pow(2).sum().item()
            self.var_out += project_out(c, self.dirs).double().pow(2).sum().item()

    def result(self) -> dict[str, float]:
        out = {"median_token_fvu": float(torch.cat(self.per_token).median()) if self.per_token else float("nan")}
        if self.dirs is not None:
            out["ev_top_pcs_out"] = 1.0 - self.err_out / max(self.var_out, 1e-30)
        return out


def _next_token_ce(log_probs: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """Per-token next-token cross-entropy (batch, ctx-1)."""
    return -log_probs[:, :-1].gather(-1, tokens[:, 1:, None]).squeeze(-1)


def _kl(log_p: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    """KL(p || q) per position from log-probabilities."""
    return (log_p.exp() * (log_p - log_q)).sum(-1)


@torch.no_grad()
def training_directions(cache: Any, layer: int, mask_of: Any, n: int = N_TOP_PCS) -> torch.Tensor | None:
    """:func:`top_directions` of the cache's training activations at ``layer`` (positions ``mask_of(tokens)``
    keeps); None when the cache holds no training split (streamed training)."""
    if not cache.manifest["n_windows"].get("train"):
        return None
    acts, tokens = cache.acts(layer, "train"), cache.tokens("train")
    return top_directions(acts[mask_of(tokens)], n)


def spliced_metrics(
    model: Any,
    saes: Mapping[int, Any],
    resid: Mapping[int, torch.Tensor],
    tokens: torch.Tensor,
    batch_size: int = 4,
    mask: torch.Tensor | None = None,
) -> dict[int, dict[str, float]]:
    """CE clean / with SAE / zero-ablated, CE-loss score and KL for each layer's SAE.

    ``resid[layer]`` is the cached residual stream after ``layer`` for ``tokens`` (n, ctx); the model resumes
    from it. The clean logits come from the deepest cached layer, unchanged, and are shared by all layers.
    ``mask`` (n, ctx) bool, as in sae-lens's evals: where False the clean residual is kept (no reconstruction) and
    the position is left out of the averages; the zero ablation zeroes every position.
    """
    mask = torch.ones_like(tokens, dtype=torch.bool) if mask is None else mask
    layers = sorted(saes)
    deepest = max(resid)
    device = next(model.parameters()).device
    sums = {layer: {"ce_sae": 0.0, "ce_zero_abl": 0.0, "kl_div": 0.0, "kl_zero_abl": 0.0} for layer in layers}
    ce_clean = 0.0
    n_ce = n_kl = 0

    # On CPU the lean forward (fastfwd) resumes the same blocks ~1.6x faster than transformer-lens's.
    packed = fastfwd.pack_blocks(model, model.cfg.n_layers) if fastfwd.lean_ok(model) else None

    def log_probs(x: torch.Tensor, layer: int) -> torch.Tensor:
        if packed is not None:
            logits = fastfwd.lean_logits(model, x, layer + 1, packed)
        else:
            logits = model(x.to(device), start_at_layer=layer + 1, return_type="logits")
        return torch.log_softmax(logits.float(), dim=-1).cpu()

    zero_lp = {}
    ctx = tokens.shape[1]
    for layer in layers:
        zero_lp[layer] = log_probs(torch.zeros(1, ctx, resid[layer].shape[-1]), layer)
    for start in range(0, tokens.shape[0], batch_size):
        toks = tokens[start : start + batch_size]
        keep = mask[start : start + batch_size]
        keep_ce = keep[:, :-1].double()  # CE at position t predicts token t + 1
        keep_kl = keep.double()
        clean = log_probs(resid[deepest][start : start + batch_size], deepest)
        ce_clean += (_next_token_ce(clean, toks).double() * keep_ce).sum().item()
        n_ce += int(keep_ce.sum().item())
        n_kl += int(keep_kl.sum().item())
        for layer in layers:
            x = resid[layer][start : start + batch_size].float()
            sae = saes[layer]
            x_hat = torch.where(keep[..., None], reconstruct(sae, x.reshape(-1, x.shape[-1])).view_as(x), x)
            spliced = log_probs(x_hat, layer)
            zero = zero_lp[layer].expand(toks.shape[0], -1, -1)
            s = sums[layer]
            s["ce_sae"] += (_next_token_ce(spliced, toks).double() * keep_ce).sum().item()
            s["ce_zero_abl"] += (_next_token_ce(zero, toks).double() * keep_ce).sum().item()
            s["kl_div"] += (_kl(clean, spliced).double() * keep_kl).sum().item()
            s["kl_zero_abl"] += (_kl(clean, zero).double() * keep_kl).sum().item()
    out = {}
    for layer in layers:
        s = sums[layer]
        ce = {"ce_clean": ce_clean / n_ce, "ce_sae": s["ce_sae"] / n_ce, "ce_zero_abl": s["ce_zero_abl"] / n_ce}
        denom = ce["ce_zero_abl"] - ce["ce_clean"]
        out[layer] = {
            **ce,
            "ce_loss_score": (ce["ce_zero_abl"] - ce["ce_sae"]) / denom if denom != 0 else float("nan"),
            "kl_div": s["kl_div"] / n_kl,
            "kl_zero_abl": s["kl_zero_abl"] / n_kl,
            "n_tokens_spliced": float(n_kl),
        }
    return out


def evaluate_variant(
    model: Any | None,
    cache: Any,
    saes: Mapping[int, Any],
    *,
    split: str = "test",
    n_spliced_windows: int | None = None,
    batch_size: int = 4,
    exclude_tokens: Sequence[int] = (),
    codes: Mapping[int, Any] | None = None,
) -> list[dict[str, Any]]:
    """Tidy rows (model, variant, layer, metric, value) for every SAE of one variant.

    ``model`` None skips the spliced metrics. ``n_spliced_windows`` limits the windows used for them (they cost a
    partial forward per layer; the reconstruction metrics always use the whole split). Positions holding a token
    of ``exclude_tokens`` are left out of every metric (and keep their clean residual when spliced). ``codes``:
    layer -> the SAE's :class:`rsae_utils.sae.codes.TopKCodes` on ``split`` (None: encode here).
    """
    rows: list[dict[str, Any]] = []
    codes = codes or {}
    layers = sorted(saes)
    tokens = cache.tokens(split)
    mask = token_mask(tokens, exclude_tokens)

    def mask_of(t: torch.Tensor) -> torch.Tensor:
        return token_mask(t, exclude_tokens)

    resid = {layer: cache.acts(layer, split) for layer in layers}
    per_layer = {}
    for layer in layers:
        dirs = training_directions(cache, layer, mask_of)
        per_layer[layer] = reconstruction_metrics(
            saes[layer], resid[layer], mask=mask, codes=codes.get(layer), dirs=dirs
        )
    if model is not None:
        n = tokens.shape[0] if n_spliced_windows is None else min(n_spliced_windows, tokens.shape[0])
        deepest = max(cache.layers)
        sub = {layer: resid[layer][:n] for layer in layers}
        sub[deepest] = sub[deepest] if deepest in sub else cache.acts(deepest, split)[:n]
        spliced = spliced_metrics(model, saes, sub, tokens[:n], batch_size=batch_size, mask=mask[:n])
        for layer, vals in spliced.items():
            per_layer[layer].update(vals)
    for layer in layers:
        for metric, value in per_layer[layer].items():
            rows.append(
                {
                    "model": cache.model,
                    "variant": cache.variant,
                    "layer": layer,
                    "metric": metric,
                    "value": float(value),
                }
            )
    return rows


def tidy(rows: Iterable[Mapping[str, Any]] | pd.DataFrame) -> pd.DataFrame:
    """One DataFrame (model, variant, layer, metric, value), sorted for reading."""
    cols = ["model", "variant", "layer", "metric", "value"]
    df = rows[cols].copy() if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows), columns=cols)
    return df.sort_values(["model", "variant", "layer", "metric"], kind="stable").reset_index(drop=True)


def wide(df: pd.DataFrame, metrics: Sequence[str] | None = None) -> pd.DataFrame:
    """The tidy table with one column per metric."""
    out = df.pivot_table(index=["model", "variant", "layer"], columns="metric", values="value", aggfunc="first")
    if metrics is not None:
        out = out[[m for m in metrics if m in out.columns]]
    return out.reset_index()
